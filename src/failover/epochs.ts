/**
 * Epoch claims: `FileVault/failover/epoch-NNNNNNNNN` (9 digits, more past
 * 999999999).
 *
 * Each promotion claims the next epoch by creating its file with O_EXCL: when
 * several secondaries race for epoch N, the file system lets exactly one create
 * it, and the others see EEXIST and stand down. The file then records who
 * claimed it and `sealedSeq`, the last good record of the previous journal
 * that the new primary sealed (docs/ARCHITECTURE.md "Failover protocol").
 *
 * The file's existence is the claim, not its content: a crash between create
 * and write leaves an empty file, and that epoch stays taken (the next
 * promotion claims N+1). Claim files are never removed, so the highest one is
 * the newest epoch.
 */
import { promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { fsyncDir, readIfExists } from '../vault/index.js';

/** Digits an epoch file name's number is zero-padded to. */
const EpochDigits = 9;
const NamePattern = /^epoch-(\d{9,})$/;

/** The content of an epoch file. */
export interface EpochClaim {
  epoch: number;
  /** Node that claimed the epoch. */
  node: string;
  /** Last seq of the journal the claimant sealed when it promoted. */
  sealedSeq: number;
  /** Wall-clock ISO time of the claim; informational only. */
  time: string;
}

/** The file name of epoch `n`: `epoch-000000007`. */
export function epochFileName(n: number): string {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`epoch must be a positive integer, got ${n}`);
  return `epoch-${String(n).padStart(EpochDigits, '0')}`;
}

/** The epoch an epoch file name stands for, or null when the name is not one `epochFileName` makes. */
export function parseEpochFileName(name: string): number | null {
  const digits = NamePattern.exec(name)?.[1];
  if (digits === undefined) return null;
  const n = Number(digits);
  // Only canonical names count, so two spellings of one epoch can never both be claims.
  return Number.isSafeInteger(n) && n >= 1 && epochFileName(n) === name ? n : null;
}

/** The highest claimed epoch in `dir` (`FileVault/failover`); 0 when none or the folder is missing. */
export async function highestEpoch(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  return highestIn(names);
}

/** {@link highestEpoch}, blocking: for the lease holder's thread (lease-holder.ts). */
export function highestEpochSync(dir: string): number {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  return highestIn(names);
}

function highestIn(names: string[]): number {
  let highest = 0;
  for (const name of names) highest = Math.max(highest, parseEpochFileName(name) ?? 0);
  return highest;
}

/**
 * Claim `claim.epoch` by creating its file with O_EXCL, writing the claim and
 * fsyncing file and folder. True when this call made the file; false when it
 * already existed (another node, or an earlier attempt, has the epoch). Other
 * errors are rethrown; when the write fails after the create, the epoch stays
 * claimed by the file that exists.
 */
export async function claimEpoch(dir: string, claim: EpochClaim): Promise<boolean> {
  const file = path.join(dir, epochFileName(claim.epoch));
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    const { epoch, node, sealedSeq, time } = claim;
    await handle.writeFile(JSON.stringify({ epoch, node, sealedSeq, time }) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsyncDir(dir);
  return true;
}

function isClaim(value: unknown, epoch: number): value is EpochClaim {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v.epoch === epoch &&
    typeof v.node === 'string' &&
    Number.isSafeInteger(v.sealedSeq) &&
    (v.sealedSeq as number) >= 0 &&
    typeof v.time === 'string'
  );
}

/**
 * What the file of `epoch` records, or null when it is missing, empty (the
 * claimant crashed before writing) or not a claim of that epoch.
 */
export async function readEpochClaim(dir: string, epoch: number): Promise<EpochClaim | null> {
  const text = await readIfExists(path.join(dir, epochFileName(epoch)));
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isClaim(value, epoch)) return null;
  return { epoch: value.epoch, node: value.node, sealedSeq: value.sealedSeq, time: value.time };
}
