/**
 * The generated collection the checkpoint and failover benchmarks share:
 * objects of about 200 bytes of JSON from a seeded PRNG, so that every run
 * holds the same bytes.
 */
import type { Json, Store } from '../src/store/index.js';
import { elapsed, keyOf, Materials, prng, States, Types, Words } from './shared.js';

/** Puts per loading transaction. */
export const PutsPerLoad = 1000;
/** Loading transactions in flight. */
export const LoadsInFlight = 4;

/** An object of about 200 bytes of JSON: strings, numbers, an array and a nested object. */
export function makeValue(rand: () => number, owners: number): Json {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)]!;
  const day = 1 + Math.floor(rand() * 28);
  return {
    type: pick(Types),
    owner: `user-${String(Math.floor(rand() * owners)).padStart(6, '0')}`,
    name: `${pick(Words)} ${pick(Words)} ${Math.floor(rand() * 1000)}`,
    rev: `${String.fromCharCode(65 + Math.floor(rand() * 6))}.${Math.floor(rand() * 9)}`,
    state: pick(States),
    qty: Math.floor(rand() * 500),
    mass: Math.round(rand() * 1e6) / 1000,
    dims: { w: Math.round(rand() * 5000) / 10, h: Math.round(rand() * 5000) / 10, d: Math.round(rand() * 500) / 10, unit: 'mm' },
    material: pick(Materials),
    updated: `2026-${String(1 + Math.floor(rand() * 12)).padStart(2, '0')}-${String(day).padStart(2, '0')}T${String(Math.floor(rand() * 24)).padStart(2, '0')}:${String(Math.floor(rand() * 60)).padStart(2, '0')}:00Z`,
  };
}

/** Bytes one object adds to a checkpoint: its store line, and its key in both index files (plus a share of an owner line). */
function checkpointBytesOf(key: string, text: string): number {
  return `{"key":"${key}","value":${text}}\n`.length + 2 * (key.length + 3) + 12;
}

/** Load about `targetBytes` of objects (as a checkpoint counts them) into `spaces` (template plm 1.0 indexing type and owner), in transactions of PutsPerLoad puts, a few in flight; how many objects. */
export async function loadDataset(store: Store, options: { targetBytes: number; spaces: readonly string[]; started: number }): Promise<number> {
  const { spaces: Spaces, targetBytes: TargetBytes, started } = options;
  await store.commit({ type: 'template.load', template: { name: 'plm', version: '1.0', indexes: ['type', 'owner'] } });
  for (const id of Spaces) await store.commit({ type: 'space.create', id, template: { name: 'plm', version: '1.0' } });
  // Size the spaces from a sample: the same generator, so the same mean.
  const sample = prng(7);
  let sampleBytes = 0;
  for (let i = 0; i < 1000; i++) sampleBytes += checkpointBytesOf(keyOf(i), JSON.stringify(makeValue(sample, 1e6)));
  const perSpace = Math.max(1000, Math.round(TargetBytes / (sampleBytes / 1000) / Spaces.length));
  const owners = Math.max(10, Math.floor(perSpace / 4));
  let objects = 0;
  for (const [s, space] of Spaces.entries()) {
    const rand = prng(1000 + s);
    const queue: Promise<unknown>[] = [];
    for (let from = 0; from < perSpace; from += PutsPerLoad) {
      const ops = [];
      for (let i = from; i < Math.min(from + PutsPerLoad, perSpace); i++) ops.push({ op: 'put' as const, key: keyOf(i), value: makeValue(rand, owners) });
      queue.push(store.commit({ type: 'commit', space, ops }));
      if (queue.length >= LoadsInFlight) await queue.shift();
    }
    await Promise.all(queue);
    objects += perSpace;
    console.log(`  loaded space ${space}: ${perSpace} objects (${elapsed(started)})`);
  }
  return objects;
}

