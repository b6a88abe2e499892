/**
 * One engine's side of the engines benchmark (bench/engines.ts), in a process
 * of its own so that the RSS it reports is that engine's. bench/engines.ts
 * bundles this file with esbuild and runs it with plain `node` and Node's
 * default flags: tsx's loader thread alone holds about 26 MiB of RssAnon, and
 * the bench's 64 MiB semi-spaces would fill RssAnon with young generation,
 * neither of them the engine's.
 *
 * `node engines-worker.mjs MODE ENGINE DIR MODULES [COUNT FIRST SEED]`, the
 * engine (`lmdb` or `sqlite`) loaded from the npm folder MODULES, its files in
 * DIR. Each mode prints its result as one line of JSON on stdout (the writer
 * prints `ready` first); progress goes to stderr.
 * - `probe`: load the engine and open a store (does its native binding load?);
 * - `main`: load BENCH_ENGINE_OBJECTS objects, then measure memory, a full
 *   scan, random gets, paging, a snapshot read while a `writer` process
 *   commits, backups, and the close;
 * - `writer`: put COUNT new objects (keys from FIRST, seed SEED), timing each
 *   transaction;
 * - `open`: a cold start on the store `main` left: load the module, open, one
 *   get, one page, close;
 * - `sync`: synced transactions on a fresh store of 20,000 objects, for each
 *   of the engine's sync settings, beside its unsynced rate.
 */
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectGarbage, MiB, prng } from './shared.js';

/** Both engines, by the name the bench uses. */
export type EngineName = 'lmdb' | 'sqlite';

/** Resident memory of this process (/proc/self/status) and V8's heap used, in bytes, after a full collection. */
export interface Memory {
  rss: number;
  anon: number;
  file: number;
  heapUsed: number;
}

/** A run of loading transactions. `log` (writer only): each transaction's end (Date.now()) and duration in ms. */
export interface LoadResult {
  objects: number;
  bytes: number;
  transactions: number;
  txnSeconds: number;
  maxTxnMs: number;
  log?: Array<[number, number]>;
}

/** Sizes of the files of a store, by name. */
export type Files = Record<string, number>;

export interface Timed {
  label: string;
  ms: number;
  bytes: number;
}

export interface ProbeResult {
  versions: Record<string, string>;
}

export interface MainResult {
  versions: Record<string, string>;
  objects: number;
  memoryAtStart: Memory;
  load: LoadResult;
  filesAfterLoad: Files;
  memoryAfterLoad: Memory;
  scan: { objects: number; bytes: number; seconds: number };
  memoryAfterScan: Memory;
  gets: GetRates;
  /** SQLite only: the same gets with `mmap_size` 2 GiB. */
  getsWithMmap: GetRates | null;
  paging: { firstPageMs: number; pages: number; rows: number; pagesPerS: number; rowsPerS: number };
  snapshot: {
    rows: number;
    expected: number;
    seconds: number;
    bytesOut: number;
    writer: LoadResult;
    writerTxnsDuringIteration: number;
    writerMaxTxnMsDuringIteration: number;
    filesBefore: Files;
    filesAfter: Files;
    control: { writer: LoadResult; filesBefore: Files; filesAfter: Files };
  };
  backups: { online: Timed; compact: Timed; copy: Timed | null };
  filesAtEnd: Files;
  closeMs: number;
  filesAfterClose: Files;
}

export interface GetRates {
  gets: number;
  perS: number;
  withParsePerS: number;
}

export interface OpenResult {
  requireMs: number;
  startToFirstGetMs: number;
  openMs: number;
  firstGetMs: number;
  firstPageMs: number;
  closeMs: number;
}

/** Per sync setting: 1,000-put transactions/s over 20,000 objects, and single-put transactions/s. */
export type SyncResult = Array<{ setting: string; synced: boolean; txnPerS: number; singlePutTxnPerS: number }>;

const Spaces = 4;
const PutsPerTransaction = 1000;
const ObjectBytes = 200;
const Types = ['Part', 'Doc', 'Tool'];
const Owners = 1000;
const RandomGets = 200_000;
const PageSize = 100;
const Pages = 1000;
const SyncObjects = 20_000;
const SinglePutTransactions = 200;

/** The size of a run, from the environment (the same in every process of it). */
const Objects = Number(process.env.BENCH_ENGINE_OBJECTS ?? 2_000_000);
/** Objects per space: keys k0000001… in each. */
const PerSpace = Math.floor(Objects / Spaces);
/** What the writer puts while the snapshot is read, and again with no reader: 100,000 at the default size. */
const WriterObjects = Math.max(4 * PutsPerTransaction, Math.round(Objects / 20 / (4 * PutsPerTransaction)) * 4 * PutsPerTransaction);

/** An object as both engines store it: its JSON text and the two fields indexed. */
interface Doc {
  space: number;
  key: string;
  type: string;
  owner: string;
  json: string;
}

const keyName = (n: number): string => `k${String(n).padStart(7, '0')}`;

/** Base64 text the objects' `pad` fields are cut from, seeded so that both engines store the same bytes. */
let padPool = '';
function pool(): string {
  if (padPool === '') {
    const rand = prng(99);
    const bytes = Buffer.alloc(MiB);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
    padPool = bytes.toString('base64');
  }
  return padPool;
}

/** Object `n` of `space`: exactly ObjectBytes of JSON, `type` one of 3 values and `owner` one of 1,000. */
function makeDoc(space: number, n: number, rand: () => number): Doc {
  const type = Types[Math.floor(rand() * Types.length)]!;
  const owner = `o${Math.floor(rand() * Owners)}`;
  const head = `{"type":"${type}","owner":"${owner}","n":${n},"pad":"`;
  const from = Math.floor(rand() * (pool().length - 2 * ObjectBytes));
  return { space, key: keyName(n), type, owner, json: `${head}${pool().slice(from, from + ObjectBytes - 2 - head.length)}"}` };
}

/** `total` objects in transactions of PutsPerTransaction, space after space, keys from `first` in key order within each space. */
function* batches(total: number, first: number, seed: number, spaces = Spaces): Generator<Doc[]> {
  const rand = prng(seed);
  const perSpace = Math.floor(total / spaces);
  for (let space = 0; space < spaces; space++) {
    for (let i = 0; i < perSpace; i += PutsPerTransaction) {
      const batch: Doc[] = [];
      for (let j = i; j < Math.min(perSpace, i + PutsPerTransaction); j++) batch.push(makeDoc(space, first + j, rand));
      yield batch;
    }
  }
}

function memory(): Memory {
  collectGarbage();
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile'), heapUsed: process.memoryUsage().heapUsed };
}

function filesOf(dir: string): Files {
  const files: Files = {};
  for (const name of readdirSync(dir)) {
    const stat = statSync(path.join(dir, name));
    if (stat.isFile()) files[name] = stat.size;
  }
  return files;
}

const sizeOf = (file: string): number => statSync(file).size;

/** What the bench does with a store, the same calls for both engines. */
interface Store {
  /** One transaction: each object with its two index entries. */
  write(docs: readonly Doc[]): void;
  get(space: number, key: string): string | undefined;
  /** Up to PageSize objects of `space` with this `type`, in key order after `after`: the daemon's paged index query. */
  page(space: number, type: string, after: string | null): Array<[string, string]>;
  /** Every object, in one read transaction. */
  scan(visit: (space: number, key: string, value: string) => void): void;
  /** A read transaction held until `end`, begun now (not at the first read). */
  snapshot(): { scan(visit: (space: number, key: string, value: string) => void): void; end(): void };
  /** The engine's online backup and its compacting one, with a read transaction held; LMDB also a plain copy of its file. */
  backups(into: string): Promise<MainResult['backups']>;
  /** SQLite only: `work` with a 2 GiB memory map. */
  withMmap: (<T>(work: () => T) => T) | null;
  close(): Promise<void>;
}

interface EngineModule {
  versions: Record<string, string>;
  /** The engine's sync settings: the bench's (unsynced) first, then the synced ones. */
  syncSettings: string[];
  open(dir: string, setting: string, create: boolean): Store;
}

// Only what the bench calls of each module: neither is a dependency, so neither's types are at hand.
interface LmdbTransaction {
  done(): void;
}
interface LmdbDatabase<V> {
  get(key: string, options?: { transaction: LmdbTransaction }): V | undefined;
  putSync(key: string, value: V): void;
  transactionSync<T>(action: () => T): T;
  getRange(options: { start?: string; end?: string; limit?: number; transaction?: LmdbTransaction }): Iterable<{ key: string; value: V }>;
  useReadTransaction(): LmdbTransaction;
  resetReadTxn(): void;
}
interface LmdbRoot {
  openDB<V>(options: { name: string; encoding: 'string' | 'binary'; compression: false }): LmdbDatabase<V>;
  backup(path: string, compact: boolean): Promise<void>;
  close(): Promise<void>;
}
interface SqliteStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
  raw(): SqliteStatement;
  pluck(): SqliteStatement;
}
interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  backup(destination: string, options: { progress: () => number }): Promise<unknown>;
  close(): void;
}

const versionOf = (modules: string, name: string): string => (JSON.parse(readFileSync(path.join(modules, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * LMDB through lmdb-js, as in the throwaway comparison: one environment,
 * `noSync` (the daemon's journal is what makes a commit durable), no
 * writemap (with it an OS crash can corrupt the file, not only lose the
 * last transactions), no compression; a DB `objects` ("space/key" → JSON
 * text) and a DB `idx` ("space/field/value/key" → empty).
 */
function lmdbEngine(modules: string): EngineModule {
  const { open } = createRequire(path.join(modules, 'package.json'))('lmdb') as { open: (options: object) => LmdbRoot };
  const empty = Buffer.alloc(0);
  return {
    versions: { lmdb: versionOf(modules, 'lmdb') },
    syncSettings: ['noSync', 'default (overlappingSync)', 'overlappingSync=false'],
    open(dir, setting) {
      const env = open({ path: dir, compression: false, noSync: setting === 'noSync', ...(setting === 'overlappingSync=false' ? { overlappingSync: false } : {}) });
      const objects = env.openDB<string>({ name: 'objects', encoding: 'string', compression: false });
      const idx = env.openDB<Buffer>({ name: 'idx', encoding: 'binary', compression: false });
      const scanWith = (transaction: LmdbTransaction | undefined, visit: (space: number, key: string, value: string) => void): void => {
        for (const { key, value } of objects.getRange(transaction === undefined ? {} : { transaction })) {
          const slash = key.indexOf('/');
          visit(Number(key.slice(0, slash)), key.slice(slash + 1), value);
        }
      };
      return {
        write(docs) {
          objects.transactionSync(() => {
            for (const d of docs) {
              objects.putSync(`${d.space}/${d.key}`, d.json);
              idx.putSync(`${d.space}/type/${d.type}/${d.key}`, empty);
              idx.putSync(`${d.space}/owner/${d.owner}/${d.key}`, empty);
            }
          });
        },
        get: (space, key) => objects.get(`${space}/${key}`),
        page(space, type, after) {
          const prefix = `${space}/type/${type}/`;
          const rows: Array<[string, string]> = [];
          // One more than a page: the range starts at the cursor's own entry, which is skipped.
          for (const { key } of idx.getRange({ start: prefix + (after ?? ''), end: `${prefix}\uffff`, limit: PageSize + 1 })) {
            const k = key.slice(prefix.length);
            if (k === after) continue;
            rows.push([k, objects.get(`${space}/${k}`)!]);
            if (rows.length === PageSize) break;
          }
          return rows;
        },
        scan: (visit) => scanWith(undefined, visit),
        snapshot() {
          const transaction = objects.useReadTransaction();
          objects.get(`0/${keyName(1)}`, { transaction });
          return { scan: (visit) => scanWith(transaction, visit), end: () => transaction.done() };
        },
        async backups(into) {
          const held = objects.useReadTransaction();
          objects.get(`0/${keyName(1)}`, { transaction: held });
          const online = path.join(into, 'online');
          const compact = path.join(into, 'compact');
          const copy = path.join(into, 'copy.mdb');
          mkdirSync(online);
          mkdirSync(compact);
          let t = performance.now();
          await env.backup(online, false);
          const onlineMs = performance.now() - t;
          // A plain copy is consistent only while no writer commits: none does here.
          t = performance.now();
          copyFileSync(path.join(dir, 'data.mdb'), copy);
          const copyMs = performance.now() - t;
          t = performance.now();
          await env.backup(compact, true);
          const compactMs = performance.now() - t;
          held.done();
          return {
            online: { label: 'env.backup()', ms: onlineMs, bytes: sizeOf(path.join(online, 'data.mdb')) },
            compact: { label: 'env.backup(compact)', ms: compactMs, bytes: sizeOf(path.join(compact, 'data.mdb')) },
            copy: { label: 'copyFile(data.mdb)', ms: copyMs, bytes: sizeOf(copy) },
          };
        },
        withMmap: null,
        async close() {
          // lmdb-js keeps a read transaction for reads outside one; let it go so that close finds none.
          objects.resetReadTxn();
          await env.close();
        },
      };
    },
  };
}

/**
 * SQLite through better-sqlite3, the best schema of the throwaway comparison:
 * WAL, `synchronous=OFF` (the journal makes commits durable), a 256 MiB page
 * cache (`cache_size=-262144`), one WITHOUT ROWID table, and an expression
 * index per indexed field (smaller, faster to load and with far shorter
 * checkpoint stalls than an index table).
 */
function sqliteEngine(modules: string): EngineModule {
  const Database = createRequire(path.join(modules, 'package.json'))('better-sqlite3') as new (file: string) => SqliteDatabase;
  const configure = (db: SqliteDatabase, setting: string): void => {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${setting}`);
    db.pragma('cache_size = -262144');
    db.pragma('temp_store = MEMORY');
  };
  // better-sqlite3 loads its native binding at the first `new Database`, not at require.
  const probe = new Database(':memory:');
  const sqlite = String(probe.prepare('SELECT sqlite_version()').pluck().get());
  probe.close();
  return {
    versions: { 'better-sqlite3': versionOf(modules, 'better-sqlite3'), sqlite },
    syncSettings: ['OFF', 'FULL', 'NORMAL'],
    open(dir, setting, create) {
      const file = path.join(dir, 'db.sqlite');
      const db = new Database(file);
      configure(db, setting);
      if (create) {
        db.exec(`CREATE TABLE IF NOT EXISTS objects(space INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(space, key)) WITHOUT ROWID;
          CREATE INDEX IF NOT EXISTS ix_type ON objects(space, json_extract(value, '$.type'), key);
          CREATE INDEX IF NOT EXISTS ix_owner ON objects(space, json_extract(value, '$.owner'), key);`);
      }
      const insert = db.prepare('INSERT OR REPLACE INTO objects(space, key, value) VALUES (?, ?, ?)');
      const write = db.transaction((docs: readonly Doc[]) => {
        for (const d of docs) insert.run(d.space, d.key, d.json);
      });
      const getValue = db.prepare('SELECT value FROM objects WHERE space = ? AND key = ?').pluck();
      // INDEXED BY: without it the planner scans the primary key and filters.
      const pageQuery = db.prepare(`SELECT key, value FROM objects INDEXED BY ix_type WHERE space = ? AND json_extract(value, '$.type') = ? AND key > ? ORDER BY key LIMIT ${PageSize}`).raw();
      const scanWith = (on: SqliteDatabase, visit: (space: number, key: string, value: string) => void): void => {
        for (const row of on.prepare('SELECT space, key, value FROM objects').raw().iterate()) {
          const [space, key, value] = row as [number, string, string];
          visit(space, key, value);
        }
      };
      return {
        write: (docs) => write(docs),
        get: (space, key) => getValue.get(space, key) as string | undefined,
        page: (space, type, after) => pageQuery.all(space, type, after ?? '') as Array<[string, string]>,
        scan: (visit) => scanWith(db, visit),
        snapshot() {
          // A second connection, as a reader beside the writer would be; its first read pins the snapshot.
          const reader = new Database(file);
          reader.pragma('cache_size = -262144');
          reader.exec('BEGIN');
          reader.prepare('SELECT key FROM objects LIMIT 1').get();
          return {
            scan: (visit) => scanWith(reader, visit),
            end() {
              reader.exec('COMMIT');
              reader.close();
            },
          };
        },
        async backups(into) {
          const online = path.join(into, 'backup.sqlite');
          const vacuumed = path.join(into, 'vacuum.sqlite');
          let t = performance.now();
          // As many pages a step as it takes: one step, not 100 pages per event-loop turn.
          await db.backup(online, { progress: () => 100_000 });
          const onlineMs = performance.now() - t;
          t = performance.now();
          db.exec(`VACUUM INTO '${vacuumed.replaceAll("'", "''")}'`);
          const compactMs = performance.now() - t;
          return { online: { label: 'db.backup()', ms: onlineMs, bytes: sizeOf(online) }, compact: { label: 'VACUUM INTO', ms: compactMs, bytes: sizeOf(vacuumed) }, copy: null };
        },
        withMmap<T>(work: () => T): T {
          db.pragma('mmap_size = 2147483648');
          try {
            return work();
          } finally {
            db.pragma('mmap_size = 0');
          }
        },
        async close() {
          db.close();
        },
      };
    },
  };
}

function loadEngine(name: EngineName, modules: string): EngineModule {
  return name === 'lmdb' ? lmdbEngine(modules) : sqliteEngine(modules);
}

/** Write `total` objects (keys from `first`), timing only the transactions; with `log`, each one's end and duration. */
function load(store: Store, total: number, first: number, seed: number, log: boolean): LoadResult {
  const result: LoadResult = { objects: 0, bytes: 0, transactions: 0, txnSeconds: 0, maxTxnMs: 0, ...(log ? { log: [] } : {}) };
  let lastReport = performance.now();
  for (const batch of batches(total, first, seed)) {
    const t = performance.now();
    store.write(batch);
    const ms = performance.now() - t;
    result.log?.push([Date.now(), ms]);
    result.txnSeconds += ms / 1000;
    result.maxTxnMs = Math.max(result.maxTxnMs, ms);
    result.transactions++;
    result.objects += batch.length;
    for (const d of batch) result.bytes += d.json.length;
    if (!log && performance.now() - lastReport > 10_000) {
      progress(`${result.objects.toLocaleString('en-US')} objects loaded`);
      lastReport = performance.now();
    }
  }
  return result;
}

function getRates(store: Store, keys: ReadonlyArray<[number, string]>): GetRates {
  let t = performance.now();
  let missing = 0;
  for (const [space, key] of keys) if (store.get(space, key) === undefined) missing++;
  const raw = performance.now() - t;
  if (missing > 0) throw new Error(`${missing} of ${keys.length} random gets found nothing`);
  t = performance.now();
  let sum = 0;
  for (const [space, key] of keys) sum += (JSON.parse(store.get(space, key)!) as { n: number }).n;
  const parsed = performance.now() - t;
  if (sum === 0) throw new Error('the random gets read nothing');
  return { gets: keys.length, perS: (keys.length / raw) * 1000, withParsePerS: (keys.length / parsed) * 1000 };
}

let engineName = '';
const progress = (line: string): void => void process.stderr.write(`  ${engineName}: ${line}\n`);

/** A `writer` process of this file, started; resolves `ready` once its store is open, `done` with its result. */
function startWriter(args: string[], count: number, first: number, seed: number): { ready: Promise<void>; done: Promise<LoadResult> } {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'writer', ...args, String(count), String(first), String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const done = new Promise<LoadResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || line === undefined) reject(new Error(`the writer process exited with ${code}`));
      else resolve(JSON.parse(line) as LoadResult);
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.startsWith('ready\n')) resolve();
    });
    done.catch(reject);
  });
  return { ready, done };
}

async function measure(engine: EngineModule, dir: string, args: string[], memoryAtStart: Memory): Promise<MainResult> {
  const setting = engine.syncSettings[0]!;
  const store = engine.open(dir, setting, true);
  const loaded = load(store, Objects, 1, 42, false);
  progress(`loaded ${loaded.objects.toLocaleString('en-US')} objects in ${loaded.txnSeconds.toFixed(1)} s of transactions`);
  const filesAfterLoad = filesOf(dir);
  const memoryAfterLoad = memory();

  let t = performance.now();
  let rows = 0;
  let bytes = 0;
  store.scan((_space, _key, value) => {
    rows++;
    bytes += value.length;
  });
  const scan = { objects: rows, bytes, seconds: (performance.now() - t) / 1000 };
  const memoryAfterScan = memory();

  const rand = prng(5);
  const keys: Array<[number, string]> = [];
  for (let i = 0; i < RandomGets; i++) keys.push([Math.floor(rand() * Spaces), keyName(1 + Math.floor(rand() * PerSpace))]);
  const gets = getRates(store, keys);
  const getsWithMmap = store.withMmap === null ? null : store.withMmap(() => getRates(store, keys));
  progress('scan and random gets done');

  // A page as the API would serve it: the keys and the parsed objects.
  const readPage = (after: string | null): Array<[string, unknown]> => store.page(0, 'Part', after).map(([key, value]) => [key, JSON.parse(value)]);
  collectGarbage();
  t = performance.now();
  let page = readPage(null);
  const firstPageMs = performance.now() - t;
  let pages = 1;
  let pageRows = page.length;
  t = performance.now();
  while (pages < Pages && page.length === PageSize) {
    page = readPage(page[page.length - 1]![0]);
    pages++;
    pageRows += page.length;
  }
  const pagingS = (performance.now() - t) / 1000;
  const paging = { firstPageMs, pages, rows: pageRows, pagesPerS: (pages - 1) / pagingS, rowsPerS: (pageRows - PageSize) / pagingS };

  // Snapshot: the whole store to NDJSON, in a read transaction begun before a writer process starts committing new keys.
  collectGarbage();
  const filesBefore = filesOf(dir);
  const snapshot = store.snapshot();
  const writer = startWriter(args, WriterObjects, PerSpace + 1, 77);
  await writer.ready;
  const devNull = openSync('/dev/null', 'w');
  const iterationStart = Date.now();
  t = performance.now();
  let snapshotRows = 0;
  let bytesOut = 0;
  let chunk: string[] = [];
  let chunkLength = 0;
  const flush = (): void => {
    const text = chunk.join('');
    writeSync(devNull, text);
    bytesOut += text.length;
    chunk = [];
    chunkLength = 0;
  };
  snapshot.scan((space, key, value) => {
    const line = `{"s":${space},"k":"${key}","v":${value}}\n`;
    chunk.push(line);
    chunkLength += line.length;
    snapshotRows++;
    if (chunkLength > MiB) flush();
  });
  flush();
  const snapshotS = (performance.now() - t) / 1000;
  const iterationEnd = Date.now();
  closeSync(devNull);
  snapshot.end();
  const written = await writer.done;
  const during = written.log!.filter(([end, ms]) => end - ms >= iterationStart && end <= iterationEnd);
  const filesAfter = filesOf(dir);
  delete written.log;
  progress(`snapshot of ${snapshotRows.toLocaleString('en-US')} objects read in ${snapshotS.toFixed(1)} s while a writer committed`);

  // The same writes again with no reader: what the file does without one.
  const controlBefore = filesOf(dir);
  const control = startWriter(args, WriterObjects, PerSpace + 1 + WriterObjects, 78);
  await control.ready;
  const controlWritten = await control.done;
  delete controlWritten.log;
  const controlAfter = filesOf(dir);

  const backupDir = path.join(path.dirname(dir), `${path.basename(dir)}-backups`);
  mkdirSync(backupDir);
  const backups = await store.backups(backupDir);
  rmSync(backupDir, { recursive: true, force: true });
  progress('backups done');
  const filesAtEnd = filesOf(dir);
  t = performance.now();
  await store.close();
  const closeMs = performance.now() - t;

  return {
    versions: engine.versions,
    objects: Objects,
    memoryAtStart,
    load: loaded,
    filesAfterLoad,
    memoryAfterLoad,
    scan,
    memoryAfterScan,
    gets,
    getsWithMmap,
    paging,
    snapshot: {
      rows: snapshotRows,
      expected: loaded.objects,
      seconds: snapshotS,
      bytesOut,
      writer: written,
      writerTxnsDuringIteration: during.length,
      writerMaxTxnMsDuringIteration: Math.max(0, ...during.map(([, ms]) => ms)),
      filesBefore,
      filesAfter,
      control: { writer: controlWritten, filesBefore: controlBefore, filesAfter: controlAfter },
    },
    backups,
    filesAtEnd,
    closeMs,
    filesAfterClose: filesOf(dir),
  };
}

async function syncRates(engine: EngineModule, dir: string): Promise<SyncResult> {
  const result: SyncResult = [];
  for (const [i, setting] of engine.syncSettings.entries()) {
    const at = path.join(dir, `sync-${i}`);
    rmSync(at, { recursive: true, force: true });
    mkdirSync(at);
    const store = engine.open(at, setting, true);
    const loaded = load(store, SyncObjects, 1, 7, false);
    const [singles] = batches(SinglePutTransactions, 900_001, 9, 1);
    const t = performance.now();
    for (const doc of singles!) store.write([doc]);
    const singleS = (performance.now() - t) / 1000;
    await store.close();
    rmSync(at, { recursive: true, force: true });
    result.push({ setting, synced: i > 0, txnPerS: loaded.transactions / loaded.txnSeconds, singlePutTxnPerS: singles!.length / singleS });
  }
  return result;
}

async function main(): Promise<void> {
  const [mode, name, dir, modules, ...rest] = process.argv.slice(2);
  if (mode === undefined || (name !== 'lmdb' && name !== 'sqlite') || dir === undefined || modules === undefined) {
    throw new Error('usage: engines-worker.mjs probe|main|writer|open|sync lmdb|sqlite DIR MODULES [COUNT FIRST SEED]');
  }
  engineName = name;
  const memoryAtStart = mode === 'main' ? memory() : null;
  const requireStart = performance.now();
  const engine = loadEngine(name, modules);
  const requireMs = performance.now() - requireStart;
  const print = (result: unknown): void => void process.stdout.write(`${JSON.stringify(result)}\n`);
  switch (mode) {
    case 'probe': {
      const store = engine.open(dir, engine.syncSettings[0]!, true);
      store.write([makeDoc(0, 1, prng(1))]);
      await store.close();
      print({ versions: engine.versions } satisfies ProbeResult);
      break;
    }
    case 'main':
      print(await measure(engine, dir, [name, dir, modules], memoryAtStart!));
      break;
    case 'writer': {
      const [count, first, seed] = rest.map(Number);
      const store = engine.open(dir, engine.syncSettings[0]!, false);
      process.stdout.write('ready\n');
      const result = load(store, count!, first!, seed!, true);
      await store.close();
      print(result);
      break;
    }
    case 'open': {
      let t = performance.now();
      const store = engine.open(dir, engine.syncSettings[0]!, false);
      const openMs = performance.now() - t;
      t = performance.now();
      if (store.get(2, keyName(Math.min(12_345, PerSpace))) === undefined) throw new Error('the cold get found nothing');
      const startToFirstGetMs = performance.now();
      const firstGetMs = startToFirstGetMs - t;
      t = performance.now();
      // Parsed, as the warm first page is.
      if (store.page(0, 'Part', null).map(([key, value]): [string, unknown] => [key, JSON.parse(value)]).length === 0) throw new Error('the cold page is empty');
      const firstPageMs = performance.now() - t;
      t = performance.now();
      await store.close();
      print({ requireMs, startToFirstGetMs, openMs, firstGetMs, firstPageMs, closeMs: performance.now() - t } satisfies OpenResult);
      break;
    }
    case 'sync':
      print(await syncRates(engine, dir));
      break;
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

await main();
