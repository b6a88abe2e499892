/**
 * Ending a checkpoint worker thread. It is asked to stop (a `{type: 'stop'}`
 * message: it finishes what it is doing, closes its port and ends) rather
 * than terminated: terminating a thread while it makes a zlib stream aborts
 * the whole process in Node 20 ("close before init", CompressionStream).
 * Only a thread that has not ended within StopWaitMs (a read or write hung in
 * the kernel) is terminated.
 */
import type { Worker } from 'node:worker_threads';

/** How long a stopped worker may take to end by itself before it is terminated. */
export const StopWaitMs = 10_000;

/** Ask `worker` to stop and wait until it has exited. */
export async function stopWorker(worker: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.postMessage({ type: 'stop' });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), StopWaitMs)));
  try {
    if ((await Promise.race([exited, late])) === 'late') await worker.terminate();
  } finally {
    clearTimeout(timer);
  }
}
