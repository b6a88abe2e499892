/**
 * The primary's lease: `FileVault/failover/lease.json`.
 *
 *   { "holder": "node-a", "url": "https://a:8470/api", "epoch": 7, "counter": 42,
 *     "time": "2026-01-01T00:00:00.000Z", "released": false }
 *
 * Written whole and atomically (temp file, fsync, rename, fsync the folder),
 * so a reader sees one renewal or the next, never half of one. `counter`
 * changes on every write; `time` is informational only (never compared across
 * hosts). Who writes it and when is lease-holder.ts; who reads it, and what
 * its silence means, lease-watcher.ts; the whole protocol, fence.ts.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fsyncDirSync, readIfExists, tempPathFor } from '../vault/index.js';

/** Name of the lease file in `FileVault/failover`. */
export const LeaseFile = 'lease.json';

/** The content of `lease.json`. */
export interface Lease {
  /** Node name of the primary. */
  holder: string;
  /** The holder's API base URL, so a secondary can name the primary. */
  url: string;
  /** The holder's epoch. */
  epoch: number;
  /** Renewal count; changes on every write. */
  counter: number;
  /** Wall-clock ISO time of the write: informational only, never compared across hosts. */
  time: string;
  /** True once the holder gave the lease up (clean shutdown, switchover). */
  released: boolean;
  /** With `released`: the one node that should take over (a switchover to a chosen node); absent: any. */
  candidate?: string;
}

/** `lease.json` exists but is not a lease (bad JSON or wrong shape). */
export class LeaseFormatError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LeaseFormatError';
  }
}

/** An error's message, whatever was thrown. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function shapeProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  if (typeof v.holder !== 'string' || v.holder === '') return '"holder" is not a node name';
  if (typeof v.url !== 'string') return '"url" is not a string';
  if (!Number.isSafeInteger(v.epoch) || (v.epoch as number) < 1) return '"epoch" is not a positive integer';
  if (!Number.isSafeInteger(v.counter) || (v.counter as number) < 0) return '"counter" is not a non-negative integer';
  if (typeof v.time !== 'string') return '"time" is not a string';
  if (typeof v.released !== 'boolean') return '"released" is not true or false';
  if (v.candidate !== undefined && typeof v.candidate !== 'string') return '"candidate" is not a node name';
  return null;
}

/**
 * The lease in `text`, read from `file`. Throws {@link LeaseFormatError} when
 * it is not a lease.
 */
function parseLease(file: string, text: string): Lease {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LeaseFormatError(
      `${file} is not valid JSON (${messageOf(err)}); the primary's next renewal rewrites it — if no primary is running, remove the file`,
      { cause: err },
    );
  }
  const problem = shapeProblem(value);
  if (problem !== null) {
    throw new LeaseFormatError(
      `${file} is not a lease: ${problem}; the primary's next renewal rewrites it — if no primary is running, remove the file`,
    );
  }
  const v = value as Lease;
  return { holder: v.holder, url: v.url, epoch: v.epoch, counter: v.counter, time: v.time, released: v.released, ...(v.candidate === undefined ? {} : { candidate: v.candidate }) };
}

/**
 * The lease in `dir` (`FileVault/failover`), or null when there is none.
 * Throws {@link LeaseFormatError} when the file is not a lease, and the OS
 * error when it cannot be read.
 */
export async function readLease(dir: string): Promise<Lease | null> {
  const file = path.join(dir, LeaseFile);
  const text = await readIfExists(file);
  return text === null ? null : parseLease(file, text);
}

/**
 * {@link readLease}, blocking. The lease holder's thread reads this way so
 * that its reads never queue behind the journal's or a checkpoint's in
 * libuv's thread pool (lease-holder.ts).
 */
export function readLeaseSync(dir: string): Lease | null {
  const file = path.join(dir, LeaseFile);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return parseLease(file, text);
}

/**
 * Publish `lease` as `dir/lease.json` atomically, blocking (see
 * readLeaseSync): temp file in the same folder, fsync, rename, fsync the
 * folder. The temp file is removed on failure.
 */
export function writeLeaseSync(dir: string, lease: Lease): void {
  const { holder, url, epoch, counter, time, released, candidate } = lease;
  const text = JSON.stringify({ holder, url, epoch, counter, time, released, ...(candidate === undefined ? {} : { candidate }) }) + '\n';
  const temp = tempPathFor(dir, LeaseFile);
  const fd = openSync(temp, 'wx', 0o644);
  try {
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path.join(dir, LeaseFile));
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  fsyncDirSync(dir);
}
