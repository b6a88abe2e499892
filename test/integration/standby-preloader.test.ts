/**
 * A standby verifies each new checkpoint in the background (StandbyPreloader). A checkpoint the primary
 * deletes while the standby reads it is shrunk under the read (Catalogue.remove renames it away, then gives
 * it back a slice at a time): that is a delete, not damage, and must not be reported as a checkpoint that
 * does not verify. Real store, checkpoint file and catalogue; the delete runs in another process, as the
 * primary's would.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Catalogue, Checkpointer, loadStartBase, StandbyPreloader } from '../../src/checkpoint/index.js';
import { silentLogger } from '../../src/log/index.js';
import { Store } from '../../src/store/index.js';
import { commit, create, load, put } from '../helpers/store-ops.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { descriptorOf } from '../helpers/descriptor.js';
import type { LogLine } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';
import { tempEngine } from '../helpers/engine.js';

const RemoveScript = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../helpers/remove-checkpoint.ts');

/** Whether this process holds `file` open (/proc/self/fd). */
function openHere(file: string): boolean {
  try {
    descriptorOf(file);
    return true;
  } catch {
    return false;
  }
}

/** The next line `child` prints, which must be `expected`. */
function lineFrom(child: ChildProcess, expected: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += String(chunk);
      if (!text.includes('\n')) return;
      child.stdout!.off('data', onData);
      if (text.trim() === expected) resolve();
      else reject(new Error(`the remover said ${JSON.stringify(text)}, not ${expected}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the remover exited (${code}) before saying ${expected}`)));
  });
}

describe('standby pre-loading (StandbyPreloader)', function () {
  this.timeout(60_000);
  let dir: string;
  let store: Store;
  let checkpointer: Checkpointer;
  const installation = randomUUID();

  beforeEach(async () => {
    dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-preload-')));
    const logger = silentLogger();
    store = await Store.open({ journalDir: path.join(dir, 'journal'), sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger, engine: tempEngine(dir) });
    await store.commit(load('plm', '1.0', []));
    await store.commit(create('s'));
    await store.commit(commit('s', put('k', { pad: randomBytes(1024).toString('base64') })));
    const catalogue = new Catalogue(path.join(dir, 'checkpoint'), logger);
    await catalogue.init();
    checkpointer = new Checkpointer({ catalogue, store, logger, node: 'primary', compression: { method: 'store' }, installation, scratchDir: dir });
  });
  afterEach(async () => {
    await store.close();
    store.engine.close();
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  it('verifies a new checkpoint and reports it pre-loaded', async () => {
    const entry = await checkpointer.create({ scope: 'collection', description: '', trigger: 'manual' });
    const { preloader, lines } = standby();
    preloader.refresh();
    await waitFor(() => preloader.status().verified, { what: 'the checkpoint to be verified', timeoutMs: 30_000 });
    expect(preloader.status()).to.deep.include({ damaged: [] });
    expect(preloader.status().verified).to.deep.include({ id: entry.id, seq: entry.manifest.seq, bytes: entry.size });
    expect(lines.map((l) => l.message)).to.include('checkpoint pre-loaded (verified on this standby)');
  });

  it('takes the checkpoint start-up loaded as verified (not read again) and verifies the next one; lists manifests without hashing a file', async () => {
    const first = await checkpointer.create({ scope: 'collection', description: '', trigger: 'manual' });
    const { logger, lines } = captureLogger();
    const catalogue = new Catalogue(path.join(dir, 'checkpoint'), logger);
    const listed = await catalogue.manifests();
    expect(listed.map((e) => [e.id, e.manifest.seq, e.size])).to.deep.equal([[first.id, first.manifest.seq, first.size]]);
    expect(lines.filter((l) => l.message === 'checkpoint file hashed'), 'manifests() hashes nothing').to.deep.equal([]);
    const preloader = new StandbyPreloader({ catalogue, installation, logger, intervalMs: 0, loaded: { id: first.id, seq: first.manifest.seq, bytes: first.size, ms: 5 } });
    expect(preloader.status().verified).to.deep.include({ id: first.id, seq: first.manifest.seq, bytes: first.size, ms: 5 });
    preloader.refresh();
    await preloader.settled();
    expect(lines.filter((l) => l.message === 'checkpoint file hashed' || l.message.startsWith('checkpoint pre-loaded')), 'a pass reads nothing it has seen, and hashes nothing').to.deep.equal([]);
    await store.commit(commit('s', put('k2', { n: 2 })));
    const second = await checkpointer.create({ scope: 'collection', description: '', trigger: 'manual' });
    await waitFor(
      () => {
        preloader.refresh(); // at once when the pass before has ended
        return preloader.status().verified?.id === second.id;
      },
      { what: 'the next checkpoint to be verified', timeoutMs: 30_000 },
    );
    expect(lines.filter((l) => l.message === 'checkpoint pre-loaded (verified on this standby)').map((l) => l.id), 'the loaded one is not read again').to.deep.equal([second.id]);
  });

  it('start-up finds a file copied over a checkpoint this node has seen changed (hashing just that one), and hashes none on a new data folder', async () => {
    const first = await checkpointer.create({ scope: 'collection', description: '', trigger: 'manual' });
    await store.commit(commit('s', put('k2', { n: 2 })));
    const second = await checkpointer.create({ scope: 'collection', description: '', trigger: 'manual' });
    const cache = path.join(dir, 'hashes.json');
    const seen = new Catalogue(path.join(dir, 'checkpoint'), silentLogger(), cache);
    await seen.init();
    await seen.list(); // this node has seen both: their hashes are in its cache
    await fs.copyFile(second.file, first.file);
    const { logger, lines } = captureLogger();
    const restarted = new Catalogue(path.join(dir, 'checkpoint'), logger, cache);
    await restarted.init();
    // Start-up takes the newest good one; the copy has the same seq as the original of the newest, so it would be
    // picked first (higher id on equal seq) were it not found changed.
    await fs.rm(second.file);
    const engine = tempEngine(dir);
    try {
      expect(await loadStartBase(restarted, installation, null, logger, engine)).to.equal(null);
      expect([...restarted.changed.keys()]).to.deep.equal([first.id]);
      expect(lines.filter((l) => l.message === 'checkpoint file hashed').map((l) => l.id), 'only the file that changed is hashed').to.deep.equal([first.id]);
      const fresh = new Catalogue(path.join(dir, 'checkpoint'), logger, path.join(dir, 'no-cache.json'));
      await fresh.init();
      const base = await loadStartBase(fresh, installation, null, logger, engine);
      expect(base?.entry.id, 'a new data folder cannot tell: it loads the copy (which verifies)').to.equal(first.id);
      expect(lines.filter((l) => l.message === 'checkpoint file hashed'), 'and hashes nothing to start').to.have.length(1);
    } finally {
      engine.close();
    }
  });

  it('takes a checkpoint the primary deletes while it is being verified for deleted, not damaged: no error, nothing marked', async () => {
    // About 96 MiB, so that verifying it takes a while: random text does not compress, and is checked byte by byte.
    for (let c = 0; c < 8; c++) {
      await store.commit(commit('s', ...Array.from({ length: 12 }, (_, i) => put(`k${c}-${i}`, { pad: randomBytes(768 * 1024).toString('base64') }))));
    }
    const entry = await checkpointer.create({ scope: 'collection', description: '', trigger: 'manual' });
    const catalogue = new Catalogue(path.join(dir, 'checkpoint'), silentLogger());
    // Listed once already, as a standby's catalogue would be: the pass's only open of the file is then its verification.
    expect((await catalogue.list()).map((e) => e.id)).to.deep.equal([entry.id]);
    const { preloader, lines } = standby(catalogue);
    const remover = spawn(process.execPath, ['--import', 'tsx', RemoveScript, path.join(dir, 'checkpoint'), String(entry.id)], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await lineFrom(remover, 'ready');
      preloader.refresh();
      await waitFor(() => openHere(entry.file), { what: 'the standby to open the checkpoint', timeoutMs: 10_000, intervalMs: 0 });
      const removed = lineFrom(remover, 'removed');
      remover.stdin.write('go\n');
      await removed;
      await waitFor(() => lines.some((l) => l.message.startsWith('a checkpoint was deleted') || l.level === 'error' || l.message.startsWith('checkpoint pre-loaded')), { what: 'the pass to end', timeoutMs: 30_000 });
      expect(lines.filter((l) => l.level === 'error' || l.level === 'warn')).to.deep.equal([]);
      expect(preloader.status()).to.deep.equal({ verified: null, damaged: [] });
      expect(lines.map((l) => [l.message, l.id])).to.deep.include(['a checkpoint was deleted while this standby verified it; skipped', entry.id]);
    } finally {
      remover.kill('SIGKILL');
    }
  });

  function standby(catalogue = new Catalogue(path.join(dir, 'checkpoint'), silentLogger())): { preloader: StandbyPreloader; lines: LogLine[] } {
    const { logger, lines } = captureLogger();
    return { preloader: new StandbyPreloader({ catalogue, installation, logger, intervalMs: 0 }), lines };
  }

});
