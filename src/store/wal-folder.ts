/**
 * Folds the storage engine's WAL files into their databases on a thread of
 * its own. A fold (a SQLite checkpoint) writes every page the commits since
 * the last one dirtied and, with `synchronous=NORMAL`, syncs the WAL and the
 * database: done on the main thread, inside a commit, it held every commit
 * of the node behind two fsyncs (at 64 writers: 18,000 commits/s with folds
 * on the main thread, 29,000 without). The space files' own connections
 * never fold (`wal_autocheckpoint = 0`); this thread folds each file every
 * `FoldIntervalMs` without waiting for readers (PASSIVE), so a WAL stays at
 * what that interval writes.
 *
 * After each round the thread reports, for each file, how much it folded and
 * how much a reader kept it from folding. From that the writer knows when
 * cutting a WAL back (limitWal) would fold little on the event loop
 * (`mayCut`), and a checkpoint waits for a short round (`settled`) before it
 * holds a snapshot, so that the snapshot folds little there too.
 */
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log/index.js';
import { WalLimitBytes } from './space-file.js';

/** How often each WAL is folded. */
const FoldIntervalMs = 200;

/**
 * The most a round may have folded, or left unfolded, in a file for the
 * writer to cut its WAL back at once (mayCut): what the cut folds is what was
 * written since that round began.
 */
const CutBacklogBytes = 16 * 1024 * 1024;

/** The same for taking a snapshot (WalFolder.settled); and how many rounds a snapshot waits at most, each at most RoundWaitMs. */
const SettledBacklogBytes = 4 * 1024 * 1024;
const SettleRounds = 5;
const RoundWaitMs = 2000;

/** One file's fold in a round: its path, the bytes of one WAL frame, the frames folded, and the frames a reader kept it from folding. */
type Folded = [file: string, frameBytes: number, copied: number, unfolded: number];

/** One file's last fold: bytes folded, bytes a reader kept the thread from folding, and whether the thread is catching up (mayCut). */
interface FoldState {
  copiedBytes: number;
  unfoldedBytes: number;
  catchingUp: boolean;
}

interface FolderStart {
  module: string;
  intervalMs: number;
  /** One Int32 the thread sets to 1 once it closed its connections on a stop (WalFolder.stop waits for it). */
  stopped: SharedArrayBuffer;
}

/** Longest WalFolder.stop waits for the thread to finish the fold under way and close its connections. */
const StopWaitMs = 10_000;

/** The size of database `file`'s WAL, 0 when it has none. */
function walSize(file: string): number {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
}

/** The thread: plain JavaScript run from its source text, with the SQLite module it is given. */
function folderMain(threads: typeof import('node:worker_threads'), load: (module: string) => unknown): void {
  const { module, intervalMs, stopped } = threads.workerData as FolderStart;
  type Db = { pragma(sql: string, options?: object): unknown; close(): void };
  const Database = load(module) as new (path: string, options: object) => Db;
  // Each file's connection, its frame size, and the WAL's frames and frames folded after the last fold.
  const open = new Map<string, { db: Db; frameBytes: number; log: number; checkpointed: number }>();
  let failures = 0;
  const port = threads.parentPort!;
  let timer: ReturnType<typeof setInterval> | null = null;
  const round = (): Folded[] => {
    const folded: Folded[] = [];
    for (const [file, last] of open) {
      try {
        const [result] = last.db.pragma('wal_checkpoint(PASSIVE)') as { log: number; checkpointed: number }[];
        if (result === undefined || result.log < 0) continue;
        // A WAL shorter than at the last fold started again from its beginning (or was cut back): all folded is new.
        const copied = result.log < last.log ? result.checkpointed : result.checkpointed - last.checkpointed;
        folded.push([file, last.frameBytes, Math.max(0, copied), result.log - result.checkpointed]);
        last.log = result.log;
        last.checkpointed = result.checkpointed;
      } catch (err) {
        // A file removed or replaced under it: the next list says so. Reported, a few times at most.
        if (failures++ < 5) port.postMessage({ file, error: (err as Error).message });
      }
    }
    return folded;
  };
  port.on('message', (files: string[] | number | null) => {
    if (typeof files === 'number') {
      // A round asked for: it begins after everything written before the question.
      port.postMessage({ round: round(), answer: files });
      return;
    }
    if (files === null) {
      // Stop: between folds, so that no SQLite call is cut short (terminating the thread inside one that fails aborts
      // the whole process). The thread ends once its port closes.
      if (timer !== null) clearInterval(timer);
      for (const { db } of open.values()) db.close();
      open.clear();
      const flag = new Int32Array(stopped);
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      port.close();
      return;
    }
    const wanted = new Set(files);
    for (const [file, { db }] of open) {
      if (wanted.has(file)) continue;
      db.close();
      open.delete(file);
    }
    for (const file of wanted) {
      if (open.has(file)) continue;
      try {
        const db = new Database(file, { fileMustExist: true });
        db.pragma('wal_autocheckpoint = 0');
        // A WAL frame: a 24-byte header and a page.
        open.set(file, { db, frameBytes: (db.pragma('page_size', { simple: true }) as number) + 24, log: 0, checkpointed: 0 });
      } catch (err) {
        port.postMessage({ file, error: (err as Error).message });
      }
    }
  });
  timer = setInterval(() => port.postMessage({ round: round() }), intervalMs);
}

const folderSource = `var __name = (f) => f;\n(${folderMain.toString()})(require('node:worker_threads'), require);`;

/** The folding thread of one engine. */
export class WalFolder {
  private readonly worker: Worker;
  private readonly state = new Map<string, FoldState>();
  /** The files folded. */
  private paths = new Set<string>();
  /** Rounds asked for so far (`settled`), and who waits for which answer; null once the thread stopped. */
  private asked = 0;
  private answers: Map<number, (round: Folded[] | null) => void> | null = new Map();
  /** Set by the thread once a stop closed its connections (FolderStart.stopped). */
  private readonly stopped = new Int32Array(new SharedArrayBuffer(4));

  constructor(logger: Logger) {
    const start: FolderStart = { module: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs: FoldIntervalMs, stopped: this.stopped.buffer };
    this.worker = new Worker(folderSource, { eval: true, workerData: start, execArgv: [] });
    this.worker.on('message', (m: { round: Folded[]; answer?: number } | { file: string; error: string }) => {
      if (!('round' in m)) return logger.warn('storage engine: folding a WAL failed', m);
      this.reported(m.round);
      if (m.answer !== undefined) this.answers?.get(m.answer)?.(m.round);
    });
    this.worker.on('error', (err) => logger.error('storage engine: the WAL folding thread stopped', { error: err.message }));
    // Nothing more will be folded: whoever waits for a round goes on without it.
    this.worker.on('exit', () => {
      for (const answer of this.answers?.values() ?? []) answer(null);
      this.answers = null;
    });
    // After the listeners, which would hold the process otherwise: this thread never keeps a process alive.
    this.worker.unref();
  }

  /** Fold exactly these database files from now on. */
  files(paths: readonly string[]): void {
    this.paths = new Set(paths);
    for (const file of this.state.keys()) if (!this.paths.has(file)) this.state.delete(file);
    this.worker.postMessage([...paths]);
  }

  /**
   * Whether the writer may cut back `file`'s WAL, now `walBytes` long, at once
   * (limitWal). Not before the thread's first round on the file, nor while
   * a reader keeps it from folding (a snapshot: the cut would fold all it
   * held back, once the snapshot let go).
   * Then when that round folded at most CutBacklogBytes, so that what is left
   * is what was written since it began. Rounds that fold more than that right
   * after a reader let go, each less than the one before, are catching up on
   * what the reader held back: the writer waits for them. Otherwise writes
   * outrun the thread, and the writer cuts once the WAL is past twice
   * WalLimitBytes: its own fold is then what bounds the WAL.
   */
  mayCut(file: string, walBytes: number): boolean {
    const last = this.state.get(file);
    if (last === undefined || last.unfoldedBytes > CutBacklogBytes) return false;
    if (last.copiedBytes <= CutBacklogBytes) return true;
    return !last.catchingUp && walBytes >= 2 * WalLimitBytes;
  }

  /**
   * Resolves once a round the thread folded after this call (asked for, so
   * that it begins after every write before it) folded at most
   * SettledBacklogBytes of each file and left no more than that unfolded:
   * what is left is then what was written during that short round. At once
   * when every WAL is that short anyway or the thread has stopped; after
   * SettleRounds rounds if the writer keeps ahead of the thread. A snapshot
   * taken then folds little on the event loop.
   */
  async settled(): Promise<void> {
    if ([...this.paths].every((file) => walSize(file) <= SettledBacklogBytes)) return;
    const short = ([, frameBytes, copied, unfolded]: Folded): boolean => copied * frameBytes <= SettledBacklogBytes && unfolded * frameBytes <= SettledBacklogBytes;
    for (let n = 0; n < SettleRounds && this.answers !== null; n++) {
      const round = await this.foldNow();
      if (round !== null && round.every(short)) return;
    }
  }

  /**
   * Stop the thread once its fold under way (if any) is done: it closes its
   * connections and ends. Returns once they are closed (or after StopWaitMs),
   * so that the engine's folder may go at once: SQLite touches a database's
   * side files as its last connection closes, and a removal of the folder
   * that ran meanwhile failed on a file that appeared after it emptied the
   * folder (ENOTEMPTY; seen in the tests, and Engine.replaceWith removes an
   * engine's folder right after closing it).
   */
  stop(): void {
    this.worker.postMessage(null);
    // A thread that already ended (answers gone) has nothing open.
    if (this.answers !== null) Atomics.wait(this.stopped, 0, 0, StopWaitMs);
  }

  /**
   * Ask the thread for a round now: resolves with what it folded, or null if
   * it has not answered within RoundWaitMs (it is folding a long WAL) or has
   * stopped. The timer keeps the process alive meanwhile, which the thread
   * itself does not.
   */
  private foldNow(): Promise<Folded[] | null> {
    return new Promise((resolve) => {
      const answers = this.answers;
      if (answers === null) return resolve(null);
      const n = ++this.asked;
      const done = (round: Folded[] | null): void => {
        clearTimeout(timer);
        answers.delete(n);
        resolve(round);
      };
      const timer = setTimeout(() => done(null), RoundWaitMs);
      answers.set(n, done);
      this.worker.postMessage(n);
    });
  }

  private reported(round: Folded[]): void {
    for (const [file, frameBytes, copied, unfolded] of round) {
      if (!this.paths.has(file)) continue;
      const before = this.state.get(file);
      const copiedBytes = copied * frameBytes;
      const catchingUp = before !== undefined && copiedBytes > CutBacklogBytes && (before.unfoldedBytes > CutBacklogBytes || (before.catchingUp && copiedBytes < before.copiedBytes));
      this.state.set(file, { copiedBytes, unfoldedBytes: unfolded * frameBytes, catchingUp });
    }
  }
}
