/**
 * The primary's side of the lease (fence.ts states the whole protocol):
 * - The primary rewrites `lease.json` every `renewMs`. `counter` goes up on
 *   every write attempt, even after one that failed: a "failed" write may
 *   still have landed, and the next one must look different to a watcher.
 * - Before each renewal it lists the epoch claims (epochs.ts) and reads the
 *   file. A claim of a higher epoch, a lease naming one, or another holder at
 *   an epoch as high as its own means another node took over: it stops
 *   renewing and reports the lease lost. (Read-then-write is no
 *   compare-and-swap: a renewal may overwrite the new primary's first lease,
 *   but never its epoch claim.) An unparsable file is rewritten (writes are
 *   atomic, so no live primary left it that way); a file that cannot be read
 *   at all makes the renewal fail.
 * - The primary may act as primary only while its last successful renewal
 *   STARTED less than `ttlMs - safetyMarginMs` ago on its own monotonic clock.
 *   Measuring from the start is conservative: the write may have landed at any
 *   moment after it. Once that lapses the lease is lost for good, renewals
 *   stop, and a later success of a hung write does not bring it back; the
 *   node must claim a new epoch to serve again.
 * - `released: true` (clean shutdown, switchover) lets a secondary take over
 *   without waiting for the TTL.
 * - Renewals run on a thread of their own (lease-worker.ts) with blocking
 *   file calls, so they keep their pace whatever the main thread does: they
 *   never wait in libuv's shared thread pool behind journal batches or
 *   checkpoint reads, nor behind a busy or collecting main event loop. The
 *   two threads share the holder's state in memory (lease-state.ts), so
 *   `valid()` answers at once from the last renewal's start; the main thread
 *   also ends the lease itself when validity runs out while a renewal hangs.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { instantNow, type Instant } from '../clock.js';
import { MainThreadStallMs } from '../config/index.js';
import { ConflictError, UnavailableError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { currentTempOwner } from '../vault/index.js';
import { LeaseFile, messageOf } from './lease-file.js';
import { HolderState, SharedLeaseState } from './lease-state.js';
import { lapseReason, type FromLeaseWorker, type LeaseTerms, type LeaseWorkerStart, type ToLeaseWorker } from './lease-worker.js';

/** How a {@link LeaseHolder} renews. */
export interface LeaseHolderOptions extends LeaseTerms {
  logger: Logger;
  /** Renewals stop once the main thread has not run for this long; MainThreadStallMs (30 s) unless a test says otherwise. */
  mainThreadStallMs?: number;
}

/** One successful renewal, as the renewal thread measured it. */
export interface LeaseRenewal {
  /** Since the renewal before it started: renewMs when all is well. */
  intervalMs: number;
  /** How late its timer fired: the renewal thread was not scheduled (process stopped, CPU starved, host suspended). */
  lateMs: number;
  /** How long its reads and writes of the FileVault took. */
  ioMs: number;
}

/**
 * A renewal thread, started without a lease: the build's own entry point
 * `dist/failover/lease-worker.js` (this code runs from `dist/cli/` or
 * `dist/chunks/`, one folder down either way), or, when running from the
 * TypeScript sources (the tests, through tsx, from the project folder),
 * {@link sourcesBundle}.
 */
function spawnRenewalThread(): Worker {
  const own = new URL(import.meta.url);
  const workerData = { leaseWorker: true };
  if (own.pathname.endsWith('.ts')) return new Worker(sourcesBundle(own), { eval: true, workerData, execArgv: [] });
  return new Worker(new URL('../failover/lease-worker.js', own), { workerData, execArgv: [] });
}

let bundledSources: string | null = null;

/**
 * `lease-worker.ts` next to this file and what it imports, bundled by esbuild
 * (the build's bundler, a development dependency like tsx) into one script,
 * once a process. A worker does not inherit tsx's loader, and registering it
 * in each new thread costs about 0.35 s of CPU; a test suite starts dozens.
 */
function sourcesBundle(own: URL): string {
  if (bundledSources === null) {
    const esbuild = createRequire(own)('esbuild') as typeof import('esbuild');
    const entry = fileURLToPath(new URL('./lease-worker.ts', own));
    const built = esbuild.buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', target: 'node20', write: false, logLevel: 'warning' });
    bundledSources = built.outputFiles[0]!.text;
  }
  return bundledSources;
}

/**
 * A renewal thread started ahead of need (prepareRenewalThread), so that a
 * promotion takes the lease right after it claims its epoch rather than
 * after a thread has started: until the lease is written, other nodes see
 * the old one go on being silent.
 */
let spare: Worker | null = null;

/** Start a renewal thread now for the next LeaseHolder (a secondary calls this while it follows). Idempotent. */
export function prepareRenewalThread(): void {
  if (spare !== null) return;
  const worker = spawnRenewalThread();
  worker.unref();
  const drop = (): void => {
    if (spare === worker) spare = null;
  };
  worker.once('error', drop);
  worker.once('exit', drop);
  spare = worker;
}

/** The prepared renewal thread, or a new one. */
function takeRenewalThread(): Worker {
  const worker = spare ?? spawnRenewalThread();
  spare = null;
  worker.removeAllListeners();
  worker.ref();
  return worker;
}

/**
 * The primary's side of the lease: takes it, renews it, tells its listeners
 * once when it is lost (taken by a higher epoch, or not renewed within
 * `ttlMs - safetyMarginMs`), and releases it on a clean shutdown.
 */
export class LeaseHolder {
  private readonly options: LeaseHolderOptions;
  private readonly file: string;
  private readonly validityMs: number;
  private readonly shared = SharedLeaseState.create();
  private worker: Worker | null = null;
  private started = false;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (reply: Extract<FromLeaseWorker, { type: 'reply' }>) => void; reject: (err: Error) => void }>();
  private lapseTimer: NodeJS.Timeout | undefined;
  /** Tells the renewal thread that the main thread still runs (see MainThreadStallMs). */
  private aliveTimer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(reason: string) => void> = [];
  private readonly renewalListeners: Array<(renewal: LeaseRenewal) => void> = [];
  private lostBecause: string | null = null;

  constructor(options: LeaseHolderOptions) {
    const { renewMs, ttlMs, safetyMarginMs, epoch } = options;
    if (!Number.isSafeInteger(epoch) || epoch < 1) throw new RangeError(`lease epoch must be a positive integer, got ${epoch}`);
    if (!(safetyMarginMs >= 0 && ttlMs > safetyMarginMs && renewMs > 0 && renewMs < ttlMs - safetyMarginMs)) {
      throw new RangeError(
        `lease timing needs 0 < renewMs < ttlMs - safetyMarginMs (got renewMs ${renewMs}, ttlMs ${ttlMs}, safetyMarginMs ${safetyMarginMs}); ` +
          'fix the failover settings so that several renewals fit in one TTL',
      );
    }
    this.options = options;
    this.file = path.join(options.dir, LeaseFile);
    this.validityMs = ttlMs - safetyMarginMs;
  }

  /** Counter of the last successful write (0 before start). */
  get counter(): number {
    return this.shared.counter;
  }

  /** Renewals failed in a row since the last success. */
  get failedRenewals(): number {
    return this.shared.failures;
  }

  /** Why the lease was lost, or null while it was not. */
  get lostReason(): string | null {
    return this.lostBecause;
  }

  /** Milliseconds since the last successful write started (the lease's age as this holder knows it); null before the first. */
  renewedAgoMs(): number | null {
    return this.shared.ageMs();
  }

  /** Call `listener` once, with the reason, when the lease is lost; not on stop() or release(). */
  onLost(listener: (reason: string) => void): void {
    this.listeners.push(listener);
  }

  /** Call `listener` after every successful renewal (not the first write), with what the renewal thread measured. */
  onRenewed(listener: (renewal: LeaseRenewal) => void): void {
    this.renewalListeners.push(listener);
  }

  /**
   * Take the lease: write it once (the counter continues from the file's when
   * it names our epoch, else starts at 1), then renew every `renewMs`.
   * Throws ConflictError when an epoch claim or the file is newer than ours, and
   * UnavailableError when the read or the write fails.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('LeaseHolder.start() may be called once; make a new LeaseHolder to take the lease again');
    this.started = true;
    const { dir, node, url, epoch, renewMs, ttlMs, safetyMarginMs } = this.options;
    const mainThreadStallMs = this.options.mainThreadStallMs ?? MainThreadStallMs;
    const worker = takeRenewalThread();
    this.worker = worker;
    worker.on('message', (message: FromLeaseWorker) => this.onMessage(message));
    worker.on('error', (err) => this.threadEnded(`the lease renewal thread failed: ${messageOf(err)}`));
    worker.on('exit', (code) => this.threadEnded(`the lease renewal thread stopped (exit code ${code})`));
    const init: LeaseWorkerStart = { type: 'init', init: { dir, node, url, epoch, renewMs, ttlMs, safetyMarginMs, mainThreadStallMs, tempOwner: currentTempOwner(), shared: this.shared.buffer } };
    worker.postMessage(init);
    const reply = await this.request({ type: 'start', id: 0 });
    if (reply.failure !== null) {
      this.terminate();
      throw reply.failure.conflict ? new ConflictError(reply.failure.message) : new UnavailableError(reply.failure.message);
    }
    if (this.shared.state !== HolderState.Holding) return; // stopped while the first write ran
    this.options.logger.info('lease taken', { file: this.file, epoch, counter: reply.counter });
    this.armLapseTimer();
    this.aliveTimer = setInterval(() => this.shared.mainAlive(), Math.min(renewMs, mainThreadStallMs / 4));
    this.aliveTimer.unref();
  }

  /**
   * True while this node may act as primary at `at` (now unless given): holding, and the last successful renewal
   * started less than ttlMs - safetyMarginMs before it.
   */
  valid(at: Instant = instantNow()): boolean {
    const age = this.shared.ageMs(at);
    return this.shared.state === HolderState.Holding && age !== null && age < this.validityMs;
  }

  /**
   * Write `released: true` so a secondary may take over at once, and stop
   * renewing. Writes nothing when the lease is no longer valid or another
   * node already holds it (that file is theirs). Waits for a renewal in flight.
   */
  async release(candidate?: string): Promise<void> {
    clearTimeout(this.lapseTimer);
    if (this.worker === null) {
      this.options.logger.info('lease not released: this node no longer held it', { file: this.file, reason: this.lostBecause });
      return;
    }
    let reply: Extract<FromLeaseWorker, { type: 'reply' }>;
    try {
      reply = await this.request({ type: 'release', id: 0, ...(candidate === undefined ? {} : { candidate }) });
    } finally {
      this.terminate();
    }
    if (reply.failure !== null) throw new UnavailableError(reply.failure.message);
    if (reply.note !== undefined) {
      this.options.logger.info(`lease not released: ${reply.note}`, { file: this.file, reason: this.lostBecause });
      return;
    }
    this.options.logger.info('lease released', { file: this.file, epoch: this.options.epoch, counter: reply.counter });
  }

  /** Stop renewing without writing (the lease then lapses). A write in flight finishes on its own. */
  stop(): void {
    this.shared.stop();
    clearTimeout(this.lapseTimer);
    this.lapseTimer = undefined;
    this.worker?.postMessage({ type: 'stop' } satisfies ToLeaseWorker);
    this.terminate();
  }

  /**
   * Let the renewal thread go. A thread blocked in a file call that hangs
   * (a hard-mounted NFS server that is gone) cannot be stopped until the call
   * returns; it is unreferenced so that it never keeps the process alive.
   */
  private terminate(): void {
    clearInterval(this.aliveTimer);
    this.aliveTimer = undefined;
    const worker = this.worker;
    if (worker === null) return;
    this.worker = null;
    worker.unref();
    void worker.terminate().catch(() => undefined);
  }

  private request(message: ToLeaseWorker & { id: number }): Promise<Extract<FromLeaseWorker, { type: 'reply' }>> {
    const worker = this.worker;
    if (worker === null) return Promise.reject(new UnavailableError('the lease renewal thread is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...message, id });
    });
  }

  private onMessage(message: FromLeaseWorker): void {
    switch (message.type) {
      case 'reply': {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        waiter?.resolve(message);
        return;
      }
      case 'log':
        this.options.logger[message.level](message.message, message.meta);
        return;
      case 'renewed':
        this.armLapseTimer();
        if (message.afterFailures === 0) this.warnIfLate(message); // a failure streak was logged already
        for (const listener of this.renewalListeners) listener({ intervalMs: message.intervalMs, lateMs: message.lateMs, ioMs: message.ioMs });
        return;
      case 'lost':
        this.lose(message.reason);
        return;
    }
  }

  /**
   * A renewal that came more than half the slack between renewMs and the
   * lease's validity late is logged with where the time went: the FileVault
   * (its reads and writes were slow) or the process (the renewal thread's
   * timer fired late: the process was stopped, starved of CPU or suspended).
   */
  private warnIfLate(renewal: LeaseRenewal): void {
    const { renewMs } = this.options;
    if (renewal.intervalMs <= renewMs + (this.validityMs - renewMs) / 2) return;
    this.options.logger.warn('lease renewal late', {
      file: this.file,
      intervalMs: Math.round(renewal.intervalMs),
      renewMs,
      validityMs: this.validityMs,
      cause: renewal.ioMs >= renewal.lateMs ? 'the FileVault was slow to read or write' : 'the process did not run (stopped, starved of CPU or suspended)',
      ioMs: Math.round(renewal.ioMs),
      lateMs: Math.round(renewal.lateMs),
    });
  }

  /** The renewal thread ended without being asked to: requests fail, and a lease held so far is lost. */
  private threadEnded(why: string): void {
    if (this.worker === null) return;
    this.worker = null;
    for (const waiter of this.pending.values()) waiter.reject(new UnavailableError(why));
    this.pending.clear();
    if (this.shared.transition(HolderState.Holding, HolderState.Lost)) this.lose(why);
  }

  /** Fires at the moment validity ends, so the lease is reported lost then, even while a renewal hangs in the renewal thread. */
  private armLapseTimer(): void {
    clearTimeout(this.lapseTimer);
    if (this.shared.state !== HolderState.Holding) return;
    const age = this.shared.ageMs() ?? 0;
    const remaining = this.validityMs - age;
    this.lapseTimer = setTimeout(
      () => {
        this.lapseTimer = undefined;
        if (this.shared.state !== HolderState.Holding) return;
        const now = this.shared.ageMs() ?? 0;
        if (now < this.validityMs) this.armLapseTimer();
        else if (this.shared.transition(HolderState.Holding, HolderState.Lost)) this.lose(lapseReason(now, this.options.ttlMs, this.options.safetyMarginMs));
      },
      Math.max(0, Math.ceil(remaining)),
    );
  }

  /** Tell the listeners, once; the state is already Lost (this thread's or the renewal thread's compare-and-swap). */
  private lose(reason: string): void {
    clearTimeout(this.lapseTimer);
    this.lapseTimer = undefined;
    if (this.lostBecause !== null) return;
    this.lostBecause = reason;
    this.terminate();
    this.options.logger.warn('lease lost', { file: this.file, epoch: this.options.epoch, reason });
    for (const listener of this.listeners) {
      try {
        listener(reason);
      } catch (err) {
        this.options.logger.error('lease onLost listener threw', { error: messageOf(err) });
      }
    }
  }
}
