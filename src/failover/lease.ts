/**
 * The primary's lease: `FileVault/failover/lease.json`.
 *
 *   { "holder": "node-a", "url": "https://a:8470/api", "epoch": 7, "counter": 42,
 *     "time": "2026-01-01T00:00:00.000Z", "released": false }
 *
 * Rules (DESIGN.md "Failover"):
 * - The primary ({@link LeaseHolder}) rewrites the file every `renewMs`,
 *   atomically (temp file, fsync, rename, fsync the folder). `counter` goes up
 *   on every write attempt, even after one that failed: a "failed" write may
 *   still have landed, and the next one must look different to a watcher.
 * - Before each renewal the primary lists the epoch claims (epochs.ts) and
 *   reads the file. A claim of a higher epoch, a lease naming one, or another
 *   holder at an epoch as high as its own means another node took over: it
 *   stops renewing and reports the lease lost. (Read-then-write is no
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
 * - A secondary ({@link LeaseWatcher}) never compares `time` (another host's
 *   wall clock) with its own. It polls the file and measures, on its own
 *   monotonic clock, how long the content (holder, epoch, counter, released)
 *   has stayed the same. A read error observes nothing, so it can only make the
 *   secondary wait longer, never promote sooner.
 * - `released: true` (clean shutdown, switchover) lets a secondary take over
 *   without waiting for the TTL.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ConflictError, UnavailableError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { fsyncDir, readIfExists, tempPathFor } from '../vault/index.js';
import { epochFileName, highestEpoch } from './epochs.js';

/** Name of the lease file in `FileVault/failover`. */
export const LeaseFile = 'lease.json';

/** The content of `lease.json`. */
export interface Lease {
  /** Node name of the primary. */
  holder: string;
  /** The holder's API base URL, so a secondary can name the primary. */
  url: string;
  /** The holder's epoch. */
  epoch: number;
  /** Renewal count; changes on every write. */
  counter: number;
  /** Wall-clock ISO time of the write: informational only, never compared across hosts. */
  time: string;
  /** True once the holder gave the lease up (clean shutdown, switchover). */
  released: boolean;
  /** With `released`: the one node that should take over (a switchover to a chosen node); absent: any. */
  candidate?: string;
}

/** `lease.json` exists but is not a lease (bad JSON or wrong shape). */
export class LeaseFormatError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LeaseFormatError';
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function shapeProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  if (typeof v.holder !== 'string' || v.holder === '') return '"holder" is not a node name';
  if (typeof v.url !== 'string') return '"url" is not a string';
  if (!Number.isSafeInteger(v.epoch) || (v.epoch as number) < 1) return '"epoch" is not a positive integer';
  if (!Number.isSafeInteger(v.counter) || (v.counter as number) < 0) return '"counter" is not a non-negative integer';
  if (typeof v.time !== 'string') return '"time" is not a string';
  if (typeof v.released !== 'boolean') return '"released" is not true or false';
  if (v.candidate !== undefined && typeof v.candidate !== 'string') return '"candidate" is not a node name';
  return null;
}

/**
 * The lease in `dir` (`FileVault/failover`), or null when there is none.
 * Throws {@link LeaseFormatError} when the file is not a lease, and the OS
 * error when it cannot be read.
 */
export async function readLease(dir: string): Promise<Lease | null> {
  const file = path.join(dir, LeaseFile);
  const text = await readIfExists(file);
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LeaseFormatError(
      `${file} is not valid JSON (${messageOf(err)}); the primary's next renewal rewrites it — if no primary is running, remove the file`,
      { cause: err },
    );
  }
  const problem = shapeProblem(value);
  if (problem !== null) {
    throw new LeaseFormatError(
      `${file} is not a lease: ${problem}; the primary's next renewal rewrites it — if no primary is running, remove the file`,
    );
  }
  const v = value as Lease;
  return { holder: v.holder, url: v.url, epoch: v.epoch, counter: v.counter, time: v.time, released: v.released, ...(v.candidate === undefined ? {} : { candidate: v.candidate }) };
}

/**
 * Publish `lease` as `dir/lease.json` atomically: temp file in the same folder,
 * fsync, rename, fsync the folder. The temp file is removed on failure.
 */
export async function writeLease(dir: string, lease: Lease): Promise<void> {
  const { holder, url, epoch, counter, time, released, candidate } = lease;
  const text = JSON.stringify({ holder, url, epoch, counter, time, released, ...(candidate === undefined ? {} : { candidate }) }) + '\n';
  const temp = tempPathFor(dir, LeaseFile);
  const handle = await fs.open(temp, 'wx', 0o644);
  try {
    try {
      await handle.writeFile(text);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    await handle.close();
    await fs.rename(temp, path.join(dir, LeaseFile));
  } catch (err) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

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
    return Number.isFinite(this.lastGoodStart) ? this.now() - this.lastGoodStart : null;
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
    this.lastGoodCounter = this.attempts;
    this.options.logger.info('lease taken', { file: this.file, epoch: this.options.epoch, counter: this.attempts });
    this.armLapseTimer();
    this.scheduleRenewal(started);
  }

  /** True while this node may act as primary: holding, and the last successful renewal started less than ttlMs - safetyMarginMs ago. */
  valid(): boolean {
    return this.state === 'holding' && this.now() - this.lastGoodStart < this.validityMs;
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
          lapsesInMs: Math.max(0, Math.round(this.lastGoodStart + this.validityMs - this.now())),
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
      this.lastGoodCounter = this.attempts;
      this.armLapseTimer();
    }
    this.scheduleRenewal(started);
  }

  /** Fires at the moment validity ends, so the lease is reported lost then and not at the next renewal. */
  private armLapseTimer(): void {
    clearTimeout(this.lapseTimer);
    const remaining = this.lastGoodStart + this.validityMs - this.now();
    this.lapseTimer = setTimeout(
      () => {
        this.lapseTimer = undefined;
        if (this.state === 'holding' && !this.lapsed()) this.armLapseTimer();
      },
      Math.max(0, Math.ceil(remaining)),
    );
  }

  /** True (and the lease is lost) when the last successful renewal is too old. */
  private lapsed(): boolean {
    if (this.state !== 'holding') return this.state === 'lost';
    const age = this.now() - this.lastGoodStart;
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

/** How a {@link LeaseWatcher} polls. */
export interface LeaseWatcherOptions {
  /** `FileVault/failover`. */
  dir: string;
  /** Time between reads. */
  pollMs: number;
  logger: Logger;
  /** Monotonic clock in milliseconds; `performance.now()` unless a test injects one. */
  now?: () => number;
}

function contentKey(lease: Lease | null): string {
  return lease === null ? 'none' : JSON.stringify([lease.holder, lease.epoch, lease.counter, lease.released]);
}

/**
 * The secondary's side of the lease: polls `lease.json` and measures, on this
 * host's monotonic clock, how long its content has stayed the same.
 */
export class LeaseWatcher {
  private readonly options: LeaseWatcherOptions;
  private readonly now: () => number;
  private running = false;
  private lease: Lease | null = null;
  private key: string | undefined;
  private changedAt: number | undefined;
  /** When the lease was last read successfully. */
  private seenAt: number | undefined;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: LeaseWatcherOptions) {
    if (!(options.pollMs > 0)) throw new RangeError(`lease pollMs must be positive, got ${options.pollMs}`);
    this.options = options;
    this.now = options.now ?? (() => performance.now());
  }

  /** Start watching: the unchanged time counts from now. Resolves after the first read (whose errors are only logged). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.changedAt = this.now();
    this.seenAt = this.changedAt;
    await this.poll();
    this.schedule();
  }

  /** Stop polling. */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The lease as last read successfully; null when there was none (or nothing could be read yet). */
  current(): Lease | null {
    return this.lease;
  }

  /**
   * For how long the lease content (holder, epoch, counter, released) has been
   * SEEN unchanged: from the read that first saw it (or start()) to the latest
   * successful read. Time without a read does not count: a process that was
   * paused (SIGSTOP, a suspended VM, a long GC) or could not read the file
   * has observed nothing, and must read again before the lease looks old.
   */
  unchangedForMs(): number {
    return this.changedAt === undefined || this.seenAt === undefined ? 0 : this.seenAt - this.changedAt;
  }

  /** Read the lease now (a primary said it released it), besides the regular polls. */
  async refresh(): Promise<void> {
    if (this.running) await this.poll();
  }

  /** True when the last lease read says its holder released it. */
  released(): boolean {
    return this.lease?.released === true;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll().then(() => this.schedule());
    }, this.options.pollMs);
  }

  /** One read; never rejects. An error observes nothing, so it never makes the lease look older. */
  private async poll(): Promise<void> {
    let lease: Lease | null;
    try {
      lease = await readLease(this.options.dir);
    } catch (err) {
      if (!this.failing) {
        this.failing = true;
        this.options.logger.warn('lease file unreadable; counting it as unchanged until it can be read', {
          file: path.join(this.options.dir, LeaseFile),
          error: messageOf(err),
        });
      }
      return;
    }
    if (this.failing) {
      this.failing = false;
      this.options.logger.info('lease file readable again', { file: path.join(this.options.dir, LeaseFile) });
    }
    const key = contentKey(lease);
    const at = this.now();
    if (key !== this.key) {
      this.key = key;
      this.changedAt = at;
    }
    this.seenAt = at;
    this.lease = lease;
  }
}
