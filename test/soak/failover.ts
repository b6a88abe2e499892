/**
 * The failover soak, checked in the manner of Jepsen: three real daemons on a
 * shared FileVault (fast failover timings), several clients writing unique
 * keys to whichever node they pick (mostly the one that last answered 200 on
 * `/primary`, sometimes another, which must refuse with 503), a history of
 * every operation, and a sampler asking every node `/primary` every 50 ms.
 *
 * Every daemon runs with the LD_PRELOAD fault shim (test/helpers/vault-faults.c,
 * built by the test) on its FileVault paths, each node with its own control
 * folder, so a trial can fault one node's storage and no other's. Each trial
 * ends in a failover; its fault is drawn from a seeded deck (every kind once
 * per six trials, in a seeded order; SOAK_SEED replays the choices):
 * - SIGKILL of the primary; it is started again as a secondary.
 * - SIGSTOP of the primary (a host suspended past leaseTtlMs); after SIGCONT
 *   it must answer 503, acknowledge nothing, and rejoin as a secondary.
 * - stall: every write, fsync and truncate of the primary under the FileVault
 *   blocks (a hard-mounted NFS stall) until a secondary has promoted and
 *   taken writes; then they land late, at their offsets. The old primary must
 *   acknowledge nothing more and rejoin; what its late writes put in the
 *   superseded epoch's journal is void and must never be served.
 * - restart: SIGKILL of the primary, started again at once as configured
 *   primary: it must wait its old lease out, then follow or claim. Every
 *   other one with automatic promotion paused first, as for maintenance, so
 *   that the restarted node itself must claim once the lease has run out.
 * - read-errors: a secondary's reads under the FileVault fail (EIO) for a
 *   while; the primary is SIGKILLed while they do. The faulted standby must
 *   never skip a record: it promotes with everything or not at all. Every
 *   other such trial faults both standbys, so the successor is a faulted one.
 * - slow-listing: a secondary's directory listings under the FileVault take
 *   300–800 ms for a while; the primary is SIGKILLed meanwhile (both
 *   standbys every other trial, as for read errors).
 *
 * The checker, after every live node (and a fourth started at the end from
 * the FileVault alone) has caught up with the final primary:
 * - an acknowledged write missing (or with another value) on the final primary: lost;
 * - an acknowledgement from a node whose epoch had been superseded (a newer
 *   epoch claimed) before the request was sent: acknowledged by a fenced node;
 *   one that arrived after the claim for a request sent before it is counted
 *   apart and must be in the final state;
 * - two acknowledgements with the same seq: two writers of one journal;
 * - a sampling round in which two nodes answered 200 on `/primary`;
 * - every node's whole state (every key, every value): a key on which the
 *   nodes differ (present on one and not another, or another value) is a void
 *   record served; a key or value no client ever sent is an invention;
 * - a restarted configured primary that claimed an epoch less than leaseTtlMs
 *   after it was started;
 * - an answer other than 200/201/503 to a write;
 * - fewer failovers than trials.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fastFailover, node, seedSpace } from '../helpers/cluster.js';
import { tempDir, WaitingOutLease, type DaemonProcess, type LogLine } from '../helpers/daemon-process.js';
import { VaultFaults } from '../helpers/vault-faults.js';
import { waitFor } from '../helpers/wait-for.js';
import type { Suite, SuiteOptions, SuiteReport } from './suite.js';
import { Rng, runSeed } from './workload.js';

/** Writers running at once. */
const Writers = 6;
/** How often the sampler asks every node `/primary`. */
const SampleEveryMs = 50;
/** A sample that takes longer than this counts as no answer (a paused node never answers). */
const SampleTimeoutMs = 1000;
/** Writes a new primary acknowledges before the fault ends and the next one starts. */
const AcksBetweenFaults = 30;
/** A client waits this long for an answer, then sends its next write (the first one's answer is still recorded when it comes). */
const SlowWriteMs = 1000;
/** Share of writes sent to a node that is not the believed primary (each must be refused). */
const StrayShare = 0.1;
/** How long a step of a trial may take (a new primary, a node catching up) before the run stops as stuck. */
const StepTimeoutMs = 30_000;
/** A pause or stall is held this much longer (at most, drawn per trial) after the successor took writes. */
const MaxExtraHoldMs = 1000;
/** A secondary's reads fail for a drawn time in this range (ms); the primary is killed inside it. */
const ReadErrorsMs = [1000, 2500] as const;
/** A secondary's listings are slow for a drawn time in this range (ms), each by a drawn delay in SlowListingMs. */
const SlowListingForMs = [2000, 4000] as const;
const SlowListingMs = [300, 800] as const;
/** Reads the read-errors fault makes fail at most (it is cleared long before they run out). */
const ReadFailureBudget = 1_000_000;

/** The faults, one per trial. */
export const FaultKinds = ['SIGKILL', 'SIGSTOP', 'stall', 'restart', 'read-errors', 'slow-listing'] as const;
export type FaultKind = (typeof FaultKinds)[number];
/** The kinds that need the fault shim (a C compiler and Linux). */
const ShimKinds: readonly FaultKind[] = ['stall', 'read-errors', 'slow-listing'];

/** Options beyond the common ones. */
export interface FailoverOptions extends SuiteOptions {
  /** The seed; SOAK_SEED or a random one when absent. */
  seed?: number;
}

/** A daemon process, one of possibly several for the same node name over the run. */
interface Instance {
  name: string;
  daemon: DaemonProcess;
  /** Wall-clock time just before it was spawned. */
  spawnedAt: number;
  /** Paused with SIGSTOP now. */
  stopped: boolean;
}

/** One write in the history. */
interface Operation {
  key: string;
  value: { writer: string; i: number };
  node: string;
  instance: Instance;
  invokedAt: number;
  completedAt: number;
  /** HTTP status, or 0 when the connection failed (outcome unknown). */
  status: number;
  seq: number | null;
}

/** One sampling round: every live node asked `/primary` at once. */
interface Round {
  startedAt: number;
  endedAt: number;
  /** Nodes that answered 200. */
  primaries: string[];
}

// Kept-alive connections, as a load balancer's persistent health checks: a waking node reads them at once.
const sampleAgent = new http.Agent({ keepAlive: true });

/**
 * GET `/primary` on a fresh connection. Resolves with 0 after {@link SampleTimeoutMs}
 * (a paused node) but keeps the request open: `late` hears the answer a node
 * gives when it wakes, with the instant the answer holds for (the body's `at`,
 * taken with the clock readings the lease was judged by; null when the body
 * has none). A 200 the node wrote just before it was paused arrives when it
 * wakes, with an `at` from before the pause: true when it was decided.
 */
function askPrimary(url: string, late: (status: number, decidedAt: number | null) => void = () => undefined): Promise<number> {
  const target = new URL('/primary', url);
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      resolve(0);
    }, SampleTimeoutMs);
    const answer = (status: number, body = ''): void => {
      clearTimeout(timer);
      if (!timedOut) return resolve(status);
      let decidedAt: number | null = null;
      try {
        const at = Date.parse(String((JSON.parse(body) as { at?: unknown }).at));
        if (Number.isFinite(at)) decidedAt = at;
      } catch {
        // no JSON body: judged by its arrival
      }
      late(status, decidedAt);
    };
    const req = http.get({ host: target.hostname, port: target.port, path: target.pathname, agent: sampleAgent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => answer(res.statusCode ?? 0, Buffer.concat(chunks).toString()));
      res.on('error', () => answer(0));
    });
    req.on('error', () => answer(0));
  });
}

const timeOf = (line: LogLine): number => Date.parse(String(line.timestamp));
const median = (xs: number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** An integer drawn from [lo, hi]. */
const between = (rng: Rng, [lo, hi]: readonly [number, number]): number => lo + rng.int(hi - lo + 1);

/** The fault of each trial: the kinds dealt from a deck shuffled by `seed`, every kind once per round of the deck. */
export function faultSchedule(seed: number, trials: number, kinds: readonly FaultKind[] = FaultKinds): FaultKind[] {
  const rng = new Rng(seed);
  const out: FaultKind[] = [];
  while (out.length < trials) {
    const deck = [...kinds];
    for (let i = deck.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [deck[i], deck[j]] = [deck[j]!, deck[i]!];
    }
    out.push(...deck);
  }
  return out.slice(0, trials);
}

/** The object listing of space `s` on `d`, key to JSON value; null when it cannot be read. */
async function stateOf(d: DaemonProcess): Promise<Map<string, string> | null> {
  const listed = await d.query('/api/space/s/object').catch(() => null);
  if (listed === null || listed.status !== 200) return null;
  return new Map((listed.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, JSON.stringify(o.data)]));
}

/** The size of every journal file in the FileVault, by name. */
async function journalSizes(vault: string): Promise<Map<string, number>> {
  const dir = path.join(vault, 'journal');
  const sizes = new Map<string, number>();
  for (const name of await fs.readdir(dir)) {
    if (!name.endsWith('.log')) continue;
    const stat = await fs.stat(path.join(dir, name)).catch(() => null);
    if (stat !== null) sizes.set(name, stat.size);
  }
  return sizes;
}

/** What the soak reads of `GET /api/admin/status`. */
interface NodeStatus {
  seq: number;
  failover: { paused: boolean };
}

/** `GET /api/admin/status`, or null when it does not answer 200. */
async function statusOf(d: DaemonProcess): Promise<NodeStatus | null> {
  const res = await d.request('GET', '/api/admin/status').catch(() => null);
  return res?.status === 200 ? (res.body as { data: NodeStatus }).data : null;
}

/** `seq` from `GET /api/admin/status`, or null. */
async function seqOf(d: DaemonProcess): Promise<number | null> {
  return (await statusOf(d))?.seq ?? null;
}

/** Run `trials` failovers under writes and check the history and every node's final state. */
export async function runFailover(options: FailoverOptions): Promise<SuiteReport> {
  const { trials, log } = options;
  const seed = runSeed(log, options.seed);
  const violations: string[] = [];
  const root = await fs.realpath(await tempDir('cpd-soak-failover-'));
  const vault = path.join(root, 'FileVault');
  const shimMissing = await VaultFaults.available();
  if (shimMissing !== null) log(`fault shim unavailable (${shimMissing}): only SIGKILL, SIGSTOP and restart faults`);
  const schedule = faultSchedule(seed, trials, shimMissing === null ? FaultKinds : FaultKinds.filter((k) => !ShimKinds.includes(k)));
  /** Each node's fault control folder, shared by all its processes over the run. */
  const shims = new Map<string, VaultFaults>();
  const instances: Instance[] = [];
  const current = new Map<string, Instance>();
  const shimOf = (name: string): VaultFaults => {
    const shim = shims.get(name);
    if (shim === undefined) throw new Error(`no fault shim for node ${name}`);
    return shim;
  };
  const start = async (name: string, role: 'primary' | 'secondary'): Promise<Instance> => {
    let shim = shims.get(name);
    if (shim === undefined && shimMissing === null) {
      shim = await VaultFaults.create([vault + '/']);
      shims.set(name, shim);
    }
    await shim?.clear(); // a new process starts with no fault
    const spawnedAt = Date.now();
    // A restarted configured primary is not waited for here: the trial watches it wait out its lease.
    const daemon = await node(root, name, role, {}, { env: shim?.env() ?? {}, waitForLease: false });
    const instance: Instance = { name, daemon, spawnedAt, stopped: false };
    instances.push(instance);
    current.set(name, instance);
    return instance;
  };
  const history: Operation[] = [];
  const rounds: Round[] = [];
  /** 200 answers to samples that had timed out (delivered by a node waking from a pause): when they arrived, and the instant they hold for. */
  const lateAnswers: { name: string; at: number; decidedAt: number | null }[] = [];
  let lateAnswerCount = 0;
  /** When each paused primary was woken, which node was primary by then, and until when (the next trial's fault) that stood. */
  const wakes: { name: string; at: number; successor: string; until: number }[] = [];
  /** From the fault (the kill, pause or stall) until another process answered 200 on `/primary`, by fault kind. */
  const failoverMs = Object.fromEntries(FaultKinds.map((k) => [k, [] as number[]])) as Record<FaultKind, number[]>;
  const byKind = Object.fromEntries(FaultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;
  const failoversByKind = Object.fromEntries(FaultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;
  const injected = { stalledCalls: 0, stalledAnswered503: 0, readsFailed: 0, followFailures: 0, lateJournalWrites: 0, lateJournalBytes: 0, faultedStandbyPromoted: 0, restartsPaused: 0, restartWaitedOut: 0, restartFollowedHolder: 0, restartClaimed: 0 };
  const writerRng = new Rng(seed ^ 0x5bd1e995);
  let believedPrimary = 'a';
  let stop = false;
  let failovers = 0;
  let keep = false;
  try {
    await start('a', 'primary');
    await start('b', 'secondary');
    await start('c', 'secondary');
    await seedSpace(current.get('a')!.daemon);

    const live = (): Instance[] => [...current.values()].filter((i) => i.daemon.exit === null);
    const sampler = (async () => {
      while (!stop) {
        const startedAt = Date.now();
        const asked = live();
        const answers = await Promise.all(
          asked.map(async (i) => ({
            name: i.name,
            status: await askPrimary(i.daemon.url, (status, decidedAt) => {
              lateAnswerCount++;
              if (status === 200) lateAnswers.push({ name: i.name, at: Date.now(), decidedAt });
            }),
          })),
        );
        const primaries = answers.filter((a) => a.status === 200).map((a) => a.name);
        rounds.push({ startedAt, endedAt: Date.now(), primaries });
        if (primaries.length === 1) believedPrimary = primaries[0]!;
        const wait = SampleEveryMs - (Date.now() - startedAt);
        if (wait > 0) await sleep(wait);
      }
    })();

    const inflight: Promise<void>[] = [];
    const writers = Array.from({ length: Writers }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const candidates = live();
        const believed = candidates.find((c) => c.name === believedPrimary && !c.stopped);
        const others = candidates.filter((c) => c !== believed);
        const target = believed === undefined || (writerRng.next() < StrayShare && others.length > 0) ? others[writerRng.int(others.length)] : believed;
        if (target === undefined) {
          await sleep(20);
          continue;
        }
        const key = `w${w}-${i}`;
        const value = { writer: `w${w}`, i };
        const op: Operation = { key, value, node: target.name, instance: target, invokedAt: Date.now(), completedAt: 0, status: 0, seq: null };
        history.push(op);
        const settled = (async () => {
          try {
            const res = await target.daemon.request('PUT', `/api/space/s/object/${key}`, { body: value });
            op.status = res.status;
            if (res.status === 200 || res.status === 201) op.seq = (res.body as { seq: number }).seq;
            else if (res.status !== 503) violations.push(`write ${key} to ${target.name} answered ${res.status}: ${res.text.slice(0, 200)}`);
          } catch {
            op.status = 0; // the node died mid-request: outcome unknown
          }
          op.completedAt = Date.now();
        })();
        inflight.push(settled);
        // A paused or stalled node holds its requests: the client moves on, and the late answer is still recorded.
        const answered = await Promise.race([settled.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), SlowWriteMs).unref())]);
        if (!answered || op.status === 503) await sleep(10);
      }
    });

    const acksBy = (instance: Instance): number => history.filter((o) => o.instance === instance && o.seq !== null).length;
    const primaryNow = async (exclude: Instance): Promise<Instance | null> => {
      for (const i of live()) if (i !== exclude && !i.stopped && (await askPrimary(i.daemon.url)) === 200) return i;
      return null;
    };
    const isStandby = async (i: Instance): Promise<boolean> => (await i.daemon.request('GET', '/standby', { token: null }).catch(() => null))?.status === 200;
    let primary = current.get('a')!;
    await waitFor(() => acksBy(primary) >= AcksBetweenFaults, { what: 'the first writes', timeoutMs: 20_000 });

    for (let t = 0; t < trials; t++) {
      for (const w of wakes) w.until = Math.min(w.until, Date.now()); // the successor of an earlier pause may be replaced from here on
      const fault = schedule[t]!;
      const rng = new Rng(seed ^ Math.imul(t + 1, 0x9e3779b9));
      byKind[fault]++;
      const victim = primary;
      const trialLines = new Map(instances.map((i) => [i, i.daemon.lines.length]));
      let detail = '';
      /** The restart of a `restart` trial, under way while the trial waits for a new primary. */
      let restarting: Promise<Instance> | null = null;
      let promotionPaused = false;
      /** The standbys a read-errors or slow-listing trial faulted. */
      let faulted: Instance[] = [];
      /** Clears a secondary's storage fault at its drawn end. */
      let clearing: Promise<void> | null = null;
      let faultAt = performance.now();
      try {
        switch (fault) {
          case 'SIGKILL':
            await victim.daemon.kill('SIGKILL');
            break;
          case 'restart': {
            // Every other restart (which first: from the seed) comes with automatic promotion paused (maintenance:
            // `checkpointd pause`, restart the primary): the restarted node must take over itself, once its old lease ran out.
            const others = live().filter((i) => i !== victim);
            if ((byKind.restart + seed) % 2 === 0) {
              promotionPaused = true;
              injected.restartsPaused++;
              const res = await others[0]!.daemon.request('POST', '/api/admin/failover/pause');
              if (res.status !== 200) throw new Error(`pausing promotion failed: ${res.status} ${res.text}`);
              for (const i of others) await waitFor(async () => (await statusOf(i.daemon))?.failover.paused === true, { what: `${i.name} to see promotion paused`, timeoutMs: StepTimeoutMs });
            }
            await victim.daemon.kill('SIGKILL');
            restarting = start(victim.name, 'primary');
            restarting.catch(() => undefined); // awaited below; this only keeps a failure from going unhandled meanwhile
            break;
          }
          case 'SIGSTOP':
            victim.stopped = true;
            victim.daemon.child.kill('SIGSTOP');
            break;
          case 'stall':
            await shimOf(victim.name).stallWrites();
            break;
          case 'read-errors':
          case 'slow-listing': {
            // One standby, or every other time (which first: from the seed) both, so that the successor is one
            // that the fault hit: it must promote with every record, none skipped.
            const secondaries = live().filter((i) => i !== victim);
            const targets = (byKind[fault] + seed) % 2 === 0 ? secondaries : [secondaries[rng.int(secondaries.length)]!];
            faulted = targets;
            const names = targets.map((i) => i.name).join(' and ');
            const forMs = between(rng, fault === 'read-errors' ? ReadErrorsMs : SlowListingForMs);
            const killAfterMs = 200 + rng.int(forMs - 200);
            if (fault === 'read-errors') {
              for (const i of targets) await shimOf(i.name).failReads(ReadFailureBudget);
              detail = `${names}: reads fail for ${forMs} ms, primary killed after ${killAfterMs} ms`;
            } else {
              const ms = between(rng, SlowListingMs);
              for (const i of targets) await shimOf(i.name).slowListing(ms);
              detail = `${names}: listings take ${ms} ms for ${forMs} ms, primary killed after ${killAfterMs} ms`;
            }
            const began = performance.now();
            clearing = (async () => {
              await sleep(forMs - (performance.now() - began));
              for (const i of targets) {
                const shim = shimOf(i.name);
                if (fault === 'read-errors') {
                  const left = Number((await fs.readFile(path.join(shim.dir, 'fail-reads'), 'utf8').catch(() => '0')).trim());
                  injected.readsFailed += ReadFailureBudget - left;
                  await shim.failReads(0);
                } else {
                  await shim.slowListing(0);
                }
              }
            })().catch((err: unknown) => {
              violations.push(`trial ${t + 1}: clearing the ${fault} fault of ${names} failed: ${(err as Error).message}`);
            });
            await sleep(killAfterMs);
            faultAt = performance.now();
            await victim.daemon.kill('SIGKILL');
            break;
          }
        }
        const next = await waitFor(() => primaryNow(victim), { what: `a new primary after ${fault} of ${victim.name} (trial ${t + 1})`, timeoutMs: StepTimeoutMs });
        failoverMs[fault].push(performance.now() - faultAt);
        const restarted = await restarting;
        failovers++;
        failoversByKind[fault]++;
        if (faulted.includes(next)) injected.faultedStandbyPromoted++;
        primary = next;
        await waitFor(() => acksBy(next) >= AcksBetweenFaults, { what: `writes acknowledged by the new primary ${next.name} (trial ${t + 1})`, timeoutMs: StepTimeoutMs });

        // The fault ends.
        switch (fault) {
          case 'SIGKILL':
          case 'read-errors':
          case 'slow-listing':
            await clearing;
            await start(victim.name, 'secondary');
            break;
          case 'SIGSTOP': {
            const extra = rng.int(MaxExtraHoldMs + 1);
            await sleep(extra);
            detail = `paused ${Math.round(performance.now() - faultAt)} ms`;
            wakes.push({ name: victim.name, at: Date.now(), successor: next.name, until: Infinity });
            victim.daemon.child.kill('SIGCONT');
            victim.stopped = false;
            const woke = await askPrimary(victim.daemon.url);
            if (woke === 200) violations.push(`trial ${t + 1}: ${victim.name}, paused while primary, answered 200 on /primary on waking after ${next.name} took over`);
            await waitFor(() => victim.daemon.lines.some((l) => l.message === 'rejoined as a secondary after losing the lease'), { what: `${victim.name} to rejoin as a secondary after SIGCONT`, timeoutMs: StepTimeoutMs });
            break;
          }
          case 'stall': {
            const shim = shimOf(victim.name);
            await sleep(rng.int(MaxExtraHoldMs + 1));
            const stalled = await shim.stalledCount();
            injected.stalledCalls += stalled;
            const heldWrites = history.filter((o) => o.instance === victim && o.completedAt === 0);
            const before = await journalSizes(vault);
            await shim.releaseWrites(); // the stalled writes land now, late, at their offsets
            const after = await askPrimary(victim.daemon.url);
            if (after === 200) violations.push(`trial ${t + 1}: ${victim.name}, whose writes stalled while primary, answered 200 on /primary once they landed, after ${next.name} took over`);
            await waitFor(() => heldWrites.every((o) => o.completedAt !== 0), { what: `the writes ${victim.name} held to be answered`, timeoutMs: StepTimeoutMs });
            injected.stalledAnswered503 += heldWrites.filter((o) => o.status === 503).length;
            // What landed late in a superseded epoch's journal file: void by rule, never to be served or replayed.
            const successorEpoch = Number(next.daemon.lines.findLast((l) => l.message === 'promoted to primary' || l.message === 'serving as primary')?.epoch ?? 0);
            let lateBytes = 0;
            for (const [file, size] of await journalSizes(vault)) {
              const epoch = Number(/-(\d+)\.log$/.exec(file)?.[1] ?? successorEpoch);
              if (epoch < successorEpoch && size > (before.get(file) ?? 0)) lateBytes += size - (before.get(file) ?? 0);
            }
            if (lateBytes > 0) injected.lateJournalWrites++;
            injected.lateJournalBytes += lateBytes;
            detail = `${stalled} write calls stalled for ${Math.round(performance.now() - faultAt)} ms, ${heldWrites.length} client writes held, ${lateBytes} bytes landed late in the superseded epoch's journal`;
            await waitFor(() => victim.daemon.lines.some((l) => l.message === 'rejoined as a secondary after losing the lease'), { what: `${victim.name} to rejoin as a secondary after its stalled writes landed`, timeoutMs: StepTimeoutMs });
            await shim.clear();
            break;
          }
          case 'restart': {
            const r = restarted!; // set for every restart trial
            if (promotionPaused) {
              const res = await next.daemon.request('POST', '/api/admin/failover/resume');
              if (res.status !== 200) throw new Error(`resuming promotion failed: ${res.status} ${res.text}`);
              for (const i of live()) await waitFor(async () => (await statusOf(i.daemon))?.failover.paused === false, { what: `${i.name} to see promotion resumed`, timeoutMs: StepTimeoutMs });
            }
            const claim = r.daemon.lines.find((l) => l.message === 'epoch claimed');
            if (r.daemon.lines.some((l) => l.message === WaitingOutLease)) injected.restartWaitedOut++;
            else if (r.daemon.lines.some((l) => String(l.message).startsWith('configured as primary, but the lease is held by another node'))) injected.restartFollowedHolder++;
            if (claim !== undefined) {
              injected.restartClaimed++;
              const after = timeOf(claim) - r.spawnedAt;
              if (after < fastFailover.leaseTtlMs) violations.push(`trial ${t + 1}: ${r.name}, restarted as configured primary, claimed epoch ${String(claim.epoch)} ${after} ms after it was started (less than leaseTtlMs ${fastFailover.leaseTtlMs})`);
            }
            detail = `${promotionPaused ? 'promotion paused, ' : ''}${claim === undefined ? `${r.name} restarted and followed` : `${r.name} restarted, waited out its lease and claimed epoch ${String(claim.epoch)} ${timeOf(claim) - r.spawnedAt} ms after its start`}`;
            break;
          }
        }
        // Every node but the primary is a caught-up standby before the next fault: each is a candidate.
        for (const i of live()) {
          if (i === primary) continue;
          await waitFor(() => isStandby(i), { what: `${i.name} to be a caught-up standby after trial ${t + 1}`, timeoutMs: StepTimeoutMs });
        }
      } catch (err) {
        keep = true;
        log(`trial ${t + 1} (${fault}, primary ${victim.name}${detail === '' ? '' : `, ${detail}`}) stuck: ${(err as Error).message}; the daemons' log lines since the trial began:`);
        for (const i of instances) {
          for (const l of i.daemon.lines.slice(trialLines.get(i) ?? 0)) if (l.level !== 'debug' && l.message !== 'request') log(`  ${i.name}#${instances.indexOf(i)} ${JSON.stringify(l)}`);
        }
        for (const i of live()) log(`  ${i.name}#${instances.indexOf(i)} status: ${JSON.stringify(((await i.daemon.request('GET', '/api/admin/status').catch(() => null))?.body as { data?: { failover?: unknown } } | undefined)?.data?.failover ?? null)}`);
        throw err;
      }
      const followFailures = instances.reduce((n, i) => n + i.daemon.lines.slice(trialLines.get(i) ?? 0).filter((l) => String(l.message).startsWith('following the journal failed')).length, 0);
      injected.followFailures += followFailures;
      log(
        `trial ${t + 1}/${trials}: ${fault}, primary ${victim.name}${detail === '' ? '' : ` (${detail})`}: ${primary.name} primary after ${Math.round(failoverMs[fault].at(-1)!)} ms; ` +
          `${history.filter((o) => o.seq !== null).length} writes acknowledged so far`,
      );
    }
    stop = true;
    await Promise.all(writers);
    await Promise.all(inflight);
    await sampler;

    // The final state: every live node caught up with the final primary, then every key of every node.
    for (const shim of shims.values()) await shim.clear();
    const finalPrimaries: Instance[] = [];
    for (const i of live()) if ((await askPrimary(i.daemon.url)) === 200) finalPrimaries.push(i);
    if (finalPrimaries.length !== 1) violations.push(`at the end ${finalPrimaries.length} nodes answer 200 on /primary (${finalPrimaries.map((i) => i.name).join(', ')})`);
    primary = finalPrimaries[0] ?? primary;
    // A node that starts now, from the FileVault alone, must come to the same state (late writes of superseded epochs are not replayed).
    await start('d', 'secondary');
    const finalSeq = await seqOf(primary.daemon);
    if (finalSeq === null) throw new Error(`the final primary ${primary.name} does not answer its status`);
    for (const i of live()) {
      if (i === primary) continue;
      try {
        await waitFor(async () => (await isStandby(i)) && (await seqOf(i.daemon)) === finalSeq, { what: `${i.name} to apply the journal up to seq ${finalSeq}`, timeoutMs: StepTimeoutMs });
      } catch (err) {
        violations.push(`${i.name} did not catch up with the final primary: ${(err as Error).message} (it shows seq ${await seqOf(i.daemon)})`);
      }
    }
    const states = new Map<string, Map<string, string>>();
    for (const i of live()) {
      const state = await stateOf(i.daemon);
      if (state === null) violations.push(`${i.name} did not list its objects at the end`);
      else states.set(i.name, state);
    }
    const present = states.get(primary.name);
    if (present === undefined) throw new Error(`listing the final state on ${primary.name} failed`);

    const acked = history.filter((o) => o.seq !== null);
    const lost = acked.filter((o) => present.get(o.key) !== JSON.stringify(o.value));
    for (const o of lost.slice(0, 20)) violations.push(`acknowledged write ${o.key} (seq ${o.seq}, by ${o.node}) is missing from the final state`);

    // Every node holds exactly the final primary's state: a key on which they differ is a void record served (or a record lost on one node).
    const allKeys = new Set([...states.values()].flatMap((s) => [...s.keys()]));
    const differing = [...allKeys].filter((k) => new Set([...states.values()].map((s) => s.get(k) ?? 'absent')).size > 1);
    for (const k of differing.slice(0, 20)) violations.push(`the nodes differ on ${k}: ${[...states].map(([n, s]) => `${n} ${s.get(k) ?? 'absent'}`).join(', ')}`);
    // Every key and value present was sent by a client (acknowledged, refused or unanswered: any of those may be there).
    const sent = new Map(history.map((o) => [o.key, JSON.stringify(o.value)]));
    const invented = [...allKeys].filter((k) => [...states.values()].some((s) => s.has(k) && s.get(k) !== sent.get(k)));
    for (const k of invented.slice(0, 20)) violations.push(`${k} holds a value no client wrote: ${[...states].map(([n, s]) => `${n} ${s.get(k) ?? 'absent'}`).join(', ')}`);

    // Epochs: when each one was claimed, and which epoch each instance served as primary, from their logs.
    const claims = instances.flatMap((i) => i.daemon.lines.filter((l) => l.message === 'epoch claimed').map((l) => ({ epoch: Number(l.epoch), at: timeOf(l) })));
    const servedEpoch = (o: Operation): number => {
      const served = o.instance.daemon.lines.filter((l) => (l.message === 'promoted to primary' || l.message === 'serving as primary') && timeOf(l) <= o.completedAt);
      return Math.max(0, ...served.map((l) => Number(l.epoch)));
    };
    let ackedAfterNewerClaim = 0;
    let fencedAcks = 0;
    for (const o of acked) {
      const epoch = servedEpoch(o);
      const newer = claims.filter((c) => c.epoch > epoch);
      if (newer.some((c) => c.at < o.invokedAt)) {
        fencedAcks++;
        violations.push(`write ${o.key} (seq ${o.seq}) sent at ${new Date(o.invokedAt).toISOString()} was acknowledged by ${o.node} in epoch ${epoch} after a newer epoch had been claimed`);
      } else if (newer.some((c) => c.at < o.completedAt)) {
        ackedAfterNewerClaim++;
        if (present.get(o.key) !== JSON.stringify(o.value)) violations.push(`write ${o.key} was acknowledged by ${o.node} (epoch ${epoch}) after a newer epoch was claimed, and is not in the final state`);
      }
    }
    const bySeq = new Map<number, Operation>();
    for (const o of acked) {
      const other = bySeq.get(o.seq!);
      if (other !== undefined) violations.push(`seq ${o.seq} acknowledged twice: ${other.key} by ${other.node} and ${o.key} by ${o.node}`);
      bySeq.set(o.seq!, o);
    }
    const split = rounds.filter((r) => r.primaries.length > 1);
    for (const r of split.slice(0, 20)) violations.push(`two nodes answered 200 on /primary in one round (${r.primaries.join(', ')}, ${new Date(r.startedAt).toISOString()} within ${r.endedAt - r.startedAt} ms)`);
    // A paused primary answering 200 for an instant after it woke, while its successor serves: two primaries at one
    // moment. A 200 it wrote just before the pause and delivered on waking holds for an instant before the pause
    // (its `at`): it was true then, and is counted, not a violation. An answer without `at` is judged by its arrival.
    let deliveredLate = 0;
    for (const a of lateAnswers) {
      const decided = a.decidedAt ?? a.at;
      const wake = wakes.find((w) => w.name === a.name && w.at <= decided && decided < w.until);
      if (wake !== undefined) {
        violations.push(
          `${a.name}, woken from a pause at ${new Date(wake.at).toISOString()}, answered 200 on /primary for ${new Date(decided).toISOString()} ` +
            `(arrived ${new Date(a.at).toISOString()}) while ${wake.successor} was primary`,
        );
      } else if (wakes.some((w) => w.name === a.name && decided < w.at && w.at <= a.at)) {
        deliveredLate++;
      }
    }
    if (failovers !== trials) violations.push(`${failovers} failovers for ${trials} trials`);

    const refused = history.filter((o) => o.status === 503);
    const allFailoverMs = Object.values(failoverMs).flat();
    log(`failover time by fault (ms): ${FaultKinds.filter((k) => failoverMs[k].length > 0).map((k) => `${k} median ${Math.round(median(failoverMs[k]))} max ${Math.round(Math.max(...failoverMs[k]))}`).join('; ')}`);
    const figures = {
      seed,
      shim: shimMissing === null ? 1 : 0,
      trials,
      failovers,
      sigkills: byKind.SIGKILL,
      sigstops: byKind.SIGSTOP,
      stalls: byKind.stall,
      restarts: byKind.restart,
      readErrors: byKind['read-errors'],
      slowListings: byKind['slow-listing'],
      ...injected,
      writesSent: history.length,
      writesAcknowledged: acked.length,
      writesRefused: refused.length,
      writesUnknown: history.filter((o) => o.status === 0).length,
      refusedButPresent: refused.filter((o) => present.get(o.key) === JSON.stringify(o.value)).length,
      acknowledgedLost: lost.length,
      acknowledgedByFencedNode: fencedAcks,
      acknowledgedAfterNewerClaim: ackedAfterNewerClaim,
      nodesCompared: states.size,
      keysCompared: allKeys.size,
      voidRecordsServed: differing.length,
      valuesNeverWritten: invented.length,
      sampleRounds: rounds.length,
      splitRounds: split.length,
      lateAnswers: lateAnswerCount,
      lateAnswers200: lateAnswers.length,
      /** 200 answers decided before a pause and delivered when the node woke (true when decided; a check timeout discards them). */
      lateAnswersDecidedBeforePause: deliveredLate,
      maxRoundMs: Math.max(0, ...rounds.map((r) => r.endedAt - r.startedAt)),
      failoverMedianMs: Math.round(median(allFailoverMs)),
      failoverMaxMs: Math.round(Math.max(0, ...allFailoverMs)),
    };
    const kinds = FaultKinds.map((k) => `${failoversByKind[k]} ${k}`).join(', ');
    const summary =
      `seed ${seed}: ${failovers} failovers in ${trials} trials (${kinds}), 3 nodes, leaseTtlMs ${fastFailover.leaseTtlMs}, every node with the fault shim; ` +
      `faults hit: ${injected.stalledCalls} write calls stalled (${injected.stalledAnswered503} held client writes answered 503; late bytes in a superseded journal in ${injected.lateJournalWrites} trials, ${injected.lateJournalBytes} bytes), ${injected.readsFailed} reads failed (EIO), ${injected.followFailures} follow failures reported, ${injected.faultedStandbyPromoted} promotions by a standby under read errors or slow listings; ` +
      `restarted primaries (${injected.restartsPaused} with promotion paused): ${injected.restartWaitedOut} waited out their lease, ${injected.restartFollowedHolder} found it taken, ${injected.restartClaimed} claimed; ` +
      `${acked.length} writes acknowledged, ${refused.length} refused (503), ${figures.writesUnknown} unknown; ` +
      `lost ${lost.length}, acknowledged by a fenced node ${fencedAcks}; ${rounds.length} /primary rounds, ${split.length} with two primaries, ` +
      `${deliveredLate} 200 answers decided before a pause and delivered on waking; ` +
      `${states.size} nodes × ${allKeys.size} keys compared: void records served ${differing.length}, values no client wrote ${invented.length}; ` +
      `failover median ${figures.failoverMedianMs} ms, max ${figures.failoverMaxMs} ms`;
    if (violations.length > 0) keep = true;
    return { summary, violations, figures };
  } finally {
    stop = true;
    for (const shim of shims.values()) await shim.clear().catch(() => undefined); // stalled writes run, so the processes can die
    for (const i of instances) {
      if (i.stopped) i.daemon.child.kill('SIGCONT');
      await i.daemon.kill('SIGKILL');
    }
    for (const shim of shims.values()) await shim.close();
    if (keep) log(`daemon folder kept for inspection: ${root}`);
    else await fs.rm(root, { recursive: true, force: true });
  }
}

/** `npm run soak -- failover`: 30 failovers under concurrent writes, five of each fault kind. */
export const failover: Suite = { soakTrials: 30, run: (options) => runFailover(options) };
