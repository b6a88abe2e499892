/**
 * The check a space file read back from a checkpoint passes before it is
 * served: SQLite's structure check (every page, every B-tree, every index
 * entry: `PRAGMA quick_check`) and a count of its rows, on a worker thread so
 * that a restore checks one space while it extracts the next; then, on the
 * caller's thread, the file's description of the space against the
 * manifest's. A file of an older layout (a checkpoint of an earlier version)
 * is rewritten into the current one on the same thread once it passed, so
 * that installing it does not do that on the event loop.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { SpaceInfo } from './space.js';
import { SpaceFile, UpgradeFormat1 } from './space-file.js';

/** Page cache of the checking connection, in KiB. */
const CheckCacheKiB = 8 * 1024;

interface CheckRequest {
  module: string;
  path: string;
  cacheKiB: number;
  /** The SQL that rewrites a format-1 file into the current format (space-file.ts). */
  upgrade: string;
}

interface CheckReport {
  problems: string[];
  rows: number;
}

/** The worker: plain JavaScript run from its source text (no imports but Node's and the SQLite module it is given). */
function checkWorkerMain(threads: typeof import('node:worker_threads'), load: (module: string) => unknown): void {
  const request = threads.workerData as CheckRequest;
  type Db = { pragma(sql: string): unknown; prepare(sql: string): { pluck(): { get(): unknown } }; exec(sql: string): void; close(): void };
  const Database = load(request.module) as new (path: string, options: object) => Db;
  // The staged file is this restore's alone: open for writing, so that an old layout can be rewritten.
  const db = new Database(request.path, { fileMustExist: true });
  try {
    db.pragma(`cache_size = -${request.cacheKiB}`);
    db.pragma('mmap_size = 0');
    const problems = (db.pragma('quick_check') as { quick_check: string }[]).map((row) => row.quick_check);
    const rows = problems.length === 1 && problems[0] === 'ok' ? (db.prepare('SELECT count(*) FROM objects').pluck().get() as number) : -1;
    if (rows >= 0 && db.prepare('SELECT format FROM space WHERE one = 1').pluck().get() === 1) {
      db.exec(`BEGIN; ${request.upgrade} COMMIT;`);
      db.exec('VACUUM');
    }
    threads.parentPort!.postMessage({ problems, rows } satisfies CheckReport);
  } finally {
    db.close();
  }
}

const workerSource = `var __name = (f) => f;\n(${checkWorkerMain.toString()})(require('node:worker_threads'), require);`;

function structure(path: string): Promise<CheckReport> {
  const request: CheckRequest = { module: createRequire(import.meta.url).resolve('better-sqlite3'), path, cacheKiB: CheckCacheKiB, upgrade: UpgradeFormat1 };
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerSource, { eval: true, workerData: request, execArgv: [] });
    let report: CheckReport | null = null;
    worker.once('message', (message: CheckReport) => (report = message));
    worker.once('error', (err) => reject(new Error(`${path} fails SQLite's check: ${err.message}`, { cause: err })));
    worker.once('exit', (code) => {
      if (report !== null) resolve(report);
      else reject(new Error(`the check of ${path} stopped (exit code ${code}) before it reported`));
    });
  });
}

/**
 * Check the space file at `path` against `expected` (the manifest's
 * description of the space); an Error saying what is wrong, naming the file.
 */
export async function checkSpaceFile(path: string, expected: SpaceInfo): Promise<void> {
  const { problems, rows } = await structure(path);
  if (problems.length !== 1 || problems[0] !== 'ok') throw new Error(`${path} fails SQLite's check: ${problems.slice(0, 5).join('; ')}`);
  const file = SpaceFile.open(path, { cacheKiB: 256, readOnly: true });
  try {
    file.checkDescription(expected, rows);
  } finally {
    file.close();
  }
}
