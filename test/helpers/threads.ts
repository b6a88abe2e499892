/** The threads of this process, as the kernel counts them (Linux). */
import { readFileSync } from 'node:fs';

/** How many threads this process has now: a worker thread adds one while it runs. */
export function threadCount(): number {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}
