/**
 * Journal file names (`journal-<firstSeq>.log`), listing them in seq order,
 * and pruning the ones no checkpoint needs any more.
 */
import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from '../vault/index.js';

/** Digits a journal file name's seq is zero-padded to. */
const SeqDigits = 9;
const NamePattern = /^journal-(\d+)\.log$/;

/** A journal file and the seq of the first record it holds (or will hold). */
export interface JournalFile {
  path: string;
  firstSeq: number;
}

/** The file name for a journal whose first record is `firstSeq`: `journal-000000001.log`. */
export function journalFileName(firstSeq: number): string {
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) {
    throw new RangeError(`journal file seq must be a positive integer, got ${firstSeq}`);
  }
  return `journal-${String(firstSeq).padStart(SeqDigits, '0')}.log`;
}

/** The firstSeq a journal file name stands for, or null when the name is not one `journalFileName` makes. */
export function parseJournalFileName(name: string): number | null {
  const digits = NamePattern.exec(name)?.[1];
  if (digits === undefined) return null;
  const seq = Number(digits);
  // Only canonical names count, so two spellings of one seq can never both be journals.
  return Number.isSafeInteger(seq) && seq >= 1 && journalFileName(seq) === name ? seq : null;
}

/** The journal files in `dir`, sorted by firstSeq; other files are ignored and a missing folder is empty. */
export async function listJournalFiles(dir: string): Promise<JournalFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const files: JournalFile[] = [];
  for (const name of names) {
    const firstSeq = parseJournalFileName(name);
    if (firstSeq !== null) files.push({ path: path.join(dir, name), firstSeq });
  }
  return files.sort((a, b) => a.firstSeq - b.firstSeq);
}

/**
 * Remove the journal files whose every record has a seq of at most `uptoSeq`
 * (the next file starts at or before `uptoSeq + 1`); the newest file always
 * stays. Returns the removed files, oldest first.
 */
export async function pruneJournalFiles(dir: string, uptoSeq: number): Promise<JournalFile[]> {
  const files = await listJournalFiles(dir);
  const removed: JournalFile[] = [];
  for (let i = 0; i + 1 < files.length && files[i + 1]!.firstSeq <= uptoSeq + 1; i++) {
    await unlink(files[i]!.path);
    removed.push(files[i]!);
  }
  if (removed.length > 0) await fsyncDir(dir);
  return removed;
}
