/**
 * Progress bars for long commands (verify, export, download, restore): on
 * stderr, and only when stderr is a terminal, so pipes, logs and scripts see
 * none of it.
 *
 * cli-progress draws the bar (redraws, cursor, clearing it at the end); the
 * line itself is ours ({@link progressLine}). Its own ETA token printed
 * "INF" or "NULL" cut to two characters ("ETA NFs") whenever the rate was 0 or
 * unknown; ours says `--` until there is a rate to estimate from. A bar's
 * total is set once, by the first report that knows it, and never moves.
 */
import cliProgress from 'cli-progress';
import { formatBytes } from './format.js';

/** A byte progress bar, or a silent stand-in when the stream is not a TTY. */
export interface ByteProgress {
  /**
   * `done` bytes out of `total`. The first call with a total above 0 starts
   * the bar and fixes its total; a later call's total is ignored, and `done`
   * is held within it. Calls before then draw nothing.
   */
  update(done: number, total: number): void;
  /** Draw the bar full: at its own total, or at `total` when no report had started it (work shorter than one report). */
  finish(total: number): void;
  stop(): void;
}

/** Where a bar is drawn: process.stderr, or in tests a stream that says it is a TTY. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** Cells in the bar between the brackets. */
const BarCells = 30;
/** ETA shown while the time left cannot be estimated (no byte yet, or no time passed). */
export const UnknownEta = '--';

/** Seconds left as a person reads them: `7s`, `3m05s`, `2h07m`, `>99h`; {@link UnknownEta} for an unknown, infinite or negative value. */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return UnknownEta;
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 100 * 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return '>99h';
}

/** One frame of a bar: bytes done out of a total (null: not known yet), and the pace since the bar started. */
export interface ProgressFrame {
  done: number;
  total: number | null;
  /** Bytes already done when the bar started (a resumed download): not counted in the rate. */
  startDone: number;
  /** Milliseconds since the bar started. */
  elapsedMs: number;
}

/** Bytes a second since the bar started, or null while there is nothing to measure. */
function rateOf(frame: ProgressFrame): number | null {
  const moved = frame.done - frame.startDone;
  if (!(frame.elapsedMs > 0) || !(moved > 0)) return null;
  const rate = moved / (frame.elapsedMs / 1000);
  return Number.isFinite(rate) ? rate : null;
}

/** `label [████░░░░] 42% 12.0 MiB of 28.5 MiB | 3.1 MiB/s | ETA 5s`: every figure finite, or `?`/`--` when unknown. */
export function progressLine(label: string, frame: ProgressFrame, cells = BarCells): string {
  const total = frame.total !== null && Number.isFinite(frame.total) && frame.total > 0 ? frame.total : null;
  const done = Number.isFinite(frame.done) && frame.done > 0 ? frame.done : 0;
  const fraction = total === null ? null : Math.min(1, done / total);
  const filled = fraction === null ? 0 : Math.floor(fraction * cells);
  const bar = '\u2588'.repeat(filled) + '\u2591'.repeat(cells - filled);
  const percentage = fraction === null ? '?%' : `${Math.floor(fraction * 100)}%`;
  const rate = rateOf({ ...frame, done });
  let eta: string;
  if (fraction === 1) eta = formatEta(0);
  else if (total === null || rate === null) eta = UnknownEta;
  else eta = formatEta((total - done) / rate);
  const of = total === null ? '?' : formatBytes(total);
  return `${label} [${bar}] ${percentage} ${formatBytes(done)} of ${of} | ${rate === null ? UnknownEta : formatBytes(Math.round(rate))}/s | ETA ${eta}`;
}

/** Start a progress bar labelled `label` on `stream` (stderr), or a silent one when it is not a TTY. */
export function byteProgress(label: string, stream: ProgressStream = process.stderr): ByteProgress {
  if (stream.isTTY !== true) return { update: () => undefined, finish: () => undefined, stop: () => undefined };
  let total: number | null = null;
  let startDone = 0;
  let startedAt = 0;
  const bar = new cliProgress.SingleBar({
    stream,
    // Our own line from the bytes done (cli-progress's value); the total and the clock are ours.
    format: (_options, params) => progressLine(label, { done: params.value, total, startDone, elapsedMs: performance.now() - startedAt }),
    clearOnComplete: true,
    hideCursor: true,
  });
  const update = (done: number, reported: number): void => {
    if (total === null) {
      if (!(reported > 0)) return;
      total = reported;
      startDone = Math.min(Math.max(0, done), total);
      startedAt = performance.now();
      bar.start(total, startDone);
    }
    bar.update(Math.min(Math.max(0, done), total));
  };
  return {
    update,
    finish(fallback) {
      update(total ?? fallback, total ?? fallback);
    },
    stop() {
      if (total !== null) bar.stop();
    },
  };
}
