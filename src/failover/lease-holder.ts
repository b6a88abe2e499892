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
 */
import path from 'node:path';
import { ConflictError, UnavailableError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { epochFileName, highestEpoch } from './epochs.js';
import { LeaseFile, LeaseFormatError, messageOf, readLease, writeLease, type Lease } from './lease-file.js';

/** How a {@link LeaseHolder} renews. */
export interface LeaseHolderOptions {
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
  logger: Logger;
  /** Monotonic clock in milliseconds; `performance.now()` unless a test injects one. */
  now?: () => number;
  /**
   * Wall clock in milliseconds; `Date.now()` unless a test injects one. The
   * monotonic clock stops while the host is suspended, the wall clock does
   * not: a lease's age is the larger of the two, so a primary resumed after a
   * suspend never acts on a lease that lapsed meanwhile (a wall clock stepped
   * forward can only fence it early, which is safe).
   */
  wallNow?: () => number;
}

type HolderState = 'idle' | 'holding' | 'lost' | 'stopped';

/**
 * The primary's side of the lease: takes it, renews it, tells its listeners
 * once when it is lost (taken by a higher epoch, or not renewed within
 * `ttlMs - safetyMarginMs`), and releases it on a clean shutdown.
 */
export class LeaseHolder {
  private readonly options: LeaseHolderOptions;
  private readonly now: () => number;
  private readonly file: string;
  private readonly validityMs: number;
  private state: HolderState = 'idle';
  /** Counter of the latest write attempt; every attempt takes a new one. */
  private attempts = 0;
  private lastGoodCounter = 0;
  /** Monotonic time at which the last successful write started. */
  private lastGoodStart = Number.NEGATIVE_INFINITY;
  /** Wall-clock time at which the last successful write started. */
  private lastGoodWall = Number.NEGATIVE_INFINITY;
  private readonly wall: () => number;
  private failures = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private lapseTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private readonly listeners: Array<(reason: string) => void> = [];
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
    this.now = options.now ?? (() => performance.now());
    this.wall = options.wallNow ?? (() => Date.now());
    this.file = path.join(options.dir, LeaseFile);
    this.validityMs = ttlMs - safetyMarginMs;
  }

  /** Counter of the last successful write (0 before start). */
  get counter(): number {
    return this.lastGoodCounter;
  }

  /** Renewals failed in a row since the last success. */
  get failedRenewals(): number {
    return this.failures;
  }

  /** Why the lease was lost, or null while it was not. */
  get lostReason(): string | null {
    return this.lostBecause;
  }

  /** Milliseconds since the last successful write started (the lease's age as this holder knows it); null before the first. */
  renewedAgoMs(): number | null {
    return Number.isFinite(this.lastGoodStart) ? this.age() : null;
  }

  /** Call `listener` once, with the reason, when the lease is lost; not on stop() or release(). */
  onLost(listener: (reason: string) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Take the lease: write it once (the counter continues from the file's when
   * it names our epoch, else starts at 1), then renew every `renewMs`.
   * Throws ConflictError when an epoch claim or the file is newer than ours, and
   * UnavailableError when the write fails.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error('LeaseHolder.start() may be called once; make a new LeaseHolder to take the lease again');
    let existing: Lease | null;
    let taken: string | null;
    try {
      taken = await this.newerClaim();
      existing = await this.readCurrent();
      taken ??= existing === null ? null : this.takenBy(existing);
    } catch (err) {
      throw new UnavailableError(
        `could not read the lease ${this.file} or the epoch claims beside it: ${messageOf(err)}; check that the FileVault is mounted and readable by this user`,
        { cause: err },
      );
    }
    if (taken !== null) {
      throw new ConflictError(`${taken}; this node must not serve as primary — it has to catch up and claim a newer epoch first`);
    }
    this.attempts = existing !== null && existing.epoch === this.options.epoch ? existing.counter : 0;
    const started = this.now();
    const startedWall = this.wall();
    try {
      await this.write(false);
    } catch (err) {
      throw new UnavailableError(
        `could not write the lease ${this.file}: ${messageOf(err)}; check that the FileVault is mounted and writable by this user`,
        { cause: err },
      );
    }
    if (this.state !== 'idle') return; // stopped while the first write ran
    this.state = 'holding';
    this.lastGoodStart = started;
    this.lastGoodWall = startedWall;
    this.lastGoodCounter = this.attempts;
    this.options.logger.info('lease taken', { file: this.file, epoch: this.options.epoch, counter: this.attempts });
    this.armLapseTimer();
    this.scheduleRenewal(started);
  }

  /** True while this node may act as primary: holding, and the last successful renewal started less than ttlMs - safetyMarginMs ago. */
  valid(): boolean {
    return this.state === 'holding' && this.age() < this.validityMs;
  }

  /**
   * Write `released: true` so a secondary may take over at once, and stop
   * renewing. Writes nothing when the lease is no longer valid or another
   * node already holds it (that file is theirs). Waits for a renewal in flight.
   */
  async release(candidate?: string): Promise<void> {
    const wasValid = this.valid();
    this.halt('stopped');
    await this.renewing;
    if (!wasValid) {
      this.options.logger.info('lease not released: this node no longer held it', { file: this.file, reason: this.lostBecause });
      return;
    }
    try {
      const taken = await this.takenReason();
      if (taken !== null) {
        this.options.logger.info('lease not released: another node holds it', { file: this.file, reason: taken });
        return;
      }
      await this.write(true, candidate);
    } catch (err) {
      throw new UnavailableError(
        `could not release the lease ${this.file}: ${messageOf(err)}; a secondary takes over once the lease TTL has passed instead`,
        { cause: err },
      );
    }
    this.options.logger.info('lease released', { file: this.file, epoch: this.options.epoch, counter: this.attempts });
  }

  /** Stop renewing without writing (the lease then lapses). A write in flight finishes on its own. */
  stop(): void {
    this.halt('stopped');
  }

  private halt(state: 'lost' | 'stopped'): void {
    if (this.state !== 'lost') this.state = state;
    clearTimeout(this.renewTimer);
    clearTimeout(this.lapseTimer);
    this.renewTimer = undefined;
    this.lapseTimer = undefined;
  }

  /**
   * Why another node has taken over, or null: a newer epoch claim file, or a
   * lease naming a newer claim. The claim files are checked as well as the
   * lease because a renewal can overwrite the new primary's first lease (read,
   * then write, is no compare-and-swap); claim files are never overwritten.
   */
  private async takenReason(): Promise<string | null> {
    const newer = await this.newerClaim();
    if (newer !== null) return newer;
    const current = await this.readCurrent();
    return current === null ? null : this.takenBy(current);
  }

  /** Why an epoch claim file shows a newer epoch than ours, or null. */
  private async newerClaim(): Promise<string | null> {
    const { dir, epoch } = this.options;
    const highest = await highestEpoch(dir);
    if (highest <= epoch) return null;
    return `${path.join(dir, epochFileName(highest))} claims epoch ${highest}, newer than this node's epoch ${epoch}`;
  }

  /** Why `lease` shows that another node took over, or null when it does not. */
  private takenBy(lease: Lease): string | null {
    const { epoch, node } = this.options;
    if (lease.epoch > epoch) {
      return `${this.file} names epoch ${lease.epoch} (held by ${lease.holder}), newer than this node's epoch ${epoch}`;
    }
    if (lease.holder !== node && lease.epoch >= epoch) {
      return `${this.file} is held by ${lease.holder} at epoch ${lease.epoch}, this node's own epoch`;
    }
    return null;
  }

  /** The lease file, treating one that is not a lease as absent (it is about to be rewritten). */
  private async readCurrent(): Promise<Lease | null> {
    try {
      return await readLease(this.options.dir);
    } catch (err) {
      if (!(err instanceof LeaseFormatError)) throw err;
      this.options.logger.warn('lease file unreadable; rewriting it', { file: this.file, error: err.message });
      return null;
    }
  }

  private async write(released: boolean, candidate?: string): Promise<void> {
    const { node, url, epoch } = this.options;
    this.attempts += 1;
    await writeLease(this.options.dir, { holder: node, url, epoch, counter: this.attempts, time: new Date().toISOString(), released, ...(candidate === undefined ? {} : { candidate }) });
  }

  private scheduleRenewal(lastStart: number): void {
    if (this.state !== 'holding') return;
    const delay = Math.max(0, this.options.renewMs - (this.now() - lastStart));
    this.renewTimer = setTimeout(() => {
      this.renewTimer = undefined;
      this.renewing = this.renew().finally(() => {
        this.renewing = undefined;
      });
    }, delay);
  }

  /** One renewal: check the file for a newer claim, write, account; never rejects. */
  private async renew(): Promise<void> {
    if (this.state !== 'holding' || this.lapsed()) return;
    const started = this.now();
    const startedWall = this.wall();
    let failure: unknown = undefined;
    let failed = false;
    try {
      const taken = await this.takenReason();
      if (taken !== null) {
        if (this.state === 'holding') this.lose(taken);
        return;
      }
      if (this.state !== 'holding') return;
      await this.write(false);
    } catch (err) {
      failure = err;
      failed = true;
    }
    // Stopped or lost meanwhile, or lapsed while the write hung: a late success changes nothing.
    if (this.state !== 'holding' || this.lapsed()) return;
    if (failed) {
      this.failures += 1;
      if (this.failures === 1) {
        this.options.logger.warn('lease renewal failed; retrying every renewMs until it lapses', {
          file: this.file,
          error: messageOf(failure),
          lapsesInMs: Math.max(0, Math.round(this.validityMs - this.age())),
        });
      }
    } else {
      if (this.failures > 0) {
        this.options.logger.info('lease renewal recovered', {
          file: this.file,
          failedRenewals: this.failures,
          failedForMs: Math.round(started - this.lastGoodStart),
        });
      }
      this.failures = 0;
      this.lastGoodStart = started;
      this.lastGoodWall = startedWall;
      this.lastGoodCounter = this.attempts;
      this.armLapseTimer();
    }
    this.scheduleRenewal(started);
  }

  /** Fires at the moment validity ends, so the lease is reported lost then and not at the next renewal. */
  private armLapseTimer(): void {
    clearTimeout(this.lapseTimer);
    const remaining = this.validityMs - this.age();
    this.lapseTimer = setTimeout(
      () => {
        this.lapseTimer = undefined;
        if (this.state === 'holding' && !this.lapsed()) this.armLapseTimer();
      },
      Math.max(0, Math.ceil(remaining)),
    );
  }

  /** Since the last successful write started: the larger of the monotonic and the wall-clock spans (see wallNow). */
  private age(): number {
    return Math.max(this.now() - this.lastGoodStart, this.wall() - this.lastGoodWall);
  }

  /** True (and the lease is lost) when the last successful renewal is too old. */
  private lapsed(): boolean {
    if (this.state !== 'holding') return this.state === 'lost';
    const age = this.age();
    if (age < this.validityMs) return false;
    this.lose(
      `lease renewal failed for ${Math.round(age)}ms (ttlMs ${this.options.ttlMs} - safetyMarginMs ${this.options.safetyMarginMs}); ` +
        'check that the FileVault is reachable and writable',
    );
    return true;
  }

  private lose(reason: string): void {
    this.halt('lost');
    if (this.lostBecause !== null) return;
    this.lostBecause = reason;
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

