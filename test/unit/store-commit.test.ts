import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { JournalWriteError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/index.js';
import { breakDescriptor } from '../helpers/descriptor.js';
import { waitFor } from '../helpers/wait-for.js';
import { Engine, Store, type StoreOptions } from '../../src/store/index.js';


describe('Store commit pipeline (real journal)', function () {
  let dir: string;
  let options: StoreOptions;
  const engines: Engine[] = [];

  /** The engine in folder `name` (made empty when `fresh`). */
  function engine(name = 'engine', fresh = false): Engine {
    if (fresh) Engine.remove(path.join(dir, name));
    const opened = Engine.open({ dir: path.join(dir, name), cacheBytes: 8 << 20, logger: silentLogger() });
    engines.push(opened);
    return opened;
  }

  /** The options of a store on `engine` (the default engine folder, reopened, when absent). */
  function on(opened?: Engine): StoreOptions {
    for (const e of engines.splice(0)) if (opened !== e) e.close();
    if (opened !== undefined) engines.push(opened);
    return { ...options, engine: opened ?? engine() };
  }

  beforeEach(async function () {
    dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-store-')));
    options = { journalDir: path.join(dir, 'journal'), sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger: silentLogger(), engine: null as unknown as Engine };
  });
  afterEach(async function () {
    for (const e of engines.splice(0)) e.close();
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  async function seeded(): Promise<Store> {
    const store = await Store.open(on());
    await store.commit({ type: 'template.load', template: { name: 'plm', version: '1.0', indexes: ['type'] } });
    await store.commit({ type: 'space.create', id: 's', template: { name: 'plm', version: '1.0' } });
    return store;
  }

  it('answers a commit only once durable and applied; a reopened store goes on from its engine, an empty engine replays the journal', async function () {
    const store = await seeded();
    const { seq } = await store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: 'k', value: { type: 'Part' } }] });
    expect(store.state.seq).to.equal(seq);
    expect(store.state.getObject('s', 'k')).to.deep.equal({ type: 'Part' });
    await store.close();
    const reopened = await Store.open(on());
    expect(reopened.state.getObject('s', 'k')).to.deep.equal({ type: 'Part' });
    expect(reopened.recovery).to.deep.include({ replayed: 0, baseSeq: 3 });
    await reopened.close();
    const rebuilt = await Store.open(on(engine('empty', true)));
    expect(rebuilt.state.getObject('s', 'k')).to.deep.equal({ type: 'Part' });
    expect(rebuilt.recovery).to.deep.include({ replayed: 3, baseSeq: 0 });
    await rebuilt.close();
  });

  it('applies acknowledged commits in bounded steps with no read asking: 512 records in the turn their callers hear of them, after they do; fewer after a delay', async function () {
    const store = await seeded();
    const applied = engines.at(-1)!;
    // Read the engine itself: the store's own reads would apply what waits.
    const seenAtAnswer: { seq: number; applied: number }[] = [];
    const burst = (n: number, tag: string): Promise<number[]> =>
      Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const { seq } = await store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: `${tag}${i}`, value: { type: 'Part', i } }] });
          seenAtAnswer.push({ seq, applied: applied.appliedSeq });
          return seq;
        }),
      );
    const first = await burst(600, 'a');
    await nextTurn();
    // No caller waited for a step, and at most 511 records wait for one once the turn is over.
    expect(seenAtAnswer.filter((s) => s.applied >= s.seq)).to.deep.equal([]);
    expect(Math.max(...first) - applied.appliedSeq).to.be.below(512);
    const rest = await burst(10, 'b');
    await waitFor(() => applied.appliedSeq === Math.max(...rest), { what: 'the last 10 commits applied with no read asking' });
    expect(store.state.getObject('s', 'b9')).to.deep.equal({ type: 'Part', i: 9 });
    await store.close();
  });

  it('reopened on an engine behind the journal, knows the restores the journal holds before its seq (without parsing the commits there) and after it', async function () {
    const store = await seeded();
    // Restores that restore no space: what is checked here is the journal's account of them.
    const nothing = (engine: Engine, seq: number) => engine.install([], seq);
    const restore = (checkpoint: number) => store.commitRestore({ type: 'restore', checkpoint, sha256: 'a'.repeat(64), scope: 'collection', spaces: [] }, () => undefined, nothing);
    const before = await restore(4);
    await store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: 'k', value: { type: 'Part' } }] });
    await store.close();
    for (const e of engines.splice(0)) e.close();
    await fs.cp(path.join(dir, 'engine'), path.join(dir, 'behind'), { recursive: true });
    // A restore after the engine's seq needs its checkpoint loaded on replay: one that restores nothing.
    const replayRestore: StoreOptions['replayRestore'] = async (_op, engine, seq) => nothing(engine, seq);
    const after = await Store.open({ ...on(), replayRestore });
    const later = await after.commitRestore({ type: 'restore', checkpoint: 6, sha256: 'b'.repeat(64), scope: 'collection', spaces: [] }, () => undefined, nothing);
    await after.close();
    const reopened = await Store.open({ ...on(engine('behind')), replayRestore });
    expect(reopened.recovery.replayed, 'only the record after the engine\'s seq').to.equal(1);
    expect([...reopened.restoreReferences]).to.deep.equal([[4, before.seq], [6, later.seq]]);
    expect(reopened.state.getObject('s', 'k')).to.deep.equal({ type: 'Part' });
    expect(reopened.state.seq).to.equal(later.seq);
    await reopened.close();
  });

  describe('the journal files start-up does not read', function () {
    /** A journal of three files: a restore and a commit, a commit, a commit; the engine holds them all. */
    async function threeFiles(): Promise<{ restoreSeq: number; files: string[] }> {
      const store = await seeded();
      const nothing = (engine: Engine, seq: number) => engine.install([], seq);
      const { seq: restoreSeq } = await store.commitRestore({ type: 'restore', checkpoint: 4, sha256: 'a'.repeat(64), scope: 'collection', spaces: [] }, () => undefined, nothing);
      for (const key of ['k1', 'k2', 'k3']) {
        await store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key, value: { type: 'Part' } }] });
        if (key !== 'k3') await store.rollJournal();
      }
      await store.close();
      const files = (await fs.readdir(options.journalDir)).filter((n) => n.endsWith('.log')).sort();
      expect(files).to.have.length(3);
      return { restoreSeq, files: files.map((n) => path.join(options.journalDir, n)) };
    }

    it('reads only the file that holds the next record at start, then checks the older ones in the background and learns their restores', async function () {
      const { restoreSeq, files } = await threeFiles();
      const store = await Store.open(on());
      expect(store.recovery.scan.files, 'start-up reads the newest file only').to.equal(1);
      expect(store.olderJournal.status().state).to.equal('checking');
      expect(store.olderJournal.uncheckedBelow).to.be.above(restoreSeq);
      await store.olderJournal.done;
      expect(store.olderJournal.status()).to.deep.include({ state: 'verified', files: 2, error: null });
      expect(store.olderJournal.status().bytes).to.equal((await fs.stat(files[0]!)).size + (await fs.stat(files[1]!)).size);
      expect(store.olderJournal.uncheckedBelow).to.equal(0);
      expect([...store.restoreReferences]).to.deep.equal([[4, restoreSeq]]);
      expect(store.state.getObject('s', 'k3')).to.deep.equal({ type: 'Part' });
      await store.close();
    });

    it('on damage in an older file, opens and serves, reports the file and offset with what to do, and checks clean again once a good copy is back', async function () {
      const { restoreSeq, files } = await threeFiles();
      const good = await fs.readFile(files[0]!);
      const bad = Buffer.from(good);
      bad[10]! ^= 0x10; // the first record
      await fs.writeFile(files[0]!, bad);
      const store = await Store.open(on());
      await store.olderJournal.done;
      const found = store.olderJournal.status();
      expect(found.state).to.equal('damaged');
      expect(found.error).to.include(`${files[0]} is damaged at byte offset 0`).and.include(`Every record in ${path.basename(files[0]!)} is at or before seq ${store.state.seq}`);
      expect(store.olderJournal.uncheckedBelow, 'its restores are unknown').to.be.above(restoreSeq);
      expect(store.restoreReferences.has(4)).to.equal(false);
      expect(store.state.getObject('s', 'k3')).to.deep.equal({ type: 'Part' });
      expect(await fs.readFile(files[0]!)).to.deep.equal(bad);
      await fs.writeFile(files[0]!, good);
      store.olderJournal.recheck();
      await store.olderJournal.done;
      expect(store.olderJournal.status()).to.deep.include({ state: 'verified', error: null });
      expect([...store.restoreReferences]).to.deep.equal([[4, restoreSeq]]);
      await store.close();
    });

    it('reports a gap before the first file start-up read as damage of the files before it', async function () {
      const { files } = await threeFiles();
      await fs.rm(files[1]!);
      const store = await Store.open(on());
      await store.olderJournal.done;
      const found = store.olderJournal.status();
      expect(found).to.deep.include({ state: 'damaged', files: 1 });
      expect(found.error).to.include(`${files[2]} is damaged at byte offset 0`).and.include('are missing').and.include(`Every record in ${path.basename(files[0]!)} is`);
      await store.close();
    });
  });

  it('refuses an invalid commit without journaling anything', async function () {
    const store = await seeded();
    const before = store.journalStats!.lastSeq;
    try {
      await store.commit({ type: 'space.create', id: 's', template: { name: 'plm', version: '1.0' } });
      expect.fail('a duplicate space was accepted');
    } catch (err) {
      expect((err as { status?: number }).status).to.equal(409);
    }
    expect(store.journalStats!.lastSeq).to.equal(before);
    await store.close();
  });

  it('validates concurrent commits against each other: two creates of one space, one wins', async function () {
    const store = await seeded();
    const results = await Promise.allSettled([
      store.commit({ type: 'space.create', id: 'twin', template: { name: 'plm', version: '1.0' } }),
      store.commit({ type: 'space.create', id: 'twin', template: { name: 'plm', version: '1.0' } }),
    ]);
    expect(results.map((r) => r.status).sort()).to.deep.equal(['fulfilled', 'rejected']);
    await store.close();
    const reopened = await Store.open(on(engine('replayed', true)));
    expect(reopened.state.spaces().map((s) => s.id)).to.deep.equal(['s', 'twin']);
    await reopened.close();
  });

  it('after a failed journal write, refuses the commit (503), falls back to the durable state, and goes on', async function () {
    const store = await seeded();
    await store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: 'kept', value: 1 }] });
    // Read first: that applies 'kept' now, so that the engine opens no file (which would take the closed descriptor's number) before the failure.
    expect(store.state.getObject('s', 'kept')).to.equal(1);
    breakDescriptor(store.journalStats!.file); // the next write fails for real (EBADF)
    const failed = store.commit({ type: 'space.create', id: 'lost', template: { name: 'plm', version: '1.0' } });
    const err = await failed.then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(JournalWriteError);
    expect((err as JournalWriteError).status).to.equal(503);
    expect(store.state.space('lost')).to.equal(undefined);
    // The refused create left no trace in the state new commits are validated against.
    await store.commit({ type: 'space.create', id: 'lost', template: { name: 'plm', version: '1.0' } });
    await store.close();
    const reopened = await Store.open(on(engine('replayed', true)));
    expect(reopened.state.getObject('s', 'kept')).to.equal(1);
    expect(reopened.state.space('lost')).to.not.equal(undefined);
    expect(reopened.state.seq).to.equal(4);
    await reopened.close();
  });

  it('a read-only store replays the journal but refuses commits (503)', async function () {
    const store = await seeded();
    await store.close();
    const ro = await Store.open({ ...on(engine('follower', true)), readOnly: true });
    expect(ro.writable).to.equal(false);
    expect(ro.state.space('s')).to.not.equal(undefined);
    const err = await ro.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: 'x', value: 1 }] }).then(() => null, (e: unknown) => e);
    expect((err as { status?: number }).status).to.equal(503);
    await ro.close();
  });
});
