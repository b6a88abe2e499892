/**
 * Load never fences a healthy primary (issue "failover safety", finding H):
 * transactions of 1,000 puts of ~200-byte objects, 4 in flight, and one
 * client asking again and again (every second, or back to back with
 * SOAK_READER_PAUSE_MS=0) for a quarter of the collection (answers of up to
 * 150 MB, built on the main thread), and a collection checkpoint every
 * 10 s, into one primary — alone, and with a standby following it — with the product's
 * lease timings (leaseTtlMs 5 s, renewMs 1 s, safetyMarginMs 1 s) and its
 * automatic checkpoints (journal threshold 256 MiB) besides. A trial passes when:
 * - no commit or query is answered with anything but 200 (a fenced primary answers 503);
 * - the primary never logs "lease lost" and the standby never promotes;
 * - every lease renewal came within renewMs + (validity - renewMs) / 2 of the
 *   one before (2.5 s): the primary's own histogram
 *   (checkpointd_lease_renewal_interval_seconds) and, measured from outside,
 *   the changes of lease.json's counter seen by a poller every 50 ms.
 * - with a standby, no heartbeat came more than heartbeatTimeoutMs (2 s) after
 *   the one before (the standby's checkpointd_heartbeat_interval_seconds):
 *   the beats come from the primary's main thread, which answers the large
 *   queries a slice at a time.
 * The figures: objects, commits/s, the daemon's peak RSS, the longest
 * renewal interval, pauses the daemon logged. `npm run soak -- load` loads
 * 3 million objects per trial, as H did; the test in npm test a few thousand
 * transactions' worth.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DaemonProcess, tempDir } from '../helpers/daemon-process.js';
import { parsePrometheusText } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait-for.js';
import type { Suite, SuiteOptions, SuiteReport } from './suite.js';

/** The product's lease timings (config/default.json), not the tests' short ones: H happened with these. */
const ProductFailover = { heartbeatMs: 500, heartbeatTimeoutMs: 2000, leaseTtlMs: 5000, renewMs: 1000, safetyMarginMs: 1000 };
/** A renewal later than this after the one before is out of bounds: renewMs + (validity - renewMs) / 2. */
const RenewalBoundMs = ProductFailover.renewMs + (ProductFailover.leaseTtlMs - ProductFailover.safetyMarginMs - ProductFailover.renewMs) / 2;
const OpsPerTransaction = 1000;
const InFlight = 4;

/** Options beyond the common ones. */
export interface LoadOptions extends SuiteOptions {
  /** Objects to load per trial (SOAK_OBJECTS, or 3 million). */
  objects?: number;
  /** A collection checkpoint this often during the load (10 s unless given). */
  checkpointEveryMs?: number;
  /** The reader waits this long between two queries (SOAK_READER_PAUSE_MS, or 1 s; 0: back to back). */
  readerPauseMs?: number;
  /** Begin with the trial with a standby (the alternation then goes on from it). */
  standbyFirst?: boolean;
}

/** What one trial measured. */
interface TrialFigures {
  /** Queries answered (each for a quarter of the collection). */
  queries: number;
  objects: number;
  seconds: number;
  peakRssMb: number;
  non200: number;
  leaseLost: number;
  promotions: number;
  histogramOverBound: number;
  renewals: number;
  longestOutsideMs: number;
  pauses: number;
  checkpoints: number;
  /** With a standby: heartbeat intervals it timed, those over 1 s, and those over heartbeatTimeoutMs (it counted the heartbeat as silent). */
  heartbeats: number;
  heartbeatsOver1s: number;
  heartbeatsSilent: number;
}

/** An object of about 200 bytes of JSON. */
function value(writer: number, n: number): Record<string, unknown> {
  return { writer, n, name: `part-${writer}-${n}`, description: 'a load-test object of about two hundred bytes, as finding H used'.slice(0, 60), qty: n % 97, tags: ['load', `w${writer}`], updated: '2026-12-06T12:00:00.000Z' };
}

function rssMb(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Promise.resolve(0);
  return fs.readFile(`/proc/${pid}/status`, 'utf8').then(
    (text) => Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? 0) / 1024,
    () => 0,
  );
}

/**
 * Polls lease.json every 50 ms: the longest time between two changes of its
 * counter, seen from outside the daemon. On a thread of its own, so that this
 * process's own work (building transactions, parsing answers of 150 MB)
 * never shows up as a pause of the daemon's renewals.
 */
function pollLease(file: string): { stop: () => Promise<number> } {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const stop = new Int32Array(workerData.stop);
    let longest = 0, counter = null, changedAt = performance.now();
    while (Atomics.load(stop, 0) === 0) {
      let seen = null;
      try { seen = JSON.parse(fs.readFileSync(workerData.file, 'utf8')).counter; } catch {}
      const now = performance.now();
      if (seen !== null && seen !== undefined && seen !== counter) {
        if (counter !== null) longest = Math.max(longest, now - changedAt);
        counter = seen;
        changedAt = now;
      }
      Atomics.wait(stop, 0, 0, 50);
    }
    parentPort.postMessage(Math.max(longest, performance.now() - changedAt));
  `;
  const stop = new SharedArrayBuffer(4);
  const worker = new Worker(source, { eval: true, workerData: { file, stop } });
  const result = new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    stop: async () => {
      Atomics.store(new Int32Array(stop), 0, 1);
      return result;
    },
  };
}

async function start(root: string, name: string, role: 'primary' | 'secondary'): Promise<DaemonProcess> {
  await fs.mkdir(path.join(root, name), { recursive: true });
  return DaemonProcess.start({
    dir: path.join(root, name),
    tokenFile: path.join(root, 'a', 'data', 'admin.token'),
    startTimeoutMs: 120_000,
    config: {
      node: { name, role },
      paths: { data: 'data', fileVault: path.join(root, 'FileVault') },
      auth: { tokensFile: path.join(root, 'shared', 'tokens.json') },
      failover: ProductFailover,
      // The product's automatic checkpoints: a checkpoint runs under the load each time the journal passes 256 MiB.
      checkpoint: { journalThreshold: '256MiB' },
    },
  });
}

async function trial(objects: number, withStandby: boolean, checkpointEveryMs: number, readerPauseMs: number, log: (line: string) => void): Promise<TrialFigures> {
  const root = await fs.realpath(await tempDir('cpd-load-'));
  const nodes: DaemonProcess[] = [];
  try {
    const a = await start(root, 'a', 'primary');
    nodes.push(a);
    if (withStandby) nodes.push(await start(root, 'b', 'secondary'));
    await a.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['writer'] } });
    await a.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } });
    const poller = pollLease(path.join(root, 'FileVault', 'failover', 'lease.json'));
    let next = 0;
    let non200 = 0;
    let peakRssMb = 0;
    const transactions = Math.ceil(objects / OpsPerTransaction);
    const started = performance.now();
    let reported = started;
    const writer = async (w: number): Promise<void> => {
      for (let t = next++; t < transactions; t = next++) {
        const ops = [];
        for (let i = 0; i < OpsPerTransaction; i++) {
          const n = t * OpsPerTransaction + i;
          ops.push({ op: 'put', key: `o${n}`, value: value(w, n) });
        }
        const res = await a.request('POST', '/api/space/s/transaction', { body: { ops } });
        if (res.status !== 200) non200++;
        if (t % 50 === 0) peakRssMb = Math.max(peakRssMb, await rssMb(a.child.pid));
        if (performance.now() - reported > 10_000) {
          reported = performance.now();
          log(`${withStandby ? 'with a standby' : 'alone'}: ${t * OpsPerTransaction} objects, ${Math.round(peakRssMb)} MB RSS, ${non200} not 200`);
        }
      }
    };
    // Besides the writers, one reader asks for every object of one writer, again and again: answers of up to a
    // quarter of the collection, built and serialised on the main thread (many seconds of it at 3 million objects).
    let writing = true;
    let queries = 0;
    const reader = async (): Promise<void> => {
      while (writing) {
        const res = await a.query(`/api/space/s/object?writer=${queries % InFlight}`);
        if (res.status !== 200) non200++;
        queries++;
        if (readerPauseMs > 0) await new Promise((resolve) => setTimeout(resolve, readerPauseMs));
      }
    };
    const reading = reader();
    // And a collection checkpoint every checkpointEveryMs, one at a time: its reads and writes go on under the load.
    let checkpointsMade = 0;
    const checkpointing = (async (): Promise<void> => {
      while (writing) {
        await new Promise((resolve) => setTimeout(resolve, checkpointEveryMs));
        if (!writing) break;
        const res = await a.request('POST', '/api/admin/checkpoint', { body: { description: 'under load' } });
        if (res.status === 201) checkpointsMade++;
        else non200++;
      }
    })();
    await Promise.all(Array.from({ length: InFlight }, (_, w) => writer(w)));
    writing = false;
    await Promise.all([reading, checkpointing]);
    const seconds = (performance.now() - started) / 1000;
    peakRssMb = Math.max(peakRssMb, await rssMb(a.child.pid));
    // A standby must have followed to the end without taking over.
    if (withStandby) {
      const seqOf = async (d: DaemonProcess): Promise<number> => ((await d.request('GET', '/api/admin/status')).body as { data: { seq: number } }).data.seq;
      const seq = await seqOf(a);
      await waitFor(async () => (await seqOf(nodes[1]!)) >= seq, { what: 'the standby to catch up', timeoutMs: 120_000 });
    }
    const longestOutsideMs = await poller.stop();
    const metrics = parsePrometheusText((await a.request('GET', '/metrics', { token: null })).text);
    const bucket = (le: number): number => metrics.samples.find((s) => s.name === 'checkpointd_lease_renewal_interval_seconds_bucket' && Number(s.labels.le) === le)?.value ?? 0;
    const renewals = metrics.samples.find((s) => s.name === 'checkpointd_lease_renewal_interval_seconds_count')?.value ?? 0;
    // The heartbeat's pace, as the standby saw it.
    const standby = withStandby ? parsePrometheusText((await nodes[1]!.request('GET', '/metrics', { token: null })).text) : null;
    const beat = (name: string, le?: number): number =>
      standby?.samples.find((s) => s.name === `checkpointd_heartbeat_interval_seconds_${name}` && (le === undefined || Number(s.labels.le) === le))?.value ?? 0;
    const heartbeats = beat('count');
    return {
      queries,
      objects: transactions * OpsPerTransaction,
      seconds,
      peakRssMb,
      non200,
      leaseLost: a.lines.filter((l) => l.message === 'lease lost').length,
      promotions: nodes.slice(1).filter((d) => d.lines.some((l) => l.message === 'promoted to primary')).length,
      histogramOverBound: renewals - bucket(RenewalBoundMs / 1000),
      renewals,
      longestOutsideMs,
      pauses: a.lines.filter((l) => l.message === 'the process paused').length,
      checkpoints: Math.max(checkpointsMade, a.lines.filter((l) => l.message === 'checkpoint created').length),
      heartbeats,
      heartbeatsOver1s: heartbeats - beat('bucket', 1),
      heartbeatsSilent: heartbeats - beat('bucket', ProductFailover.heartbeatTimeoutMs / 1000),
    };
  } finally {
    for (const d of nodes) await d.kill('SIGKILL');
    await fs.rm(root, { recursive: true, force: true, maxRetries: 5 });
  }
}

/** Run `trials` trials, alternating a lone primary and a primary with a standby (the lone one first unless `standbyFirst`). */
export async function runLoad(options: LoadOptions): Promise<SuiteReport> {
  const objects = options.objects ?? Number(process.env.SOAK_OBJECTS ?? 3_000_000);
  const violations: string[] = [];
  const figures: Record<string, number> = { trials: 0, objects: 0, queries: 0, non200: 0, leaseLost: 0, promotions: 0, renewalsOverBound: 0, renewals: 0, longestRenewalMs: 0, peakRssMb: 0, pauses: 0, checkpoints: 0, commitsPerSecond: 0, heartbeats: 0, heartbeatsOver1s: 0, heartbeatsSilent: 0 };
  let seconds = 0;
  for (let i = 0; i < options.trials; i++) {
    const withStandby = (i + (options.standbyFirst === true ? 1 : 0)) % 2 === 1;
    const f = await trial(objects, withStandby, options.checkpointEveryMs ?? 10_000, options.readerPauseMs ?? Number(process.env.SOAK_READER_PAUSE_MS ?? 1000), options.log);
    const what = `trial ${i + 1} (${withStandby ? 'with a standby' : 'alone'})`;
    options.log(`${what}: ${f.objects} objects in ${f.seconds.toFixed(0)} s, ${f.queries} large queries, peak RSS ${Math.round(f.peakRssMb)} MB, ${f.renewals} renewals, longest seen from outside ${Math.round(f.longestOutsideMs)} ms, ${f.checkpoints} checkpoints, ${f.pauses} pauses logged` + (withStandby ? `, ${f.heartbeats} heartbeats: ${f.heartbeatsOver1s} over 1 s, ${f.heartbeatsSilent} over ${ProductFailover.heartbeatTimeoutMs} ms` : ''));
    if (f.non200 > 0) violations.push(`${what}: ${f.non200} transactions or queries not answered 200`);
    if (f.leaseLost > 0) violations.push(`${what}: the primary lost its lease under load`);
    if (f.promotions > 0) violations.push(`${what}: the standby promoted while the primary was healthy`);
    if (f.histogramOverBound > 0) violations.push(`${what}: ${f.histogramOverBound} lease renewals came more than ${RenewalBoundMs} ms after the one before (the primary's histogram)`);
    if (f.longestOutsideMs > RenewalBoundMs) violations.push(`${what}: lease.json's counter stood still for ${Math.round(f.longestOutsideMs)} ms (bound ${RenewalBoundMs} ms)`);
    if (f.heartbeatsSilent > 0) violations.push(`${what}: ${f.heartbeatsSilent} heartbeats came more than heartbeatTimeoutMs (${ProductFailover.heartbeatTimeoutMs} ms) after the one before (the standby's histogram)`);
    figures.trials! += 1;
    figures.objects! += f.objects;
    figures.queries! += f.queries;
    figures.non200! += f.non200;
    figures.leaseLost! += f.leaseLost;
    figures.promotions! += f.promotions;
    figures.renewalsOverBound! += f.histogramOverBound;
    figures.renewals! += f.renewals;
    figures.longestRenewalMs = Math.max(figures.longestRenewalMs!, f.longestOutsideMs);
    figures.peakRssMb = Math.max(figures.peakRssMb!, f.peakRssMb);
    figures.pauses! += f.pauses;
    figures.checkpoints! += f.checkpoints;
    figures.heartbeats! += f.heartbeats;
    figures.heartbeatsOver1s! += f.heartbeatsOver1s;
    figures.heartbeatsSilent! += f.heartbeatsSilent;
    seconds += f.seconds;
  }
  figures.commitsPerSecond = Math.round(figures.objects! / OpsPerTransaction / seconds);
  return {
    summary:
      `${figures.trials} trials, ${figures.objects} objects in transactions of ${OpsPerTransaction} (${InFlight} in flight, ${figures.commitsPerSecond} transactions/s), ` +
      `peak RSS ${Math.round(figures.peakRssMb!)} MB, ${figures.checkpoints} checkpoints under load: ${figures.non200} not 200, ${figures.leaseLost} leases lost, ${figures.promotions} promotions, ` +
      `${figures.renewalsOverBound} of ${figures.renewals} renewals over ${RenewalBoundMs} ms, longest ${Math.round(figures.longestRenewalMs!)} ms seen from outside, ${figures.pauses} pauses logged; ` +
      `the standby timed ${figures.heartbeats} heartbeats: ${figures.heartbeatsOver1s} over 1 s, ${figures.heartbeatsSilent} over heartbeatTimeoutMs`,
    violations,
    figures,
  };
}

export const load: Suite = { soakTrials: 2, run: runLoad };
