/**
 * The messages between writeCheckpointArchive (main thread) and its write
 * worker (write-worker.ts). Types only: both sides are type-checked against
 * them, nothing here exists at run time.
 *
 * The worker is an ordered byte pipe into one file: each message that carries
 * bytes appends them at the end, in message order, whatever the deflater's
 * timing. The main thread encodes every ZIP record; the worker never formats
 * one, it reports where each entry's data landed so the main thread can.
 */

/** What the worker is started with (its `workerData`). */
export interface WriteWorkerInit {
  /** An open file descriptor of the (new, empty) target; the main thread owns and closes it. */
  fd: number;
  /**
   * A second descriptor of the same file opened with O_DIRECT, or null: the
   * appends then go from an aligned staging area straight to the disk instead
   * of through the page cache (the main thread owns and closes it too).
   */
  directFd: number | null;
  /** 0 stores entries' data, 1 to 9 deflates it at that zlib level. */
  level: number;
  /** Deflate threads, each deflating one batch at a time. */
  parallel: number;
  /** The deflate threads' eval source (deflateWorkerMain). */
  deflateSource: string;
  /** Bytes gathered before one write to disk. */
  writeBytes: number;
  /** The size of the main thread's batch buffers: an ArrayBuffer of this size is given back once its bytes are written. */
  batchBytes: number;
  /** Bytes read at a time when hashing the finished file. */
  hashReadBytes: number;
  /** Bytes written between two fdatasyncs while writing (0: only the final fsync). */
  syncEveryBytes: number;
  /**
   * Bytes the writes may run ahead of the last finished fdatasync before the
   * worker waits for the one in flight (0: no limit). Without a limit the
   * page cache takes a gigabyte far faster than the disk does, and what is
   * left dirty is written in one go at the end, in front of every commit's
   * journal write.
   */
  maxUnsyncedBytes: number;
  /**
   * Most bytes a second this worker writes and reads back, together (0: as
   * fast as the disk takes them): each write and read waits for its turn, so
   * that they are evenly spaced (see checkpoint.maxDiskRate).
   */
  bytesPerSecond: number;
}

/** Main → worker. */
export type ToWriteWorker =
  /** Bytes to append as they are (ZIP records, the manifest's reserved place). */
  | { type: 'put'; data: Uint8Array }
  /**
   * Uncompressed bytes of the current entry (the first batch after an entry's
   * `last` opens the next one): hashed, then stored or deflated and appended.
   * `last` ends the entry; an empty entry is one empty `last` batch.
   */
  | { type: 'batch'; data: Uint8Array; last: boolean }
  /** Bytes to write over bytes already appended, once everything is appended. */
  | { type: 'patch'; at: number; data: Uint8Array }
  /** Append nothing more: write, patch, fsync and hash the file. */
  | { type: 'finish' }
  /** Stop: write nothing more and end the thread (see WorkerSink.close). */
  | { type: 'stop' };

/** Worker → main. */
export type FromWriteWorker =
  /**
   * A batch's output is on its way to the disk: `bytes` uncompressed bytes may
   * be sent again. `spare`: batch buffers whose bytes this thread is done with,
   * moved back to be filled again (a fresh megabyte a batch is a gigabyte of
   * memory first touched per gigabyte written).
   */
  | { type: 'ack'; bytes: number; spare: ArrayBuffer[] }
  /** An entry's data is appended: it starts at `start` and takes `compressedSize` bytes. */
  | { type: 'entry'; start: number; compressedSize: number; size: number; crc: number; sha256: string }
  /** Everything is written, patched and fsynced: the file's size and SHA-256 (hex); `direct`: its appends bypassed the page cache. */
  | { type: 'finished'; size: number; sha256: string; direct: boolean }
  /** The worker stopped on this error; it writes nothing more. */
  | { type: 'failed'; error: WorkerErrorData };

/** An error as it crosses the thread boundary: what callers look at (`code` above all) survives. */
export interface WorkerErrorData {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  errno?: number;
  syscall?: string;
}

/** Write worker → a deflate thread: one batch (moved, not copied), to deflate with `dictionary` before it. */
export interface DeflateJob {
  id: number;
  input: Uint8Array;
  dictionary: Uint8Array;
  last: boolean;
  level: number;
}

/** A deflate thread → the write worker: the batch's output and its input back (both moved), or why it failed. */
export type DeflateResult = { id: number; output: Uint8Array; input: Uint8Array; error?: undefined } | { id: number; output?: undefined; error: { name: string; message: string; code?: string } };
