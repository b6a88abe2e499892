/** Finding this process's own descriptors, the way an operator would: /proc/self/fd. */
import { readdirSync, readlinkSync } from 'node:fs';

/** The descriptor number this process holds open on `file` (a resolved path). */
export function descriptorOf(file: string): number {
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === file) return Number(name);
    } catch {
      // The descriptor readdir itself used is gone by now.
    }
  }
  throw new Error(`no open descriptor on ${file}`);
}
