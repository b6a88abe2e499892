/**
 * A restore reports how far it has read its checkpoint (Checkpointer.restoring,
 * shown as data.checkpoints.restoring by GET /api/admin/status, which
 * `checkpointd checkpoint restore` polls for its progress bar). Real store,
 * journal, catalogue and checkpoint file.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Catalogue, Checkpointer, type RestoreProgress } from '../../src/checkpoint/index.js';
import { silentLogger } from '../../src/log/index.js';
import { Store } from '../../src/store/index.js';
import { commit, create, load, put } from '../helpers/store-ops.js';
import { tempEngine } from '../helpers/engine.js';

describe('restore progress (Checkpointer.restoring)', function () {
  let dir: string;
  let store: Store;
  let checkpointer: Checkpointer;

  beforeEach(async () => {
    dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-restore-progress-')));
    const logger = silentLogger();
    store = await Store.open({ journalDir: path.join(dir, 'journal'), sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger, engine: tempEngine(dir) });
    await store.commit(load('plm', '1.0', ['type']));
    await store.commit(create('s'));
    await store.commit(commit('s', ...Array.from({ length: 2000 }, (_, i) => put(`k${i}`, { type: i % 2 === 0 ? 'Part' : 'Doc', i, pad: 'x'.repeat(100) }))));
    const catalogue = new Catalogue(path.join(dir, 'checkpoint'), logger);
    await catalogue.init();
    checkpointer = new Checkpointer({ catalogue, store, logger, node: 'n', compression: { method: 'deflate', level: 1 }, installation: randomUUID(), scratchDir: dir });
  });
  afterEach(async () => {
    await store.close();
    store.engine.close();
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  /** Every non-null `restoring` seen between turns of the event loop until `run` settles (the restore reads its file in steps). */
  async function watch(run: Promise<unknown>): Promise<{ seen: RestoreProgress[]; failed: boolean }> {
    const seen: RestoreProgress[] = [];
    let settled = false;
    const outcome = run.then(() => false, () => true).finally(() => (settled = true));
    while (!settled) {
      const now = checkpointer.restoring;
      if (now !== null) seen.push(now);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { seen, failed: await outcome };
  }

  it('reports the checkpoint id and bytes read out of the total while it reads, and nothing before or after', async () => {
    const entry = await checkpointer.create({ scope: 'space', spaceId: 's', description: '', trigger: 'manual' });
    expect(checkpointer.restoring).to.equal(null);
    const { seen, failed } = await watch(checkpointer.restore(entry.id, 's'));
    expect(failed).to.equal(false);
    expect(seen.length, 'no progress was seen during the restore').to.be.greaterThan(0);
    const uncompressed = entry.manifest.spaces[0]!.files.reduce((sum, f) => sum + f.size, 0);
    for (const p of seen) {
      expect(p.id).to.equal(entry.id);
      expect(p.doneBytes).to.be.at.most(p.totalBytes);
    }
    expect(seen.at(-1)!.totalBytes).to.equal(uncompressed);
    expect(seen.some((p) => p.doneBytes > 0), 'progress never moved past 0').to.equal(true);
    expect(checkpointer.restoring).to.equal(null);
  });

  it('clears the progress when a restore fails while reading', async () => {
    const entry = await checkpointer.create({ scope: 'space', spaceId: 's', description: '', trigger: 'manual' });
    // Damage the space's objects (not the manifest): the restore starts, reads, and refuses.
    const bytes = await fs.readFile(entry.file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await fs.writeFile(entry.file, bytes);
    // A node that first sees the file damaged (a catalogue that saw it whole calls it changed and never reads it).
    const fresh = new Catalogue(path.join(dir, 'checkpoint'), silentLogger());
    await fresh.init();
    checkpointer = new Checkpointer({ catalogue: fresh, store, logger: silentLogger(), node: 'n', compression: { method: 'deflate', level: 1 }, installation: randomUUID(), scratchDir: dir });
    const { seen, failed } = await watch(checkpointer.restore(entry.id, 's'));
    expect(failed).to.equal(true);
    expect(seen.length, 'the restore failed before it started reading').to.be.greaterThan(0);
    expect(checkpointer.restoring).to.equal(null);
  });
});
