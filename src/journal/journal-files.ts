/**
 * Journal file names and which files count.
 *
 * Each epoch writes its own files: `journal-<firstSeq>-<epoch>.log`
 * (`journal-000000101-000000002.log`, both zero-padded to 9 digits, more when
 * needed). A file is created with O_EXCL by the one node that claimed its
 * epoch and written by that node alone, so no file is ever written from offset
 * 0 by a second writer: a superseded primary's write that hung (NFS) and lands
 * after a promotion lands in its own epoch's file, never in its successor's.
 *
 * Which records count (sorted by firstSeq, then epoch):
 * - A file is sealed where the next counted file begins when that file has a
 *   higher epoch: its records up to the seq before it count, anything after is
 *   void (never acknowledged: its writer was fenced before the claim).
 * - A file whose epoch is lower than that of a file sorted before it is void
 *   as a whole: the superseded epoch rolled after its successor took over.
 * Void bytes are ignored and logged, never cut, and never stop a start-up.
 *
 * Files named `journal-<firstSeq>.log` (no epoch) are read as before:
 * earlier versions wrote them, and their epoch is that of their first record.
 */
import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from '../vault/index.js';

/** Digits a journal file name's seq and epoch are zero-padded to. */
const SeqDigits = 9;
const NamePattern = /^journal-(\d+)(?:-(\d+))?\.log$/;

/** A journal file, the seq of the first record it holds (or will hold), and the epoch that wrote it. */
export interface JournalFile {
  path: string;
  firstSeq: number;
  /** The writer's epoch, from the name; null for a file named without one (earlier versions). */
  epoch: number | null;
}

function padded(n: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`journal file ${what} must be a positive integer, got ${n}`);
  return String(n).padStart(SeqDigits, '0');
}

/** The file name for epoch `epoch`'s journal whose first record is `firstSeq`: `journal-000000101-000000002.log`. */
export function journalFileName(firstSeq: number, epoch: number): string {
  return `journal-${padded(firstSeq, 'seq')}-${padded(epoch, 'epoch')}.log`;
}

/** What a journal file name stands for, or null when the name is not one this version or an earlier one makes. */
export function parseJournalFileName(name: string): { firstSeq: number; epoch: number | null } | null {
  const match = NamePattern.exec(name);
  if (match === null) return null;
  const firstSeq = Number(match[1]);
  const epoch = match[2] === undefined ? null : Number(match[2]);
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1 || (epoch !== null && (!Number.isSafeInteger(epoch) || epoch < 1))) return null;
  // Only canonical names count, so two spellings of one file can never both be journals.
  const canonical = epoch === null ? `journal-${padded(firstSeq, 'seq')}.log` : journalFileName(firstSeq, epoch);
  return canonical === name ? { firstSeq, epoch } : null;
}

/** The journal files in `dir`, sorted by firstSeq then epoch; other files are ignored and a missing folder is empty. */
export async function listJournalFiles(dir: string, options: { mustExist?: boolean } = {}): Promise<JournalFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && options.mustExist !== true) return [];
    throw err;
  }
  const files: JournalFile[] = [];
  for (const name of names) {
    const parsed = parseJournalFileName(name);
    if (parsed !== null) files.push({ path: path.join(dir, name), ...parsed });
  }
  return files.sort((a, b) => a.firstSeq - b.firstSeq || (a.epoch ?? 0) - (b.epoch ?? 0));
}

/**
 * Splits `files` (sorted) into those whose records may count and those void
 * as a whole: a file whose epoch is lower than a file's sorted before it was
 * written by a superseded epoch after its successor took over.
 */
export function countedJournalFiles(files: JournalFile[]): { counted: JournalFile[]; superseded: JournalFile[] } {
  const counted: JournalFile[] = [];
  const superseded: JournalFile[] = [];
  let highest = 0;
  for (const file of files) {
    const epoch = file.epoch ?? 0;
    if (epoch < highest) superseded.push(file);
    else counted.push(file);
    highest = Math.max(highest, epoch);
  }
  return { counted, superseded };
}

/** The counted journal files in `dir` (see {@link countedJournalFiles}), oldest first. */
export async function listCountedJournalFiles(dir: string, options: { mustExist?: boolean } = {}): Promise<JournalFile[]> {
  return countedJournalFiles(await listJournalFiles(dir, options)).counted;
}

/**
 * Remove the counted journal files whose every record has a seq of at most
 * `uptoSeq` (the next counted file starts at or before `uptoSeq + 1`), and the
 * void files of superseded epochs that start there too; the newest counted file
 * always stays. Returns the removed files, oldest first.
 */
export async function pruneJournalFiles(dir: string, uptoSeq: number): Promise<JournalFile[]> {
  const { counted, superseded } = countedJournalFiles(await listJournalFiles(dir));
  const removed: JournalFile[] = [];
  for (let i = 0; i + 1 < counted.length && counted[i + 1]!.firstSeq <= uptoSeq + 1; i++) removed.push(counted[i]!);
  removed.push(...superseded.filter((f) => f.firstSeq <= uptoSeq + 1));
  removed.sort((a, b) => a.firstSeq - b.firstSeq || (a.epoch ?? 0) - (b.epoch ?? 0));
  for (const file of removed) await unlink(file.path);
  if (removed.length > 0) await fsyncDir(dir);
  return removed;
}
