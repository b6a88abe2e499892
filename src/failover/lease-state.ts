/**
 * What the lease holder's two threads share (lease-holder.ts): the holder's
 * state and the start of its last successful renewal, in a SharedArrayBuffer,
 * so that the main thread answers "is the lease valid now?" from memory at
 * once, whatever its own event loop or the renewal thread is doing.
 *
 * Both threads may end the lease, by a compare-and-swap from Holding to Lost:
 * the renewal thread when it finds a newer claim or a renewal that finished
 * too late, the main thread when validity runs out while a renewal hangs.
 * Lost and Stopped are final. A renewal is recorded only while Holding, start
 * and wall clock one after the other: a reader that sees one new and one old
 * value computes an age too large, never too small.
 */
import { instantNow, monotonicNs, type Instant } from '../clock.js';

/** Where a lease holder is in its life. */
export const HolderState = { Idle: 0, Holding: 1, Lost: 2, Stopped: 3 } as const;
export type HolderStateValue = (typeof HolderState)[keyof typeof HolderState];

/** Int32 slots, then BigInt64 slots from byte 16. */
const StateSlot = 0;
const FailuresSlot = 1;
const CounterSlot = 2;
const StartSlot = 0;
const WallSlot = 1;
const MainAliveSlot = 2;
const Bytes = 16 + 3 * 8;

/** The lease holder's shared state (see the top of this file). */
export class SharedLeaseState {
  private readonly ints: Int32Array;
  private readonly times: BigInt64Array;

  /** A new, idle state to hand to the renewal thread. */
  static create(): SharedLeaseState {
    return new SharedLeaseState(new SharedArrayBuffer(Bytes));
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.ints = new Int32Array(buffer, 0, 4);
    this.times = new BigInt64Array(buffer, 16, 3);
    this.mainAlive();
  }

  /** The main thread ran (its timer fired) now. */
  mainAlive(nowNs = monotonicNs()): void {
    Atomics.store(this.times, MainAliveSlot, nowNs);
  }

  /** Milliseconds since the main thread last ran its timer. */
  mainSilentMs(nowNs = monotonicNs()): number {
    return Number(nowNs - Atomics.load(this.times, MainAliveSlot)) / 1e6;
  }

  get state(): HolderStateValue {
    return Atomics.load(this.ints, StateSlot) as HolderStateValue;
  }

  /** Move from `from` to `to`; false when the state was not `from` (the other thread moved first). */
  transition(from: HolderStateValue, to: HolderStateValue): boolean {
    return Atomics.compareExchange(this.ints, StateSlot, from, to) === from;
  }

  /** Stop renewing: Idle or Holding → Stopped (Lost stays Lost). Either thread may call it. */
  stop(): void {
    this.transition(HolderState.Holding, HolderState.Stopped);
    this.transition(HolderState.Idle, HolderState.Stopped);
  }

  /** Counter of the last successful write (0 before the first). */
  get counter(): number {
    return Atomics.load(this.ints, CounterSlot);
  }

  /** Renewals failed in a row since the last success. */
  get failures(): number {
    return Atomics.load(this.ints, FailuresSlot);
  }

  set failures(n: number) {
    Atomics.store(this.ints, FailuresSlot, n);
  }

  /** A write that started at `startNs` (monotonic) and `wallMs` (wall clock) succeeded with `counter`. */
  recordRenewal(startNs: bigint, wallMs: number, counter: number): void {
    Atomics.store(this.times, StartSlot, startNs);
    Atomics.store(this.times, WallSlot, BigInt(Math.floor(wallMs)));
    Atomics.store(this.ints, CounterSlot, counter);
  }

  /**
   * Milliseconds since the last successful write started, or null before the
   * first: the larger of the monotonic and the wall-clock spans. The
   * monotonic clock stops while the host is suspended and the wall clock does
   * not, so a primary resumed after a suspend never acts on a lease that
   * lapsed meanwhile (a wall clock stepped forward can only fence it early,
   * which is safe).
   */
  ageMs(at: Instant = instantNow()): number | null {
    if (Atomics.load(this.ints, CounterSlot) === 0) return null;
    const start = Atomics.load(this.times, StartSlot);
    const wall = Number(Atomics.load(this.times, WallSlot));
    return Math.max(Number(at.ns - start) / 1e6, at.wallMs - wall);
  }
}
