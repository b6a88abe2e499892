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
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log/index.js';

/** How often each WAL is folded. */
const FoldIntervalMs = 200;

interface FolderStart {
  module: string;
  intervalMs: number;
}

/** The thread: plain JavaScript run from its source text, with the SQLite module it is given. */
function folderMain(threads: typeof import('node:worker_threads'), load: (module: string) => unknown): void {
  const { module, intervalMs } = threads.workerData as FolderStart;
  type Db = { pragma(sql: string): unknown; close(): void };
  const Database = load(module) as new (path: string, options: object) => Db;
  const open = new Map<string, Db>();
  let failures = 0;
  const port = threads.parentPort!;
  let timer: ReturnType<typeof setInterval> | null = null;
  port.on('message', (files: string[] | null) => {
    if (files === null) {
      // Stop: between folds, so that no SQLite call is cut short (terminating the thread inside one that fails aborts
      // the whole process). The thread ends once its port closes.
      if (timer !== null) clearInterval(timer);
      for (const db of open.values()) db.close();
      open.clear();
      port.close();
      return;
    }
    const wanted = new Set(files);
    for (const [file, db] of open) {
      if (wanted.has(file)) continue;
      db.close();
      open.delete(file);
    }
    for (const file of wanted) {
      if (open.has(file)) continue;
      try {
        const db = new Database(file, { fileMustExist: true });
        db.pragma('wal_autocheckpoint = 0');
        open.set(file, db);
      } catch (err) {
        port.postMessage({ file, error: (err as Error).message });
      }
    }
  });
  timer = setInterval(() => {
    for (const [file, db] of open) {
      try {
        db.pragma('wal_checkpoint(PASSIVE)');
      } catch (err) {
        // A file removed or replaced under it: the next list says so. Reported, a few times at most.
        if (failures++ < 5) port.postMessage({ file, error: (err as Error).message });
      }
    }
  }, intervalMs);
}

const folderSource = `var __name = (f) => f;\n(${folderMain.toString()})(require('node:worker_threads'), require);`;

/** The folding thread of one engine. */
export class WalFolder {
  private readonly worker: Worker;

  constructor(logger: Logger) {
    const start: FolderStart = { module: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs: FoldIntervalMs };
    this.worker = new Worker(folderSource, { eval: true, workerData: start, execArgv: [] });
    this.worker.on('message', (m: { file: string; error: string }) => logger.warn('storage engine: folding a WAL failed', m));
    this.worker.on('error', (err) => logger.error('storage engine: the WAL folding thread stopped', { error: err.message }));
    // After the listeners, which would hold the process otherwise: this thread never keeps a process alive.
    this.worker.unref();
  }

  /** Fold exactly these database files from now on. */
  files(paths: readonly string[]): void {
    this.worker.postMessage([...paths]);
  }

  /** Stop the thread once its fold under way (if any) is done: it closes its connections and ends. */
  stop(): void {
    this.worker.postMessage(null);
  }
}
