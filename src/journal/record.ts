/**
 * The journal's on-disk format and how start-up recovery reads it.
 *
 * Files live in `FileVault/journal/` and are named
 * `journal-<firstSeq>-<epoch>.log` (`journal-000000001-000000001.log`:
 * zero-padded to 9 digits, more when needed), where firstSeq is the seq of the
 * first record the file holds or will hold and epoch is its writer's; each
 * epoch writes only its own files (journal-files.ts). Each file is a plain run
 * of frames, nothing else: no header, no footer.
 *
 *   frame   = length u32 LE | crc u32 LE | payload (length bytes)
 *   crc     = CRC-32C over the 4 length bytes followed by the payload
 *   payload = UTF-8 JSON {"seq":N,"epoch":E,"op":…}
 *
 * The CRC covers the length too, so a torn or flipped length cannot send the
 * reader off to a plausible-looking frame. A length of 0 or above
 * MaxRecordBytes is a bad frame. Seqs are global and gap-free: within a file
 * and across files each record's seq is the previous one + 1, and a file's
 * first record carries the seq in its name. Only the very first record of the
 * oldest file may start anywhere (older files are removed with their checkpoints).
 *
 * Recovery rules (scanJournal):
 * - A bad frame (short header, bad length, frame past end of file, CRC
 *   mismatch, payload that is not a record) in the LAST file, with no valid
 *   frame carrying a later seq anywhere after it, is a torn tail: a write that
 *   never finished, hence never acknowledged. The journal ends at the last
 *   good record and nothing before it is lost. The daemon leaves the torn
 *   bytes where they are (their writer may still be alive on another host):
 *   the next primary's own file starts right after that record and seals them
 *   off (Store.promote). scanJournal can also cut them (`repair`: ftruncate +
 *   fsync, logged), which only an in-process Store opened for writing does.
 * - Two batches in flight when the writer died: the second landed, the first
 *   did not (a hole of zero bytes before it). Batches are acknowledged in file
 *   order, so nothing from the first missing byte on was acknowledged: when
 *   the bad stretch holds a run of zero bytes and what follows it to the end
 *   of the last file is at most one batch (one frame, or at most
 *   MaxBatchBytes), it is a torn tail too.
 * - A bad frame followed by a valid later frame, a bad frame in any file but
 *   the last, a seq that is not previous + 1, or a file whose name does not
 *   match its first seq, is damage in the middle: cutting there would drop
 *   acknowledged commits, so recovery stops with JournalCorruptError and
 *   changes nothing. An operator restores the file or accepts the loss.
 * - Empty (0-byte) files are fine; a writer creates them before the first append.
 * - A file ends where the next one begins. When the next file has a higher
 *   epoch (a promotion sealed this one), anything after the seq before it is
 *   void: bytes a fenced primary's hung write (NFS) put there after the seal.
 *   A file of a lower epoch than one sorted before it is void as a whole.
 *   Void bytes were never acknowledged (the old primary fenced itself before
 *   the new one could claim the epoch), so they are ignored and logged, and
 *   the file is left as it is. Within one epoch (a roll) such bytes are damage.
 */
import { MaxRecordBytes } from '../config/index.js';
import { PayloadTooLargeError } from '../errors.js';
import { crc32c } from './crc32c.js';

/** One journal record: a commit `op` numbered by the global `seq`, tagged with the writer's `epoch`. */
export interface JournalRecord<Op = unknown> {
  seq: number;
  epoch: number;
  op: Op;
}

/** Bytes before the payload: length and CRC. */
export const FrameHeaderBytes = 8;

/** One full frame (header + payload) for `rec`. */
export function encodeRecord(rec: JournalRecord): Buffer {
  if (!Number.isSafeInteger(rec.seq) || rec.seq < 1) throw new RangeError(`journal seq must be a positive integer, got ${rec.seq}`);
  if (!Number.isSafeInteger(rec.epoch) || rec.epoch < 0) {
    throw new RangeError(`journal epoch must be a non-negative integer, got ${rec.epoch}`);
  }
  const op = JSON.stringify(rec.op) as string | undefined;
  if (op === undefined) throw new TypeError('journal record op must be a JSON value');
  // Built by hand so the key order is fixed and `op` is serialised once.
  const payload = `{"seq":${rec.seq},"epoch":${rec.epoch},"op":${op}}`;
  const length = Buffer.byteLength(payload, 'utf8');
  if (length > MaxRecordBytes) {
    throw new PayloadTooLargeError(
      `journal record of ${length} bytes is over the ${MaxRecordBytes}-byte limit; split the change into smaller commits`,
    );
  }
  const frame = Buffer.allocUnsafe(FrameHeaderBytes + length);
  frame.writeUInt32LE(length, 0);
  frame.write(payload, FrameHeaderBytes, length, 'utf8');
  const crc = crc32c(frame.subarray(FrameHeaderBytes), crc32c(frame.subarray(0, 4)));
  frame.writeUInt32LE(crc, 4);
  return frame;
}

/** The payload length a frame header announces, or null when no valid frame can have it. */
export function frameLength(header: Buffer): number | null {
  const length = header.readUInt32LE(0);
  return length === 0 || length > MaxRecordBytes ? null : length;
}

/** What reading one complete frame gave: its record, or why it is bad. */
export type DecodedFrame = { ok: true; record: JournalRecord } | { ok: false; reason: string };

/** How `encodeRecord` begins a payload whose op's first key is `type`. */
const PayloadHead = /^\{"seq":([0-9]{1,16}),"epoch":([0-9]{1,16}),"op":\{"type":"([a-z.]{1,40})"/;

/**
 * As `decodeFrame` for a record the reader needs only the seq and epoch of,
 * unless its op is of a type in `parse`: the checksum is checked, but the
 * payload is parsed only when it is such a type or does not begin as
 * `encodeRecord` writes it; otherwise the record's op is null. Parsing is most
 * of the cost of reading a journal (about 150 MB/s against 800 MB/s for the
 * checksum here), and a start-up needs none of the ops a checkpoint covers but
 * the restores.
 */
export function decodeFrameHead(frame: Buffer, parse: ReadonlySet<string>): DecodedFrame {
  const payload = checkedPayload(frame);
  if (payload === null) return { ok: false, reason: 'checksum mismatch' };
  const head = PayloadHead.exec(payload.toString('latin1', 0, Math.min(payload.length, 128)));
  if (head === null || parse.has(head[3]!)) return parseRecord(payload);
  const seq = Number(head[1]);
  const epoch = Number(head[2]);
  if (!Number.isSafeInteger(seq) || seq < 1 || !Number.isSafeInteger(epoch)) return parseRecord(payload);
  return { ok: true, record: { seq, epoch, op: null } };
}

/** Checks and decodes one complete frame (header + exactly the announced payload). */
export function decodeFrame(frame: Buffer): DecodedFrame {
  const payload = checkedPayload(frame);
  return payload === null ? { ok: false, reason: 'checksum mismatch' } : parseRecord(payload);
}

/** The frame's payload if its checksum holds, else null. */
function checkedPayload(frame: Buffer): Buffer | null {
  const payload = frame.subarray(FrameHeaderBytes);
  return crc32c(payload, crc32c(frame.subarray(0, 4))) === frame.readUInt32LE(4) ? payload : null;
}

/** The record a checksummed payload holds, or why it is not one. */
function parseRecord(payload: Buffer): DecodedFrame {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'payload is not JSON' };
  }
  if (typeof value !== 'object' || value === null || !('op' in value)) {
    return { ok: false, reason: 'payload is not a journal record' };
  }
  const { seq, epoch, op } = value as Record<string, unknown>;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return { ok: false, reason: 'record has no valid seq' };
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) {
    return { ok: false, reason: 'record has no valid epoch' };
  }
  return { ok: true, record: { seq, epoch, op } };
}
