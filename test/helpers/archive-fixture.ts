/** A small checkpoint file, written by our own archive writer, for tests that damage it. */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { verifyCheckpointArchive, writeCheckpointArchive, type SpaceSource } from '../../src/checkpoint/archive/index.js';

/** Paths and content of the fixture's entries. */
export const FixtureStore = 'space/test/store/objects.ndjson';
export const FixtureIndex = 'space/test/index/type.idx';
export const FixtureLines = Buffer.from('{"key":"k1","value":{"type":"Part"}}\n{"key":"k2","value":{"type":"Doc"}}\n');

/** Checkpoint 3 of one space `test` (two objects, one index) in `dir`, stored or deflated (level 6); its path. */
export async function smallCheckpoint(dir: string, method: 'store' | 'deflate'): Promise<string> {
  const target = path.join(dir, `Checkpoint-000000003-${method}`);
  const spaces: SpaceSource[] = [
    { id: 'test', template: { name: 'plm', version: '1.0' }, objects: 2, createdSeq: 1, updatedSeq: 9, files: [{ path: FixtureStore, chunks: () => [FixtureLines] }, { path: FixtureIndex, chunks: () => ['Doc k2\nPart k1\n'] }] },
  ];
  const header = { id: 3, scope: 'space' as const, description: '', time: '2024-03-04T05:06:07.0000000Z', trigger: 'manual', node: 'n', epoch: 1, seq: 9 };
  await writeCheckpointArchive(target, header, null, spaces, { compression: method === 'store' ? { method } : { method, level: 6 } });
  return target;
}

/** Flip each byte at offsets first, first + step, first + 2·step, … of the fixture, stored and deflated, and expect verification to refuse each (a failure names the byte). */
export async function expectFlipsRefused(dir: string, step: number, first = 0): Promise<void> {
  for (const method of ['store', 'deflate'] as const) {
    const original = await fs.readFile(await smallCheckpoint(dir, method));
    const f = path.join(dir, `flip-${method}`);
    for (let i = first; i < original.length; i += step) {
      const bytes = Buffer.from(original);
      bytes[i] = bytes[i]! ^ 0xff;
      await fs.writeFile(f, bytes);
      const verdict = await verifyCheckpointArchive(f);
      expect(verdict.ok, `${method}: byte ${i} of ${original.length} flipped`).to.equal(false);
    }
  }
}
