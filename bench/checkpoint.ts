/**
 * Checkpoint creation and restore throughput on about 1 GiB of objects in 4
 * spaces, against Info-ZIP `zip -r` / `unzip` at the same compression on the
 * same data written as files, and `cp -r` of those files; then the commit
 * latency of 16 concurrent durable writers during a checkpoint against
 * without one, and the longest event-loop stall while it runs; and, as the
 * floor under that, the same writers while other processes only copy the
 * store checkpoint with O_DIRECT and hash the copy (no code of ours running).
 *
 * Everything runs in process on the real code: Store (journal.sync=commit) on
 * a temporary FileVault, Catalogue and Checkpointer on its checkpoint folder.
 * The data is generated from a seeded PRNG, so every run checkpoints the same
 * bytes. BENCH_SCALE (default 1.0) scales the size: 0.05 for a quick run.
 *
 * Order: one cold creation (store), the first checkpoint after the load, which
 * encodes every object where the commits left it; then, for each setting, 2%
 * of the objects put again at random and a timed creation (the steady case:
 * a checkpoint re-encodes the B+tree leaves changed since the one before,
 * here about 60% of them); one cold restore (store), the first after the
 * load, of the cold checkpoint: it replaces the state the commits built and
 * pays for a full collection of that heap, timed once and shown apart; then
 * the three restores, each replacing a restored state; then the latency windows
 * (on the state the last restore built, so its first checkpoint encodes
 * everything). A full GC before each timed step, so that no step pays for the
 * garbage of the one before.
 *
 * Each tool runs right after our operation on the same warm data: our
 * checkpoint serialises the in-memory state and restore reads the checkpoint
 * just written (page cache); zip reads the extracted files (page cache) and
 * unzip the archive zip wrote (page cache). A checkpoint is fsynced before
 * it is published and zip's output is not, so zip is also shown with an fsync
 * of its archive, and `cp -r` with an fsync of the copy (the disk's write limit).
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { readCheckpointArchive } from '../src/checkpoint/archive/index.js';
import { Catalogue, Checkpointer, type CatalogueEntry, type Compression, type Manifest } from '../src/checkpoint/index.js';
import { parseSize } from '../src/config/index.js';
import { silentLogger } from '../src/log/index.js';
import { Store } from '../src/store/index.js';
import { fsyncDir, installationId, VaultPaths } from '../src/vault/index.js';
import { loadDataset, LoadsInFlight, makeValue, PutsPerLoad } from './dataset.js';
import { collectGarbage, elapsed, fmt, keyOf, MiB, prng, stats, type Stats, benchEngine } from './shared.js';

const Scale = Number(process.env.BENCH_SCALE ?? 1);
const BaselineMs = Number(process.env.BENCH_MS ?? 3000);
const TargetBytes = Scale * 1024 ** 3;
const Spaces = ['s0', 's1', 's2', 's3'];
const Writers = 16;
/** The steady load's commits a second, all writers together (BENCH_RATE). */
const SteadyRate = Number(process.env.BENCH_RATE ?? 2000);
const WarmupMs = 500;
/** checkpoint.maxDiskRate for every checkpoint the bench makes (BENCH_DISK_RATE, e.g. "25MiB"); none by default. */
const DiskRate = process.env.BENCH_DISK_RATE === undefined ? null : parseSize(process.env.BENCH_DISK_RATE, 'BENCH_DISK_RATE');
const Settings: { name: string; compression: Compression; zipFlag: string }[] = [
  { name: 'store', compression: { method: 'store' }, zipFlag: '-0' },
  { name: 'deflate:1', compression: { method: 'deflate', level: 1 }, zipFlag: '-1' },
  { name: 'deflate:6', compression: { method: 'deflate', level: 6 }, zipFlag: '-6' },
];

/** Load about TargetBytes of objects into the spaces. */
async function load(store: Store, started: number): Promise<number> {
  return loadDataset(store, { targetBytes: TargetBytes, spaces: Spaces, started });
}

/** Share of the objects put again, at random, before each steady-state checkpoint. */
const UpdateShare = 0.02;

/** Put UpdateShare of the objects again with new values (random keys of random spaces, transactions of PutsPerLoad); how many. */
async function update(store: Store, objects: number, round: number): Promise<number> {
  const rand = prng(500 + round);
  const perSpace = objects / Spaces.length;
  const count = Math.round(objects * UpdateShare);
  const queue: Promise<unknown>[] = [];
  for (let from = 0; from < count; from += PutsPerLoad) {
    const space = Spaces[Math.floor(rand() * Spaces.length)]!;
    const ops = [];
    const keys = new Set<string>();
    for (let i = from; i < Math.min(from + PutsPerLoad, count); i++) keys.add(keyOf(Math.floor(rand() * perSpace)));
    for (const key of keys) ops.push({ op: 'put' as const, key, value: makeValue(rand, Math.max(10, Math.floor(perSpace / 4))) });
    queue.push(store.commit({ type: 'commit', space, ops }));
    if (queue.length >= LoadsInFlight) await queue.shift();
  }
  await Promise.all(queue);
  return count;
}

/** Sum of the uncompressed sizes of the checkpoint's entries (manifest.json excluded). */
function uncompressedBytes(manifest: Manifest): number {
  let sum = manifest.collection?.size ?? 0;
  for (const space of manifest.spaces) for (const f of space.files) sum += f.size;
  return sum;
}

/** Every entry of the checkpoint as a file under `dir` (its path in the ZIP); the file paths. */
async function extract(file: string, dir: string): Promise<string[]> {
  const files: string[] = [];
  await readCheckpointArchive(file, {
    file: async (entry, data) => {
      const target = path.join(dir, entry.path);
      await fs.mkdir(path.dirname(target), { recursive: true });
      const handle = await fs.open(target, 'w');
      try {
        for await (const chunk of data) await handle.write(chunk);
      } finally {
        await handle.close();
      }
      files.push(target);
    },
  });
  return files;
}

/** Run a command to its end (its output shown unless `quiet`); its wall time in seconds. */
function timed(command: string, args: string[], cwd: string, quiet = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { cwd, stdio: ['ignore', quiet ? 'ignore' : 'inherit', quiet ? 'ignore' : 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve((performance.now() - start) / 1000);
      else reject(new Error(`${command} ${args.join(' ')} ended with ${code ?? signal}`));
    });
  });
}

/** fsync each of `files`; the time in seconds. */
async function fsyncAll(files: string[]): Promise<number> {
  const start = performance.now();
  for (const file of files) {
    const handle = await fs.open(file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  return (performance.now() - start) / 1000;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

interface Throughput {
  setting: string;
  size: number;
  create: number;
  zip: number;
  zipSync: number;
  restore: number;
  unzip: number;
  /** unzip plus an fsync of every file it wrote: a restore makes its staged files durable before installing them. */
  unzipSync: number;
}

interface Latency {
  setting: string;
  /** 'saturating' (each writer commits again as soon as it may) or 'steady' (SteadyRate commits a second). */
  load: string;
  base: Stats;
  during: Stats;
  checkpointS: number;
  stallBaseMs: number;
  stallMs: number;
  slow: number[];
}

/** The commits started in one measured window: latency (ms) and start (fraction of the window); what the window's work returned. */
interface Window<T = unknown> {
  latencies: number[];
  starts: number[];
  stallMs: number;
  seconds: number;
  result: T;
}

/** Commits while other processes copy and hash a checkpoint file (copyAndHash), against the store baseline of the same load. */
interface Floor {
  load: string;
  mib: number;
  base: Stats;
  during: Stats;
  seconds: number;
  stallMs: number;
}

/** Commits while a checkpoint file is deleted. */
interface Deletion {
  how: string;
  mib: number;
  stats: Stats;
  seconds: number;
  stallMs: number;
}

/**
 * 16 writers, each committing one put at a time (durable before the next), for
 * a warm-up and then while `during` runs; the latencies of the commits started
 * inside that window, and the event loop's longest delay in it.
 *
 * With `rate` (commits a second, all writers together) each writer's commits
 * are due at fixed times, and a commit's latency is counted from when it was
 * due if it started late: a pause delays the commits due during it, as it
 * would a client's, instead of delaying only the 16 in flight while the
 * writers wait (coordinated omission).
 */
async function commitLatencies<T>(store: Store, round: number, during: () => Promise<T>, rate = 0): Promise<Window<T>> {
  let running = true;
  let from = Infinity;
  let to = Infinity;
  const latencies: number[] = [];
  const starts: number[] = [];
  const rand = prng(99 + round);
  const every = rate > 0 ? (Writers * 1000) / rate : 0;
  const writers = Array.from({ length: Writers }, async (_, w) => {
    let due = performance.now() + (w * every) / Writers;
    for (let i = 0; running; i++) {
      const op = { type: 'commit' as const, space: Spaces[w % Spaces.length]!, ops: [{ op: 'put' as const, key: `W-${round}-${w}-${i}`, value: makeValue(rand, 1000) }] };
      if (every > 0) {
        due += every;
        if (due > performance.now()) await delay(due - performance.now());
      }
      // A timer may fire up to a millisecond early: then the commit's own time counts.
      const start = every > 0 ? Math.min(due, performance.now()) : performance.now();
      await store.commit(op);
      if (start >= from && start < to) {
        latencies.push(performance.now() - start);
        starts.push(start - from);
      }
    }
  });
  let stallMs = NaN;
  let result: T;
  try {
    await delay(WarmupMs);
    const monitor = monitorEventLoopDelay({ resolution: 5 });
    from = performance.now();
    monitor.enable();
    result = await during();
    to = performance.now();
    monitor.disable();
    stallMs = monitor.max / 1e6;
  } finally {
    running = false;
    await Promise.all(writers);
  }
  return { latencies, starts: starts.map((s) => s / (to - from)), stallMs, seconds: (to - from) / 1000, result };
}

/**
 * Commits of saturating writers while `entry` is deleted: the catalogue's way
 * (a slice at a time) or, as the reference, unlinked at once with an fsync of
 * its folder.
 */
async function deletion(store: Store, catalogue: Catalogue, entry: CatalogueEntry, sliced: boolean, round: number): Promise<Deletion> {
  await settle();
  const window = await commitLatencies(store, round, () => (sliced ? catalogue.remove(entry.id) : fs.unlink(entry.file).then(() => fsyncDir(catalogue.dir))));
  return { how: sliced ? 'a slice at a time (Catalogue.remove)' : 'unlinked at once (reference)', mib: entry.size / MiB, stats: stats(window.latencies), seconds: window.seconds, stallMs: window.stallMs };
}

/**
 * The floor under a checkpoint's effect on commits: other processes do only the disk and hashing work
 * that writing `file` as a checkpoint must do (written with O_DIRECT, as checkpoints are, `dd bs=1M
 * oflag=direct`, or through the page cache plus an fsync where the file system refuses O_DIRECT; then
 * read back and hashed, `sha256sum`), and no code of ours runs besides the writers.
 */
async function copyAndHash(file: string, work: string): Promise<void> {
  const copy = path.join(work, 'floor-copy');
  try {
    await timed('dd', [`if=${file}`, `of=${copy}`, 'bs=1M', 'oflag=direct', 'status=none'], work, true).catch(() =>
      timed('dd', [`if=${file}`, `of=${copy}`, 'bs=1M', 'conv=fsync', 'status=none'], work, true),
    );
    await timed('sha256sum', [copy], work, true);
  } finally {
    await fs.rm(copy, { force: true });
  }
}

/** How many of the window's commits took longer than `limit` ms, in each tenth of the window. */
function slowByTenth(window: Window, limit: number): number[] {
  const counts = new Array<number>(10).fill(0);
  window.latencies.forEach((l, i) => {
    if (l > limit) counts[Math.min(9, Math.floor(window.starts[i]! * 10))]!++;
  });
  return counts;
}

async function settle(): Promise<void> {
  collectGarbage();
  await delay(100);
}

const mibps = (bytes: number, seconds: number) => bytes / MiB / seconds;
const verdict = (ok: boolean) => (ok ? 'MET' : 'NOT MET');

/** Print the checkpoint benchmark. */
export async function checkpointBench(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-bench-checkpoint-'));
  const started = performance.now();
  let store: Store | null = null;
  try {
    console.log(
      `checkpoint benchmark: scale ${Scale} (about ${fmt(TargetBytes / MiB)} MiB), folder ${dir} (${os.cpus().length} cores, node ${process.version})` +
        (DiskRate === null ? '' : `; checkpoint.maxDiskRate ${fmt(DiskRate / MiB, 1)} MiB/s`),
    );
    const vault = new VaultPaths(path.join(dir, 'FileVault'));
    await vault.ensure();
    const logger = silentLogger();
    store = await Store.open({ journalDir: vault.journal, sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger, engine: benchEngine(dir) });
    const catalogue = new Catalogue(vault.checkpoint, logger);
    await catalogue.init();
    const installation = await installationId(vault.root);
    const checkpointer = (compression: Compression) =>
      new Checkpointer({ catalogue, store: store!, logger, node: 'bench', compression, installation, directWrites: process.env.BENCH_DIRECT !== '0', maxDiskRate: DiskRate, scratchDir: dir });
    const request = { scope: 'collection' as const, description: 'bench', trigger: 'manual' };

    const loadStart = performance.now();
    const objects = await load(store, started);
    console.log(`loaded ${fmt(objects)} objects in ${Spaces.length} spaces in ${elapsed(loadStart)}; heap ${fmt(process.memoryUsage().heapUsed / MiB)} MiB`);

    // The first checkpoint after the load encodes every object, scattered over the heap in the
    // order commits stored them: the cold case, timed once (store). Before each of the three
    // timed creations after it, UpdateShare of the objects, picked at random, are put again
    // with new values: the steady case, where a checkpoint re-encodes the leaves changed since
    // the one before. A full GC before each timed step charges none of the last step's garbage to it.
    const work = path.join(dir, 'work');
    const filesDir = path.join(work, 'files');
    await fs.mkdir(work);
    await settle();
    let t = performance.now();
    const first = await checkpointer({ method: 'store' }).create(request);
    const coldS = (performance.now() - t) / 1000;
    const bytes = uncompressedBytes(first.manifest);
    const files = await extract(first.file, filesDir);
    console.log(`  cold (store): create ${coldS.toFixed(2)} s; ${fmt(bytes / MiB)} MiB uncompressed in ${files.length} entries (besides manifest.json), extracted to ${filesDir} (${elapsed(started)})`);
    const cpS = await timed('cp', ['-r', 'files', 'copy'], work);
    const cpSyncS = await fsyncAll(await listFiles(path.join(work, 'copy')));
    await fs.rm(path.join(work, 'copy'), { recursive: true });
    const created: { setting: (typeof Settings)[number]; entry: CatalogueEntry; create: number; zip: number; zipSync: number }[] = [];
    for (const [round, setting] of Settings.entries()) {
      const updated = await update(store, objects, round);
      const cp = checkpointer(setting.compression);
      await settle();
      t = performance.now();
      const entry = await cp.create(request);
      const create = (performance.now() - t) / 1000;
      const zipFile = `${setting.name.replace(':', '-')}.zip`;
      const zip = await timed('zip', ['-r', '-q', '-X', setting.zipFlag, zipFile, 'files'], work);
      const zipSync = zip + (await fsyncAll([path.join(work, zipFile)]));
      created.push({ setting, entry, create, zip, zipSync });
      console.log(`  ${setting.name}: ${fmt(updated)} objects updated, then create ${create.toFixed(2)} s, zip ${setting.zipFlag} ${zip.toFixed(2)} s (+fsync ${zipSync.toFixed(2)} s); checkpoint ${fmt(entry.size / MiB)} MiB (${elapsed(started)})`);
    }
    // The cold restore, timed once like the cold creation: the first restore after the load replaces the
    // state 3.7 million single commits built, and pays for a full collection of that heap and for memory the
    // process never had. The table's restores each then replace a restored state, as a restore in production
    // replaces a state that was itself loaded from a checkpoint at start-up.
    await settle();
    t = performance.now();
    await checkpointer({ method: 'store' }).restore(first.id);
    const coldRestoreS = (performance.now() - t) / 1000;
    await catalogue.remove(first.id);
    console.log(`  cold restore (store, the first after the load): ${coldRestoreS.toFixed(2)} s (${elapsed(started)})`);
    const results: Throughput[] = [];
    for (const { setting, entry, create, zip, zipSync } of created) {
      const zipFile = `${setting.name.replace(':', '-')}.zip`;
      await settle();
      const t = performance.now();
      await checkpointer(setting.compression).restore(entry.id);
      const restore = (performance.now() - t) / 1000;
      const unzip = await timed('unzip', ['-q', '-o', zipFile, '-d', 'out'], work);
      const unzipSync = unzip + (await fsyncAll(await listFiles(path.join(work, 'out'))));
      results.push({ setting: setting.name, size: entry.size, create, zip, zipSync, restore, unzip, unzipSync });
      console.log(`  ${setting.name}: restore ${restore.toFixed(2)} s, unzip ${unzip.toFixed(2)} s (+fsync ${unzipSync.toFixed(2)} s) (${elapsed(started)})`);
      await catalogue.remove(entry.id);
      await fs.rm(path.join(work, zipFile));
      await fs.rm(path.join(work, 'out'), { recursive: true });
    }

    const latency: Latency[] = [];
    const deletes: Deletion[] = [];
    const floors: Floor[] = [];
    for (const [load, rate] of [['saturating', 0], ['steady', SteadyRate]] as const) {
      for (const [round, setting] of Settings.entries()) {
        // The checkpoint's window first, then a baseline as long as it (at least BaselineMs): a p99 over a
        // 3 s baseline against one over a 29 s checkpoint compares a window that may hold no young-generation
        // collection with one that holds several.
        const seed = 2 * round + (rate > 0 ? 100 : 0);
        await settle();
        const during = await commitLatencies(store, seed + 1, () => checkpointer(setting.compression).create(request), rate);
        // The largest file, store's, is deleted under watch: the catalogue's way after the saturating window,
        // unlinked at once (the reference) after the steady one.
        // The floor, after the store window, on its file: other processes copy and hash it (copyAndHash).
        let floor: Window | undefined;
        if (setting.name === 'store') {
          await settle();
          floor = await commitLatencies(store, seed + 70, () => copyAndHash(during.result.file, work), rate);
          deletes.push(await deletion(store, catalogue, during.result, rate === 0, seed + 50));
        } else await catalogue.remove(during.result.id);
        await settle();
        const base = await commitLatencies(store, seed, () => delay(Math.max(BaselineMs, during.seconds * 1000)), rate);
        const baseStats = stats(base.latencies);
        if (floor !== undefined) floors.push({ load, mib: during.result.size / MiB, base: baseStats, during: stats(floor.latencies), seconds: floor.seconds, stallMs: floor.stallMs });
        const slow = slowByTenth(during, 2 * baseStats.p99);
        latency.push({ setting: setting.name, load, base: baseStats, during: stats(during.latencies), checkpointS: during.seconds, stallBaseMs: base.stallMs, stallMs: during.stallMs, slow });
        console.log(`  latency with ${setting.name}, ${load} load: done (${elapsed(started)})`);
      }
    }

    const rss = process.resourceUsage().maxRSS * 1024;
    console.log(`\nuncompressed: ${fmt(bytes / MiB)} MiB (${fmt(objects)} objects, 4 spaces, indexes type + owner); throughput in MiB/s of uncompressed bytes`);
    console.log(`cold creation (the first checkpoint after the load, store): ${fmt(mibps(bytes, coldS))} MiB/s (${coldS.toFixed(2)} s); the table's creations each follow ${UpdateShare * 100}% of the objects updated at random`);
    const storeUnzip = results.find((r) => r.setting === 'store')?.unzip;
    console.log(
      `cold restore (the first after the load, of the cold checkpoint, store): ${fmt(mibps(bytes, coldRestoreS))} MiB/s (${coldRestoreS.toFixed(2)} s)` +
        (storeUnzip === undefined ? '' : `, ${(storeUnzip / coldRestoreS).toFixed(2)}x unzip of the store zip; the table's restores each replace a restored state`),
    );
    console.log(`reference cp -r of the files: ${fmt(mibps(bytes, cpS))} MiB/s; with fsync of the copy (the disk's write limit): ${fmt(mibps(bytes, cpS + cpSyncS))} MiB/s`);
    console.log('\nsetting   | file MiB | create | zip   | x zip | zip+fsync | x zip+fsync | x cp+fsync | restore | unzip | x unzip | unzip+fsync | x unzip+fsync');
    console.log('--------- | -------- | ------ | ----- | ----- | --------- | ----------- | ---------- | ------- | ----- | ------- | ----------- | -------------');
    for (const r of results) {
      const create = mibps(bytes, r.create);
      const restore = mibps(bytes, r.restore);
      console.log(
        `${r.setting.padEnd(9)} | ${fmt(r.size / MiB).padStart(8)} | ${fmt(create).padStart(6)} | ${fmt(mibps(bytes, r.zip)).padStart(5)} | ${(r.zip / r.create).toFixed(2).padStart(5)} | ` +
          `${fmt(mibps(bytes, r.zipSync)).padStart(9)} | ${(r.zipSync / r.create).toFixed(2).padStart(11)} | ${((cpS + cpSyncS) / r.create).toFixed(2).padStart(10)} | ` +
          `${fmt(restore).padStart(7)} | ${fmt(mibps(bytes, r.unzip)).padStart(5)} | ${(r.unzip / r.restore).toFixed(2).padStart(7)} | ` +
          `${fmt(mibps(bytes, r.unzipSync)).padStart(11)} | ${(r.unzipSync / r.restore).toFixed(2).padStart(13)}`,
      );
    }
    console.log(`\ncommit latency, ${Writers} writers, one durable put each (ms); for the length of one collection checkpoint, then as long without one (the baseline; at least ${BaselineMs} ms)`);
    console.log(`saturating: each writer commits again as soon as its last commit is durable; steady: ${fmt(SteadyRate)} commits a second in all, each counted from when it was due`);
    console.log('setting   | load       | checkpoint s | base p50 / p99 / max | during p50 / p99 / max | p99 ratio | loop stall base / during');
    console.log('--------- | ---------- | ------------ | -------------------- | ---------------------- | --------- | ------------------------');
    for (const l of latency) {
      const b = l.base;
      const d = l.during;
      console.log(
        `${l.setting.padEnd(9)} | ${l.load.padEnd(10)} | ${l.checkpointS.toFixed(2).padStart(12)} | ${`${b.p50.toFixed(1)} / ${b.p99.toFixed(1)} / ${b.max.toFixed(1)}`.padStart(20)} | ` +
          `${`${d.p50.toFixed(1)} / ${d.p99.toFixed(1)} / ${d.max.toFixed(1)}`.padStart(22)} | ${(d.p99 / b.p99).toFixed(2).padStart(9)} | ${`${l.stallBaseMs.toFixed(0)} / ${l.stallMs.toFixed(0)} ms`.padStart(24)}`,
      );
    }
    console.log(`(commits slower than 2x the baseline p99 during the checkpoint, by tenth of its length: ${latency.map((l) => `${l.setting} ${l.load} [${l.slow.join(' ')}]`).join('; ')})`);
    for (const f of floors) {
      console.log(
        `floor, ${f.load} load: while other processes copy the ${fmt(f.mib)} MiB store checkpoint (dd bs=1M oflag=direct) and hash the copy (sha256sum), no code of ours running besides the writers: ` +
          `${f.seconds.toFixed(2)} s, p50 / p99 / max ${f.during.p50.toFixed(1)} / ${f.during.p99.toFixed(1)} / ${f.during.max.toFixed(1)} ms, p99 ${(f.during.p99 / f.base.p99).toFixed(2)}x the store baseline's, loop stall ${f.stallMs.toFixed(0)} ms`,
      );
    }
    for (const d of deletes) {
      console.log(`commits while the ${fmt(d.mib)} MiB store checkpoint is deleted, ${d.how}: ${d.seconds.toFixed(2)} s, p50 / p99 / max ${d.stats.p50.toFixed(1)} / ${d.stats.p99.toFixed(1)} / ${d.stats.max.toFixed(1)} ms, loop stall ${d.stallMs.toFixed(0)} ms`);
    }
    console.log(`\npeak RSS ${fmt(rss / MiB)} MiB; total ${elapsed(started)}`);

    console.log('\ntargets:');
    for (const r of results) {
      console.log(`  ${r.setting}: creation >= zip ${Settings.find((s) => s.name === r.setting)!.zipFlag}: ${(r.zip / r.create).toFixed(2)}x ${verdict(r.create <= r.zip)} (against zip + fsync ${(r.zipSync / r.create).toFixed(2)}x); restore >= unzip: ${(r.unzip / r.restore).toFixed(2)}x ${verdict(r.restore <= r.unzip)} (against unzip + fsync ${(r.unzipSync / r.restore).toFixed(2)}x)`);
    }
    for (const l of latency) {
      const ratio = l.during.p99 / l.base.p99;
      console.log(`  ${l.setting}, ${l.load} load: p99 commit latency during a checkpoint <= 2x baseline: ${ratio.toFixed(2)}x ${verdict(ratio <= 2)}; event-loop stall <= 50 ms (docs/ARCHITECTURE.md): ${l.stallMs.toFixed(0)} ms ${verdict(l.stallMs <= 50)}`);
    }
  } finally {
    await store?.close().catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
}
