/**
 * Two embedded storage engines for "Collections larger than memory", side by
 * side in the same run: LMDB (lmdb-js) and SQLite (better-sqlite3), each in a
 * process of its own (bench/engines-worker.ts) so that the RSS figures are
 * that engine's. Runs only when named: `npm run bench -- engines`.
 *
 * Neither engine is a dependency of ours: better-sqlite3 compiles SQLite from
 * source on this machine, and CI has no compiler. The bench installs both
 * once into `<tmpdir>/checkpointd-bench-engines` and reuses them after; an
 * engine that cannot be installed or loaded is reported with the reason, and
 * the other is measured alone.
 *
 * BENCH_ENGINE_OBJECTS (default 2,000,000) objects of exactly 200 bytes of
 * JSON (`type` one of 3 values, `owner` one of 1,000, a seeded padding), the
 * same bytes for both, in 4 spaces, indexed by `type` and `owner`; loaded in
 * key order within each space, 1,000 objects a transaction. Each engine is
 * set up as the throwaway comparison found best: LMDB `noSync`, no writemap,
 * no compression, an index DB of "space/field/value/key" keys; SQLite WAL,
 * `synchronous=OFF`, `cache_size=-262144` (256 MiB), a WITHOUT ROWID table
 * and an expression index per field. Measured, in this order:
 *
 * 1. bulk load: objects/s and MiB/s of JSON counting only the time inside
 *    transactions, and the longest transaction;
 * 2. synced transactions on a fresh store of 20,000 objects, per sync setting
 *    (LMDB: lmdb-js's default with overlappingSync, and without it; SQLite:
 *    FULL, NORMAL), beside the unsynced rate, and single-put transactions;
 * 3. the files after the load against the raw JSON;
 * 4. RSS, RssAnon and RssFile (/proc/self/status) and V8's heapUsed before
 *    the engine loads, after the load and after a full scan;
 * 5. 200,000 random gets, raw and with JSON.parse (SQLite also with a 2 GiB
 *    mmap);
 * 6. the paged index query (100 objects of type Part in key order after a
 *    cursor, parsed): the first page, warm and in a cold process, then 1,000
 *    pages;
 * 7. the whole store to NDJSON (to /dev/null) in one read transaction while a
 *    writer process commits 5% more objects (100,000 at the default size):
 *    rate, count seen, the writer's transactions, and the files' growth, then
 *    the same writes with no reader (the control);
 * 8. cold start in a new process (median of 3): process start to the first
 *    get, of which module load, open, first get; the close;
 * 9. the engine's online backup and its compacting one with a read
 *    transaction held (LMDB also a plain copy of its file), and the files at
 *    the end.
 *
 * The OS page cache stays warm throughout (nothing drops it), so a "cold"
 * process is a new process, not a cold disk.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, promises as fs, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import type { EngineName, Files, MainResult, OpenResult, ProbeResult, SyncResult } from './engines-worker.js';
import { elapsed, fmt, MiB } from './shared.js';

const Objects = Number(process.env.BENCH_ENGINE_OBJECTS ?? 2_000_000);
const ColdStarts = 3;
/** The npm folder both engines are installed into, outside the repository. */
const ModulesDir = path.join(os.tmpdir(), 'checkpointd-bench-engines');
const InstallLog = path.join(ModulesDir, 'install.log');
const Engines: Record<EngineName, { label: string; column: string; npmName: string; version: string }> = {
  lmdb: { label: 'LMDB', column: 'LMDB (noSync)', npmName: 'lmdb', version: '3.5.6' },
  sqlite: { label: 'SQLite', column: 'SQLite (WAL, synchronous=OFF, expression indexes)', npmName: 'better-sqlite3', version: '12.11.1' },
};

interface EngineResult {
  main: MainResult;
  opens: OpenResult[];
  sync: SyncResult;
}

const installedVersion = (npmName: string): string | null => {
  try {
    return (JSON.parse(readFileSync(path.join(ModulesDir, 'node_modules', npmName, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
};

/** Run npm with its output appended to InstallLog; false if it failed. */
function npm(args: string[]): boolean {
  const log = openSync(InstallLog, 'a');
  try {
    const run = spawnSync('npm', args, { stdio: ['ignore', log, log] });
    return run.error === undefined && run.status === 0;
  } finally {
    closeSync(log);
  }
}

/**
 * Install both engines into ModulesDir unless they are there already.
 *
 * The folder's own package.json lists them as optional dependencies, so that
 * one whose build fails (better-sqlite3 with no C++ compiler) is dropped
 * instead of failing the install of both. npm 11 runs a dependency's install
 * scripts with a warning unless they are allowed ("not yet covered by
 * allowScripts"), and not at all with `strict-allow-scripts`; the
 * `allowScripts` below allows the three that build or pick the native
 * bindings (lmdb and msgpackr-extract pick a prebuilt one; better-sqlite3
 * downloads one from GitHub or compiles SQLite with node-gyp).
 * `--ignore-scripts=false` overrides an `ignore-scripts` set in a user's
 * npmrc, and `--foreground-scripts` puts the build's output in install.log,
 * where the reason for a failed build is then found.
 */
function install(): void {
  if (Object.values(Engines).every((e) => installedVersion(e.npmName) === e.version)) return;
  mkdirSync(ModulesDir, { recursive: true });
  const manifest = {
    private: true,
    description: 'The storage engines of checkpointd\'s engines benchmark (bench/engines.ts), installed here by it.',
    optionalDependencies: Object.fromEntries(Object.values(Engines).map((e) => [e.npmName, e.version])),
    allowScripts: { lmdb: true, 'msgpackr-extract': true, 'better-sqlite3': true },
  };
  writeFileSync(path.join(ModulesDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const started = performance.now();
  console.log(`installing ${Object.values(Engines).map((e) => `${e.npmName}@${e.version}`).join(' and ')} into ${ModulesDir} (once; better-sqlite3 compiles SQLite, about 1.5 minutes on 2 cores; npm's output in ${InstallLog})`);
  const ok = npm(['install', '--no-save', '--no-audit', '--no-fund', '--ignore-scripts=false', '--foreground-scripts', '--prefix', ModulesDir]);
  console.log(`  npm install ${ok ? 'done' : 'failed'} (${elapsed(started)})`);
}

/** Why npm has not installed `npmName`: the build's error lines from install.log. */
function whyNotInstalled(npmName: string): string {
  let log = '';
  try {
    log = readFileSync(InstallLog, 'utf8');
  } catch {
    // no log: npm never ran
  }
  const errors = [...new Set(log.split('\n').filter((l) => /gyp ERR! stack Error|prebuild-install warn|npm (error|ERR!)/.test(l)).map((l) => l.trim()))].slice(-4);
  const compiler = npmName === 'better-sqlite3' ? '; with no prebuilt binary to download it needs a C++ compiler, make and python3 (apt-get install build-essential python3)' : '';
  return `${npmName} is not installed: its install failed, so npm dropped it (an optional dependency of ${ModulesDir})${compiler}. ${errors.length > 0 ? `npm said: ${errors.join(' | ')}. ` : ''}npm's output: ${InstallLog}`;
}

/** Run the worker bundle; its last line of stdout parsed. `quiet`: its stderr kept for the error, not shown. */
function runWorker<T>(worker: string, mode: string, engine: EngineName, dir: string, quiet = false): T {
  const run = spawnSync(process.execPath, [worker, mode, engine, dir, ModulesDir], { stdio: ['ignore', 'pipe', quiet ? 'pipe' : 'inherit'], encoding: 'utf8', maxBuffer: 64 * MiB });
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  if (run.status !== 0 || !(line.startsWith('{') || line.startsWith('['))) {
    // The thrown error's own line ("Error: Could not locate the bindings file. Tried:"), not the source line above it.
    const error = (run.stderr ?? '').split('\n').find((l) => /^\w*Error\b[^:]*: /.test(l))?.trim();
    throw new Error(`the ${mode} process exited with ${run.status ?? run.signal}${error === undefined ? '' : `: ${error}`}`);
  }
  return JSON.parse(line) as T;
}

/** Does the engine load and open a store? Its versions, or why not (after one `npm rebuild`, in case npm skipped the build). */
function probe(worker: string, engine: EngineName, root: string): ProbeResult | string {
  const { npmName } = Engines[engine];
  if (installedVersion(npmName) === null) return whyNotInstalled(npmName);
  const dir = path.join(root, `probe-${engine}`);
  const attempt = (): ProbeResult | string => {
    mkdirSync(dir, { recursive: true });
    try {
      return runWorker<ProbeResult>(worker, 'probe', engine, dir, true);
    } catch (err) {
      return (err as Error).message;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const first = attempt();
  if (typeof first !== 'string') return first;
  // Installed but not loading: most likely its native build never ran (scripts skipped); build it now.
  console.log(`  ${npmName} is installed but does not load (${first}); npm rebuild ${npmName}`);
  npm(['rebuild', npmName, '--ignore-scripts=false', '--foreground-scripts', '--prefix', ModulesDir]);
  const second = attempt();
  return typeof second === 'string' ? `${npmName} is installed but does not load, even after npm rebuild: ${second} (npm's output: ${InstallLog})` : second;
}

/** Load, measure and close one engine; throws if a worker fails. */
function measureEngine(worker: string, engine: EngineName, root: string): EngineResult {
  const dir = path.join(root, engine);
  const syncDir = path.join(root, `${engine}-sync`);
  mkdirSync(dir);
  mkdirSync(syncDir);
  const main = runWorker<MainResult>(worker, 'main', engine, dir);
  const opens = Array.from({ length: ColdStarts }, () => runWorker<OpenResult>(worker, 'open', engine, dir));
  const sync = runWorker<SyncResult>(worker, 'sync', engine, syncDir);
  return { main, opens, sync };
}

const mib = (bytes: number): string => fmt(bytes / MiB);
const mib1 = (bytes: number): string => fmt(bytes / MiB, 1);
const seconds = (ms: number): string => `${fmt(ms / 1000, 2)} s`;
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const totalOf = (files: Files): number => Object.values(files).reduce((a, b) => a + b, 0);
/** The files of at least 1 MiB, with their sizes. */
const listFiles = (files: Files): string =>
  Object.entries(files)
    .filter(([, size]) => size >= MiB)
    .map(([name, size]) => `${name} ${mib(size)}`)
    .join(' + ');
/** How each file of at least 1 MiB changed, in MiB. */
const growth = (before: Files, after: Files): string =>
  Object.keys(after)
    .filter((name) => (after[name] ?? 0) >= MiB || (before[name] ?? 0) >= MiB)
    .map((name) => `${name} ${mib(before[name] ?? 0)}→${mib(after[name] ?? 0)}`)
    .join(', ');

interface Row {
  label: string;
  cell: (r: EngineResult) => string;
  /** For a speed row, the figure whose LMDB / SQLite ratio is shown. */
  figure?: (r: EngineResult) => number;
}

function rows(sample: EngineResult | undefined): Row[] {
  const rawJson = sample?.main.load.bytes ?? Objects * 200;
  const writer = sample?.main.snapshot.writer;
  const load = (r: EngineResult) => r.main.load;
  const synced = (r: EngineResult, pick: (s: SyncResult[number]) => number): string =>
    r.sync.map((s) => `${s.setting}${s.synced ? '' : ' (unsynced)'}: ${fmt(pick(s))}`).join('; ');
  const memoryRows = (when: string, m: (r: EngineResult) => MainResult['memoryAfterLoad']): Row[] => [
    { label: `4 ${when}: RSS / heapUsed MiB`, cell: (r) => `${mib1(m(r).rss)} / ${mib1(m(r).heapUsed)}` },
    { label: `4 ${when}: RssAnon / RssFile MiB`, cell: (r) => `${mib1(m(r).anon)} / ${mib1(m(r).file)}` },
  ];
  return [
    { label: '1 Bulk load, 1000/txn: objects/s (txn time only)', cell: (r) => fmt(load(r).objects / load(r).txnSeconds), figure: (r) => load(r).objects / load(r).txnSeconds },
    { label: '1 Bulk load: MiB/s of JSON', cell: (r) => fmt(load(r).bytes / MiB / load(r).txnSeconds, 1), figure: (r) => load(r).bytes / load(r).txnSeconds },
    { label: '1 Bulk load: max single txn ms', cell: (r) => fmt(load(r).maxTxnMs, 1), figure: (r) => load(r).maxTxnMs },
    { label: '2 Synced, 20k objs, 1000/txn: txn/s', cell: (r) => synced(r, (s) => s.txnPerS), figure: (r) => r.sync.find((s) => s.synced)!.txnPerS },
    { label: '2 (extra) synced 1-put txns: txn/s', cell: (r) => synced(r, (s) => s.singlePutTxnPerS), figure: (r) => r.sync.find((s) => s.synced)!.singlePutTxnPerS },
    { label: `3 Files after load (MiB) / raw JSON ${mib(rawJson)} MiB`, cell: (r) => `${mib(totalOf(r.main.filesAfterLoad))} (${fmt(totalOf(r.main.filesAfterLoad) / r.main.load.bytes, 2)}×) [${listFiles(r.main.filesAfterLoad)}]` },
    { label: '4 Process before the engine loads: RSS / RssAnon / RssFile MiB', cell: (r) => `${mib1(r.main.memoryAtStart.rss)} / ${mib1(r.main.memoryAtStart.anon)} / ${mib1(r.main.memoryAtStart.file)}` },
    ...memoryRows('After load', (r) => r.main.memoryAfterLoad),
    ...memoryRows('After full scan', (r) => r.main.memoryAfterScan),
    { label: `(full scan ${fmt(sample?.main.scan.objects ?? Objects)} objs: objs/s, MiB/s)`, cell: (r) => `${fmt(r.main.scan.objects / r.main.scan.seconds)}, ${fmt(r.main.scan.bytes / MiB / r.main.scan.seconds)}`, figure: (r) => r.main.scan.objects / r.main.scan.seconds },
    {
      label: `5 Random gets (${fmt(sample?.main.gets.gets ?? 200_000)}): reads/s raw`,
      cell: (r) => fmt(r.main.gets.perS) + (r.main.getsWithMmap === null ? '' : ` (mmap 2 GiB: ${fmt(r.main.getsWithMmap.perS)})`),
      figure: (r) => r.main.gets.perS,
    },
    {
      label: '5 Random gets + JSON.parse: reads/s',
      cell: (r) => fmt(r.main.gets.withParsePerS) + (r.main.getsWithMmap === null ? '' : ` (mmap: ${fmt(r.main.getsWithMmap.withParsePerS)})`),
      figure: (r) => r.main.gets.withParsePerS,
    },
    { label: '6 First page (100 keys+values), warm process, ms', cell: (r) => fmt(r.main.paging.firstPageMs, 2), figure: (r) => r.main.paging.firstPageMs },
    { label: `6 First page, cold process after open, ms (median of ${ColdStarts})`, cell: (r) => fmt(median(r.opens.map((o) => o.firstPageMs)), 1), figure: (r) => median(r.opens.map((o) => o.firstPageMs)) },
    { label: `6 ${fmt(sample?.main.paging.pages ?? 1000)} pages: pages/s (rows/s)`, cell: (r) => `${fmt(r.main.paging.pagesPerS)} (${fmt(r.main.paging.rowsPerS)})`, figure: (r) => r.main.paging.pagesPerS },
    {
      label: `7 Snapshot iteration → NDJSON /dev/null: MiB/s (${mib(sample?.main.snapshot.bytesOut ?? 0)} MiB out)`,
      cell: (r) => `${fmt(r.main.snapshot.bytesOut / MiB / r.main.snapshot.seconds)} (${fmt(r.main.snapshot.seconds, 1)} s)`,
      figure: (r) => r.main.snapshot.bytesOut / r.main.snapshot.seconds,
    },
    { label: `7 Snapshot saw exactly pre-write count (${fmt(sample?.main.snapshot.expected ?? Objects)})`, cell: (r) => (r.main.snapshot.rows === r.main.snapshot.expected ? 'yes' : `NO: ${fmt(r.main.snapshot.rows)}`) },
    {
      label: `7 Writer: ${fmt(writer?.objects ?? 0)} objs in ${fmt(writer?.transactions ?? 0)} txns, total s; txns during iteration`,
      cell: (r) => `${fmt(r.main.snapshot.writer.txnSeconds, 2)} s; ${r.main.snapshot.writerTxnsDuringIteration}/${r.main.snapshot.writer.transactions}`,
      figure: (r) => r.main.snapshot.writer.txnSeconds,
    },
    { label: '7 Writer max txn ms during iteration (control run, no reader)', cell: (r) => `${fmt(r.main.snapshot.writerMaxTxnMsDuringIteration, 1)} (${fmt(r.main.snapshot.control.writer.maxTxnMs, 1)})` },
    {
      label: `7 File growth (MiB) from ${fmt(writer?.objects ?? 0)} writes with reader held (control, no reader)`,
      cell: (r) => `${growth(r.main.snapshot.filesBefore, r.main.snapshot.filesAfter)} (control: ${growth(r.main.snapshot.control.filesBefore, r.main.snapshot.control.filesAfter)})`,
    },
    { label: `8 Cold process start → first get, ms (median of ${ColdStarts})`, cell: (r) => fmt(median(r.opens.map((o) => o.startToFirstGetMs))), figure: (r) => median(r.opens.map((o) => o.startToFirstGetMs)) },
    {
      label: '8 of which: load module (native binding included) / open / first get, ms',
      cell: (r) => `${fmt(median(r.opens.map((o) => o.requireMs)))} / ${fmt(median(r.opens.map((o) => o.openMs)), 1)} / ${fmt(median(r.opens.map((o) => o.firstGetMs)), 2)}`,
    },
    { label: '8 Close: read-only process / main writer process, ms', cell: (r) => `${fmt(median(r.opens.map((o) => o.closeMs)), 2)} / ${fmt(r.main.closeMs, 1)}` },
    { label: '9 Backup (online API): s, MiB', cell: (r) => `${r.main.backups.online.label} ${seconds(r.main.backups.online.ms)}, ${mib(r.main.backups.online.bytes)} MiB`, figure: (r) => r.main.backups.online.ms },
    { label: '9 Backup (compacting): s, MiB', cell: (r) => `${r.main.backups.compact.label} ${seconds(r.main.backups.compact.ms)}, ${mib(r.main.backups.compact.bytes)} MiB`, figure: (r) => r.main.backups.compact.ms },
    { label: '9 Plain file copy with read txn held: s, MiB', cell: (r) => (r.main.backups.copy === null ? 'n/a' : `${seconds(r.main.backups.copy.ms)}, ${mib(r.main.backups.copy.bytes)} MiB`) },
    {
      label: `Files at end (after ${fmt(2 * (writer?.objects ?? 0))} extra objs), MiB`,
      cell: (r) => `${mib(totalOf(r.main.filesAtEnd))} (${listFiles(r.main.filesAtEnd)}); after close ${mib(totalOf(r.main.filesAfterClose))}`,
    },
  ];
}

function printTable(results: Map<EngineName, EngineResult | string>): void {
  const lmdb = results.get('lmdb');
  const sqlite = results.get('sqlite');
  const measured = (r: EngineResult | string | undefined): r is EngineResult => r !== undefined && typeof r !== 'string';
  const cell = (r: EngineResult | string | undefined, row: Row): string => {
    if (!measured(r)) return 'not measured';
    try {
      return row.cell(r);
    } catch (err) {
      return `error: ${(err as Error).message}`;
    }
  };
  console.log(`\n| Measurement | ${Engines.lmdb.column} | ${Engines.sqlite.column} | LMDB / SQLite |`);
  console.log('| --- | --- | --- | --- |');
  for (const row of rows(measured(lmdb) ? lmdb : measured(sqlite) ? sqlite : undefined)) {
    const ratio = row.figure !== undefined && measured(lmdb) && measured(sqlite) ? `${fmt(row.figure(lmdb) / row.figure(sqlite), 2)}×` : '';
    console.log(`| ${row.label} | ${cell(lmdb, row)} | ${cell(sqlite, row)} | ${ratio} |`);
  }
  console.log('\nLMDB / SQLite: the ratio of the two figures (of the first synced setting in row 2, without mmap in row 5): on a rate, above 1 means LMDB is faster; on a time (ms, s), below 1 means LMDB is faster.');
}

/** Print the engines benchmark. */
export async function enginesBench(): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-bench-engines-'));
  try {
    console.log(`engines benchmark: ${fmt(Objects)} objects of 200 bytes of JSON in 4 spaces indexed by type and owner, ${os.cpus().length} cores, ${fmt(os.totalmem() / 1024 / MiB, 1)} GiB of memory, node ${process.version}`);
    // The worker runs under plain node, not tsx: bundle it (with shared.ts) into one ES module.
    const worker = path.join(root, 'engines-worker.mjs');
    buildSync({ entryPoints: [path.join(path.dirname(fileURLToPath(import.meta.url)), 'engines-worker.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: worker, logLevel: 'warning' });
    install();
    const results = new Map<EngineName, EngineResult | string>();
    for (const engine of Object.keys(Engines) as EngineName[]) {
      const { label } = Engines[engine];
      const available = probe(worker, engine, root);
      if (typeof available === 'string') {
        console.log(`${label}: not measured: ${available}`);
        results.set(engine, available);
        continue;
      }
      const started = performance.now();
      console.log(`${label}: ${Object.entries(available.versions).map(([name, version]) => `${name} ${version}`).join(', ')}`);
      try {
        results.set(engine, measureEngine(worker, engine, root));
        console.log(`  ${label} measured (${elapsed(started)})`);
      } catch (err) {
        const why = `failed: ${(err as Error).message}`;
        console.log(`${label}: ${why}`);
        results.set(engine, why);
      } finally {
        // Free the disk before the next engine: a store, its copies and backups take several GiB at the default size.
        await fs.rm(path.join(root, engine), { recursive: true, force: true });
        await fs.rm(path.join(root, `${engine}-sync`), { recursive: true, force: true });
      }
    }
    printTable(results);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}
