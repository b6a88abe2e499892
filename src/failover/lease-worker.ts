/**
 * The lease holder's own thread (lease-holder.ts says why it has one): takes
 * the lease, renews it every `renewMs` with blocking file calls, releases it.
 * It shares the holder's state with the main thread (lease-state.ts) and
 * tells it what happened in messages: log lines, renewals (for the interval
 * metric), the loss of the lease, and the answers to its requests.
 */
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { monotonicNs } from '../clock.js';
import { setTempOwner } from '../vault/index.js';
import { epochFileName, highestEpochSync } from './epochs.js';
import { LeaseFile, LeaseFormatError, messageOf, readLeaseSync, writeLeaseSync, type Lease } from './lease-file.js';
import { HolderState, SharedLeaseState } from './lease-state.js';

/** Whose lease, where, and its timings. */
export interface LeaseTerms {
  /** `FileVault/failover`; must exist. */
  dir: string;
  /** This node's name, written as `holder`. */
  node: string;
  /** This node's API base URL, written as `url`. */
  url: string;
  /** The epoch this node claimed. */
  epoch: number;
  /** Time between renewal starts. */
  renewMs: number;
  /** How long a secondary waits on an unchanged lease before it may promote. */
  ttlMs: number;
  /** Validity ends this long before the TTL, for clock-rate differences and scheduling delays. */
  safetyMarginMs: number;
}

/** What the main thread hands the renewal thread. */
export interface LeaseWorkerInit extends LeaseTerms {
  /** Renewals stop once the main thread has not run for this long (MainThreadStallMs in config/defaults.ts unless a test says otherwise). */
  mainThreadStallMs: number;
  /** The node named in temp file names (vault/atomic-file.ts), or null. */
  tempOwner: string | null;
  shared: SharedArrayBuffer;
}

/** Requests from the main thread; each gets one `reply` with its id. */
export type ToLeaseWorker = { type: 'start'; id: number } | { type: 'release'; id: number; candidate?: string } | { type: 'stop' };

/** Why a request failed: another node holds a newer epoch (conflict), or the FileVault failed. */
export interface LeaseRequestFailure {
  conflict: boolean;
  message: string;
}

export type FromLeaseWorker =
  | { type: 'reply'; id: number; failure: LeaseRequestFailure | null; counter: number; note?: string }
  | { type: 'log'; level: 'info' | 'warn'; message: string; meta: Record<string, unknown> }
  /**
   * A successful renewal: `intervalMs` since the one before started, `lateMs` its timer fired late, `ioMs` its reads
   * and writes took, `afterFailures` renewals that failed between the two.
   */
  | { type: 'renewed'; counter: number; intervalMs: number; lateMs: number; ioMs: number; afterFailures: number }
  | { type: 'lost'; reason: string };

function msSince(startNs: bigint, nowNs = monotonicNs()): number {
  return Number(nowNs - startNs) / 1e6;
}

/** The renewal loop; one per thread, started by the main thread's `start` request. */
class Renewer {
  private readonly file: string;
  private readonly validityMs: number;
  private readonly shared: SharedLeaseState;
  /** Counter of the latest write attempt; every attempt takes a new one, even after one that failed. */
  private attempts = 0;
  private lastGoodStartNs = 0n;
  private dueNs = 0n;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly init: LeaseWorkerInit,
    private readonly post: (message: FromLeaseWorker) => void,
  ) {
    this.file = path.join(init.dir, LeaseFile);
    this.validityMs = init.ttlMs - init.safetyMarginMs;
    this.shared = new SharedLeaseState(init.shared);
  }

  handle(message: ToLeaseWorker): void {
    if (message.type === 'start') this.post({ type: 'reply', id: message.id, ...this.start() });
    else if (message.type === 'release') this.post({ type: 'reply', id: message.id, ...this.release(message.candidate) });
    else this.halt();
  }

  private start(): { failure: LeaseRequestFailure | null; counter: number } {
    let existing: Lease | null;
    let taken: string | null;
    try {
      taken = this.newerClaim();
      existing = this.readCurrent();
      taken ??= existing === null ? null : this.takenBy(existing);
    } catch (err) {
      const message = `could not read the lease ${this.file} or the epoch claims beside it: ${messageOf(err)}; check that the FileVault is mounted and readable by this user`;
      return { failure: { conflict: false, message }, counter: 0 };
    }
    if (taken !== null) {
      return { failure: { conflict: true, message: `${taken}; this node must not serve as primary — it has to catch up and claim a newer epoch first` }, counter: 0 };
    }
    this.attempts = existing !== null && existing.epoch === this.init.epoch ? existing.counter : 0;
    const started = monotonicNs();
    const startedWall = Date.now();
    try {
      this.write(false);
    } catch (err) {
      return { failure: { conflict: false, message: `could not write the lease ${this.file}: ${messageOf(err)}; check that the FileVault is mounted and writable by this user` }, counter: 0 };
    }
    this.shared.recordRenewal(started, startedWall, this.attempts);
    if (!this.shared.transition(HolderState.Idle, HolderState.Holding)) return { failure: null, counter: this.attempts }; // stopped meanwhile
    this.lastGoodStartNs = started;
    this.schedule(started);
    return { failure: null, counter: this.attempts };
  }

  /**
   * Stop renewing and write `released: true`, unless the lease is no longer
   * valid or another node holds it (that file is theirs). A renewal in flight
   * has finished: this thread does one thing at a time.
   */
  private release(candidate: string | undefined): { failure: LeaseRequestFailure | null; counter: number; note?: string } {
    const age = this.shared.ageMs();
    const wasValid = this.shared.state === HolderState.Holding && age !== null && age < this.validityMs;
    this.halt();
    if (!wasValid) return { failure: null, counter: this.shared.counter, note: 'this node no longer held it' };
    try {
      const taken = this.takenReason();
      if (taken !== null) return { failure: null, counter: this.shared.counter, note: `another node holds it: ${taken}` };
      this.write(true, candidate);
    } catch (err) {
      const message = `could not release the lease ${this.file}: ${messageOf(err)}; a secondary takes over once the lease TTL has passed instead`;
      return { failure: { conflict: false, message }, counter: this.shared.counter };
    }
    return { failure: null, counter: this.attempts };
  }

  /** Stop renewing (Holding or Idle → Stopped; Lost stays Lost). */
  private halt(): void {
    this.shared.stop();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(lastStartNs: bigint): void {
    if (this.shared.state !== HolderState.Holding) return;
    this.dueNs = lastStartNs + BigInt(this.init.renewMs) * 1_000_000n;
    const delay = Math.max(0, this.init.renewMs - msSince(lastStartNs));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.renew();
    }, delay);
  }

  /** One renewal: check for a newer claim, write, account. */
  private renew(): void {
    if (this.shared.state !== HolderState.Holding || this.lapsed()) return;
    const silentMs = this.shared.mainSilentMs();
    if (silentMs > this.init.mainThreadStallMs) {
      this.lose(`the main thread has not run for ${Math.round(silentMs)}ms (more than ${this.init.mainThreadStallMs}ms): renewals stopped so that a secondary can take over from a process that serves nobody`);
      return;
    }
    const started = monotonicNs();
    const startedWall = Date.now();
    const lateMs = Math.max(0, msSince(this.dueNs, started));
    let failure: unknown = undefined;
    let failed = false;
    try {
      const taken = this.takenReason();
      if (taken !== null) {
        this.lose(taken);
        return;
      }
      this.write(false);
    } catch (err) {
      failure = err;
      failed = true;
    }
    const ioMs = msSince(started);
    // Stopped or lost meanwhile, or lapsed while the write hung: a late success changes nothing.
    if (this.shared.state !== HolderState.Holding || this.lapsed()) return;
    if (failed) {
      this.shared.failures += 1;
      if (this.shared.failures === 1) {
        const age = this.shared.ageMs() ?? 0;
        this.log('warn', 'lease renewal failed; retrying every renewMs until it lapses', {
          file: this.file,
          error: messageOf(failure),
          lapsesInMs: Math.max(0, Math.round(this.validityMs - age)),
        });
      }
    } else {
      const afterFailures = this.shared.failures;
      if (afterFailures > 0) {
        this.log('info', 'lease renewal recovered', {
          file: this.file,
          failedRenewals: this.shared.failures,
          failedForMs: Math.round(msSince(this.lastGoodStartNs, started)),
        });
      }
      this.shared.failures = 0;
      this.shared.recordRenewal(started, startedWall, this.attempts);
      this.post({ type: 'renewed', counter: this.attempts, intervalMs: msSince(this.lastGoodStartNs, started), lateMs, ioMs, afterFailures });
      this.lastGoodStartNs = started;
    }
    this.schedule(started);
  }

  /** True (and the lease is lost) when the last successful renewal is too old. */
  private lapsed(): boolean {
    const state = this.shared.state;
    if (state !== HolderState.Holding) return state === HolderState.Lost;
    const age = this.shared.ageMs() ?? 0;
    if (age < this.validityMs) return false;
    this.lose(lapseReason(age, this.init.ttlMs, this.init.safetyMarginMs));
    return true;
  }

  private lose(reason: string): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.shared.transition(HolderState.Holding, HolderState.Lost)) this.post({ type: 'lost', reason });
  }

  /**
   * Why another node has taken over, or null: a newer epoch claim file, or a
   * lease naming a newer claim. The claim files are checked as well as the
   * lease because a renewal can overwrite the new primary's first lease (read,
   * then write, is no compare-and-swap); claim files are never overwritten.
   */
  private takenReason(): string | null {
    const newer = this.newerClaim();
    if (newer !== null) return newer;
    const current = this.readCurrent();
    return current === null ? null : this.takenBy(current);
  }

  /** Why an epoch claim file shows a newer epoch than ours, or null. */
  private newerClaim(): string | null {
    const { dir, epoch } = this.init;
    const highest = highestEpochSync(dir);
    if (highest <= epoch) return null;
    return `${path.join(dir, epochFileName(highest))} claims epoch ${highest}, newer than this node's epoch ${epoch}`;
  }

  /** Why `lease` shows that another node took over, or null when it does not. */
  private takenBy(lease: Lease): string | null {
    const { epoch, node } = this.init;
    if (lease.epoch > epoch) return `${this.file} names epoch ${lease.epoch} (held by ${lease.holder}), newer than this node's epoch ${epoch}`;
    if (lease.holder !== node && lease.epoch >= epoch) return `${this.file} is held by ${lease.holder} at epoch ${lease.epoch}, this node's own epoch`;
    return null;
  }

  /** The lease file, treating one that is not a lease as absent (it is about to be rewritten). */
  private readCurrent(): Lease | null {
    try {
      return readLeaseSync(this.init.dir);
    } catch (err) {
      if (!(err instanceof LeaseFormatError)) throw err;
      this.log('warn', 'lease file unreadable; rewriting it', { file: this.file, error: err.message });
      return null;
    }
  }

  private write(released: boolean, candidate?: string): void {
    const { node, url, epoch } = this.init;
    this.attempts += 1;
    writeLeaseSync(this.init.dir, { holder: node, url, epoch, counter: this.attempts, time: new Date().toISOString(), released, ...(candidate === undefined ? {} : { candidate }) });
  }

  private log(level: 'info' | 'warn', message: string, meta: Record<string, unknown>): void {
    this.post({ type: 'log', level, message, meta });
  }
}

/** The reason a lease is lost once its last successful renewal is `ageMs` old. */
export function lapseReason(ageMs: number, ttlMs: number, safetyMarginMs: number): string {
  return (
    `lease renewal failed for ${Math.round(ageMs)}ms (ttlMs ${ttlMs} - safetyMarginMs ${safetyMarginMs}); ` +
    'check that the FileVault is reachable and writable, and the log for a long pause of this process'
  );
}

/** The first message a renewal thread gets: its lease (a thread may be started before it has one: lease-holder.ts). */
export interface LeaseWorkerStart {
  type: 'init';
  init: LeaseWorkerInit;
}

if (parentPort !== null && (workerData as { leaseWorker?: boolean } | null)?.leaseWorker === true) {
  const port = parentPort;
  let renewer: Renewer | null = null;
  port.on('message', (message: ToLeaseWorker | LeaseWorkerStart) => {
    if (message.type === 'init') {
      if (message.init.tempOwner !== null) setTempOwner(message.init.tempOwner);
      renewer = new Renewer(message.init, (out) => port.postMessage(out));
    } else {
      renewer?.handle(message);
    }
  });
}
