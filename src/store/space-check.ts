/**
 * The checks a space file passes on its way through a checkpoint.
 *
 * SQLite's structure check (every page, every B-tree, every index entry:
 * `PRAGMA quick_check`) and a count of its rows run on a worker thread, once:
 * - when the checkpoint is made (checkSnapshotFile: the file as the held
 *   snapshot froze it, opened `immutable=1`, against the count the snapshot
 *   gives), so that a damaged engine file fails the checkpoint instead of
 *   reaching one; a checkpoint of manifest format 3 says that this was done;
 * - when a checkpoint of an older format is read back (checkSpaceFile), as
 *   those were never checked when made.
 * Read back, every file is then matched against the manifest's description
 * of the space on the caller's thread. A file of manifest format 3 is not
 * checked again: its bytes are the ones that passed, as the SHA-256 the
 * reader verified as it wrote them shows (pgBackRest's split too: page
 * checksums when a backup is taken, file checksums when it is restored), and
 * that check was 3.4 s of CPU of a 1.3 GB load on a cold standby.
 * A file of an older layout (a checkpoint of an earlier version) is
 * rewritten into the current one on the checking thread once it passed, so
 * that installing it does not do that on the event loop.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { CheckpointdError } from '../errors.js';
import type { SpaceInfo } from './space.js';
import { SpaceFile, SpaceFileFormat, UpgradeFormat1 } from './space-file.js';
import { immutableUri } from './sqlite.js';

/** Page cache of the checking connection, in KiB. */
const CheckCacheKiB = 2 * 1024;

/** The nice value of a checkpoint's checking thread (checkSnapshotFile): below the event loop and the archive writer, which wait for nothing it does. */
const CheckNice = 10;

interface CheckRequest {
  module: string;
  path: string;
  cacheKiB: number;
  /** The SQL that rewrites a format-1 file into the current format (space-file.ts); null: open the file read-only, as `immutable=1` (a held snapshot's). */
  upgrade: string | null;
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
  if (request.upgrade === null) {
    // A checkpoint's check runs beside the primary's work: on Linux this thread (a task of its own) yields to it.
    try {
      const fs = load('node:fs') as typeof import('node:fs');
      const os = load('node:os') as typeof import('node:os');
      os.setPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop()), CheckNice);
    } catch {
      // not Linux, or not allowed: the check runs at the process's priority
    }
  }
  // A staged file is this restore's alone: open for writing, so that an old layout can be rewritten. A snapshot's: read-only.
  const db = new Database(request.path, { fileMustExist: true, readonly: request.upgrade === null });
  try {
    db.pragma(`cache_size = -${request.cacheKiB}`);
    db.pragma('mmap_size = 0');
    let problems: string[];
    let rows = -1;
    try {
      problems = (db.pragma('quick_check') as { quick_check: string }[]).map((row) => row.quick_check);
      if (problems.length === 1 && problems[0] === 'ok') rows = db.prepare('SELECT count(*) FROM objects').pluck().get() as number;
    } catch (err) {
      // SQLite gives up on some damage (SQLITE_CORRUPT) rather than list it; an error's own fields do not cross threads.
      const e = err as { code?: string; message?: string };
      problems = [`${e.code ?? 'error'}: ${e.message ?? String(err)}`];
    }
    if (rows >= 0 && request.upgrade !== null && db.prepare('SELECT format FROM space WHERE one = 1').pluck().get() === 1) {
      db.exec(`BEGIN; ${request.upgrade} COMMIT;`);
      db.exec('VACUUM');
    }
    threads.parentPort!.postMessage({ problems, rows } satisfies CheckReport);
  } finally {
    db.close();
  }
}

const workerSource = `var __name = (f) => f; var CheckNice = ${CheckNice};\n(${checkWorkerMain.toString()})(require('node:worker_threads'), require);`;

function structure(path: string, snapshot: boolean): Promise<CheckReport> {
  const request: CheckRequest = {
    module: createRequire(import.meta.url).resolve('better-sqlite3'),
    path: snapshot ? immutableUri(path) : path,
    cacheKiB: CheckCacheKiB,
    upgrade: snapshot ? null : UpgradeFormat1,
  };
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerSource, { eval: true, workerData: request, execArgv: [] });
    let report: CheckReport | null = null;
    worker.once('message', (message: CheckReport) => (report = message));
    worker.once('error', (err) => reject(new Error(`the check of ${path} failed: ${err.message}`, { cause: err })));
    worker.once('exit', (code) => {
      if (report !== null) resolve(report);
      else reject(new Error(`the check of ${path} stopped (exit code ${code}) before it reported`));
    });
  });
}

/** Problems SQLite's check lists that a message quotes; the rest are counted. */
const QuotedProblems = 5;

/** An Error naming `path` and the first of `problems` (SQLite's rows, each possibly of many lines) on one line, or null for `ok`. */
function structureProblem(path: string, problems: string[]): Error | null {
  if (problems.length === 1 && problems[0] === 'ok') return null;
  const lines = problems.flatMap((p) => p.split('\n')).map((l) => l.trim()).filter((l) => l !== '' && !/^\*\*\* in database \w+ \*\*\*$/.test(l));
  const more = lines.length > QuotedProblems ? ` (and ${lines.length - QuotedProblems} more)` : '';
  return new Error(`${path} fails SQLite's check: ${lines.slice(0, QuotedProblems).join('; ')}${more}`);
}

/**
 * Match the description of space file `path` against `expected` (`rows`: its
 * rows as counted, or null when they were counted when the checkpoint was
 * made); false, checking nothing, for a file of an older layout when `rows`
 * is null (its structure was never checked in this layout).
 */
function described(path: string, expected: SpaceInfo, rows: number | null): boolean {
  const file = SpaceFile.open(path, { cacheKiB: 256, readOnly: true });
  try {
    if (rows === null && file.format !== SpaceFileFormat) return false;
    file.checkDescription(expected, rows);
    return true;
  } finally {
    file.close();
  }
}

/**
 * Check space file `path` read back from a checkpoint against `expected`
 * (the manifest's description of the space); an Error saying what is wrong,
 * naming the file. `checkedWhenMade` (manifest format 3): the structure was
 * checked when the checkpoint was made, so only the description is read,
 * unless the file is of an older layout.
 */
export async function checkSpaceFile(path: string, expected: SpaceInfo, checkedWhenMade = false): Promise<void> {
  if (checkedWhenMade && described(path, expected, null)) return;
  const { problems, rows } = await structure(path, false);
  const problem = structureProblem(path, problems);
  if (problem !== null) throw problem;
  described(path, expected, rows);
}

/**
 * Check space file `path` as a held snapshot froze it (its first bytes are
 * the whole database and nothing changes them while the snapshot is held:
 * EngineSnapshot.source), or a copy of it, while a checkpoint archives it:
 * SQLite's structure check, and its row count against `objects`, the count
 * the snapshot gives. A CheckpointdError (500) naming the file (as
 * `shownAs`: the engine's, where `path` is a link or a copy of it) and the
 * space, and saying what to do, when it fails.
 */
export async function checkSnapshotFile(path: string, id: string, objects: number, shownAs = path): Promise<void> {
  const { problems, rows } = await structure(path, true);
  const problem = structureProblem(shownAs, problems)?.message ?? (rows === objects ? null : `${shownAs} holds ${rows} objects where its description counts ${objects}`);
  if (problem === null) return;
  throw new CheckpointdError(
    `space ${id} is damaged in the engine: ${problem}; no checkpoint was made. Stop this node, move its engine folder (paths.data/engine) aside and start it: it rebuilds the engine from the newest checkpoint and the journal`,
  );
}
