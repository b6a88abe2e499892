/**
 * A follower store (a secondary's warm standby) on a real journal written by a
 * primary store in the same folder: catch-up, a torn tail, a gap after
 * pruning, promotion to writer at a new epoch, and the fence that stops a
 * primary from acknowledging.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FencedError, JournalCorruptError, UnavailableError } from '../../src/errors.js';
import { encodeRecord, scanJournal, type JournalRecord } from '../../src/journal/index.js';
import { silentLogger } from '../../src/log/index.js';
import { Store, type Engine, type StoreOptions } from '../../src/store/index.js';
import { tempEngine } from '../helpers/engine.js';
import { commit, create, load, put } from '../helpers/store-ops.js';

describe('Store following a journal, promotion and fencing (real journal)', function () {
  let dir: string;
  let options: StoreOptions;

  beforeEach(async () => {
    dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-follow-')));
    options = { journalDir: path.join(dir, 'journal'), sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger: silentLogger(), engine: null as unknown as Engine };
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  async function primary(): Promise<Store> {
    const store = await Store.open({ ...options, engine: tempEngine(dir) });
    await store.commit(load('plm', '1.0', ['kind']));
    await store.commit(create('s'));
    return store;
  }

  it('never takes a journal folder that is gone, or lists no file after one was read, for the journal\'s end: it fails, and catches up once the folder is back', async () => {
    const p = await primary();
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    await f.catchUp();
    await p.commit(commit('s', put('meanwhile', { kind: 'Part' })));
    // The FileVault goes away: the follow fails (it is not "nothing new").
    await fs.rename(options.journalDir, `${options.journalDir}.gone`);
    let failure = await f.catchUp().then(() => null, (err: unknown) => err as NodeJS.ErrnoException);
    expect(failure?.code).to.equal('ENOENT');
    // The folder is there but lists nothing (a stale or failing listing): not the journal's end either.
    await fs.mkdir(options.journalDir);
    failure = await f.catchUp().then(() => null, (err: unknown) => err as NodeJS.ErrnoException);
    expect(failure?.message).to.match(/lists no file, though this node was reading/);
    expect(f.state.getObject('s', 'meanwhile'), 'nothing applied meanwhile').to.equal(undefined);
    await fs.rmdir(options.journalDir);
    await fs.rename(`${options.journalDir}.gone`, options.journalDir);
    const { gap, diverged } = await f.catchUp();
    expect({ gap, diverged }).to.deep.equal({ gap: null, diverged: null });
    expect(f.state.getObject('s', 'meanwhile')).to.deep.equal({ kind: 'Part' });
    await p.close();
    await f.close();
  });

  it('applies what the primary writes, call after call, and ends at the same state', async () => {
    const p = await primary();
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    expect(f.state.seq).to.equal(2);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) await p.commit(commit('s', put(`r${round}-${i}`, { kind: 'Part', round, i })));
      const { applied, gap } = await f.catchUp();
      expect(applied).to.equal(20);
      expect(gap).to.equal(null);
      expect(f.state.seq).to.equal(p.state.seq);
    }
    await p.rollJournal();
    await p.commit(commit('s', put('after-roll', { kind: 'Doc' })));
    expect((await f.catchUp()).applied, 'follows into the next file').to.equal(1);
    expect(f.state.getObject('s', 'after-roll')).to.deep.equal({ kind: 'Doc' });
    expect([...f.state.queryMatches('s', { kind: 'Part' })].length).to.equal(60);
    await p.close();
  });

  it('stops before a half-written record; promotion leaves it, sealed off, and writes a new file of the new epoch', async () => {
    const p = await primary();
    await p.commit(commit('s', put('a', { kind: 'Part' })));
    const file = (await p.journalFiles()).at(-1)!.path;
    await p.close();
    // The old primary died mid-write: half a frame at the end.
    await fs.appendFile(file, Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 5]));
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    expect((await f.catchUp()).applied).to.equal(0);
    expect(f.state.seq).to.equal(3);
    await f.promote(2);
    expect(f.writable).to.equal(true);
    expect(f.epoch).to.equal(2);
    const { seq } = await f.commit(commit('s', put('b', { kind: 'Doc' })));
    expect(seq).to.equal(4);
    const files = await f.journalFiles();
    expect(path.basename(files.at(-1)!.path)).to.equal('journal-000000004-000000002.log');
    await f.close();
    const records: JournalRecord[] = [];
    const scan = await scanJournal(options.journalDir, { repair: false, logger: silentLogger(), onRecord: (r) => records.push(r) });
    expect(scan.cut, 'the torn tail lies past the seal: void, not a tail to cut').to.equal(null);
    expect((await fs.readFile(file)).subarray(-9), 'the old epoch\'s file is left as it is').to.deep.equal(Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 5]));
    expect(records.map((r) => [r.seq, r.epoch])).to.deep.equal([[1, 1], [2, 1], [3, 1], [4, 2]]);
  });

  it("ignores what a fenced primary's hung write adds to its file after the successor sealed it: followers, start-up and replay read the successor's history", async () => {
    const p = await primary();
    // A follower still reading the old primary's file when the late bytes land.
    const behind = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    await p.commit(commit('s', put('a', { kind: 'Part' })));
    const oldFile = (await p.journalFiles()).at(-1)!.path;
    await p.close();
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    await f.promote(2);
    expect((await f.commit(commit('s', put('b', { kind: 'Doc' })))).seq).to.equal(4);
    // The old primary's write that hung on the network file system lands now: its seq 4, then half a frame.
    const late = encodeRecord({ seq: 4, epoch: 1, op: commit('s', put('ghost', { kind: 'Part' })) });
    await fs.appendFile(oldFile, Buffer.concat([late, Buffer.from([40, 0, 0, 0, 1, 2])]));
    const sizeWithLateBytes = (await fs.stat(oldFile)).size;
    expect((await f.commit(commit('s', put('c', { kind: 'Doc' })))).seq).to.equal(5);

    expect((await behind.catchUp()).applied).to.equal(3);
    expect(behind.state.getObject('s', 'ghost'), 'the late record is not applied').to.equal(undefined);
    expect(behind.state.getObject('s', 'b')).to.deep.equal({ kind: 'Doc' });
    expect(behind.state.seq).to.equal(5);
    await f.close();

    const records: JournalRecord[] = [];
    const scan = await scanJournal(options.journalDir, { repair: true, logger: silentLogger(), onRecord: (r) => records.push(r) });
    expect(records.map((r) => [r.seq, r.epoch])).to.deep.equal([[1, 1], [2, 1], [3, 1], [4, 2], [5, 2]]);
    expect(scan.lastSeq).to.equal(5);
    expect((await fs.stat(oldFile)).size, 'the sealed file is left as it is').to.equal(sizeWithLateBytes);
    const restarted = await Store.open({ ...options, engine: tempEngine(dir) });
    expect(restarted.state.getObject('s', 'ghost')).to.equal(undefined);
    expect(restarted.state.getObject('s', 'c')).to.deep.equal({ kind: 'Doc' });
    await restarted.close();
  });

  it('still refuses a file that runs past the next one within the same epoch (no seal between them: damage)', async () => {
    const p = await primary();
    await p.commit(commit('s', put('a', { kind: 'Part' })));
    const first = (await p.journalFiles()).at(-1)!.path;
    await p.rollJournal();
    await p.commit(commit('s', put('b', { kind: 'Part' })));
    await p.close();
    await fs.appendFile(first, encodeRecord({ seq: 4, epoch: 1, op: commit('s', put('dup', { kind: 'Part' })) }));
    let refused: unknown;
    await scanJournal(options.journalDir, { repair: false, logger: silentLogger() }).catch((err: unknown) => (refused = err));
    expect(refused).to.be.instanceOf(JournalCorruptError);
  });

  it('reads at promotion only the journal files from the one it is following on (a long journal costs nothing more to take over)', async () => {
    const p = await primary();
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    for (let i = 0; i < 5; i++) await p.commit(commit('s', put(`old-${i}`, { kind: 'Part' })));
    const oldFile = (await p.journalFiles()).at(-1)!.path;
    await p.rollJournal();
    await p.commit(commit('s', put('new', { kind: 'Doc' })));
    expect((await f.catchUp()).applied).to.equal(6);
    await p.close();
    // Damage in the file it has already applied: a full scan would stop on it; promotion does not read it again.
    const bytes = await fs.readFile(oldFile);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fs.writeFile(oldFile, bytes);
    let fullScan: unknown;
    await scanJournal(options.journalDir, { repair: false, logger: silentLogger() }).catch((err: unknown) => (fullScan = err));
    expect(fullScan).to.be.instanceOf(JournalCorruptError);
    await f.promote(2);
    expect((await f.commit(commit('s', put('after', { kind: 'Doc' })))).seq).to.equal(9);
    await f.close();
  });

  for (const newFile of ['empty', 'written'] as const) {
    it(`never reuses the old epoch's empty newest file: a stalled write landing there at offset 0 is void (new epoch's file ${newFile})`, async () => {
      const p = await primary();
      await p.commit(commit('s', put('a', { kind: 'Part' })));
      // A checkpoint rolled the journal: the old epoch's newest file is empty when its next write stalls.
      const rolled = await p.rollJournal();
      expect((await fs.stat(rolled)).size).to.equal(0);
      await p.close();
      const behind = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
      const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
      await f.promote(2);
      const own = (await f.journalFiles()).at(-1)!.path;
      expect(own, 'a file of its own').to.not.equal(rolled);
      expect(path.basename(own)).to.equal('journal-000000004-000000002.log');
      if (newFile === 'written') expect((await f.commit(commit('s', put('b', { kind: 'Doc' })))).seq).to.equal(4);
      // The stalled write of the old epoch lands now, at offset 0 of its own file.
      await fs.writeFile(rolled, encodeRecord({ seq: 4, epoch: 1, op: commit('s', put('ghost', { kind: 'Part' })) }));

      const started = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
      expect(started.state.getObject('s', 'ghost'), 'start-up ignores the void record').to.equal(undefined);
      expect(started.state.seq).to.equal(newFile === 'written' ? 4 : 3);
      const caught = await behind.catchUp();
      expect(caught.diverged).to.equal(null);
      expect(behind.state.getObject('s', 'ghost'), 'a follower ignores it').to.equal(undefined);
      if (newFile === 'written') expect(behind.state.getObject('s', 'b')).to.deep.equal({ kind: 'Doc' });
      expect((await f.commit(commit('s', put('c', { kind: 'Doc' })))).seq).to.equal(newFile === 'written' ? 5 : 4);
      expect((await behind.catchUp()).applied).to.equal(1);
      expect(behind.state.getObject('s', 'c')).to.deep.equal({ kind: 'Doc' });
      await f.close();
    });
  }

  it("ignores a superseded epoch's file rolled after its successor took over, and never refuses to start because of it", async () => {
    const p = await primary();
    await p.commit(commit('s', put('a', { kind: 'Part' })));
    await p.close();
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    await f.promote(2);
    await f.commit(commit('s', put('b', { kind: 'Doc' })));
    // The fenced old primary rolled (a late checkpoint) and wrote on: a file of epoch 1 after epoch 2's.
    await fs.writeFile(path.join(options.journalDir, 'journal-000000005-000000001.log'), encodeRecord({ seq: 5, epoch: 1, op: commit('s', put('ghost', { kind: 'Part' })) }));
    const started = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    expect(started.state.seq).to.equal(4);
    expect(started.state.getObject('s', 'ghost')).to.equal(undefined);
    expect((await f.commit(commit('s', put('c', { kind: 'Doc' })))).seq).to.equal(5);
    expect((await started.catchUp()).applied).to.equal(1);
    expect(started.state.getObject('s', 'c')).to.deep.equal({ kind: 'Doc' });
    await f.close();
  });

  it('reports diverged when a promotion sealed the journal below records it had applied', async () => {
    const p = await primary();
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    await p.commit(commit('s', put('a', { kind: 'Part' })));
    expect((await f.catchUp()).applied).to.equal(1);
    await p.close();
    // A successor that saw only seq 2 (a stale view) sealed there: seq 3 of epoch 1 is void.
    await fs.writeFile(path.join(options.journalDir, 'journal-000000003-000000002.log'), encodeRecord({ seq: 3, epoch: 2, op: commit('s', put('b', { kind: 'Doc' })) }));
    const { diverged } = await f.catchUp();
    expect(diverged).to.deep.include({ appliedSeq: 3, appliedEpoch: 1, sealedAt: 2 });
  });

  it('reports a gap when the journal it needs was pruned', async () => {
    const p = await primary();
    const f = await Store.open({ ...options, engine: tempEngine(dir), readOnly: true });
    await p.commit(commit('s', put('a', { kind: 'Part' })));
    await p.rollJournal();
    await p.commit(commit('s', put('b', { kind: 'Part' })));
    await p.pruneJournal(3);
    const { applied, gap } = await f.catchUp();
    expect(applied).to.equal(0);
    expect(gap).to.deep.equal({ wanted: 3, firstAvailable: 4 });
    await p.close();
  });

  it('refuses commits while fenced, and does not acknowledge one fenced during its write', async () => {
    const p = await primary();
    let fence: string | null = 'lease renewal failed for 4100 ms';
    p.setFence(() => fence);
    let refused: unknown;
    await p.commit(commit('s', put('x', { kind: 'Part' }))).catch((err: unknown) => (refused = err));
    expect(refused).to.be.instanceOf(UnavailableError);
    expect((refused as Error).message).to.include('this node is fenced (lease renewal failed for 4100 ms); the commit was refused');
    expect(p.state.seq).to.equal(2);
    fence = null;
    const during = p.commit(commit('s', put('y', { kind: 'Part' })));
    fence = 'a higher epoch 3 holds the lease';
    let late: unknown;
    await during.catch((err: unknown) => (late = err));
    expect((late as Error).message).to.include('written to the journal but not acknowledged');
    expect(late).to.be.instanceOf(FencedError);
    expect(p.state.seq, 'nor shown to reads or checkpoints').to.equal(2);
    expect(p.state.getObject('s', 'y')).to.equal(undefined);
    await p.close();
  });
});
