/**
 * The commit journal in `FileVault/journal/`: record framing, group commit
 * with fsync, torn-tail recovery and replay. The on-disk format and the
 * recovery rules are described at the top of record.ts.
 */
export { crc32c } from './crc32c.js';
export { decodeFrame, decodeFrameHead, encodeRecord, type JournalRecord } from './record.js';
export { countedJournalFiles, journalFileName, listCountedJournalFiles, listJournalFiles, parseJournalFileName, pruneJournalFiles, type JournalFile } from './journal-files.js';
export { firstFileToRead, scanJournal, type JournalCut, type ScanOptions, type ScanResult } from './journal-scan.js';
export { JournalWriter, type JournalStats, type JournalWriterOptions } from './journal-writer.js';
export { JournalTail, type TailResult } from './journal-tail.js';
