/**
 * The secondary's side of the lease (fence.ts states the whole protocol): it
 * never compares `time` (another host's wall clock) with its own. It polls the
 * file and measures, on its own monotonic clock, how long the content
 * (holder, epoch, counter, released) has stayed the same. A read error
 * observes nothing, so it can only make the secondary wait longer, never
 * promote sooner.
 */
import path from 'node:path';
import type { Logger } from '../log/index.js';
import { LeaseFile, messageOf, readLease, type Lease } from './lease-file.js';

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
  private failedAt: number | undefined;
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

  /** When (monotonic ms) a read of the lease last failed; undefined if none has. */
  lastFailedReadAt(): number | undefined {
    return this.failedAt;
  }

  /** When (monotonic ms) the current lease content was first read; undefined before start(). */
  firstSeenAt(): number | undefined {
    return this.changedAt;
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
      this.failedAt = this.now();
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
