/** Finding this process's own descriptors, the way an operator would: /proc/self/fd. */
import { closeSync, openSync, readdirSync, readlinkSync } from 'node:fs';

/** This process's descriptors: number and the resolved path each is open on. */
function descriptors(): [number, string][] {
  return readdirSync('/proc/self/fd').flatMap((name): [number, string][] => {
    try {
      return [[Number(name), readlinkSync(`/proc/self/fd/${name}`)]];
    } catch {
      return []; // the descriptor readdir itself used is gone by now
    }
  });
}

/** The descriptor number this process holds open on `file` (a resolved path). */
export function descriptorOf(file: string): number {
  const found = descriptors().find(([, target]) => target === file);
  if (found === undefined) throw new Error(`no open descriptor on ${file}`);
  return found[0];
}

/** How many descriptors of this process are open on `file` (a resolved path). */
export function descriptorsOn(file: string): number {
  return descriptors().filter(([, target]) => target === file).length;
}

/** The resolved paths this process holds open under folder `dir`, once per descriptor. */
export function openUnder(dir: string): string[] {
  return descriptors().flatMap(([, target]) => (target.startsWith(`${dir}/`) ? [target] : []));
}

/**
 * Make every write to `file` through this process's descriptor fail with
 * EBADF, as if the descriptor were gone, without leaving its number free: the
 * descriptor is closed and /dev/null opened read-only at that number (opens
 * take the lowest free number, so lower free ones are filled first, then
 * given back). Merely closing it would let the next open anywhere in this
 * process (a worker thread reading a package.json, say) take the number,
 * which the owner's own close, or its FileHandle's garbage collection, would
 * then close under that other reader (Node aborts when its internal close
 * fails). The owner's close now closes /dev/null.
 */
export function breakDescriptor(file: string): void {
  const fd = descriptorOf(file);
  closeSync(fd);
  const fillers: number[] = [];
  try {
    for (;;) {
      const placeholder = openSync('/dev/null', 'r');
      if (placeholder === fd) return;
      fillers.push(placeholder);
      if (placeholder > fd) throw new Error(`descriptor ${fd} was taken by another open before /dev/null could take its place; run the test again`);
    }
  } finally {
    for (const filler of fillers) closeSync(filler);
  }
}
