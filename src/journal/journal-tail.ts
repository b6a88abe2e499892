/**
 * Following a journal that another node writes (a secondary's warm standby):
 * each poll delivers the records past the last one delivered, in seq order,
 * and remembers where it stopped. It never changes a file.
 *
 * A frame that is incomplete or does not verify at the end of the newest file
 * is a write in progress: the poll stops before it and the next one tries
 * again. Past such a frame in an older file, the next file is followed when it
 * starts at the expected seq (a primary that died mid-write left that tail,
 * and its successor's journal begins where the good records end). A gap — the
 * file the next seq is in has been pruned — is reported, not skipped: the
 * follower must load a newer checkpoint instead.
 *
 * A record counts as read only once `onRecord` has applied it: when it throws,
 * the poll rejects and the next one delivers the same record again.
 *
 * Only counted files are followed (journal-files.ts): a superseded epoch's
 * file is never read. When a newer epoch's file begins at or before a seq this
 * follower already applied from an older epoch, what it applied past that
 * point was void (the promotion sealed below it): that is reported as
 * `diverged`, and the follower must rebuild from a checkpoint.
 */
import { open } from 'node:fs/promises';
import { listCountedJournalFiles, type JournalFile } from './journal-files.js';
import { FrameHeaderBytes, decodeFrame, frameLength, type JournalRecord } from './record.js';

/** Bytes read per call. */
const ReadChunkBytes = 1024 * 1024;

/** What one poll found. */
export interface TailResult {
  /** Records delivered. */
  records: number;
  /** The seq wanted next is in no file any more (pruned): the first seq the journal still has, else null. */
  gap: { wanted: number; firstAvailable: number } | null;
  /** A newer epoch sealed the journal below what this follower applied (see above), else null. */
  diverged: { appliedSeq: number; appliedEpoch: number; file: string; sealedAt: number } | null;
}

/** Reads new journal records as they appear. */
export class JournalTail {
  /** Where the last poll stopped: the file, the offset of the next frame. */
  private at: { file: JournalFile; offset: number } | null = null;

  /** Follow `dir` from seq `nextSeq` on; `epoch`: the epoch of the record before it (of the state it follows from). */
  constructor(
    private readonly dir: string,
    private next: number,
    private epoch: number,
  ) {}

  /** The seq the next delivered record will carry. */
  get nextSeq(): number {
    return this.next;
  }

  /** Start again from `nextSeq` (after loading a checkpoint past a gap, say), whose previous record has `epoch`. */
  reset(nextSeq: number, epoch: number): void {
    this.next = nextSeq;
    this.epoch = epoch;
    this.at = null;
  }

  /** Deliver every complete record past the last one; `onRecord` may return a promise, which is awaited. */
  async poll(onRecord: (record: JournalRecord) => unknown): Promise<TailResult> {
    // A folder that is gone (the FileVault went away) is an error, not "nothing new": listed in one call, so that it
    // cannot vanish for the listing and be back for a later check (which read an empty listing as the journal's end).
    const files = await listCountedJournalFiles(this.dir, { mustExist: true });
    // Nor is a listing with no file at all once this follower has read one: a stale or failing listing of a network
    // file system, never the journal's end (a journal keeps its newest file).
    if (files.length === 0 && this.at !== null) {
      throw new Error(`the journal folder ${this.dir} lists no file, though this node was reading ${this.at.file.path}; is the FileVault mounted and its listing fresh?`);
    }
    let records = 0;
    for (;;) {
      const sealed = files.find((f) => f.epoch !== null && f.epoch > this.epoch && f.firstSeq <= this.next - 1);
      if (sealed !== undefined) {
        return { records, gap: null, diverged: { appliedSeq: this.next - 1, appliedEpoch: this.epoch, file: sealed.path, sealedAt: sealed.firstSeq - 1 } };
      }
      const index = this.fileIndex(files);
      if (index === -1) {
        const first = files[0];
        const gap = first !== undefined && first.firstSeq > this.next ? { wanted: this.next, firstAvailable: first.firstSeq } : null;
        return { records, gap, diverged: null };
      }
      const file = files[index]!;
      const later = files[index + 1];
      if (this.at?.file.path !== file.path) this.at = { file, offset: 0 };
      // A file ends where the next one begins: records after that in it are a fenced primary's late writes.
      await this.readFile(this.at, later === undefined ? Infinity : later.firstSeq - 1, async (record) => {
        const pending = onRecord(record);
        if (pending instanceof Promise) await pending;
        // Applied: only now is it read.
        records++;
        this.next = record.seq + 1;
        this.epoch = record.epoch;
      });
      // Move on only when the next file starts exactly where this one's good records end.
      if (later !== undefined && later.firstSeq === this.next) {
        this.at = { file: later, offset: 0 };
        continue;
      }
      return { records, gap: null, diverged: null };
    }
  }

  /** The newest file that can hold seq `next`, or -1. */
  private fileIndex(files: JournalFile[]): number {
    let found = -1;
    for (const [i, f] of files.entries()) if (f.firstSeq <= this.next) found = i;
    return found;
  }

  /**
   * Reads frames from `at.offset` to the end of the file or the first
   * incomplete or bad frame, delivering the one carrying `next` each time.
   */
  private async readFile(at: { file: JournalFile; offset: number }, endSeq: number, deliver: (record: JournalRecord) => Promise<void>): Promise<void> {
    const handle = await open(at.file.path, 'r');
    try {
      const { size } = await handle.stat();
      let buf = Buffer.alloc(0);
      let bufStart = at.offset;
      while (at.offset < size) {
        const need = async (n: number): Promise<Buffer | null> => {
          if (at.offset + n > size) return null;
          if (at.offset - bufStart + n > buf.length) {
            const want = Math.min(Math.max(n, ReadChunkBytes), size - at.offset);
            buf = Buffer.allocUnsafe(want);
            const { bytesRead } = await handle.read(buf, 0, want, at.offset);
            buf = buf.subarray(0, bytesRead);
            bufStart = at.offset;
            if (bytesRead < n) return null;
          }
          return buf.subarray(at.offset - bufStart, at.offset - bufStart + n);
        };
        if (this.next > endSeq) return;
        const header = await need(FrameHeaderBytes);
        if (header === null) return;
        const length = frameLength(header);
        if (length === null) return;
        const frame = await need(FrameHeaderBytes + length);
        if (frame === null) return;
        const decoded = decodeFrame(Buffer.from(frame));
        if (!decoded.ok) return;
        const { record } = decoded;
        if (record.seq > this.next || record.seq > endSeq) return; // not the seq that must follow, or past the file's seal: stop, never skip
        // Past a record only once it is applied: a failed apply leaves the offset on it, and the next poll retries it.
        if (record.seq === this.next) await deliver(record);
        at.offset += FrameHeaderBytes + length;
      }
    } finally {
      await handle.close();
    }
  }
}
