/**
 * Long pauses of the process, measured and logged with their likely cause.
 *
 * A timer on the main thread ticks every `tickMs`; a tick that comes more
 * than `thresholdMs` late is a pause of the main event loop. Its cause is
 * told apart by what else moved meanwhile:
 * - the wall clock ran ahead of the monotonic clock: the host (or VM) was
 *   suspended — the monotonic clock stops then, the wall clock does not;
 * - garbage collection (V8's `gc` performance entries) took most of it;
 * - the process used far less CPU than the pause lasted: it was not running
 *   at all (SIGSTOP, CPU throttling by a cgroup, swapping);
 * - otherwise the main thread was busy with synchronous work.
 * The lease renewals run on their own thread and do not stop for the first
 * two kinds on the main thread (lease-holder.ts); a pause of the whole
 * process stops them too, which is why it must be visible in the log.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { PauseThresholdMs, PauseTickMs } from '../config/index.js';
import type { Logger } from './logger.js';

/** What a pause was most likely caused by. */
export type PauseCause = 'host suspended' | 'garbage collection' | 'process not running' | 'main thread busy';

/** One long pause. */
export interface Pause {
  /** How long the main event loop did not run (past the tick it expected). */
  ms: number;
  cause: PauseCause;
  /** Garbage collection within the pause. */
  gcMs: number;
  /** CPU the whole process used during the pause (all threads). */
  cpuMs: number;
}

/** Options for {@link PauseMonitor}. */
export interface PauseMonitorOptions {
  logger: Logger;
  /** A pause at least this long is logged (at warn) and reported; PauseThresholdMs by default. */
  thresholdMs?: number;
  /** How often the timer ticks; PauseTickMs by default. */
  tickMs?: number;
  /** Called with every pause at least `thresholdMs` long (for a metric). */
  onPause?: (pause: Pause) => void;
}

/** How long garbage-collection entries are kept to be matched with a pause. */
const GcHistoryMs = 60_000;

/** Watches the main event loop for long pauses (see the top of this file). */
export class PauseMonitor {
  private readonly thresholdMs: number;
  private readonly tickMs: number;
  private timer: NodeJS.Timeout | undefined;
  private observer: PerformanceObserver | undefined;
  /** Recent garbage collections: [start, end] on performance.now()'s timeline. */
  private gcs: Array<[number, number]> = [];
  private lastMono = 0;
  private lastWall = 0;
  private lastCpu = process.cpuUsage();

  constructor(private readonly options: PauseMonitorOptions) {
    this.thresholdMs = options.thresholdMs ?? PauseThresholdMs;
    this.tickMs = options.tickMs ?? PauseTickMs;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) this.gcs.push([entry.startTime, entry.startTime + entry.duration]);
    });
    this.observer.observe({ entryTypes: ['gc'] });
    this.lastMono = performance.now();
    this.lastWall = Date.now();
    this.lastCpu = process.cpuUsage();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.observer?.disconnect();
    this.observer = undefined;
  }

  private tick(): void {
    const mono = performance.now();
    const wall = Date.now();
    const cpu = process.cpuUsage();
    const from = this.lastMono;
    const pausedMs = mono - from - this.tickMs;
    const suspendedMs = wall - this.lastWall - (mono - from);
    const cpuMs = (cpu.user - this.lastCpu.user + cpu.system - this.lastCpu.system) / 1000;
    this.lastMono = mono;
    this.lastWall = wall;
    this.lastCpu = cpu;
    if (pausedMs < this.thresholdMs && suspendedMs < this.thresholdMs) return;
    // A collection that caused the pause is reported to the observer after it: look once that report has come in.
    setImmediate(() => this.report(from, mono, Math.max(pausedMs, suspendedMs), suspendedMs, cpuMs));
  }

  private report(from: number, to: number, ms: number, suspendedMs: number, cpuMs: number): void {
    this.gcs = this.gcs.filter(([, end]) => end > to - GcHistoryMs);
    let gcMs = 0;
    for (const [start, end] of this.gcs) gcMs += Math.max(0, Math.min(end, to) - Math.max(start, from));
    let cause: PauseCause;
    if (suspendedMs >= this.thresholdMs) cause = 'host suspended';
    else if (gcMs >= ms / 2) cause = 'garbage collection';
    else if (cpuMs < ms / 4) cause = 'process not running';
    else cause = 'main thread busy';
    const pause: Pause = { ms: Math.round(ms), cause, gcMs: Math.round(gcMs), cpuMs: Math.round(cpuMs) };
    this.options.logger.warn('the process paused', { pausedMs: pause.ms, cause, gcMs: pause.gcMs, cpuMs: pause.cpuMs, hint: hints[cause] });
    this.options.onPause?.(pause);
  }
}

const hints: Record<PauseCause, string> = {
  'host suspended': 'the host or VM was suspended: the lease lapses meanwhile and a secondary may take over, as it should',
  'garbage collection': 'a large heap collected: lease renewals run on their own thread and go on; consider a smaller collection per node or more memory',
  'process not running': 'the process was stopped (SIGSTOP), throttled (cgroup CPU quota) or swapped out: nothing ran, lease renewals included',
  'main thread busy': 'synchronous work held the main thread: requests waited; lease renewals run on their own thread and go on',
};

