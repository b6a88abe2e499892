/**
 * Pieces every benchmark uses: a seeded PRNG and the vocabulary of the
 * generated objects (so that runs compare), scrambled keys, latency
 * percentiles, number formatting, and a full garbage collection between steps.
 */
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DefaultStoreCacheSize, parseSize } from '../src/config/index.js';
import { silentLogger } from '../src/log/index.js';
import { Engine } from '../src/store/index.js';

export const MiB = 1024 * 1024;

/** mulberry32: a small seeded PRNG, so that runs compare (the tests' own, test/helpers/random.ts). */
export { seededRandom as prng } from '../test/helpers/random.js';

export const Types = ['Part', 'Part', 'Part', 'Assembly', 'Document', 'Drawing', 'ChangeOrder', 'Material'];
export const States = ['draft', 'in-review', 'released', 'released', 'obsolete'];
export const Words = ['bracket', 'housing', 'shaft', 'flange', 'gasket', 'spring', 'bearing', 'cover', 'plate', 'bolt', 'washer', 'clip', 'valve', 'sensor', 'cable', 'frame'];
export const Materials = ['steel', 'aluminium', 'ABS', 'brass', 'PA66', 'stainless', 'copper', 'PTFE'];

/** Key number `i` of a space, scrambled (an odd multiplier is a bijection mod 2^32) so that puts do not arrive in key order. */
export function keyOf(i: number): string {
  return `P-${(Math.imul(i + 1, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0')}`;
}

/** Seconds since `since` (a performance.now()), for progress lines. */
export function elapsed(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

/** Count, median, 99th percentile and maximum of a set of latencies. */
export interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function stats(values: number[]): Stats {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

// A full collection between steps, so that no step pays for the garbage of the one before.
v8.setFlagsFromString('--expose-gc');
export const collectGarbage = runInNewContext('gc') as () => void;

let engines = 0;

/** A new storage engine under `root` (the daemon's default cache, store.cacheSize), for a Store the bench opens. */
export function benchEngine(root: string): Engine {
  return Engine.open({ dir: path.join(root, `engine-${++engines}`), cacheBytes: parseSize(DefaultStoreCacheSize, 'store.cacheSize'), logger: silentLogger() });
}
