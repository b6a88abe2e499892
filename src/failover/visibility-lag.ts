/**
 * The FileVault's visibility lag, as a secondary measures it: how long its own
 * reads of the vault take to show what the primary has written.
 *
 * Each heartbeat carries the lease counter the primary last wrote (the file
 * held it before the beat was sent) and the seq it last made durable. The
 * secondary notes when each beat arrived; when its lease reads first show
 * that counter (or a later one of the same epoch), the time since the beat is
 * one sample of the lag. A vault with no client cache shows it at once (the
 * sample is about a read interval, often 0: the read came before the beat); a
 * mount that caches attributes or pages shows it seconds later. While a beat's
 * counter is not seen yet, its age is a lower bound of the lag, so a cache that
 * hides every renewal is caught before any sample completes. The journal gets
 * the same treatment (the beat's seq against the seq applied), reported
 * apart: applying records also takes time, so it informs and does not gate.
 *
 * Every counter a beat announced gives one sample, including the counters a
 * cached read skipped (a read that shows counter 40 after 30 s of counter 1
 * times beats 2..40 at once, 30 s down to 0 s), and the estimate is the median
 * of the last {@link Samples} of them: keeping only the newest few would keep
 * the smallest of such a batch, and a few reads that happened to be fresh (a
 * cold cache at start-up) would outvote a cache that hides most renewals. A
 * lag counts as measured only after {@link MinSamples} samples: a standby that
 * has watched its vault for one renewal has not seen its cache expire yet.
 *
 * A lease read that fails observes nothing: beats that arrived before it are
 * dropped untimed (their samples would time the outage, not the cache). A beat
 * whose counter the vault has not shown after `forgetMs` of successful reads
 * proves a lag of at least that much: it replaces the samples with that lower
 * bound (well above the bound of the rules) rather than vanishing, which would
 * leave the samples of happier times in charge. A lag above the bound is forgotten after `forgetMs` without news (no beat, no
 * sample: a primary that died sends none), so it cannot block a failover for
 * good: the lag is then unknown again, and the mount decides. A lag under the
 * bound is kept: it is what a dead primary's standby last knew of its vault.
 *
 * Why it matters (fence.ts, rule 5): a secondary counts the lease as silent
 * when its content has not changed for leaseTtlMs. If its reads lag by L, a
 * primary that renewed every renewMs looks silent L earlier than it is; above
 * (leaseTtlMs - renewMs - safetyMarginMs) / 2 that margin is gone.
 */

/** Samples kept (one per announced counter); the estimate is their median, so one late timer does not count as a lagging vault. */
const Samples = 256;
/** Samples needed before the lag counts as measured. */
export const MinSamples = 9;
/** What is measured is forgotten after this many lease TTLs without news. */
export const ForgetTtls = 4;
/** Beats remembered while their counter (or seq) has not been seen yet. */
const PendingBeats = 256;

interface Pending {
  /** The lease counter, or the journal seq, the beat announced. */
  value: number;
  epoch: number;
  at: number;
}

/** One kind of position (lease counter or journal seq): beats waiting to be seen, and samples. */
class Track {
  private pending: Pending[] = [];
  private samples: { ms: number; at: number }[] = [];

  constructor(private readonly forgetMs: number) {}

  /** Reads failed at `at`: the beats that arrived before cannot be timed. */
  failed(at: number): void {
    this.pending = this.pending.filter((p) => p.at > at);
  }

  /** A beat at `at` announced `value` in `epoch`. */
  announced(value: number, epoch: number, at: number): void {
    if (this.pending.length > 0 && this.pending.at(-1)!.epoch !== epoch) this.pending = [];
    if (this.pending.length > 0 && this.pending.at(-1)!.value >= value) return;
    this.pending.push({ value, epoch, at });
    if (this.pending.length > PendingBeats) this.pending.shift();
  }

  /** The vault showed `value` in `epoch` at `at`: every beat it satisfies gives a sample. */
  seen(value: number, epoch: number, at: number): void {
    while (this.pending.length > 0 && this.pending[0]!.epoch === epoch && this.pending[0]!.value <= value) {
      this.samples.push({ ms: Math.max(0, at - this.pending.shift()!.at), at });
      if (this.samples.length > Samples) this.samples.shift();
    }
  }

  /** The lag in ms: the samples' median, or the oldest unseen beat's age if larger; null before any sample or pending beat. */
  value(now: number): number | null {
    this.forget(now);
    const oldest = this.pending[0];
    const waiting = oldest === undefined ? null : now - oldest.at;
    if (this.samples.length === 0) return waiting;
    const sorted = this.samples.map((s) => s.ms).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    return waiting === null ? median : Math.max(median, waiting);
  }

  /** True once {@link MinSamples} samples exist (and were not forgotten). */
  get measured(): boolean {
    return this.samples.length >= MinSamples;
  }

  /** Forget everything (a lag above the bound, without news for forgetMs). */
  clear(): void {
    this.pending = [];
    this.samples = [];
  }

  /** When (monotonic ms) the last beat arrived or the last sample completed; -Infinity before any. */
  newsAt(): number {
    return Math.max(this.pending.at(-1)?.at ?? Number.NEGATIVE_INFINITY, this.samples.at(-1)?.at ?? Number.NEGATIVE_INFINITY);
  }

  /**
   * Beats unseen for forgetMs are dropped (their age would otherwise grow for
   * ever once beats stop), and what they proved stays: a lag of at least their
   * age, which replaces the samples.
   */
  private forget(now: number): void {
    const unseen: { ms: number; at: number }[] = [];
    while (this.pending.length > 0 && now - this.pending[0]!.at > this.forgetMs) unseen.push({ ms: now - this.pending.shift()!.at, at: now });
    if (unseen.length > 0) this.samples = unseen.slice(-Samples);
  }
}

/** A secondary's estimate of how late its vault reads show the primary's writes. */
export class VisibilityLag {
  private readonly lease: Track;
  private readonly journal: Track;

  constructor(
    /** Above this the margin of the lease rules is gone: (leaseTtlMs - renewMs - safetyMarginMs) / 2. */
    readonly boundMs: number,
    /** A lag above the bound is forgotten after this long without news (ForgetTtls lease TTLs in the daemon). */
    private readonly forgetMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.lease = new Track(forgetMs);
    this.journal = new Track(forgetMs);
  }

  /** The bound for these failover timings. */
  static boundFor(timing: { leaseTtlMs: number; renewMs: number; safetyMarginMs: number }): number {
    return Math.max(0, (timing.leaseTtlMs - timing.renewMs - timing.safetyMarginMs) / 2);
  }

  /** A heartbeat arrived: the primary of `epoch` had written lease counter `counter` (if it said) and made `seq` durable. */
  beat(epoch: number, counter: number | undefined, seq: number): void {
    const at = this.now();
    if (counter !== undefined) this.lease.announced(counter, epoch, at);
    this.journal.announced(seq, epoch, at);
  }

  /** A lease read failed at `at` (monotonic ms). */
  leaseReadFailed(at: number): void {
    this.lease.failed(at);
  }

  /** A lease read showed `counter` in `epoch`, first seen at `seenAt` (monotonic ms). */
  leaseRead(epoch: number, counter: number, seenAt: number): void {
    this.lease.seen(counter, epoch, seenAt);
  }

  /** This node has applied the journal up to `seq`, whose record was written in `epoch`. */
  journalApplied(epoch: number, seq: number): void {
    this.journal.seen(seq, epoch, this.now());
  }

  /** The lease's visibility lag in ms, or null while unknown. */
  leaseLagMs(): number | null {
    const now = this.now();
    const lag = this.lease.value(now);
    if (lag !== null && lag > this.boundMs && now - this.lease.newsAt() > this.forgetMs) {
      this.lease.clear();
      return null;
    }
    return lag;
  }

  /** The journal's lag in ms (from a beat until this node applied its seq), or null while unknown. */
  journalLagMs(): number | null {
    return this.journal.value(this.now());
  }

  /** True while a measured lease lag is known. */
  get measured(): boolean {
    this.leaseLagMs(); // forgets a high one without news
    return this.lease.measured;
  }

  /** True when the lease lag is known to be above the bound. */
  tooHigh(): boolean {
    const lag = this.leaseLagMs();
    return lag !== null && lag > this.boundMs;
  }
}
