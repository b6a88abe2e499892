/**
 * Progress bars for long commands (verify, export, download, restore): on
 * stderr, and only when stderr is a terminal, so pipes, logs and scripts see
 * none of it.
 */
import cliProgress from 'cli-progress';

/** A byte progress bar, or a silent stand-in when stderr is not a TTY. */
export interface ByteProgress {
  update(done: number, total: number): void;
  stop(): void;
}

const MiB = 1024 * 1024;

/** Start a progress bar labelled `label`, or a silent one when stderr is not a TTY. */
export function byteProgress(label: string): ByteProgress {
  if (process.stderr.isTTY !== true) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {percentage}% {value}/{total} MiB | ETA {eta_formatted}`, clearOnComplete: true, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      const totalMiB = Math.max(1, Math.ceil(total / MiB));
      if (!started) {
        bar.start(totalMiB, 0);
        started = true;
      }
      bar.setTotal(totalMiB);
      bar.update(Math.min(totalMiB, Math.ceil(done / MiB)));
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
