/**
 * Automatic checkpoints under a steady write load: how far the journal
 * overshoots `checkpoint.journalThreshold` before the checkpoint is published,
 * and the commit latency while automatic checkpoints run, against the same
 * load with automatic checkpoints off (the reference, measured in the same run).
 *
 * Everything runs in process on the real code: Store (journal.sync=commit) on
 * a temporary FileVault, Catalogue, Checkpointer (deflate:1, the default) and
 * AutoCheckpointer with its chokidar journal watcher, by file events (inotify) or by polling (the default, every 500 ms), per setting;
 * every system-event trigger off, no schedule, retention keepLast 2.
 *
 * Data: 200,000 objects of about 300 bytes of JSON in 4 spaces (template
 * indexing `type` and `owner`), from a seeded PRNG, checkpointed once before
 * anything is measured (cold). BENCH_SCALE (default 1.0) scales the object
 * count, the thresholds and the phase lengths: 0.25 for a quick run.
 *
 * Load: 8 writers, each a loop of durable single-put commits (an existing key
 * of a random space, a new value of about 300 bytes), so the collection keeps
 * its size and every checkpoint re-encodes the leaves changed since the one
 * before. Latency is taken for the commits started inside each phase's
 * window (after a 500 ms warm-up), with the event loop's longest delay
 * (`monitorEventLoopDelay`) over the window.
 *
 * Phases: the reference (auto off) for half a phase, then one phase per
 * setting (threshold, coalesceMs), then the reference again for half a phase;
 * the two reference halves are pooled so that drift during the run shows in
 * neither side alone. The first setting, "watcher only", is an
 * AutoCheckpointer whose threshold is never reached: what the chokidar
 * watcher costs, apart from what the checkpoints cost. Before each setting a collection checkpoint made by
 * hand (trigger `bench-base`) resets the count and rolls the journal, and a
 * fresh AutoCheckpointer is started on it. When a phase's window ends, the
 * writers keep going until a checkpoint booked or running inside it is
 * published, so every counted checkpoint ran under the same load.
 *
 * What "overshoot" means here. The product counts "journal bytes since the
 * newest collection checkpoint" as the sizes of the journal files that begin
 * after that checkpoint's seq, i.e. the bytes written since its journal roll
 * (commits made while that checkpoint was being written sit in the file
 * before the roll and are not counted). The bench measures the same quantity
 * itself, from `fs.statSync` of the journal files (not from the watcher), at
 * three moments of each automatic checkpoint:
 *   (a) notice: when the watcher's callback books the checkpoint
 *       (`AutoCheckpointer.fire`, wrapped on the instance to take the sample):
 *       bytes past the threshold there are the watcher's lag (inotify event
 *       delivery, chokidar's stat, the event loop's turn);
 *   (b) start: when `Checkpointer.create` is called (after `coalesceMs`);
 *   (c) publish: in the `Checkpointer.onCreated` listener, which runs right
 *       after the checkpoint is published and the journal rolled (the bytes
 *       since the roll, a batch or two of commits, are counted too): bytes past
 *       the threshold there add the coalescing wait and the checkpoint's own
 *       duration.
 * Overshoot = those bytes minus the threshold, shown in MiB and as a fraction
 * of the threshold. Also shown: the journal a restart would replay on top of
 * the previous checkpoint at the moment the new one is published (every byte
 * written since the previous checkpoint's snapshot, from the journal
 * writer's byte counter): the threshold's count plus the writes made while
 * the previous checkpoint ran.
 */
import { readdirSync, statSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Catalogue, Checkpointer, type CatalogueEntry, type CreateRequest } from '../src/checkpoint/index.js';
import { CheckpointEvents, type CheckpointConfig } from '../src/config/index.js';
import { parseJournalFileName } from '../src/journal/index.js';
import { silentLogger, type Logger } from '../src/log/index.js';
import { Store, type Json } from '../src/store/index.js';
import { AutoCheckpointer } from '../src/triggers/index.js';
import { installationId, VaultPaths } from '../src/vault/index.js';
import { collectGarbage, elapsed, fmt, keyOf, Materials, MiB, prng, States, stats, Types, Words, type Stats, benchEngine } from './shared.js';

const Scale = Number(process.env.BENCH_SCALE ?? 1);
const Objects = Math.max(4000, Math.round(200_000 * Scale));
const Spaces = ['s0', 's1', 's2', 's3'];
const Writers = 8;
const WarmupMs = 500;
const PhaseMs = Math.max(2000, Math.round(20_000 * Scale));
const PutsPerLoad = 1000;
const LoadsInFlight = 4;
/** Longest a phase's tail may wait for a booked or running checkpoint to be published. */
const TailLimitMs = 120_000;
const Compression = { method: 'deflate', level: 1 } as const;
/**
 * The settings, each its own phase. `threshold` in MiB at scale 1 (null: so
 * high it is never reached, to show what the watcher alone costs); `phases`:
 * the phase's length in PhaseMs, so that each setting makes a few checkpoints
 * (at 2-5 MiB/s of journal on the 2-core machine: 4-8 at 8 MiB, 3-6 at 32 MiB).
 * The product's default is 256 MiB; the overshoot in bytes at publication is
 * the journal rate times (coalesceMs + the checkpoint's duration), whatever
 * the threshold, so a small threshold is the hard case for its fraction.
 */
const Settings: { threshold: number | null; coalesceMs: number; phases: number; polling: boolean }[] = [
  { threshold: null, coalesceMs: 1000, phases: 0.5, polling: false },
  { threshold: null, coalesceMs: 1000, phases: 0.5, polling: true },
  { threshold: 8, coalesceMs: 0, phases: 1, polling: false },
  { threshold: 8, coalesceMs: 0, phases: 1, polling: true },
  { threshold: 8, coalesceMs: 1000, phases: 1, polling: true },
  { threshold: 32, coalesceMs: 1000, phases: 3, polling: true },
];
/** chokidar's polling period when a setting polls (the product's default). */
const PollMs = 500;
/** The threshold of the watcher-only phase: never reached. */
const Unreachable = 2 ** 50;

/** An object of about 300 bytes of JSON: strings, numbers, a nested object. */
function makeValue(rand: () => number, owners: number): Json {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)]!;
  return {
    type: pick(Types),
    owner: `user-${String(Math.floor(rand() * owners)).padStart(6, '0')}`,
    name: `${pick(Words)} ${pick(Words)} ${Math.floor(rand() * 1000)}`,
    rev: `${String.fromCharCode(65 + Math.floor(rand() * 6))}.${Math.floor(rand() * 9)}`,
    state: pick(States),
    qty: Math.floor(rand() * 500),
    mass: Math.round(rand() * 1e6) / 1000,
    dims: { w: Math.round(rand() * 5000) / 10, h: Math.round(rand() * 5000) / 10, d: Math.round(rand() * 500) / 10, unit: 'mm' },
    material: pick(Materials),
    note: `${pick(Words)} ${pick(Words)} ${pick(Words)} for ${pick(Words)} ${pick(Words)}, see ${pick(Types)} ${Math.floor(rand() * 1e6)}`,
    updated: `2026-${String(1 + Math.floor(rand() * 12)).padStart(2, '0')}-${String(1 + Math.floor(rand() * 28)).padStart(2, '0')}T${String(Math.floor(rand() * 24)).padStart(2, '0')}:00:00Z`,
  };
}

const PerSpace = Math.ceil(Objects / Spaces.length);
const Owners = Math.max(10, Math.floor(PerSpace / 4));

/** Load PerSpace objects into each space, in transactions of PutsPerLoad, a few in flight; the mean value size in bytes. */
async function preload(store: Store): Promise<number> {
  await store.commit({ type: 'template.load', template: { name: 'plm', version: '1.0', indexes: ['type', 'owner'] } });
  for (const id of Spaces) await store.commit({ type: 'space.create', id, template: { name: 'plm', version: '1.0' } });
  let bytes = 0;
  for (const [s, space] of Spaces.entries()) {
    const rand = prng(1000 + s);
    const queue: Promise<unknown>[] = [];
    for (let from = 0; from < PerSpace; from += PutsPerLoad) {
      const ops = [];
      for (let i = from; i < Math.min(from + PutsPerLoad, PerSpace); i++) {
        const value = makeValue(rand, Owners);
        bytes += JSON.stringify(value).length;
        ops.push({ op: 'put' as const, key: keyOf(i), value });
      }
      queue.push(store.commit({ type: 'commit', space, ops }));
      if (queue.length >= LoadsInFlight) await queue.shift();
    }
    await Promise.all(queue);
  }
  return bytes / (PerSpace * Spaces.length);
}

/** Bytes in the journal files of `dir` that begin after seq `seq`, from the file system (what the watcher counts, without its lag). */
function journalBytesAfter(dir: string, seq: number): number {
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    const firstSeq = parseJournalFileName(name)?.firstSeq;
    if (firstSeq === undefined || firstSeq <= seq) continue;
    try {
      bytes += statSync(path.join(dir, name)).size;
    } catch (err) {
      // Pruned between readdir and stat: it began before the newest checkpoint anyway.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return bytes;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

/** The commits started in one measured window. */
interface Window {
  /** Latency (ms) of each commit started in the window. */
  latencies: number[];
  /** Its start (performance.now()). */
  starts: number[];
  from: number;
  to: number;
  stallMs: number;
  /** Journal bytes written in the window (the writer's counter). */
  journalBytes: number;
  /** CPU time of the process (user + system) over the window, in cores (2 = both cores busy). */
  cores: number;
}

/**
 * The write load: Writers loops of durable single-put commits, running until
 * `stop`. `measure(ms)` records one window of it.
 */
class Load {
  private running = true;
  private from = Infinity;
  private to = Infinity;
  private readonly latencies: number[] = [];
  private readonly starts: number[] = [];
  private readonly writers: Promise<void>[];

  constructor(private readonly store: Store, seed: number) {
    const rand = prng(seed);
    this.writers = Array.from({ length: Writers }, async () => {
      while (this.running) {
        const space = Spaces[Math.floor(rand() * Spaces.length)]!;
        const op = { type: 'commit' as const, space, ops: [{ op: 'put' as const, key: keyOf(Math.floor(rand() * PerSpace)), value: makeValue(rand, Owners) }] };
        const start = performance.now();
        await store.commit(op);
        if (start >= this.from && start < this.to) {
          this.latencies.push(performance.now() - start);
          this.starts.push(start);
        }
      }
    });
  }

  /** Warm up, then record `ms` of commits. */
  async measure(ms: number): Promise<Window> {
    await delay(WarmupMs);
    const monitor = monitorEventLoopDelay({ resolution: 5 });
    const bytesBefore = this.store.journalStats!.bytesWritten;
    const cpu = process.cpuUsage();
    this.from = performance.now();
    monitor.enable();
    await delay(ms);
    this.to = performance.now();
    monitor.disable();
    const used = process.cpuUsage(cpu);
    const journalBytes = this.store.journalStats!.bytesWritten - bytesBefore;
    const cores = (used.user + used.system) / 1000 / (this.to - this.from);
    return { latencies: this.latencies, starts: this.starts, from: this.from, to: this.to, stallMs: monitor.max / 1e6, journalBytes, cores };
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.writers);
  }
}

/** One automatic checkpoint, from the trigger to its publication. */
interface Cycle {
  fireAt: number;
  /** What the watcher showed when it booked the checkpoint (AutoCheckpointer.journalBytesSince). */
  watcherBytes: number;
  /** Journal bytes past the previous checkpoint's roll, from the file system, at notice, at create and at publish. */
  noticeBytes: number;
  startAt: number;
  startBytes: number;
  publishAt: number;
  publishBytes: number;
  /** Bytes a restart would replay on top of the previous checkpoint, at publication. */
  replayBytes: number;
  trigger: string;
  id: number;
  seq: number;
  size: number;
}

interface PhaseResult {
  name: string;
  threshold: number;
  coalesceMs: number;
  window: Window;
  cycles: Cycle[];
  /** Triggers fired that did not end in a publication (cancelled, failed, skipped). */
  lost: number;
  /** How long the writers kept going after the window for a booked or running checkpoint to be published. */
  tailMs: number;
}

async function settle(): Promise<void> {
  collectGarbage();
  await delay(200);
}

function config(threshold: number | null, coalesceMs: number, polling: boolean): CheckpointConfig {
  return {
    compression: Compression,
    directWrites: true,
    maxDiskRate: null,
    journalThreshold: threshold,
    watch: { usePolling: polling, intervalMs: PollMs },
    events: Object.fromEntries(CheckpointEvents.map((e) => [e, false])) as CheckpointConfig['events'],
    schedule: null,
    coalesceMs,
    retention: { keepLast: 2, keepWithinMs: null },
    retry: { minMs: 1000, maxMs: 10_000 },
  };
}

interface Rig {
  store: Store;
  vault: VaultPaths;
  catalogue: Catalogue;
  installation: string;
  logger: Logger;
}

const baseRequest: CreateRequest = { scope: 'collection', description: 'bench: reset the journal count', trigger: 'bench-base' };

/** The reference: the load with automatic checkpoints off. */
async function referencePhase(rig: Rig, seed: number, ms: number): Promise<Window> {
  await settle();
  const load = new Load(rig.store, seed);
  try {
    return await load.measure(ms);
  } finally {
    await load.stop();
  }
}

/** One setting: a checkpoint by hand, then the load with an AutoCheckpointer on it. */
async function autoPhase(rig: Rig, seed: number, ms: number, thresholdMiB: number | null, coalesceMs: number, polling: boolean): Promise<PhaseResult> {
  const { store, vault, catalogue, installation, logger } = rig;
  const threshold = thresholdMiB === null ? Unreachable : Math.round(thresholdMiB * Scale * MiB);
  const mode = polling ? `polling ${PollMs} ms` : 'file events';
  const name = thresholdMiB === null ? `watcher only, ${mode}` : `${fmt(thresholdMiB * Scale, Number.isInteger(thresholdMiB * Scale) ? 0 : 1)} MiB, coalesce ${coalesceMs} ms, ${mode}`;
  const checkpointer = new Checkpointer({ catalogue, store, logger, node: 'bench', compression: Compression, installation, scratchDir: vault.root });
  await settle();
  const baseStart = store.journalStats!.bytesWritten;
  let prev = { entry: await checkpointer.create(baseRequest), bytesAtSnapshot: baseStart };
  const auto = new AutoCheckpointer({ checkpointer, store, config: config(threshold, coalesceMs, polling), journalDir: vault.journal, logger });

  // Instrumentation: the three moments of each cycle (see the file comment).
  const cycles: Cycle[] = [];
  let current: Partial<Cycle> | null = null;
  let fires = 0;
  const fire = auto.fire.bind(auto);
  auto.fire = (trigger: string) => {
    fires++;
    current = { fireAt: performance.now(), watcherBytes: auto.journalBytesSince ?? NaN, noticeBytes: journalBytesAfter(vault.journal, prev.entry.manifest.seq), trigger };
    fire(trigger);
  };
  const create = checkpointer.create.bind(checkpointer);
  let snapshotBytes = 0;
  checkpointer.create = (request: CreateRequest) => {
    if (current !== null) Object.assign(current, { startAt: performance.now(), startBytes: journalBytesAfter(vault.journal, prev.entry.manifest.seq) });
    snapshotBytes = store.journalStats!.bytesWritten;
    return create(request);
  };
  checkpointer.onCreated((entry: CatalogueEntry) => {
    const publishAt = performance.now();
    const publishBytes = journalBytesAfter(vault.journal, prev.entry.manifest.seq);
    const replayBytes = store.journalStats!.bytesWritten - prev.bytesAtSnapshot;
    if (current !== null) {
      cycles.push({ ...(current as Cycle), publishAt, publishBytes, replayBytes, id: entry.id, seq: entry.manifest.seq, size: entry.size });
      current = null;
    }
    prev = { entry, bytesAtSnapshot: snapshotBytes };
  });

  await settle();
  await auto.start();
  const load = new Load(store, seed);
  let window: Window;
  let tailMs = 0;
  try {
    window = await load.measure(ms);
    // Let a checkpoint booked or running inside the window finish under the same load.
    const tailFrom = performance.now();
    while (['waiting', 'running'].includes(auto.status().state) && performance.now() - tailFrom < TailLimitMs) await delay(10);
    tailMs = performance.now() - tailFrom;
    await auto.stop();
  } finally {
    await load.stop();
  }
  const counted = cycles.filter((c) => c.fireAt < window.to);
  return { name, threshold, coalesceMs, window, cycles: counted, lost: fires - cycles.length, tailMs };
}

/** Latencies of the window's commits started inside (or outside) the given intervals. */
function splitByIntervals(window: Window, intervals: [number, number][]): { inside: number[]; outside: number[] } {
  const inside: number[] = [];
  const outside: number[] = [];
  window.starts.forEach((s, i) => {
    (intervals.some(([a, b]) => s >= a && s < b) ? inside : outside).push(window.latencies[i]!);
  });
  return { inside, outside };
}

const mib = (bytes: number) => fmt(bytes / MiB, 2);
const pct = (bytes: number, threshold: number) => `${fmt((100 * bytes) / threshold, 1)}%`;
const ms3 = (s: Stats) => `${s.p50.toFixed(1)} / ${s.p99.toFixed(1)} / ${s.max.toFixed(1)}`;
const rate = (w: Window) => w.latencies.length / ((w.to - w.from) / 1000);

/** min / median / max of `values`, each through `show`. */
function spread(values: number[], show: (v: number) => string): string {
  if (values.length === 0) return '-';
  return `${show(Math.min(...values))} / ${show(median(values))} / ${show(Math.max(...values))}`;
}

/** Print the automatic-checkpoint benchmark. */
export async function autoBench(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-bench-auto-'));
  const started = performance.now();
  let store: Store | null = null;
  try {
    console.log(`auto benchmark: scale ${Scale}, ${fmt(Objects)} objects in ${Spaces.length} spaces, ${Writers} writers, phases of ${fmt(PhaseMs / 1000, 1)} s, folder ${dir} (${os.cpus().length} cores, node ${process.version})`);
    const vault = new VaultPaths(path.join(dir, 'FileVault'));
    await vault.ensure();
    const logger = silentLogger();
    store = await Store.open({ journalDir: vault.journal, sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger, engine: benchEngine(dir) });
    const catalogue = new Catalogue(vault.checkpoint, logger);
    await catalogue.init();
    const installation = await installationId(vault.root);
    const rig: Rig = { store, vault, catalogue, installation, logger };

    const valueBytes = await preload(store);
    console.log(`  preloaded ${fmt(Objects)} objects, ${fmt(valueBytes)} bytes of JSON each on average (${elapsed(started)})`);
    await settle();
    let t = performance.now();
    const cold = await new Checkpointer({ catalogue, store, logger, node: 'bench', compression: Compression, installation, scratchDir: vault.root }).create(baseRequest);
    console.log(`  cold checkpoint of the preloaded collection: ${((performance.now() - t) / 1000).toFixed(2)} s, ${mib(cold.size)} MiB (${elapsed(started)})`);

    const ref1 = await referencePhase(rig, 1, PhaseMs / 2);
    console.log(`  reference 1 (auto off): ${fmt(rate(ref1))} commits/s, journal ${mib(ref1.journalBytes / ((ref1.to - ref1.from) / 1000))} MiB/s, p99 ${stats(ref1.latencies).p99.toFixed(1)} ms (${elapsed(started)})`);
    const results: PhaseResult[] = [];
    for (const [i, s] of Settings.entries()) {
      t = performance.now();
      const r = await autoPhase(rig, 10 + i, PhaseMs * s.phases, s.threshold, s.coalesceMs, s.polling);
      results.push(r);
      console.log(`  ${r.name}: ${r.cycles.length} automatic checkpoints, ${fmt(rate(r.window))} commits/s, p99 ${stats(r.window.latencies).p99.toFixed(1)} ms, tail ${fmt(r.tailMs / 1000, 1)} s (${elapsed(started)})`);
    }
    const ref2 = await referencePhase(rig, 2, PhaseMs / 2);
    console.log(`  reference 2 (auto off): ${fmt(rate(ref2))} commits/s, p99 ${stats(ref2.latencies).p99.toFixed(1)} ms (${elapsed(started)})`);

    const ref = stats([...ref1.latencies, ...ref2.latencies]);
    const refRate = (ref1.latencies.length + ref2.latencies.length) / ((ref1.to - ref1.from + ref2.to - ref2.from) / 1000);
    const refJournalRate = (ref1.journalBytes + ref2.journalBytes) / ((ref1.to - ref1.from + ref2.to - ref2.from) / 1000);
    const refStall = Math.max(ref1.stallMs, ref2.stallMs);
    const refCores = (ref1.cores * (ref1.to - ref1.from) + ref2.cores * (ref2.to - ref2.from)) / (ref1.to - ref1.from + ref2.to - ref2.from);

    console.log(`\nreference (auto off, 2 x ${fmt(PhaseMs / 2000, 1)} s pooled): ${fmt(refRate)} commits/s, journal ${mib(refJournalRate)} MiB/s, commit latency p50 / p99 / max ${ms3(ref)} ms ` +
      `(halves: p99 ${stats(ref1.latencies).p99.toFixed(1)} and ${stats(ref2.latencies).p99.toFixed(1)} ms), longest loop stall ${refStall.toFixed(0)} ms, CPU ${refCores.toFixed(2)} cores`);

    console.log('\novershoot past the threshold: journal bytes since the previous checkpoint\'s roll, from fs.stat, minus the threshold; min / median / max');
    console.log('setting                   | ckpts | at notice MiB        | at notice %        | at start % (med) | at publish MiB          | at publish %          | replay at publish x thr | ckpt s (med / max) | trigger->publish s');
    console.log('------------------------- | ----- | -------------------- | ------------------ | ---------------- | ----------------------- | --------------------- | ----------------------- | ------------------ | ------------------');
    for (const r of results.filter((x) => x.threshold !== Unreachable)) {
      const c = r.cycles;
      const notice = c.map((x) => x.noticeBytes - r.threshold);
      const publish = c.map((x) => x.publishBytes - r.threshold);
      const durations = c.map((x) => (x.publishAt - x.startAt) / 1000);
      const toPublish = c.map((x) => (x.publishAt - x.fireAt) / 1000);
      console.log(
        `${r.name.padEnd(25)} | ${String(c.length).padStart(5)} | ${spread(notice, mib).padStart(20)} | ${spread(notice.map((b) => (100 * b) / r.threshold), (v) => fmt(v, 1)).padStart(18)} | ` +
          `${fmt(median(c.map((x) => (100 * (x.startBytes - r.threshold)) / r.threshold)), 1).padStart(16)} | ` +
          `${spread(publish, mib).padStart(23)} | ${spread(publish.map((b) => (100 * b) / r.threshold), (v) => fmt(v, 0)).padStart(21)} | ` +
          `${fmt(median(c.map((x) => x.replayBytes / r.threshold)), 2).padStart(23)} | ${`${fmt(median(durations), 2)} / ${fmt(Math.max(...durations), 2)}`.padStart(18)} | ${spread(toPublish, (v) => fmt(v, 2)).padStart(18)}`,
      );
    }
    console.log('(the lag at notice in ms, estimated as the overshoot at notice over the phase\'s mean journal rate, median: ' +
      results.filter((r) => r.threshold !== Unreachable).map((r) => `${r.name} ${fmt(median(r.cycles.map((x) => x.noticeBytes - r.threshold)) / (r.window.journalBytes / (r.window.to - r.window.from)), 0)} ms`).join('; ') + ')');
    console.log('(the watcher\'s own count when it booked the checkpoint, past the threshold, median: ' +
      results.filter((r) => r.threshold !== Unreachable).map((r) => `${r.name} ${pct(median(r.cycles.map((x) => x.watcherBytes - r.threshold)), r.threshold)}`).join('; ') + ')');

    console.log(`\ncommit latency (ms), ${Writers} writers, one durable put each; reference p50 / p99 / max ${ms3(ref)}`);
    console.log('setting                   | commits/s (x ref) | p50 / p99 / max      | p99 x ref | p50 x ref | during checkpoints p50 / p99 / max | during p99 x ref | share of time checkpointing | loop stall ref / auto | CPU cores ref / auto');
    console.log('------------------------- | ----------------- | -------------------- | --------- | --------- | ---------------------------------- | ---------------- | --------------------------- | --------------------- | --------------------');
    for (const r of results) {
      const w = r.window;
      const s = stats(w.latencies);
      const intervals = r.cycles.map((c): [number, number] => [c.startAt, c.publishAt]);
      const during = stats(splitByIntervals(w, intervals).inside);
      const busy = intervals.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(b, w.to) - Math.max(a, w.from)), 0) / (w.to - w.from);
      console.log(
        `${r.name.padEnd(25)} | ${`${fmt(rate(w))} (${(rate(w) / refRate).toFixed(2)})`.padStart(17)} | ${ms3(s).padStart(20)} | ${(s.p99 / ref.p99).toFixed(2).padStart(9)} | ${(s.p50 / ref.p50).toFixed(2).padStart(9)} | ` +
          `${(during.n === 0 ? '-' : ms3(during)).padStart(34)} | ${(during.n === 0 ? '-' : (during.p99 / ref.p99).toFixed(2)).padStart(16)} | ${`${fmt(100 * busy, 0)}%`.padStart(27)} | ${`${refStall.toFixed(0)} / ${w.stallMs.toFixed(0)} ms`.padStart(21)} | ${`${refCores.toFixed(2)} / ${w.cores.toFixed(2)}`.padStart(20)}`,
      );
    }
    for (const r of results.filter((x) => x.threshold !== Unreachable)) {
      const ids = r.cycles.map((c) => c.id);
      const seqs = new Set(r.cycles.map((c) => c.seq));
      const odd: string[] = [];
      if (r.lost !== 0) odd.push(`${r.lost} trigger(s) without a published checkpoint`);
      if (seqs.size !== r.cycles.length) odd.push('two checkpoints at one seq');
      if (r.cycles.some((c) => c.trigger !== 'journal-threshold')) odd.push('a trigger other than journal-threshold');
      console.log(`  ${r.name}: checkpoints ${ids.join(', ')}; ${odd.length === 0 ? 'no duplicate or lost triggers' : odd.join('; ')}; mean size ${mib(r.cycles.reduce((a, c) => a + c.size, 0) / Math.max(1, r.cycles.length))} MiB`);
    }
    console.log(`\npeak RSS ${fmt((process.resourceUsage().maxRSS * 1024) / MiB)} MiB; total ${elapsed(started)}`);
  } finally {
    await store?.close().catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
}
