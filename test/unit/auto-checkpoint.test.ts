/**
 * Automatic checkpoints in-process, on a real store, journal, checkpointer and
 * FileVault in a temp folder: coalescing, retention and journal pruning,
 * starting from a checkpoint, and a disk-full fault injected at the
 * file-system layer (node:fs), for machines where no small file system can be
 * mounted (test/integration/auto-checkpoint.test.ts mounts a real one).
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Catalogue, Checkpointer, loadStartBase, planRetention, type CatalogueEntry } from '../../src/checkpoint/index.js';
import type { CheckpointConfig } from '../../src/config/index.js';
import { listJournalFiles } from '../../src/journal/index.js';
import { silentLogger } from '../../src/log/index.js';
import { Store } from '../../src/store/index.js';
import { AutoCheckpointer } from '../../src/triggers/index.js';
import { installationId, VaultPaths } from '../../src/vault/index.js';
import { commit, create, load, put } from '../helpers/store-ops.js';
import { waitFor } from '../helpers/wait-for.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { tempEngine } from '../helpers/engine.js';

const quiet: CheckpointConfig = {
  compression: { method: 'store' },
  directWrites: true,
  maxDiskRate: null,
  journalThreshold: null,
  watch: { usePolling: false, intervalMs: 1000 },
  events: { 'space-created': false, 'space-upgraded': false, 'template-loaded': false, 'restore-done': false, promotion: false, 'clean-shutdown': false, 'crash-recovery': false },
  schedule: null,
  coalesceMs: 50,
  retention: { keepLast: 100, keepWithinMs: null },
  retry: { minMs: 20, maxMs: 80 },
};

interface Rig {
  vault: VaultPaths;
  store: Store;
  catalogue: Catalogue;
  checkpointer: Checkpointer;
  auto: AutoCheckpointer;
  installation: string;
}

async function rig(root: string, config: Partial<CheckpointConfig> = {}, logger = silentLogger()): Promise<Rig> {
  const vault = new VaultPaths(root);
  await vault.ensure();
  const installation = await installationId(vault.root);
  const catalogue = new Catalogue(vault.checkpoint, logger);
  await catalogue.init();
  const journalFirstSeq = (await listJournalFiles(vault.journal))[0]?.firstSeq ?? null;
  const engine = tempEngine(root);
  await loadStartBase(catalogue, installation, journalFirstSeq, logger, engine);
  const store = await Store.open({ journalDir: vault.journal, sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger, engine });
  const checkpointer = new Checkpointer({ catalogue, store, logger, node: 'unit', compression: { method: 'store' }, installation, scratchDir: root });
  const auto = new AutoCheckpointer({ checkpointer, store, config: { ...quiet, ...config }, journalDir: vault.journal, logger });
  await auto.start();
  return { vault, store, catalogue, checkpointer, auto, installation };
}

async function close(r: Rig): Promise<void> {
  await r.auto.stop();
  await r.store.close();
}

async function seed(store: Store, objects = 20): Promise<void> {
  await store.commit(load('plm', '1.0', ['kind']));
  await store.commit(create('s1'));
  for (let from = 0; from < objects; from += 500) {
    const puts = Array.from({ length: Math.min(500, objects - from) }, (_, i) => put(`k${from + i}`, { kind: 'part', n: from + i, text: 'x'.repeat(200) }));
    await store.commit(commit('s1', ...puts));
  }
}

const triggers = (entries: CatalogueEntry[]): string[] => entries.map((e) => e.manifest.trigger);

describe('automatic checkpoints (in-process)', function () {
  this.timeout(20_000);
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-auto-'));
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true, maxRetries: 10 });
  });

  it('turns a burst of 100 triggers into one checkpoint, and triggers during it into exactly one more', async () => {
    const { logger, lines } = captureLogger();
    const r = await rig(root, { coalesceMs: 100 }, logger);
    try {
      await seed(r.store, 20_000);
      for (let i = 0; i < 100; i++) r.auto.fire(i % 2 === 0 ? 'schedule' : 'event:space-created');
      await waitFor(() => r.auto.status().state === 'running', { what: 'the coalesced checkpoint to start', intervalMs: 1 });
      // While it runs: another burst books exactly one more.
      for (let i = 0; i < 100; i++) r.auto.fire('journal-threshold');
      expect(r.auto.status().state, 'the burst arrived while the first checkpoint ran').to.equal('running');
      // A commit after the first checkpoint's snapshot, so that the second has something new to hold.
      await waitFor(() => lines.some((l) => l.message === 'checkpoint started'), { what: 'the first checkpoint to hold its snapshot', intervalMs: 1 });
      await r.store.commit(commit('s1', put('during', { kind: 'late' })));
      await waitFor(async () => (await r.catalogue.list()).length === 2 && r.auto.status().state === 'idle', { what: `the second checkpoint ${JSON.stringify(r.auto.status())}` });
      const entries = await r.catalogue.list();
      expect(triggers(entries)).to.deep.equal(['schedule', 'journal-threshold']);
      expect(entries[0]!.manifest.description).to.equal('automatic (schedule, event:space-created)');
      expect(entries[1]!.manifest.seq).to.equal(r.store.state.seq);
    } finally {
      await close(r);
    }
  });

  it('lets a manual checkpoint wait its turn and return its own', async () => {
    const r = await rig(root, { coalesceMs: 0 });
    try {
      await seed(r.store);
      r.auto.fire('schedule');
      // Once the coalescing wait is over, the automatic checkpoint holds (or has held) the checkpointer's lock.
      await waitFor(() => r.auto.status().state !== 'waiting', { what: 'the automatic checkpoint to start', intervalMs: 1 });
      const manual = await r.checkpointer.create({ scope: 'collection', trigger: 'manual', description: 'by hand' });
      expect(manual.manifest.trigger).to.equal('manual');
      expect(triggers(await r.catalogue.list())).to.deep.equal(['schedule', 'manual']);
    } finally {
      await close(r);
    }
  });

  it('skips an automatic checkpoint when nothing changed since the newest one', async () => {
    const r = await rig(root, { coalesceMs: 0 });
    try {
      await seed(r.store);
      await r.checkpointer.create({ scope: 'collection', trigger: 'manual', description: '' });
      r.auto.fire('schedule');
      await waitFor(() => r.auto.status().state === 'idle', { what: 'the trigger to be handled' });
      expect(triggers(await r.catalogue.list())).to.deep.equal(['manual']);
    } finally {
      await close(r);
    }
  });

  it('prunes automatic checkpoints past keepLast and the journal before the oldest kept, and starts again from a checkpoint', async () => {
    const r = await rig(root, { coalesceMs: 0, retention: { keepLast: 2, keepWithinMs: null } });
    let expected;
    try {
      await seed(r.store);
      const space = await r.checkpointer.create({ scope: 'space', spaceId: 's1', trigger: 'manual', description: 'space by hand' });
      for (let round = 0; round < 5; round++) {
        await r.store.commit(commit('s1', put(`round${round}`, { kind: 'round', round })));
        const before = (await r.catalogue.list()).length;
        r.auto.fire('schedule');
        await waitFor(async () => r.auto.status().state === 'idle' && (await r.catalogue.list()).some((e) => e.manifest.seq === r.store.state.seq), { what: `round ${round}'s checkpoint` });
        expect((await r.catalogue.list()).length).to.be.at.most(Math.max(before + 1, 3));
      }
      const entries = await r.catalogue.list();
      expect(entries.map((e) => e.id)).to.include(space.id);
      const automatic = entries.filter((e) => e.manifest.trigger === 'schedule');
      expect(automatic).to.have.length(2);
      const oldestKept = Math.min(...automatic.map((e) => e.manifest.seq));
      const journal = await r.store.journalFiles();
      expect(journal[0]!.firstSeq, 'journal before the oldest kept checkpoint is gone').to.be.above(1);
      expect(journal[0]!.firstSeq).to.be.at.most(oldestKept + 1);
      // The newest base cannot go by hand: nothing else reaches the pruned journal... unless another kept one does.
      await r.checkpointer.delete(automatic[1]!.id);
      let refusal = '';
      await r.checkpointer.delete(automatic[0]!.id).catch((err: Error) => (refusal = err.message));
      expect(refusal).to.include('the only checkpoint a restart can start from');
      await r.store.commit(commit('s1', put('after', { kind: 'after' })));
      expected = r.store.state;
    } finally {
      await close(r);
    }
    const again = await rig(root);
    try {
      expect(again.store.recovery.baseSeq).to.be.above(0);
      expect(again.store.state.seq).to.equal(expected.seq);
      expect(again.store.state.space('s1')!.objectCount).to.equal(expected.space('s1')!.objectCount);
      expect(again.store.state.getObject('s1', 'after')).to.deep.equal({ kind: 'after' });
    } finally {
      await close(again);
    }
  });

  it('keeps every checkpoint a restore in unchecked older journal files could name, and prunes again once they check clean', async () => {
    const first = await rig(root, { coalesceMs: 0 });
    const round = async (r: Rig, n: number): Promise<void> => {
      await r.store.commit(commit('s1', put(`round${n}`, { kind: 'round', n })));
      r.auto.fire('schedule');
      await waitFor(async () => r.auto.status().state === 'idle' && (await r.catalogue.list()).some((e) => e.manifest.seq === r.store.state.seq), { what: `round ${n}'s checkpoint` });
    };
    try {
      await seed(first.store);
      for (let n = 0; n < 3; n++) await round(first, n);
    } finally {
      await close(first);
    }
    const oldest = path.join(first.vault.journal, (await fs.readdir(first.vault.journal)).filter((n) => n.endsWith('.log')).sort()[0]!);
    const good = await fs.readFile(oldest);
    const bad = Buffer.from(good);
    bad[10]! ^= 0x20;
    await fs.writeFile(oldest, bad);

    const r = await rig(root, { coalesceMs: 0, retention: { keepLast: 1, keepWithinMs: null } });
    try {
      await r.store.olderJournal.done;
      expect(r.store.olderJournal.status().state).to.equal('damaged');
      const automatic = async (): Promise<number> => (await r.catalogue.list()).filter((e) => e.manifest.trigger === 'schedule').length;
      await round(r, 3);
      expect(await automatic(), 'none pruned past keepLast 1 while the older files are damaged').to.equal(4);
      expect((await r.store.journalFiles())[0]!.path).to.equal(oldest);
      // A good copy back: the next retention run checks again and still keeps those (the check has not finished) but
      // prunes round 3's, made after the older files; the run after that prunes them too.
      const old = (await r.catalogue.list()).filter((e) => e.manifest.seq < r.store.olderJournal.uncheckedBelow).map((e) => e.id);
      expect(old).to.have.length(3);
      await fs.writeFile(oldest, good);
      await round(r, 4);
      expect((await r.catalogue.list()).map((e) => e.id)).to.include.members(old).and.have.length(4);
      await r.store.olderJournal.done;
      expect(r.store.olderJournal.status().state).to.equal('verified');
      await round(r, 5);
      expect(await automatic()).to.equal(1);
      expect((await r.store.journalFiles())[0]!.path, 'the journal before the one kept is pruned').to.not.equal(oldest);
    } finally {
      await close(r);
    }
  });

  it('starts from a checkpoint when pruning left only an empty journal file after it, and goes on at the next seq', async () => {
    const r = await rig(root, { coalesceMs: 0, retention: { keepLast: 1, keepWithinMs: null } });
    let seq: number;
    try {
      await seed(r.store);
      seq = r.store.state.seq;
      r.auto.fire('schedule');
      await waitFor(async () => r.auto.status().state === 'idle' && (await r.catalogue.list()).length === 1, { what: 'the checkpoint' });
      await waitFor(async () => (await r.store.journalFiles()).length === 1, { what: 'the journal before it to be pruned' });
    } finally {
      await close(r);
    }
    const files = await fs.readdir(path.join(root, 'journal'));
    expect(files).to.deep.equal([`journal-${String(seq + 1).padStart(9, '0')}-000000001.log`]);
    expect((await fs.stat(path.join(root, 'journal', files[0]!))).size, 'nothing written after the checkpoint').to.equal(0);
    const again = await rig(root);
    try {
      expect(again.store.recovery.baseSeq).to.equal(seq);
      expect((await again.store.commit(commit('s1', put('next', { kind: 'next' })))).seq).to.equal(seq + 1);
    } finally {
      await close(again);
    }
  });

  it('refuses to start when the journal was pruned and no checkpoint of this installation covers it', async () => {
    const r = await rig(root, { coalesceMs: 0, retention: { keepLast: 1, keepWithinMs: null } });
    try {
      await seed(r.store);
      for (let round = 0; round < 2; round++) {
        await r.store.commit(commit('s1', put(`r${round}`, { kind: 'r' })));
        r.auto.fire('schedule');
        await waitFor(async () => (await r.catalogue.list()).some((e) => e.manifest.seq === r.store.state.seq), { what: 'a checkpoint' });
        await waitFor(() => r.auto.status().state === 'idle', { what: 'retention' });
      }
    } finally {
      await close(r);
    }
    for (const name of await fs.readdir(path.join(root, 'checkpoint'))) if (name.startsWith('Checkpoint-')) await fs.rm(path.join(root, 'checkpoint', name));
    let error = '';
    await rig(root).catch((err: Error) => (error = err.message));
    expect(error).to.match(/the journal starts at seq \d+: the records before it were pruned behind a checkpoint, and no valid collection checkpoint of this installation/);
  });

  it('survives a disk-full fault (injected at node:fs, ENOSPC): temp file gone, earlier checkpoints kept, retried with backoff, shown in status', async () => {
    const r = await rig(root, { coalesceMs: 0, retry: { minMs: 30, maxMs: 120 } });
    const realOpen = fs.open;
    let full = true;
    try {
      await seed(r.store, 50);
      const first = await r.checkpointer.create({ scope: 'collection', trigger: 'manual', description: 'before the disk filled' });
      await r.store.commit(commit('s1', put('more', { kind: 'more' })));
      // Every write to a checkpoint temp file fails with ENOSPC while `full` holds, as a full disk would:
      // the temp file is created as usual, but the writer gets a descriptor of /dev/full (the writes
      // happen in a worker thread, through the descriptor, so the kernel's own ENOSPC is the fault).
      fs.open = (async (...args: Parameters<typeof fs.open>) => {
        const handle = await realOpen(...args);
        if (!full || !String(args[0]).includes(`${path.sep}checkpoint${path.sep}.tmp-Checkpoint-`)) return handle;
        await handle.close();
        return realOpen('/dev/full', 'r+');
      });
      syncBuiltinESMExports();
      r.auto.fire('schedule');
      await waitFor(() => (r.auto.status().lastFailure?.attempts ?? 0) >= 3, { what: 'three failed attempts' });
      const failure = r.auto.status().lastFailure!;
      expect(failure.error).to.include('ENOSPC');
      expect(failure.triggers).to.deep.equal(['schedule']);
      expect(Date.parse(failure.retryAt)).to.be.above(Date.parse(failure.time));
      const names = await fs.readdir(r.vault.checkpoint);
      expect(names.filter((n) => n.startsWith('.tmp-')), 'no temp file left').to.have.length(0);
      expect((await r.catalogue.list()).map((e) => e.id)).to.deep.equal([first.id]);
      full = false;
      await waitFor(async () => r.auto.status().lastFailure === null && (await r.catalogue.list()).length === 2, { what: 'the retry to succeed once space is back' });
      expect((await r.catalogue.list())[1]!.manifest.seq).to.equal(r.store.state.seq);
    } finally {
      fs.open = realOpen;
      syncBuiltinESMExports();
      await close(r);
    }
  });

  it('survives the FileVault going away (checkpoint folder removed) and resumes when it is back', async () => {
    const r = await rig(root, { coalesceMs: 0, retry: { minMs: 30, maxMs: 60 } });
    try {
      await seed(r.store, 50);
      const first = await r.checkpointer.create({ scope: 'collection', trigger: 'manual', description: '' });
      await r.store.commit(commit('s1', put('more', { kind: 'more' })));
      const away = `${r.vault.checkpoint}.away`;
      await fs.rename(r.vault.checkpoint, away);
      r.auto.fire('schedule');
      await waitFor(() => (r.auto.status().lastFailure?.attempts ?? 0) >= 2, { what: 'two failed attempts' });
      expect(r.auto.status().lastFailure!.error).to.include('ENOENT');
      expect(r.auto.status().state).to.equal('retrying');
      await fs.rename(away, r.vault.checkpoint);
      await waitFor(async () => r.auto.status().lastFailure === null && (await r.catalogue.list()).length === 2, { what: 'the retry to succeed' });
      expect((await r.catalogue.list()).map((e) => e.id)[0]).to.equal(first.id);
    } finally {
      await close(r);
    }
  });
});

describe('retention plan', () => {
  const installation = '00000000-0000-4000-8000-000000000001';
  const day = 86_400_000;
  const now = Date.parse('2026-11-24T12:00:00Z');
  const entry = (id: number, trigger: string, ageDays: number, scope: 'collection' | 'space' = 'collection', own = true): CatalogueEntry =>
    ({
      id,
      file: `Checkpoint-${id}`,
      size: 1,
      sha256: '0'.repeat(64),
      manifest: { id, scope, trigger, seq: id * 10, time: new Date(now - ageDays * day).toISOString(), ...(own ? { installation } : {}) },
    }) as unknown as CatalogueEntry;

  it('keeps the newest keepLast automatic ones, manual, space and foreign ones, and says where the journal must start', () => {
    const entries = [entry(1, 'manual', 9), entry(2, 'schedule', 8), entry(3, 'journal-threshold', 7), entry(4, 'manual', 6, 'space'), entry(5, 'schedule', 5, 'collection', false), entry(6, 'schedule', 4), entry(7, 'schedule', 3)];
    const plan = planRetention(entries, { keepLast: 2, keepWithinMs: null }, installation, new Set(), now);
    expect(plan.remove.map((e) => e.id)).to.deep.equal([2, 3]);
    expect(plan.journalNeededAfter, 'the manual collection checkpoint 1 is kept, so the journal reaches back to it').to.equal(10);
    const withoutManual = planRetention(entries.filter((e) => e.id !== 1), { keepLast: 2, keepWithinMs: null }, installation, new Set(), now);
    expect(withoutManual.journalNeededAfter).to.equal(60);
  });

  it('keeps anything younger than keepWithin, and anything a journaled restore needs', () => {
    const entries = [entry(1, 'schedule', 10), entry(2, 'schedule', 6), entry(3, 'schedule', 2), entry(4, 'schedule', 1)];
    expect(planRetention(entries, { keepLast: 1, keepWithinMs: 7 * day }, installation, new Set(), now).remove.map((e) => e.id)).to.deep.equal([1]);
    expect(planRetention(entries, { keepLast: 1, keepWithinMs: null }, installation, new Set([2]), now).remove.map((e) => e.id)).to.deep.equal([1, 3]);
  });

  it('never removes the newest collection checkpoint, even past keepLast with a manual one newer', () => {
    const entries = [entry(1, 'schedule', 3), entry(2, 'schedule', 2), entry(3, 'manual', 1)];
    const plan = planRetention(entries, { keepLast: 1, keepWithinMs: null }, installation, new Set(), now);
    expect(plan.remove.map((e) => e.id)).to.deep.equal([1]);
    expect(plan.journalNeededAfter).to.equal(20);
  });
});
