/**
 * The failover soak, checked in the manner of Jepsen: three real daemons on a
 * shared FileVault (fast failover timings), several clients writing unique
 * keys to whichever node they pick (mostly the one that last answered 200 on
 * `/primary`, sometimes another, which must refuse with 503), a history of
 * every operation, and a sampler asking every node `/primary` every 50 ms.
 *
 * Each trial faults the current primary: SIGKILL (then it is started again as
 * a secondary and becomes a candidate for the next round), or SIGSTOP (a
 * paused primary that wakes after a secondary took over must be fenced: it
 * answers 503 and acknowledges nothing, and rejoins as a secondary).
 *
 * The checker then reads every key from the final primary and reports:
 * - an acknowledged write missing (or with another value): lost;
 * - an acknowledgement from a node whose epoch had been superseded (a newer
 *   epoch claimed) before the request was sent: acknowledged by a fenced node;
 *   one that arrived after the claim for a request sent before it is counted
 *   apart and must be in the final state;
 * - two acknowledgements with the same seq: two writers of one journal;
 * - a sampling round in which two nodes answered 200 on `/primary`;
 * - an answer other than 200/201/503 to a write;
 * - fewer failovers than trials.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import { fastFailover, node, seedSpace } from '../helpers/cluster.js';
import { tempDir, type DaemonProcess, type LogLine } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';
import type { Suite, SuiteReport } from './suite.js';

/** Writers running at once. */
const Writers = 6;
/** How often the sampler asks every node `/primary`. */
const SampleEveryMs = 50;
/** A sample that takes longer than this counts as no answer (a paused node never answers). */
const SampleTimeoutMs = 1000;
/** Writes a new primary acknowledges before the next fault. */
const AcksBetweenFaults = 30;
/** A client waits this long for an answer, then sends its next write (the first one's answer is still recorded when it comes). */
const SlowWriteMs = 1000;
/** Share of writes sent to a node that is not the believed primary (each must be refused). */
const StrayShare = 0.1;

type Fault = 'SIGKILL' | 'SIGSTOP';

/** A daemon process, one of possibly several for the same node name over the run. */
interface Instance {
  name: string;
  daemon: DaemonProcess;
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

/**
 * GET `/primary` on a fresh connection. Resolves with 0 after {@link SampleTimeoutMs}
 * (a paused node) but keeps the request open: `late` hears the answer a node
 * gives when it wakes, which is the one that matters.
 */
// Kept-alive connections, as a load balancer's persistent health checks: a waking node reads them at once.
const sampleAgent = new http.Agent({ keepAlive: true });

function askPrimary(url: string, late: (status: number) => void = () => undefined): Promise<number> {
  const target = new URL('/primary', url);
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      resolve(0);
    }, SampleTimeoutMs);
    const answer = (status: number): void => {
      clearTimeout(timer);
      if (timedOut) late(status);
      else resolve(status);
    };
    const req = http.get({ host: target.hostname, port: target.port, path: target.pathname, agent: sampleAgent }, (res) => {
      res.resume();
      res.on('end', () => answer(res.statusCode ?? 0));
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

/** Run `trials` failovers under writes and check the history. */
async function run({ trials, log }: { trials: number; log: (line: string) => void }): Promise<SuiteReport> {
  const violations: string[] = [];
  const root = await tempDir('cpd-soak-failover-');
  const instances: Instance[] = [];
  const current = new Map<string, Instance>();
  const start = async (name: string, role: 'primary' | 'secondary'): Promise<Instance> => {
    const instance: Instance = { name, daemon: await node(root, name, role), stopped: false };
    instances.push(instance);
    current.set(name, instance);
    return instance;
  };
  const history: Operation[] = [];
  const rounds: Round[] = [];
  /** 200 answers to samples that had timed out: given by a node waking from a pause. */
  const lateAnswers: { name: string; at: number }[] = [];
  let lateAnswerCount = 0;
  /** When each paused primary was woken, and which node was primary by then. */
  const wakes: { name: string; at: number; successor: string }[] = [];
  const failoverMs: number[] = [];
  const faults = { SIGKILL: 0, SIGSTOP: 0 };
  let believedPrimary = 'a';
  let stop = false;
  let failovers = 0;
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
            status: await askPrimary(i.daemon.url, (status) => {
              lateAnswerCount++;
              if (status === 200) lateAnswers.push({ name: i.name, at: Date.now() });
            }),
          })),
        );
        const primaries = answers.filter((a) => a.status === 200).map((a) => a.name);
        rounds.push({ startedAt, endedAt: Date.now(), primaries });
        if (primaries.length === 1) believedPrimary = primaries[0]!;
        const wait = SampleEveryMs - (Date.now() - startedAt);
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    })();

    const inflight: Promise<void>[] = [];
    const writers = Array.from({ length: Writers }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const candidates = live();
        const believed = candidates.find((c) => c.name === believedPrimary && !c.stopped);
        const others = candidates.filter((c) => c !== believed);
        const target = believed === undefined || (Math.random() < StrayShare && others.length > 0) ? others[Math.floor(Math.random() * others.length)] : believed;
        if (target === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 20));
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
        // A paused node holds its requests until it wakes: the client moves on, and the late answer is still recorded.
        const answered = await Promise.race([settled.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), SlowWriteMs).unref())]);
        if (!answered || op.status === 503) await new Promise((resolve) => setTimeout(resolve, 10));
      }
    });

    const acksBy = (instance: Instance): number => history.filter((o) => o.instance === instance && o.seq !== null).length;
    const primaryNow = async (exclude: Instance): Promise<Instance | null> => {
      for (const i of live()) if (i !== exclude && !i.stopped && (await askPrimary(i.daemon.url)) === 200) return i;
      return null;
    };
    let primary = current.get('a')!;
    await waitFor(() => acksBy(primary) >= AcksBetweenFaults, { what: 'the first writes', timeoutMs: 20_000 });

    for (let t = 0; t < trials; t++) {
      const fault: Fault = t % 3 === 1 ? 'SIGSTOP' : 'SIGKILL';
      faults[fault]++;
      const victim = primary;
      const faultAt = performance.now();
      if (fault === 'SIGKILL') await victim.daemon.kill('SIGKILL');
      else {
        victim.stopped = true;
        victim.daemon.child.kill('SIGSTOP');
      }
      const next = await waitFor(() => primaryNow(victim), { what: `a new primary after ${fault} of ${victim.name} (trial ${t + 1})`, timeoutMs: 20_000 });
      failoverMs.push(performance.now() - faultAt);
      failovers++;
      primary = next;
      await waitFor(() => acksBy(next) >= AcksBetweenFaults, { what: `writes acknowledged by the new primary ${next.name}`, timeoutMs: 20_000 });
      if (fault === 'SIGKILL') {
        await start(victim.name, 'secondary');
      } else {
        wakes.push({ name: victim.name, at: Date.now(), successor: next.name });
        victim.daemon.child.kill('SIGCONT');
        victim.stopped = false;
        const woke = await askPrimary(victim.daemon.url);
        if (woke === 200) violations.push(`trial ${t + 1}: ${victim.name}, paused while primary, answered 200 on /primary on waking after ${next.name} took over`);
        await waitFor(() => victim.daemon.lines.some((l) => l.message === 'rejoined as a secondary after losing the lease'), { what: `${victim.name} to rejoin as a secondary after SIGCONT`, timeoutMs: 20_000 });
      }
      const rejoined = current.get(victim.name)!;
      await waitFor(async () => (await rejoined.daemon.request('GET', '/standby', { token: null })).status === 200, { what: `${victim.name} to be a caught-up standby`, timeoutMs: 20_000 });
      log(`trial ${t + 1}/${trials}: ${fault} of ${victim.name}, ${next.name} primary after ${Math.round(failoverMs.at(-1)!)} ms; ${history.filter((o) => o.seq !== null).length} writes acknowledged so far`);
    }
    stop = true;
    await Promise.all(writers);
    await Promise.all(inflight);
    await sampler;

    // The final state, from the final primary.
    const listed = await primary.daemon.request('GET', '/api/space/s/object');
    if (listed.status !== 200) throw new Error(`listing the final state failed: ${listed.status} ${listed.text}`);
    const present = new Map((listed.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, JSON.stringify(o.data)]));

    const acked = history.filter((o) => o.seq !== null);
    const lost = acked.filter((o) => present.get(o.key) !== JSON.stringify(o.value));
    for (const o of lost.slice(0, 20)) violations.push(`acknowledged write ${o.key} (seq ${o.seq}, by ${o.node}) is missing from the final state`);

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
    // A paused primary answering 200 when it wakes, while its successor serves: two primaries at one moment.
    for (const a of lateAnswers) {
      const wake = wakes.find((w) => w.name === a.name && w.at <= a.at);
      if (wake !== undefined) violations.push(`${a.name}, woken from a pause at ${new Date(wake.at).toISOString()}, answered 200 on /primary at ${new Date(a.at).toISOString()} while ${wake.successor} was primary`);
    }
    if (failovers !== trials) violations.push(`${failovers} failovers for ${trials} trials`);

    const refused = history.filter((o) => o.status === 503);
    const figures = {
      trials,
      failovers,
      sigkills: faults.SIGKILL,
      sigstops: faults.SIGSTOP,
      writesSent: history.length,
      writesAcknowledged: acked.length,
      writesRefused: refused.length,
      writesUnknown: history.filter((o) => o.status === 0).length,
      refusedButPresent: refused.filter((o) => present.get(o.key) === JSON.stringify(o.value)).length,
      acknowledgedLost: lost.length,
      acknowledgedByFencedNode: fencedAcks,
      acknowledgedAfterNewerClaim: ackedAfterNewerClaim,
      sampleRounds: rounds.length,
      splitRounds: split.length,
      lateAnswers: lateAnswerCount,
      lateAnswers200: lateAnswers.length,
      maxRoundMs: Math.max(0, ...rounds.map((r) => r.endedAt - r.startedAt)),
      failoverMedianMs: Math.round(median(failoverMs)),
      failoverMaxMs: Math.round(Math.max(0, ...failoverMs)),
    };
    const summary =
      `${failovers} failovers in ${trials} trials (${faults.SIGKILL} SIGKILL, ${faults.SIGSTOP} SIGSTOP), 3 nodes, leaseTtlMs ${fastFailover.leaseTtlMs}; ` +
      `${acked.length} writes acknowledged, ${refused.length} refused (503), ${figures.writesUnknown} unknown; ` +
      `lost ${lost.length}, acknowledged by a fenced node ${fencedAcks}; ${rounds.length} /primary rounds, ${split.length} with two primaries; ` +
      `failover median ${figures.failoverMedianMs} ms, max ${figures.failoverMaxMs} ms`;
    return { summary, violations, figures };
  } finally {
    stop = true;
    for (const i of instances) {
      if (i.stopped) i.daemon.child.kill('SIGCONT');
      await i.daemon.kill('SIGKILL');
    }
    await fs.rm(root, { recursive: true, force: true });
  }
}

/** `npm run soak -- failover`: 30 crash and pause failovers under concurrent writes. */
export const failover: Suite = { soakTrials: 30, run };
