import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os'; import path from 'node:path';
import { silentLogger } from '../../src/log/index.js';
import { Engine } from '../../src/store/index.js';
import { commit, create, load, put } from '../../test/helpers/store-ops.js';
const dir = mkdtempSync(path.join(os.tmpdir(), 'cpd-lk-'));
const engine = Engine.open({ dir, cacheBytes: 256 << 20, logger: silentLogger() });
let seq = 0;
engine.apply([{ op: load('plm', '1.0', ['type', 'owner']), seq: ++seq }, ...['a','b','c','d'].map((s) => ({ op: create(s, 'plm', '1.0'), seq: ++seq }))]);
const key = (i: number) => `P-${(Math.imul(i + 1, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0')}`;
const val = (i: number) => ({ type: `t${i % 8}`, owner: `o${i % 1000}`, pad: 'x'.repeat(150) });
let n = 0;
const N = Number(process.env.PRELOAD ?? 400);
for (let b = 0; b < N; b++) { await new Promise((r) => setImmediate(r)); engine.apply(Array.from({ length: 1000 }, () => { n++; return { op: commit('abcd'[n % 4]!, put(key(n), val(n))), seq: ++seq }; })); }
for (const size of [60, 250, 1000, 60, 250, 1000]) {
  const total = 30000; let t = 0;
  for (let done = 0; done < total; done += size) {
    const recs = Array.from({ length: size }, () => { n++; return { op: commit('abcd'[n % 4]!, put(key(n), val(n))), seq: ++seq }; });
    const s = performance.now(); engine.apply(recs); t += performance.now() - s; await new Promise((r) => setImmediate(r));
  }
  console.log('batch', size, 'µs/record', (t * 1000 / total).toFixed(1));
}
engine.close(); rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
