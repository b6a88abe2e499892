/**
 * Failover time with about 1 GiB of data, through HAProxy, on the product's
 * default timings (heartbeatMs 500, heartbeatTimeoutMs 2000, leaseTtlMs 5000,
 * renewMs 1000, safetyMarginMs 1000).
 *
 * Set-up: the checkpoint benchmark's generated collection is loaded in
 * process into a temporary FileVault and checkpointed; then two real daemons
 * (`checkpointd run`, the built binary) start from that checkpoint, a primary
 * and a secondary, behind a real HAProxy health-checking `/primary` every
 * CheckMs. Four clients PUT small objects through HAProxy all the time (in a
 * space of their own, so that the loss check can list them).
 *
 * - **crash, warm standby**: SIGKILL the primary at a random moment of its
 *   lease-renewal cycle; the secondary, which has the data in memory and
 *   follows the journal, takes over. Measured: kill → the secondary decides
 *   ("the primary is gone": detection), → it serves ("promoted to primary":
 *   promotion), → the first write a client gets acknowledged by it through
 *   HAProxy (total; the rest is HAProxy noticing). The killed node is started
 *   again and follows before the next run; the roles alternate.
 * - **switchover**: `POST /api/admin/failover/switchover` on the primary:
 *   request → its answer, and → the first write acknowledged by the other
 *   node through HAProxy.
 * - **crash, cold standby**: no standby process runs when the primary is
 *   killed; one is started at the moment of the kill (a standby that was
 *   down): its storage engine is intact, so it replays the journal after
 *   its applied seq: kill → first acknowledged write.
 * - **crash, empty standby**: the same, with the standby's data folder
 *   emptied first but for the admin token (a spare host): it installs the
 *   newest checkpoint as its engine and replays the journal after it; the
 *   checkpoint's load is shown apart.
 *
 * Every run also checks that every write acknowledged before it is on the
 * node that took over. BENCH_SCALE scales the data (0.02 for a quick run),
 * BENCH_RUNS (default 10) the runs of each kind, BENCH_KINDS (default
 * `warm,switchover,cold,empty`) which kinds run.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Catalogue, Checkpointer } from '../src/checkpoint/index.js';
import { silentLogger } from '../src/log/index.js';
import { Store } from '../src/store/index.js';
import { installationId, VaultPaths } from '../src/vault/index.js';
import { DefaultHeartbeatMs, DefaultHeartbeatTimeoutMs, DefaultLeaseTtlMs, DefaultRenewMs, DefaultSafetyMarginMs } from '../src/config/defaults.js';
import { DaemonProcess, httpRequest, type LogLine } from '../test/helpers/daemon-process.js';
import { Haproxy } from '../test/helpers/haproxy.js';
import { waitFor } from '../test/helpers/wait-for.js';
import { loadDataset } from './dataset.js';
import { elapsed, fmt, MiB, prng, benchEngine } from './shared.js';

const Scale = Number(process.env.BENCH_SCALE ?? 1);
const Runs = Number(process.env.BENCH_RUNS ?? 10);
const Kinds = new Set((process.env.BENCH_KINDS ?? 'warm,switchover,cold,empty').split(','));
const TargetBytes = Scale * 1024 ** 3;
const Spaces = ['s0', 's1', 's2', 's3'];
/** The space the clients write to during the runs. */
const WriteSpace = 'w';
const Clients = 4;
/** Keys each client cycles through. */
const KeysPerClient = 1000;
/** Pause of a client between two writes (a steady load, not a saturating one). */
const PaceMs = 5;
/** HAProxy's health-check interval (`inter`), with fall 1 rise 1. */
const CheckMs = 500;
/** Heap for each daemon: a gigabyte of objects takes about 4 GiB of it. */
const DaemonHeapMiB = 12_288;
/** Start-up of a daemon that loads the gigabyte. */
const StartTimeoutMs = 300_000;

interface Ack {
  key: string;
  value: number;
  sentAt: number;
  ackedAt: number;
  server: string;
}

/** Clients writing through HAProxy until stopped; every acknowledgement kept. */
class Writers {
  readonly acks: Ack[] = [];
  errors = 0;
  private stopped = false;
  private readonly loops: Promise<void>[];

  constructor(url: string, token: string) {
    this.loops = Array.from({ length: Clients }, async (_, c) => {
      for (let i = 0; !this.stopped; i++) {
        // A key per client and slot, written again each lap with a higher value: the loss check lists a bounded space.
        const key = `c${c}-${i % KeysPerClient}`;
        const sentAt = Date.now();
        try {
          const res = await httpRequest(url, 'PUT', `/api/space/${WriteSpace}/object/${key}`, { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, JSON.stringify({ c, i }));
          if (res.status === 200 || res.status === 201) {
            this.acks.push({ key, value: i, sentAt, ackedAt: Date.now(), server: res.headers.get('x-haproxy-server') ?? '?' });
            await delay(PaceMs);
          } else {
            this.errors++;
            await delay(20);
          }
        } catch {
          this.errors++;
          await delay(20);
        }
      }
    });
  }

  /** The first acknowledgement by `server` of a write sent at or after `since` (ms since the epoch). */
  firstBy(server: string, since: number): Ack | undefined {
    // Acknowledgements are kept in the order they came: find the first one at or after `since`, then walk on.
    let lo = 0;
    let hi = this.acks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.acks[mid]!.ackedAt < since) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.acks.length; i++) if (this.acks[i]!.server === server && this.acks[i]!.sentAt >= since) return this.acks[i];
    return undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

interface Cluster {
  root: string;
  vault: string;
  nodes: Map<string, DaemonProcess>;
  token: string;
}

/** Start node `name` on the shared vault with the product's failover defaults. */
async function startNode(cluster: Cluster, name: string, role: 'primary' | 'secondary'): Promise<DaemonProcess> {
  const dir = path.join(cluster.root, name);
  await fs.mkdir(dir, { recursive: true });
  const port = cluster.nodes.get(name)?.url === undefined ? 0 : Number(new URL(cluster.nodes.get(name)!.url).port);
  const daemon = await DaemonProcess.start({
    dir,
    config: {
      node: { name, role },
      api: { port },
      paths: { data: 'data', fileVault: cluster.vault },
      auth: { tokensFile: path.join(cluster.root, 'tokens.json') },
      // The product's timings, not the test helper's shorter lease.
      failover: { heartbeatMs: DefaultHeartbeatMs, heartbeatTimeoutMs: DefaultHeartbeatTimeoutMs, leaseTtlMs: DefaultLeaseTtlMs, renewMs: DefaultRenewMs, safetyMarginMs: DefaultSafetyMarginMs },
      // The product's automatic checkpoints, except the clean-shutdown one (the benchmark's own teardown).
      checkpoint: { journalThreshold: '256MiB', retention: { keepLast: 2 }, events: { 'space-created': true, 'space-upgraded': true, 'template-loaded': true, 'restore-done': true, promotion: true, 'clean-shutdown': false, 'crash-recovery': true } },
    },
    env: { NODE_OPTIONS: `--max-old-space-size=${DaemonHeapMiB}` },
    tokenFile: path.join(cluster.root, 'a', 'data', 'admin.token'),
    startTimeoutMs: StartTimeoutMs,
  });
  cluster.nodes.set(name, daemon);
  return daemon;
}

/** Remove everything in a node's data folder but the admin token. */
async function emptyDataFolder(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) if (name !== 'admin.token') await fs.rm(path.join(dir, name), { recursive: true, force: true });
}

const other = (name: string): string => (name === 'a' ? 'b' : 'a');
const at = (d: DaemonProcess, message: string, after = 0): LogLine | undefined => d.lines.find((l) => l.message === message && Date.parse(String(l.timestamp)) >= after);
const time = (l: LogLine): number => Date.parse(String(l.timestamp));

async function adminStatus(d: DaemonProcess): Promise<{ failover: { role: string; standbys: { node: string; lag: number }[] }; checkpoints: { automatic: { state: string; pending: string[] } | null } }> {
  const res = await d.request('GET', '/api/admin/status');
  if (res.status !== 200) throw new Error(`status ${res.status}: ${res.text}`);
  return (res.body as { data: never }).data;
}

/** Until `primary` serves, sees `standby` caught up, and has no automatic checkpoint running (the promotion one). */
async function settled(primary: DaemonProcess, standbyName: string, standby: DaemonProcess): Promise<void> {
  await waitFor(
    async () => {
      const s = await adminStatus(primary);
      const auto = s.checkpoints.automatic;
      return s.failover.role === 'primary' && s.failover.standbys.some((b) => b.node === standbyName && b.lag === 0) && auto !== null && auto.state === 'idle' && auto.pending.length === 0 && (await standby.request('GET', '/standby', { token: null })).status === 200;
    },
    { what: 'the pair to settle (standby caught up, promotion checkpoint done)', timeoutMs: StartTimeoutMs, intervalMs: 250 },
  );
}

/** Every write acknowledged before `before` (ms since the epoch) is on `node` with its value: how many are not. */
async function lost(clients: Writers, node: DaemonProcess, before: number): Promise<{ checked: number; missing: number }> {
  const res = await node.query(`/api/space/${WriteSpace}/object`);
  const present = new Map((res.body as { data: { key: string; data: { i: number } }[] }).data.map((o) => [o.key, o.data.i]));
  const wanted = clients.acks.filter((a) => a.ackedAt < before);
  // A key acknowledged twice holds the later value.
  const latest = new Map<string, number>();
  for (const a of wanted) latest.set(a.key, Math.max(latest.get(a.key) ?? -1, a.value));
  return { checked: latest.size, missing: [...latest].filter(([k, v]) => (present.get(k) ?? -1) < v).length };
}

interface RunResult {
  detection?: number;
  promotion?: number;
  load?: number;
  answer?: number;
  total: number;
  missing: number;
}

/** After the kill at `kill`: when `name` (daemon `s`) decided, served, and first acknowledged a write through HAProxy; and the loss check. */
async function takeover(clients: Writers, name: string, s: DaemonProcess, kill: number, timeoutMs: number): Promise<{ result: RunResult; check: { checked: number; missing: number } }> {
  const first = await waitFor(() => clients.firstBy(name, kill), { what: 'the first write acknowledged by the new primary', timeoutMs, intervalMs: 10 });
  const decided = await waitFor(() => at(s, 'the primary is gone; promoting', kill), { what: 'the promotion log line' });
  const promoted = await waitFor(() => at(s, 'promoted to primary', kill), { what: 'the promoted log line' });
  const check = await lost(clients, s, kill);
  return { result: { detection: time(decided) - kill, promotion: time(promoted) - time(decided), total: first.ackedAt - kill, missing: check.missing }, check };
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summary(name: string, results: RunResult[], target: number): void {
  if (results.length === 0) return;
  const col = (pick: (r: RunResult) => number | undefined): string => {
    const v = results.map(pick).filter((x): x is number => x !== undefined);
    return v.length === 0 ? '–' : `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;
  };
  const total = median(results.map((r) => r.total));
  console.log(
    `| ${name} | ${results.length} | ${col((r) => r.load)} | ${col((r) => r.detection)} | ${col((r) => r.promotion)} | ${col((r) => r.answer)} | **${fmt(total)}** (${fmt(Math.min(...results.map((r) => r.total)))}–${fmt(Math.max(...results.map((r) => r.total)))}) | ${fmt(total / target, 2)}× | ${results.reduce((s, r) => s + r.missing, 0)} |`,
  );
}

/**
 * Build the collection in process and checkpoint it, as the primary's history
 * would have: an automatic checkpoint (retention may prune it, and the
 * journal before the ones after it, as in a running installation).
 */
async function buildVault(vault: VaultPaths, started: number): Promise<void> {
  await vault.ensure();
  const logger = silentLogger();
  const installation = await installationId(vault.root);
  const store = await Store.open({ journalDir: vault.journal, sync: 'interval', groupCommitMs: 0, syncIntervalMs: 1000, logger, engine: benchEngine(path.dirname(vault.root)) });
  try {
    const objects = await loadDataset(store, { targetBytes: TargetBytes, spaces: Spaces, started });
    await store.commit({ type: 'space.create', id: WriteSpace, template: { name: 'plm', version: '1.0' } });
    const catalogue = new Catalogue(vault.checkpoint, logger);
    await catalogue.init();
    const entry = await new Checkpointer({ catalogue, store, logger, node: 'bench', compression: { method: 'store' }, installation, scratchDir: vault.root }).create({ scope: 'collection', description: 'failover bench', trigger: 'journal-threshold' });
    await store.pruneJournal(entry.manifest.seq);
    console.log(`vault: ${fmt(objects)} objects, checkpoint ${fmt(entry.size / MiB)} MiB (${elapsed(started)})`);
  } finally {
    await store.close();
  }
}

/** Print the failover benchmark. */
export async function failoverBench(): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-bench-failover-'));
  const started = performance.now();
  const vault = new VaultPaths(path.join(root, 'FileVault'));
  const cluster: Cluster = { root, vault: vault.root, nodes: new Map(), token: '' };
  let proxy: Haproxy | null = null;
  let clients: Writers | null = null;
  const rand = prng(42);
  try {
    console.log(`failover benchmark: scale ${Scale} (about ${fmt(TargetBytes / MiB)} MiB), ${Runs} runs of each kind, folder ${root} (${os.cpus().length} cores, node ${process.version})`);
    await buildVault(vault, started);
    let t = performance.now();
    const a = await startNode(cluster, 'a', 'primary');
    console.log(`primary started from the checkpoint in ${elapsed(t)} (${JSON.stringify(at(a, 'start-up checkpoint loaded')?.ms ?? null)} ms loading it)`);
    t = performance.now();
    const b = await startNode(cluster, 'b', 'secondary');
    console.log(`secondary started in ${elapsed(t)}`);
    cluster.token = a.token;
    await settled(a, 'b', b);
    proxy = await Haproxy.start({ backends: [{ name: 'a', url: a.url }, { name: 'b', url: b.url }], checkIntervalMs: CheckMs, dir: root });
    clients = new Writers(proxy.url, cluster.token);
    await waitFor(() => clients!.acks.length >= 100, { what: 'writes through haproxy', timeoutMs: 30_000 });
    let primary = 'a';

    const crashWarm: RunResult[] = [];
    for (let run = 1; run <= (Kinds.has('warm') ? Runs : 0); run++) {
      const p = cluster.nodes.get(primary)!;
      const s = cluster.nodes.get(other(primary))!;
      // A random moment of the primary's renewal cycle (renewMs 1000).
      await delay(1000 + Math.floor(rand() * 1000));
      const kill = Date.now();
      await p.kill('SIGKILL');
      const { result, check } = await takeover(clients, other(primary), s, kill, 60_000);
      crashWarm.push(result);
      console.log(`  crash ${run}/${Runs} (warm): detection ${result.detection} ms, promotion ${result.promotion} ms, first ack through haproxy ${result.total} ms; ${check.checked} acknowledged writes checked, ${check.missing} missing`);
      await settled(s, primary, await startNode(cluster, primary, primary === 'a' ? 'primary' : 'secondary'));
      primary = other(primary);
    }

    const switchover: RunResult[] = [];
    for (let run = 1; run <= (Kinds.has('switchover') ? Runs : 0); run++) {
      const p = cluster.nodes.get(primary)!;
      const s = cluster.nodes.get(other(primary))!;
      await delay(1000 + Math.floor(rand() * 1000));
      const asked = Date.now();
      const res = await p.request('POST', '/api/admin/failover/switchover', { body: { candidate: other(primary) } });
      const answered = Date.now();
      if (res.status !== 200) throw new Error(`switchover answered ${res.status}: ${res.text}`);
      const first = await waitFor(() => clients!.firstBy(other(primary), asked), { what: 'the first write acknowledged by the new primary', timeoutMs: 60_000, intervalMs: 10 });
      const check = await lost(clients, s, asked);
      const result = { answer: answered - asked, total: first.ackedAt - asked, missing: check.missing };
      switchover.push(result);
      console.log(`  switchover ${run}/${Runs}: answered in ${result.answer} ms, first ack by the new primary through haproxy ${result.total} ms; ${check.checked} checked, ${check.missing} missing`);
      await settled(s, primary, p);
      primary = other(primary);
    }

    const crashCold: RunResult[] = [];
    const crashEmpty: RunResult[] = [];
    for (const [kind, results] of [['cold', crashCold], ['empty', crashEmpty]] as const) {
      for (let run = 1; run <= (Kinds.has(kind) ? Runs : 0); run++) {
        const p = cluster.nodes.get(primary)!;
        const name = other(primary);
        // No standby process: it is stopped before the primary dies.
        await cluster.nodes.get(name)!.kill('SIGTERM');
        // An empty standby (a spare host) has an empty data folder, but for the admin token this bench reads: no storage
        // engine, no cache of checkpoint hashes. It starts from the newest checkpoint.
        if (kind === 'empty') await emptyDataFolder(path.join(cluster.root, name, 'data'));
        await delay(1000 + Math.floor(rand() * 1000));
        const kill = Date.now();
        await p.kill('SIGKILL');
        const s = await startNode(cluster, name, name === 'a' ? 'primary' : 'secondary');
        const { result, check } = await takeover(clients, name, s, kill, StartTimeoutMs);
        const loaded = at(s, 'start-up checkpoint loaded');
        if (loaded !== undefined) result.load = Number(loaded.ms);
        results.push(result);
        console.log(`  crash ${run}/${Runs} (${kind}): checkpoint load ${result.load === undefined ? 'none (engine intact)' : `${result.load} ms`}, decided ${result.detection} ms after the kill, promotion ${result.promotion} ms, first ack through haproxy ${result.total} ms; ${check.checked} checked, ${check.missing} missing`);
        await settled(s, primary, await startNode(cluster, primary, primary === 'a' ? 'primary' : 'secondary'));
        primary = name;
      }
    }

    await clients.stop();
    console.log(`\nclients: ${fmt(clients.acks.length)} writes acknowledged, ${fmt(clients.errors)} errors (refused or cut while no node was primary) in ${elapsed(started)}`);
    console.log('\nms, median (min–max); the target is a median: crash under 6,000 ms, switchover under 1,000 ms.\n');
    console.log('| kind | runs | checkpoint load | detection | promotion | switchover answer | kill/ask → first ack through haproxy | × target | lost writes |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    summary('crash, warm standby', crashWarm, 6000);
    summary('switchover', switchover, 1000);
    summary('crash, cold standby', crashCold, 6000);
    summary('crash, empty standby', crashEmpty, 6000);
  } finally {
    await clients?.stop();
    await proxy?.stop();
    for (const d of cluster.nodes.values()) await d.kill('SIGKILL');
    await fs.rm(root, { recursive: true, force: true });
  }
}
