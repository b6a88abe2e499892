/**
 * One reading of both clocks, taken together: the instant a decision is made
 * at. The lease's validity is a question about an instant ("was the last
 * renewal recent enough at this moment?"), and an answer given to a client
 * (a health check's 200) names the instant it holds for, so that an answer
 * delayed in flight — written just before the process was paused, delivered
 * when it woke — can be told apart from one decided late.
 */

/** Both clocks at one moment. */
export interface Instant {
  /** CLOCK_MONOTONIC in nanoseconds: the same in every thread of the process; it stops while the host is suspended. */
  ns: bigint;
  /** The wall clock in milliseconds since the epoch. */
  wallMs: number;
}

/** Now on the monotonic clock, in nanoseconds. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** Now, on both clocks. */
export function instantNow(): Instant {
  return { ns: monotonicNs(), wallMs: Date.now() };
}
