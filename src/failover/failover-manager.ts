/**
 * The node's role (docs/ARCHITECTURE.md "Failover protocol"): which node is the primary, and the
 * moment a secondary takes over.
 *
 * - Every start claims a new epoch before writing: `epoch-N` is created with
 *   O_EXCL, so among nodes racing for it exactly one wins, and the others
 *   follow. A configured primary that finds the lease held (not released) by
 *   another node starts as a secondary instead: that node may still serve.
 * - Primary: takes the journal (Store.promote: the old tail sealed at its last
 *   good record, a new file for the epoch), holds the lease (LeaseHolder), and
 *   installs the store's fence: no commit is acknowledged once the lease may
 *   have lapsed or a higher epoch took it. It beats over WebSocket.
 * - Secondary: follows the journal (warm standby: on every heartbeat and every
 *   `FollowMs`), connects to the primary the lease names, and promotes only when
 *   both channels say the primary is gone: no heartbeat for
 *   `heartbeatTimeoutMs` and the lease unchanged for `leaseTtlMs`, both on its
 *   own monotonic clock; or at once when the lease says released.
 * - A primary that loses its lease is fenced for good (503 on writes and on
 *   /primary); it comes back as a secondary on its next start.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { CaughtUpWithinMs, FailoverTickMs, FollowMs, FollowRetryMaxMs, LeasePollMaxMs, LeasePollMinMs, type FailoverConfig, type NodeRole } from '../config/index.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { PreloadStatus } from '../checkpoint/index.js';
import type { Store } from '../store/index.js';
import { claimEpoch, highestEpoch, readEpochClaim } from './epochs.js';
import { HeartbeatClient, HeartbeatServer, type HeartbeatTls, type StandbyInfo } from './heartbeat.js';
import { Fence } from './fence.js';
import { readLease, type Lease } from './lease-file.js';
import { LeaseHolder, prepareRenewalThread, type LeaseRenewal } from './lease-holder.js';
import { LeaseWatcher } from './lease-watcher.js';
import { ForgetTtls, MinSamples, VisibilityLag } from './visibility-lag.js';

/** Name of the cluster-wide pause mark in `FileVault/failover`: while it exists, no node promotes. */
export const PauseFile = 'paused';

/** How often a secondary reads the lease: every renewMs / 2, within LeasePollMinMs…LeasePollMaxMs. */
export function leasePollMs(config: FailoverConfig): number {
  return Math.min(LeasePollMaxMs, Math.max(LeasePollMinMs, Math.floor(config.renewMs / 2)));
}

/** What this node is now. */
export type Role = 'primary' | 'secondary' | 'fenced';

/** Options for {@link FailoverManager}. */
export interface FailoverManagerOptions {
  node: string;
  configuredRole: NodeRole;
  config: FailoverConfig;
  /** `FileVault/failover`. */
  dir: string;
  store: Store;
  server: Server;
  /** This node's API base URL, written into the lease. */
  url: () => string;
  logger: Logger;
  /** Newest checkpoint id, for heartbeats. */
  newestCheckpoint: () => number | null;
  /** Called once this node serves as primary (`promoted`: it took over from another). */
  onPrimary: (epoch: number, promoted: boolean) => Promise<void>;
  /**
   * Asked for a collection checkpoint right after a promotion (once onPrimary
   * has started the primary's duties): the new epoch's history then starts
   * from a base every standby verifies, not from the old primary's.
   */
  requestCheckpoint?: (event: 'promotion') => void;
  /** Called when this node stops serving as primary (fenced, or handed over). */
  onNotPrimary: () => Promise<void>;
  /** A store opened read-only from the newest checkpoint and the journal, for a fenced primary to rejoin with. */
  rebuild: () => Promise<Store>;
  /**
   * A lease watcher started when the process started, before the (long) load
   * of the checkpoint: a node that starts while the primary is dead counts
   * the lease's silence during its load, and so does the heartbeat's, so a
   * cold standby takes over once loaded rather than a lease TTL later.
   */
  early?: EarlyWatch;
  /** Warm standby: verifies each new checkpoint while this node follows (asked on every catch-up; works in the background). */
  preloader?: { refresh(): void; status(): PreloadStatus };
  /** How the heartbeat client verifies a primary that serves wss (`failover.tls`, the CA already read). */
  heartbeatTls?: HeartbeatTls;
  /** Called when the heartbeat endpoint refuses a wrong or missing cluster token (metrics). */
  onClusterTokenRefused?: () => void;
  /** Called after every successful lease renewal while primary, with what the renewal thread measured (metrics). */
  onLeaseRenewed?: (renewal: LeaseRenewal) => void;
  /** Secondary: called with the time between two heartbeats from the primary (metrics). */
  onHeartbeatInterval?: (ms: number) => void;
  /**
   * The FileVault's mount is known or suspected to cache (its check warned:
   * failover.allowCachedVault): lease silence is then trusted only once the
   * visibility lag has been measured under the bound.
   */
  vaultMayCache?: boolean;
  /** The FileVault as the error about its lag names it (path, file-system type, mount point). */
  vaultDescription?: string;
}

/** A secondary's view of how far it has followed (status, /standby, /readiness). */
export interface StandbyView {
  /** Read the journal to its end, without a gap, within the last {@link CaughtUpWithinMs} (or heartbeatTimeoutMs, the longer). */
  caughtUp: boolean;
  appliedSeq: number;
  /** The seq in the primary's newest heartbeat (null: none yet). */
  primarySeq: number | null;
  /** Records the primary had that this node had not applied, as of that heartbeat; null when there was none, or when the primary has been silent for heartbeatTimeoutMs (its seq now is unknown). */
  lag: number | null;
  /** No heartbeat for heartbeatTimeoutMs or more: the primary is gone, paused or cut off, so "caught up" means with the FileVault's journal only. */
  primarySilent: boolean;
  /** Since this node last read the journal to its end (null: never). */
  lastCaughtUpAgoMs: number | null;
  /** Following fails now (retried with backoff): why, how often, for how long; null while it works. */
  followError: { error: string; attempts: number; failingForMs: number } | null;
  /** Why this node refused to promote when the primary looked gone, or null. */
  promotionRefused: string | null;
  /**
   * How late this node's vault reads show the primary's writes (ms; null while
   * unknown): the lease (which gates promotion on silence), the journal (from
   * a beat until its seq was applied), the bound, and why lease silence is not
   * trusted now (null: it is).
   */
  visibilityLag: { leaseMs: number | null; journalMs: number | null; boundMs: number; distrusted: string | null } | null;
  checkpoints: PreloadStatus | null;
}

/** What status shows. */
export interface FailoverStatus {
  role: Role;
  epoch: number;
  paused: boolean;
  /** The lease as this node holds it (primary: `time` absent) or last read it. */
  lease: (Omit<Lease, 'time'> & { time?: string }) | null;
  /** Primary: its standbys. */
  standbys: StandbyInfo[];
  /** Secondary: since the last heartbeat, and since the lease last changed. */
  heartbeatSilentMs: number | null;
  leaseUnchangedMs: number | null;
  /** Primary (and fenced, until it rejoins): since its last successful lease renewal started. */
  leaseRenewedAgoMs: number | null;
  fencedBecause: string | null;
  /** Secondary: how far it has followed. */
  standby: StandbyView | null;
  /** One row per node this node knows of (`checkpointd status --cluster`): itself, and the primary's standbys or a secondary's primary. */
  members: ClusterMember[];
}

/**
 * A node of the installation as the node asked knows it, for the cluster
 * view (as `patronictl list` shows one row per member). A primary knows its
 * connected standbys from their heartbeat answers; a secondary knows the
 * primary from the lease and its heartbeats, and not the other standbys.
 */
export interface ClusterMember {
  node: string;
  url: string | null;
  role: Role | 'released';
  epoch: number | null;
  /** running (primary serving), fenced, streaming (a standby caught up), catching up, follow failing, silent (no heartbeat or answer for heartbeatTimeoutMs). */
  state: 'running' | 'fenced' | 'streaming' | 'catching up' | 'follow failing' | 'silent';
  /** Records behind the primary (0 for the primary; null: unknown). */
  lag: number | null;
  /** Since this node last heard from it over the heartbeat channel (null: itself, or never). */
  lastHeartbeatAgoMs: number | null;
  /** The newest checkpoint it could start from (null: none known). */
  newestCheckpoint: number | null;
  /** The node that answered. */
  self: boolean;
}

/** Reads the cluster token, making one (0600) when the file does not exist yet. */
export async function clusterToken(file: string): Promise<string> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `cpdc_${randomBytes(32).toString('base64url')}\n`, { flag: 'wx', mode: 0o600 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return (await fs.readFile(file, 'utf8')).trim();
}

/** A lease watcher started with the process, before its (long) checkpoint load; see FailoverManagerOptions.early. */
export interface EarlyWatch {
  watcher: LeaseWatcher;
  /** performance.now() when it started: the heartbeat's silence counts from here too. */
  startedAt: number;
}

/** Start watching the lease now, before the node loads its checkpoint; hand the result to the FailoverManager. */
export async function watchLeaseFromStart(dir: string, config: FailoverConfig, logger: Logger): Promise<EarlyWatch> {
  const early = { watcher: new LeaseWatcher({ dir, pollMs: leasePollMs(config), logger }), startedAt: performance.now() };
  await early.watcher.start();
  return early;
}

function roundOrNull(n: number | null): number | null {
  return n === null ? null : Math.round(n);
}

/** Runs the role state machine of one node. */
export class FailoverManager {
  private roleValue: Role = 'secondary';
  private epochValue = 0;
  private token = '';
  private hub: HeartbeatServer | null = null;
  private holder: LeaseHolder | null = null;
  private watcher: LeaseWatcher | null = null;
  private client: HeartbeatClient | null = null;
  private tick: NodeJS.Timeout | null = null;
  private lastFollow = 0;
  private promoting = false;
  /** After losing a claim to another node: no new attempt before this (monotonic ms), while that node takes the lease. */
  private retryNotBefore = 0;
  /** The epoch this node last lost a claim for. */
  private lostEpoch = 0;
  private stopped = false;
  private fencedBecause: string | null = null;
  /** A configured primary waiting out a lease its previous run left: its claim is a start, not a promotion. */
  private startAsPrimary = false;
  /** Promotion off (maintenance), as this node last read the pause mark. */
  private paused = false;
  /** When (monotonic ms) this node last read the journal to its end without a gap. */
  private caughtUpAt: number | null = null;
  /** The seq in the newest heartbeat from the primary. */
  private primarySeq: number | null = null;
  /** Records replayed between deciding to promote and taking over (warm standby keeps this near zero). */
  private replayedAtPromotion = 0;
  /** The one rebuild from a checkpoint in progress (a pruned or diverged journal); later triggers join it. */
  private rebuilding: Promise<void> | null = null;
  /** Following the journal fails (a read error, a record that does not apply): retried with backoff, reported. */
  private followFailure: { error: string; since: number; attempts: number; retryAt: number } | null = null;
  /** Why the last promotion attempt was refused (the FileVault shows less than the primary said it had), or null. */
  private promotionRefused: string | null = null;
  /** How late this node's vault reads show the primary's writes (measured while following). */
  private lag: VisibilityLag | null = null;
  /** Lease silence was distrusted (the vault's lag is too high or unknown on a caching mount) at the last check: logged once per spell. */
  private silenceDistrusted = false;

  constructor(private readonly options: FailoverManagerOptions) {}

  /** This node's role now. */
  get role(): Role {
    return this.roleValue;
  }

  /**
   * This node's epoch: the one it writes as primary; while following, the
   * primary's — the highest of the journal's records it applied, the lease it
   * reads and the last heartbeat (a new primary's epoch may have written no
   * record yet).
   */
  get epoch(): number {
    if (this.roleValue !== 'secondary') return this.epochValue;
    return Math.max(this.options.store.epoch, this.watcher?.current()?.epoch ?? 0, this.client?.last?.epoch ?? 0);
  }

  /** Take the configured role: claim the next epoch as primary, or follow. */
  async start(): Promise<void> {
    const { options } = this;
    // Nothing is acknowledged unless this node is the primary with a valid lease (a store that took the
    // journal but failed to take the lease, say, stays fenced).
    const fence = new Fence({ role: () => this.roleValue, holder: () => this.holder, fencedBecause: () => this.fencedBecause });
    options.store.setFence((at) => fence.reason(at));
    this.token = await clusterToken(options.config.clusterTokenFile);
    await this.readPaused();
    this.hub = new HeartbeatServer({
      server: options.server,
      token: () => this.token,
      heartbeatMs: options.config.heartbeatMs,
      logger: options.logger,
      onRefused: options.onClusterTokenRefused,
      beat: () =>
        this.roleValue === 'primary'
          ? { type: 'heartbeat', node: options.node, epoch: this.epochValue, seq: options.store.state.seq, checkpoint: options.newestCheckpoint(), leaseCounter: this.holder?.counter }
          : null,
    });
    if (options.configuredRole === 'primary') {
      const lease = await readLease(options.dir).catch(() => null);
      const highest = await highestEpoch(options.dir);
      if (lease !== null && !lease.released && lease.holder !== options.node) {
        options.logger.warn('configured as primary, but the lease is held by another node; following it (this node takes over if that one is gone)', { holder: lease.holder, epoch: lease.epoch });
      } else if ((lease?.released === true && (lease.candidate === undefined || lease.candidate === options.node)) || (lease === null && highest === 0)) {
        // Released, or a new installation (no epoch ever claimed): nobody can be serving, claim at once (still
        // conditional on the epoch read: O_EXCL lets one node have it).
        if (await this.claimNext('start as primary', (lease?.epoch ?? 0) + 1)) {
          options.early?.watcher.stop();
          return;
        }
      } else {
        // The lease names this node (its previous run died without releasing it) or cannot be read: another node may
        // have taken over since, or be about to. Wait it out like any candidate: claim once it has been seen
        // unchanged for leaseTtlMs (counted from the process start), conditional on the epoch read then.
        this.startAsPrimary = true;
        options.logger.info('configured as primary; the lease was not released: taking it once it has not changed for leaseTtlMs', { holder: lease?.holder ?? null, epoch: lease?.epoch ?? null, leaseTtlMs: options.config.leaseTtlMs });
      }
    }
    await this.follow(options.early);
  }

  /**
   * Claim `epoch` (default: the one after the highest claimed) and serve as
   * primary; false when another node claimed it first. A secondary names the
   * epoch after the one in the lease it saw go quiet, so the claim is a
   * compare-and-swap: if another node promoted meanwhile, the claim fails,
   * even if this node has not read the new lease yet.
   */
  private async claimNext(why: string, wanted?: number): Promise<boolean> {
    const { options } = this;
    const epoch = wanted ?? (await highestEpoch(options.dir)) + 1;
    const won = await claimEpoch(options.dir, { epoch, node: options.node, sealedSeq: options.store.state.seq, time: new Date().toISOString() });
    if (!won) {
      const claim = await readEpochClaim(options.dir, epoch);
      // The winner needs a moment to take the journal and the lease: do not race it for the epoch after.
      this.retryNotBefore = performance.now() + options.config.leaseTtlMs;
      this.lostEpoch = epoch;
      options.logger.info('another node claimed the next epoch first; following it', { epoch, by: claim?.node ?? 'unknown' });
      return false;
    }
    options.logger.info('epoch claimed', { epoch, why, seq: options.store.state.seq });
    try {
      await this.becomePrimary(epoch, why !== 'start as primary');
    } catch (err) {
      // The journal may already be ours: this node can neither serve nor follow any more.
      this.roleValue = 'fenced';
      this.fencedBecause = `taking over epoch ${epoch} failed (${(err as Error).message})`;
      options.logger.error('promotion failed after the epoch was claimed; this node is fenced, restart it to rejoin as a secondary', { epoch, error: (err as Error).message });
      this.roleChanged();
    }
    return true;
  }

  private async becomePrimary(epoch: number, promoted: boolean): Promise<void> {
    const { options } = this;
    this.stopFollowing();
    const started = performance.now();
    this.startAsPrimary = false;
    const sealedSeq = await options.store.promote(epoch);
    const holder = new LeaseHolder({
      dir: options.dir,
      node: options.node,
      url: options.url(),
      epoch,
      renewMs: options.config.renewMs,
      ttlMs: options.config.leaseTtlMs,
      safetyMarginMs: options.config.safetyMarginMs,
      logger: options.logger,
    });
    holder.onLost((reason) => this.fence(reason));
    if (options.onLeaseRenewed !== undefined) holder.onRenewed(options.onLeaseRenewed);
    await holder.start();
    this.holder = holder;
    this.epochValue = epoch;
    this.roleValue = 'primary';
    options.logger.info(promoted ? 'promoted to primary' : 'serving as primary', {
      epoch,
      seq: options.store.state.seq,
      sealedSeq,
      ms: Math.round(performance.now() - started),
      // Journal records this node had not applied when it decided to take over.
      replayed: promoted ? this.replayedAtPromotion : undefined,
    });
    this.roleChanged();
    await options.onPrimary(epoch, promoted);
    if (promoted) options.requestCheckpoint?.('promotion');
  }

  private fence(reason: string): void {
    if (this.roleValue !== 'primary') return;
    this.roleValue = 'fenced';
    this.fencedBecause = reason;
    this.options.logger.error('lease lost: this node no longer acknowledges commits; it rejoins as a secondary once the FileVault answers', { reason, epoch: this.epochValue });
    this.roleChanged();
    this.options.onNotPrimary().catch((err: unknown) => this.options.logger.warn('stopping the primary\'s duties failed', { error: (err as Error).message }));
    this.scheduleRejoin();
  }

  /**
   * A fenced primary rejoins as a follower as soon as the FileVault can be
   * read again: it rebuilds its state from the checkpoint and the journal
   * (what it held in memory may include records no successor kept) and then
   * follows; the follower's rules decide whether it is ever primary again.
   */
  private scheduleRejoin(): void {
    const attempt = async (): Promise<void> => {
      if (this.stopped || this.roleValue !== 'fenced') return;
      try {
        await readLease(this.options.dir);
        const fresh = await this.options.rebuild();
        this.holder?.stop();
        this.holder = null;
        await this.options.store.adopt(fresh);
        this.fencedBecause = null;
        this.options.logger.warn('rejoined as a secondary after losing the lease', { seq: this.options.store.state.seq });
        await this.follow();
      } catch (err) {
        this.options.logger.debug('cannot rejoin yet', { error: (err as Error).message });
        setTimeout(() => void attempt(), this.options.config.leaseTtlMs / 2).unref();
      }
    };
    setTimeout(() => void attempt(), this.options.config.leaseTtlMs / 2).unref();
  }

  /** Follow the primary; `early`: the watcher of the start (it has watched the lease since the process started). */
  private async follow(early?: EarlyWatch): Promise<void> {
    const { options } = this;
    this.roleValue = 'secondary';
    // Ready for a promotion: it takes the lease right after its claim, without waiting for a thread to start.
    prepareRenewalThread();
    this.lag = new VisibilityLag(VisibilityLag.boundFor(options.config), ForgetTtls * options.config.leaseTtlMs);
    this.watcher = early?.watcher ?? new LeaseWatcher({ dir: options.dir, pollMs: leasePollMs(options.config), logger: options.logger });
    await this.watcher.start();
    this.client = new HeartbeatClient({
      ...(early === undefined ? {} : { silentSince: early.startedAt }),
      node: options.node,
      url: options.url,
      token: () => this.token,
      logger: options.logger,
      ...(options.heartbeatTls === undefined ? {} : { tls: options.heartbeatTls }),
      ...(options.onHeartbeatInterval === undefined ? {} : { onInterval: options.onHeartbeatInterval }),
      // The primary released the lease: read it now and decide, rather than at the next poll.
      onHandover: (message) => {
        options.logger.info('the primary says it released the lease; reading it now', { from: message.node, to: message.to });
        void this.watcher
          ?.refresh()
          .then(() => this.check())
          .catch(() => undefined);
      },
      onBeat: async (beat) => {
        this.primarySeq = beat.seq;
        this.lag?.beat(beat.epoch, beat.leaseCounter, beat.seq);
        await this.catchUp().catch(() => undefined); // reported by catchUp; the answer says what was applied
        return { seq: options.store.state.seq, epoch: options.store.epoch, checkpoint: this.startableCheckpoint() };
      },
    });
    // Read to the journal's end at once: /standby answers from that.
    await this.catchUp().catch(() => undefined);
    options.logger.info('following the primary', { lease: this.watcher.current()?.holder ?? null, seq: options.store.state.seq });
    this.tick = setInterval(() => this.check(), FailoverTickMs);
    this.roleChanged();
  }

  /**
   * Pause (true) or resume automatic promotion for the whole installation:
   * the mark lives in the FileVault, so every secondary sees it.
   */
  async setPaused(paused: boolean, by: string): Promise<void> {
    const file = path.join(this.options.dir, PauseFile);
    if (paused) await fs.writeFile(file, JSON.stringify({ by, node: this.options.node, time: new Date().toISOString() }) + '\n');
    else await fs.rm(file, { force: true });
    this.paused = paused;
    this.options.logger.warn(paused ? 'automatic promotion paused for the installation' : 'automatic promotion resumed', { by });
  }

  private async readPaused(): Promise<void> {
    this.paused = await fs.access(path.join(this.options.dir, PauseFile)).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : this.paused),
    );
  }

  /**
   * Apply what the journal holds past this node's state. A failure (a read
   * error, a record that does not apply) is retried with backoff and reported
   * (status, /standby 503, metric) until it succeeds: the record is never
   * passed over. `force`: try now even while backing off (a promotion must
   * start from everything the vault shows). Rejects on failure.
   */
  private async catchUp(force = false): Promise<void> {
    if (this.rebuilding !== null) return this.rebuilding;
    const failure = this.followFailure;
    if (!force && failure !== null && performance.now() < failure.retryAt) return;
    this.lastFollow = performance.now();
    this.options.preloader?.refresh();
    await this.readPaused();
    let result: Awaited<ReturnType<Store['catchUp']>>;
    try {
      result = await this.options.store.catchUp();
    } catch (err) {
      this.followFailed(err as Error);
      throw err;
    }
    if (result.gap === null && result.diverged === null) {
      this.followRecovered();
      return;
    }
    this.rebuilding ??= this.rebuildFollower(result).finally(() => {
      this.rebuilding = null;
    });
    return this.rebuilding;
  }

  /**
   * Start again from the newest checkpoint that verifies: the journal this
   * node needs was pruned, or a promotion sealed it below records this node
   * applied (they were void). One at a time: later triggers join it, so at
   * most one extra state is in memory.
   */
  private async rebuildFollower(found: Awaited<ReturnType<Store['catchUp']>>): Promise<void> {
    const { options } = this;
    if (found.gap !== null) options.logger.warn('the journal this node needs was pruned before it read it; loading the newest checkpoint', found.gap);
    else options.logger.error('a promotion sealed the journal below records this node had applied (they are void); rebuilding from the newest checkpoint', found.diverged);
    try {
      await options.store.adopt(await options.rebuild());
      const after = await options.store.catchUp();
      if (after.gap !== null || after.diverged !== null) {
        options.logger.error('no checkpoint reaches the journal that is left; this node cannot follow', after.gap ?? after.diverged);
        // Thrown, not only reported: a promotion waiting on this catch-up must not go ahead over the gap.
        const err = new Error('no checkpoint reaches the journal that is left; this node cannot follow, nor take over');
        this.followFailed(err);
        throw err;
      } else {
        this.followRecovered();
      }
    } catch (err) {
      this.followFailed(err as Error);
      throw err;
    }
  }

  /** A catch-up failed: not caught up any more; retry with backoff; logged once per run of failures. */
  private followFailed(err: Error): void {
    const now = performance.now();
    const attempts = (this.followFailure?.attempts ?? 0) + 1;
    const backoffMs = Math.min(FollowRetryMaxMs, FollowMs * 2 ** Math.min(attempts - 1, 10));
    if (this.followFailure === null) {
      this.options.logger.error('following the journal failed; this standby is not caught up until it succeeds (retrying with backoff)', { error: err.message, seq: this.options.store.state.seq });
    }
    this.followFailure = { error: err.message, since: this.followFailure?.since ?? now, attempts, retryAt: now + backoffMs };
    this.caughtUpAt = null;
  }

  private followRecovered(): void {
    this.lag?.journalApplied(this.options.store.epoch, this.options.store.state.seq);
    if (this.followFailure !== null) {
      this.options.logger.info('following the journal again', { failedAttempts: this.followFailure.attempts, failedForMs: Math.round(performance.now() - this.followFailure.since), seq: this.options.store.state.seq });
      this.followFailure = null;
    }
    this.caughtUpAt = performance.now();
  }

  /**
   * A secondary that has read the journal to its end lately, through a vault
   * whose reads it trusts (what /standby and a secondary's /readiness answer).
   */
  caughtUp(): boolean {
    return (
      this.roleValue === 'secondary' &&
      this.caughtUpAt !== null &&
      performance.now() - this.caughtUpAt <= Math.max(CaughtUpWithinMs, this.options.config.heartbeatTimeoutMs) &&
      this.silenceTrustedReason() === null
    );
  }

  /**
   * Why this node may not count an unchanged lease as the primary's silence
   * now, or null when it may: its vault reads show the lease renewals later
   * than the bound (visibility-lag.ts), or the mount may cache and the lag
   * has not been measured yet.
   */
  private silenceTrustedReason(): string | null {
    const lag = this.lag;
    if (lag === null) return null;
    const ms = lag.leaseLagMs();
    if (lag.tooHigh()) return `this node's reads of the FileVault show the primary's lease renewals ${Math.round(ms!)} ms late, above the bound of ${Math.round(lag.boundMs)} ms`;
    if (this.options.vaultMayCache === true && !lag.measured) return `the FileVault mount may cache and its visibility lag has not been measured yet (fewer than ${MinSamples} of the lease renewals heartbeats announced have been timed)`;
    return null;
  }

  private standbyView(): StandbyView | null {
    if (this.roleValue !== 'secondary') return null;
    const appliedSeq = this.options.store.state.seq;
    const primarySilent = this.client === null || this.client.silentForMs() >= this.options.config.heartbeatTimeoutMs;
    return {
      caughtUp: this.caughtUp(),
      appliedSeq,
      primarySeq: this.primarySeq,
      lag: this.primarySeq === null || primarySilent ? null : Math.max(0, this.primarySeq - appliedSeq),
      primarySilent,
      lastCaughtUpAgoMs: this.caughtUpAt === null ? null : Math.round(performance.now() - this.caughtUpAt),
      followError: this.followFailure === null ? null : { error: this.followFailure.error, attempts: this.followFailure.attempts, failingForMs: Math.round(performance.now() - this.followFailure.since) },
      promotionRefused: this.promotionRefused,
      visibilityLag: this.lag === null ? null : { leaseMs: roundOrNull(this.lag.leaseLagMs()), journalMs: roundOrNull(this.lag.journalLagMs()), boundMs: Math.round(this.lag.boundMs), distrusted: this.silenceTrustedReason() },
      checkpoints: this.options.preloader?.status() ?? null,
    };
  }

  private check(): void {
    const { watcher, client, options } = this;
    if (watcher === null || client === null || this.promoting || this.stopped) return;
    const lease = watcher.current();
    client.target(lease !== null && lease.holder !== options.node && !lease.released ? lease.url : null);
    if (performance.now() - this.lastFollow >= FollowMs) this.catchUp().catch(() => undefined); // reported by catchUp
    // The pause stops promotions, not a configured primary's own start.
    if ((this.paused && !this.startAsPrimary) || performance.now() < this.retryNotBefore) return;
    const failedAt = watcher.lastFailedReadAt();
    if (failedAt !== undefined) this.lag?.leaseReadFailed(failedAt);
    const seenAt = watcher.firstSeenAt();
    if (lease !== null && seenAt !== undefined) this.lag?.leaseRead(lease.epoch, lease.counter, seenAt);
    const distrust = this.silenceTrustedReason();
    this.reportDistrust(distrust);
    const silent = client.silentForMs() >= options.config.heartbeatTimeoutMs;
    // A quiet lease held in this node's own name is one it stopped renewing itself (a switchover whose release
    // failed, a rejoin after a fence): the other standbys take it first, this node only a heartbeat timeout
    // later, should none of them do. A configured primary starting up takes its own old lease at once.
    const own = lease !== null && lease.holder === options.node && !this.startAsPrimary;
    const stale = watcher.unchangedForMs() >= options.config.leaseTtlMs + (own ? options.config.heartbeatTimeoutMs : 0) && distrust === null;
    // A lease released for a named candidate is that node's alone to take at once.
    const released = watcher.released() && lease !== null && lease.holder !== options.node && (lease.candidate === undefined || lease.candidate === options.node);
    if (!(released || (silent && stale))) return;
    this.promoting = true;
    options.logger.warn('the primary is gone; promoting', {
      released,
      heartbeatSilentMs: Math.round(client.silentForMs()),
      leaseUnchangedMs: Math.round(watcher.unchangedForMs()),
      holder: lease?.holder ?? null,
    });
    // The epoch after the quiet lease's: a claim that fails if anyone took over meanwhile. If that very
    // epoch was lost before and the lease still has not moved, its claimant died before taking the
    // lease: claim the one after it — again a compare-and-swap, so a node that claimed that one
    // meanwhile (and is still taking the journal and the lease) wins, and this node follows it.
    const next = lease === null ? undefined : lease.epoch + 1 !== this.lostEpoch ? lease.epoch + 1 : this.lostEpoch + 1;
    const seen = lease === null ? null : JSON.stringify([lease.holder, lease.epoch, lease.counter, lease.released]);
    const seqBefore = options.store.state.seq;
    this.catchUp(true)
      .then(async () => {
        if (!(await this.viewHoldsWhatPrimarySaid())) return false;
        this.replayedAtPromotion = options.store.state.seq - seqBefore;
        // One fresh read before claiming: a lease that moved meanwhile means the primary lives.
        const now = await readLease(options.dir);
        if ((now === null ? null : JSON.stringify([now.holder, now.epoch, now.counter, now.released])) !== seen) {
          options.logger.info('promotion called off: the lease moved', { holder: now?.holder ?? null, epoch: now?.epoch ?? null });
          return false;
        }
        return this.claimNext(this.startAsPrimary ? 'start as primary' : released ? 'the primary released the lease' : 'heartbeat and lease both silent', next);
      })
      .catch((err: unknown) => options.logger.error('promotion failed; still following', { error: (err as Error).message }))
      .finally(() => {
        this.promoting = false;
      });
  }

  /**
   * Never seal below what is known: the last heartbeat said the primary had
   * `primarySeq` durable, so a promotion that sealed the journal lower would
   * drop acknowledged commits. When this node's view of the FileVault shows
   * less (its client caches the folder or the file), wait for it to catch up,
   * at most leaseTtlMs; else refuse this attempt (the next tick tries again),
   * logging once why and what to change.
   */
  private async viewHoldsWhatPrimarySaid(): Promise<boolean> {
    const { options } = this;
    const known = this.primarySeq;
    if (known === null) return true;
    const deadline = performance.now() + options.config.leaseTtlMs;
    while (options.store.state.seq < known && performance.now() < deadline && !this.stopped) {
      await delay(FailoverTickMs);
      await this.catchUp(true);
    }
    const seen = options.store.state.seq;
    if (seen >= known) {
      if (this.promotionRefused !== null) options.logger.info('the FileVault now shows what the primary last reported; promotion may go ahead', { seq: seen });
      this.promotionRefused = null;
      return true;
    }
    if (this.promotionRefused === null) {
      options.logger.error('refusing to promote: the FileVault shows less of the journal than the primary reported durable; this node waits for its view to catch up', {
        primarySeq: known,
        vaultSeq: seen,
        advice: 'the FileVault mount caches directory listings or file attributes; remount it without caching (see docs/OPERATIONS.md, "FileVault mount options") — or, if the primary\'s journal is really lost, promote by hand',
      });
    }
    this.promotionRefused = `the last heartbeat said the primary had seq ${known} durable, but this node's view of the FileVault shows only seq ${seen}`;
    return false;
  }

  /** Logs once when lease silence stops being trusted, and once when it is trusted again. */
  private reportDistrust(reason: string | null): void {
    if ((reason !== null) === this.silenceDistrusted) return;
    this.silenceDistrusted = reason !== null;
    const { options } = this;
    if (reason !== null) {
      options.logger.error('lease silence is not trusted for promotion: the FileVault shows the primary\'s writes late; /standby answers 503', {
        reason,
        fileVault: options.vaultDescription ?? options.dir,
        advice: 'remount the FileVault without attribute, directory or page caching (NFS: noac,lookupcache=none; SMB: cache=none,actimeo=0; sshfs: dir_cache=no,attr_timeout=0,entry_timeout=0, no kernel_cache) — docs/OPERATIONS.md, "FileVault mount options"',
      });
    } else {
      options.logger.info('lease silence is trusted again: the FileVault shows the primary\'s writes in time', { leaseLagMs: Math.round(this.lag?.leaseLagMs() ?? 0) });
    }
  }

  private stopFollowing(): void {
    if (this.tick !== null) clearInterval(this.tick);
    this.tick = null;
    this.watcher?.stop();
    this.watcher = null;
    this.client?.close();
    this.client = null;
  }

  private roleChanged(): void {
    const command = this.options.config.onRoleChange;
    if (command === null) return;
    const role = this.roleValue;
    const child = spawn(command, [role, String(this.epoch)], { stdio: 'ignore', env: { ...process.env, CHECKPOINTD_ROLE: role, CHECKPOINTD_EPOCH: String(this.epoch) } });
    child.on('error', (err) => this.options.logger.error('failover.onRoleChange could not run', { command, error: err.message }));
    child.on('exit', (code) => {
      if (code !== 0) this.options.logger.warn('failover.onRoleChange exited with an error', { command, role, code });
    });
  }

  /**
   * Hand the primary role to a standby now (to `candidate`, or to the
   * connected standby that is furthest along): stop acknowledging, answer the
   * commits in flight, hand the journal over, release the lease naming the
   * successor (who takes it at once, without waiting for the TTL), and follow.
   */
  async switchover(candidate?: string): Promise<{ from: string; to: string }> {
    const { options } = this;
    const holder = this.holder;
    if (this.roleValue !== 'primary' || holder === null) throw new ConflictError('this node is not the primary; send the switchover to the primary (GET /api/admin/status names the lease holder)');
    const standbys = this.hub?.standbyInfo() ?? [];
    if (candidate !== undefined && !standbys.some((s) => s.node === candidate)) {
      throw new NotFoundError(`no connected standby is named ${candidate}; connected: ${standbys.map((s) => s.node).join(', ') || 'none'}`);
    }
    const to = candidate ?? [...standbys].sort((a, b) => a.lag - b.lag || a.lastAckAgoMs - b.lastAckAgoMs)[0]?.node;
    if (to === undefined) throw new ConflictError('no standby is connected to take over; start one first');
    const started = performance.now();
    options.logger.warn('switchover: handing the primary role over', { to, seq: options.store.state.seq, epoch: this.epochValue });
    this.roleValue = 'secondary'; // the fence refuses new commits from here on
    await options.onNotPrimary();
    try {
      await options.store.demote();
    } catch (err) {
      // The journal could not be handed over cleanly: stop renewing, so the lease lapses and a standby takes over
      // by the normal rules (this node must not keep the lease while it neither serves nor follows).
      holder.stop();
      this.roleValue = 'fenced';
      this.fencedBecause = `switchover failed while handing the journal over (${(err as Error).message})`;
      options.logger.error('switchover failed while handing the journal over; this node stopped renewing its lease and is fenced: a standby takes over once the lease lapses; restart this node to rejoin', { error: (err as Error).message });
      this.roleChanged();
      throw err;
    }
    try {
      await holder.release(to);
    } catch (err) {
      // The journal was handed over cleanly and renewals have stopped: follow, as after a switchover that
      // succeeded; the standby takes over once the unreleased lease lapses (leaseTtlMs) instead of at once.
      holder.stop();
      this.holder = null;
      options.logger.error('switchover: could not release the lease; this node follows as a secondary, and the standby takes over once the lease lapses (leaseTtlMs)', { to, error: (err as Error).message });
      await this.follow();
      throw err;
    }
    holder.stop();
    this.holder = null;
    this.hub?.handover(options.node, to);
    await this.follow();
    options.logger.info('switchover: handed over', { to, seq: options.store.state.seq, ms: Math.round(performance.now() - started) });
    return { from: options.node, to };
  }

  /** The newest checkpoint this node could start from: the newest it verified when it verifies them (a standby), else the newest listed. */
  private startableCheckpoint(): number | null {
    return this.options.preloader?.status().verified?.id ?? this.options.newestCheckpoint();
  }

  /** The cluster view: this node and the nodes it hears from (see ClusterMember). */
  private members(standby: StandbyView | null): ClusterMember[] {
    const { options } = this;
    const timeoutMs = options.config.heartbeatTimeoutMs;
    const self: ClusterMember = {
      node: options.node,
      url: options.url(),
      role: this.roleValue,
      epoch: this.epoch,
      state: 'running',
      lag: 0,
      lastHeartbeatAgoMs: null,
      newestCheckpoint: this.startableCheckpoint(),
      self: true,
    };
    if (this.roleValue === 'fenced') return [{ ...self, state: 'fenced', lag: null }];
    if (this.roleValue === 'primary') {
      const standbys = (this.hub?.standbyInfo() ?? []).map((s): ClusterMember => ({
        node: s.node,
        url: s.url,
        role: 'secondary',
        epoch: s.epoch,
        state: s.lastAckAgoMs >= timeoutMs ? 'silent' : s.lag === 0 ? 'streaming' : 'catching up',
        lag: s.lag,
        lastHeartbeatAgoMs: s.lastAckAgoMs,
        newestCheckpoint: s.checkpoint,
        self: false,
      }));
      return [self, ...standbys.sort((a, b) => a.node.localeCompare(b.node))];
    }
    const silentMs = this.client === null ? null : Math.round(this.client.silentForMs());
    const mine: ClusterMember = {
      ...self,
      state: (standby?.followError ?? null) !== null ? 'follow failing' : standby?.caughtUp === true ? 'streaming' : 'catching up',
      lag: standby?.lag ?? null,
      lastHeartbeatAgoMs: silentMs,
    };
    const lease = this.watcher?.current() ?? null;
    if (lease === null || lease.holder === options.node) return [mine];
    const primary: ClusterMember = {
      node: lease.holder,
      url: lease.url,
      role: lease.released ? 'released' : 'primary',
      epoch: lease.epoch,
      state: standby?.primarySilent === true ? 'silent' : 'running',
      lag: 0,
      lastHeartbeatAgoMs: silentMs,
      newestCheckpoint: this.client?.last?.checkpoint ?? null,
      self: false,
    };
    return [primary, mine];
  }

  /** Status for `GET /api/admin/status`. */
  status(): FailoverStatus {
    const renewedAgoMs = this.holder?.renewedAgoMs() ?? null;
    // A primary shows the lease it holds as it last wrote it; the others, the lease as they last read it.
    const standby = this.standbyView();
    const held = this.holder === null || this.roleValue !== 'primary' ? null : { holder: this.options.node, url: this.options.url(), epoch: this.epochValue, counter: this.holder.counter, released: false };
    return {
      role: this.roleValue,
      epoch: this.epoch,
      paused: this.paused,
      lease: held ?? this.watcher?.current() ?? null,
      standbys: this.hub?.standbyInfo() ?? [],
      heartbeatSilentMs: this.client === null ? null : Math.round(this.client.silentForMs()),
      leaseUnchangedMs: this.watcher === null ? null : Math.round(this.watcher.unchangedForMs()),
      leaseRenewedAgoMs: renewedAgoMs === null ? null : Math.round(renewedAgoMs),
      fencedBecause: this.fencedBecause,
      standby,
      members: this.members(standby),
    };
  }

  /**
   * Stop following and beating (first step of a shutdown). The heartbeat
   * connections close too (the HTTP server's close waits for them), so on a
   * clean stop the secondaries see the released lease at their next read of
   * it (every 250 ms at most), not through a handover message.
   */
  stop(): void {
    this.stopped = true;
    this.stopFollowing();
    this.hub?.close();
  }

  /** A primary releases its lease, so a secondary takes over at once. Call after the journal is closed. */
  async release(): Promise<void> {
    if (this.holder !== null && this.roleValue === 'primary') {
      await this.holder.release().catch((err: unknown) => this.options.logger.warn('could not release the lease; a secondary takes over after leaseTtlMs', { error: (err as Error).message }));
    }
    this.holder?.stop();
  }
}
