import Database from 'better-sqlite3';
import { expect } from 'chai';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { BadRequestError, ConflictError, NotFoundError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/index.js';
import { Engine, SpaceFile, StoreState, type Json, type StoreOp, type TxOp } from '../../src/store/index.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { descriptorsOn, openUnder } from '../helpers/descriptor.js';
import { seededRandom } from '../helpers/random.js';
import { toSpaceFileFormat1 } from '../helpers/space-file-format-1.js';
import { waitFor } from '../helpers/wait-for.js';
import { commit, create, del, load, put } from '../helpers/store-ops.js';

/** Terms whose byte order in UTF-8 differs from JavaScript's string order (U+FF21 sorts after U+1F600 in UTF-8, before it in UTF-16). */
const Terms = ['a', 'b', 'B', '', 'é', '\uff21', '\u{1f600}', 'a\u0000b', '10', '9', 'true'];

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)]!;
}

function value(rnd: () => number): Json {
  const v: Record<string, Json> = { n: Math.floor(rnd() * 1000) };
  const r = rnd();
  if (r < 0.3) v.type = pick(rnd, Terms);
  else if (r < 0.45) v.type = [pick(rnd, Terms), pick(rnd, Terms), 3, false, { no: 1 }];
  else if (r < 0.55) v.type = pick(rnd, [10, 9, true, false, null, 1.5]);
  if (rnd() < 0.6) v.owner = `o${Math.floor(rnd() * 4)}`;
  if (rnd() < 0.3) v.extra = `"type":"not a field"`;
  return v;
}

/** A random op for `state`, valid most of the time and sometimes not (a delete of a missing key, an unknown space). */
function randomOp(rnd: () => number, state: StoreState): StoreOp {
  const spaces = state.spaces();
  const r = rnd();
  if (r < 0.03) return load('plm', pick(rnd, ['1.0', '1.1', '2.0']), pick(rnd, [['type', 'owner'], ['owner'], ['type', 'n']]));
  if (r < 0.06 || spaces.length === 0) return create(pick(rnd, ['s1', 's2', 's3']), 'plm', pick(rnd, ['1.0', '1.1', '2.0']));
  const space = pick(rnd, spaces).id;
  if (r < 0.08) return { type: 'space.upgrade', id: space, version: pick(rnd, ['1.1', '2.0']) };
  const ops: TxOp[] = [];
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const key = `k${Math.floor(rnd() * 40)}`;
    ops.push(rnd() < 0.75 ? put(key, value(rnd)) : del(key));
  }
  return commit(rnd() < 0.02 ? 'nope' : space, ...ops);
}

/** `count` random operations that apply one after another to `state`, numbered from `firstSeq`, and the state after them. */
function randomRecords(rnd: () => number, state: StoreState, count: number, firstSeq: number): { records: { op: StoreOp; seq: number }[]; state: StoreState } {
  const records: { op: StoreOp; seq: number }[] = [];
  while (records.length < count) {
    const op = randomOp(rnd, state);
    const seq = firstSeq + records.length;
    try {
      state = state.apply(op, seq);
    } catch {
      continue;
    }
    records.push({ op, seq });
  }
  return { records, state };
}

function outcome(fn: () => void): string {
  try {
    fn();
    return 'applied';
  } catch (err) {
    return `${(err as Error).constructor.name}: ${(err as Error).message}`;
  }
}

/** Every page of a query, `limit` at a time, from the engine. */
function pages(engine: Engine, space: string, filter: Record<string, string>, limit: number): { key: string; text: string }[] {
  const out: { key: string; text: string }[] = [];
  let after: string | undefined;
  for (;;) {
    const page = engine.page(space, filter, after, limit);
    out.push(...page);
    if (page.length < limit) return out;
    after = page.at(-1)!.key;
  }
}

describe('storage engine (SQLite files under paths.data)', function () {
  let dir: string;
  const engines: Engine[] = [];

  function open(cacheBytes = 8 << 20): Engine {
    const engine = Engine.open({ dir, cacheBytes, logger: silentLogger() });
    engines.push(engine);
    return engine;
  }

  /**
   * An engine with one space `s` (template plm 1.0 indexing `type`), its
   * file and WAL, and a step: one engine step of 50 puts at random keys, each
   * value `padBytes` of padding and one of 8 types; how long it took, in ms;
   * and the seq of the last record it made.
   */
  function oneSpace(seed: number, padBytes = 300): { engine: Engine; file: string; wal: string; step: () => number; lastSeq: () => number } {
    const engine = open();
    const rnd = seededRandom(seed);
    let seq = 0;
    engine.apply([
      { op: load('plm', '1.0', ['type']), seq: ++seq },
      { op: create('s', 'plm', '1.0'), seq: ++seq },
    ]);
    const file = path.join(dir, 'spaces', readdirSync(path.join(dir, 'spaces')).find((f) => f.endsWith('.sqlite'))!);
    const pad = 'x'.repeat(padBytes);
    const step = (): number => {
      const records = Array.from({ length: 50 }, () => ({ op: commit('s', put(`k${Math.floor(rnd() * 1e9)}`, { type: `t${Math.floor(rnd() * 8)}`, pad })), seq: ++seq }));
      const started = performance.now();
      engine.apply(records);
      return performance.now() - started;
    };
    return { engine, file, wal: `${file}-wal`, step, lastSeq: () => seq };
  }

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpd-engine-'));
  });

  afterEach(function () {
    for (const engine of engines.splice(0)) engine.close();
    rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  /** The engine holds what the in-memory state holds: templates, spaces, objects, every query page by page, every index in order. */
  function expectSame(engine: Engine, state: StoreState): void {
    expect(engine.templates()).to.deep.equal(state.templates());
    expect(engine.spaces()).to.deep.equal(state.spaces());
    expect(engine.has('no-such-space', 'k1')).to.equal(false);
    for (const { id } of state.spaces()) {
      const all = state.queryText(id, {});
      expect(pages(engine, id, {}, 7)).to.deep.equal(all);
      for (const { key, text } of all) {
        expect(engine.text(id, key)).to.equal(text);
        expect(engine.has(id, key), `${id} has ${key}`).to.equal(true);
      }
      // A key it does not hold (keys here are k0…k39 and big), before and after every key it holds.
      for (const missing of ['a', 'k400', 'zz']) expect(engine.has(id, missing), `${id} has ${missing}`).to.equal(false);
      const fields = state.indexedFields(id);
      expect(engine.indexedFields(id)).to.deep.equal(fields);
      for (const field of fields) {
        for (const [term, keys] of state.indexEntries(id, field)) {
          expect(pages(engine, id, { [field]: term }, 3), `${id} ${field}=${JSON.stringify(term)}`).to.deep.equal(state.queryText(id, { [field]: term }));
          expect([...keys]).to.deep.equal(state.queryText(id, { [field]: term }).map((m) => m.key));
        }
      }
      if (fields.length >= 2) {
        const filter = { [fields[0]!]: 'a', [fields[1]!]: 'o1' };
        expect(pages(engine, id, filter, 2)).to.deep.equal(state.queryText(id, filter));
      }
    }
  }

  it('closes only once the folding thread has closed its connections too, so that the folder may go at once (Engine.replaceWith removes it)', async function () {
    for (let n = 0; n < 3; n++) {
      const engine = open();
      engine.apply([load('plm', '1.0', ['type']), create('s'), commit('s', put('k', { type: 'a' }))].map((op, i) => ({ op, seq: i + 1 })));
      // The folding thread has opened the space file once it holds a descriptor of its own on it (main's is the other).
      await waitFor(() => openUnder(dir).filter((f) => f.endsWith('.sqlite')).length >= 3, { what: 'the folding thread to open the space file' });
      // A WAL of about 16 MiB, and a round asked for: the thread is folding it when close() is called.
      const big = (t: number) => Array.from({ length: 8_000 }, (_, i) => put(`b${n}-${t}-${i}`, { type: 'b', pad: 'x'.repeat(1000) }));
      engine.apply([{ op: commit('s', ...big(0)), seq: 4 }, { op: commit('s', ...big(1)), seq: 5 }]);
      void engine.foldsSettled();
      engines.splice(engines.indexOf(engine), 1);
      engine.close();
      expect(openUnder(dir)).to.deep.equal([]);
      rmSync(dir, { recursive: true });
    }
  });

  it('agrees with the in-memory state, op by op, on 600 random operations per seed: the same results, the same refusals', function () {
    for (const seed of [1, 2, 3]) {
      const rnd = seededRandom(seed);
      const engine = open();
      let state = StoreState.empty();
      let seq = 0;
      let refused = 0;
      for (let i = 0; i < 600; i++) {
        const op = randomOp(rnd, state);
        let next = state;
        const expected = outcome(() => {
          next = state.apply(op, seq + 1);
        });
        const got = outcome(() => engine.apply([{ op, seq: seq + 1 }]));
        expect(got, `seed ${seed}, op ${i}: ${JSON.stringify(op)}`).to.equal(expected);
        if (expected === 'applied') {
          seq++;
          state = next;
        } else refused++;
      }
      expectSame(engine, state);
      expect(refused, 'the random ops include refused ones').to.be.greaterThan(10);
      expect(state.spaces().reduce((n, s) => n + s.objectCount, 0), 'the random ops leave objects').to.be.greaterThan(30);
      engine.close();
      rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
    }
  });

  it('orders index terms as JavaScript compares strings, not as UTF-8 bytes', function () {
    const engine = open();
    const terms = ['\u{1f600}', '\uff21', 'z', 'a'];
    engine.apply([
      { op: load('plm', '1.0', ['type']), seq: 1 },
      { op: create('s'), seq: 2 },
      { op: commit('s', ...terms.map((t, i) => put(`k${i}`, { type: t }))), seq: 3 },
    ]);
    const file = SpaceFile.open(path.join(dir, 'spaces', 's.2.sqlite'), { cacheKiB: 1024, readOnly: true });
    try {
      expect(file.postings('type', undefined, 10).map((p) => p.term)).to.deep.equal([...terms].sort());
      expect([...terms].sort()).to.deep.equal(['a', 'z', '\u{1f600}', '\uff21']);
    } finally {
      file.close();
    }
  });

  it('keeps everything across a close and an open, and skips the records it already holds when they come again', function () {
    const rnd = seededRandom(7);
    let engine = open();
    const { records, state } = randomRecords(rnd, StoreState.empty(), 300, 1);
    engine.apply(records);
    expect(engine.appliedSeq).to.equal(300);
    engine.close();
    engine = open();
    expect(engine.appliedSeq).to.equal(300);
    expectSame(engine, state);
    engine.apply(records.slice(100));
    expectSame(engine, state);
  });

  it('rewrites space files of format 1 (objects in a WITHOUT ROWID table) into format 2 when it opens them, keeping every object and posting', function () {
    const rnd = seededRandom(13);
    let engine = open();
    let { records, state } = randomRecords(rnd, StoreState.empty(), 300, 1);
    // A value past a page, as the 60 KB shape has: format 1 spilled such rows onto overflow pages inside the key's B-tree.
    const big = { op: commit(state.spaces()[0]!.id, put('big', { type: 'a', pad: 'y'.repeat(70_000) })), seq: 301 };
    state = state.apply(big.op, big.seq);
    engine.apply([...records, big]);
    engine.close();
    const files = readdirSync(path.join(dir, 'spaces')).filter((f) => f.endsWith('.sqlite'));
    expect(files.length).to.be.above(0);
    for (const name of files) toSpaceFileFormat1(path.join(dir, 'spaces', name));
    const { logger, lines } = captureLogger();
    engine = Engine.open({ dir, cacheBytes: 8 << 20, logger });
    engines.push(engine);
    expect(lines.filter((l) => l.message === 'storage engine: rewrote a space file into the current format').map((l) => [l.file, l.from, l.to])).to.have.deep.members(
      files.map((f) => [f, 1, 2]),
    );
    // Said before it starts too: a large space takes a while, and the node serves nothing meanwhile.
    expect(lines.filter((l) => l.message.startsWith('storage engine: rewriting a space file')).map((l) => l.file)).to.have.members(files);
    expectSame(engine, state);
    for (const name of files) {
      const db = new Database(path.join(dir, 'spaces', name), { readonly: true });
      expect(db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'objects'").pluck().get()).to.match(/^CREATE TABLE objects \(row INTEGER PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL\)$/);
      expect(db.prepare('SELECT format FROM space').pluck().get()).to.equal(2);
      db.close();
    }
    // It is written and read as any other file; opened again, nothing is rewritten.
    ({ records, state } = randomRecords(rnd, state, 100, 302));
    engine.apply(records);
    engine.close();
    const again = captureLogger();
    engine = Engine.open({ dir, cacheBytes: 8 << 20, logger: again.logger });
    engines.push(engine);
    expectSame(engine, state);
    expect(again.lines.filter((l) => l.message === 'storage engine: rewrote a space file into the current format')).to.deep.equal([]);
  });

  it('keeps each WAL bounded under steady writes of random keys (SQLite alone lets it grow while a fold trails the writer)', async function () {
    const { engine, wal, step, lastSeq } = oneSpace(11);
    const collectionWal = path.join(dir, 'collection.sqlite-wal');
    // Steps of 50 single puts at random keys: about 3 pages of WAL per object, some 600 MiB written in all.
    let largest = 0;
    for (let n = 0; n < 1200; n++) {
      step();
      largest = Math.max(largest, statSync(wal).size);
      // The event loop turns between steps, as in the daemon: the folding thread's reports come in.
      await setImmediate();
    }
    expect(engine.appliedSeq).to.equal(lastSeq());
    // This writer outruns the folding thread (each of its rounds folds 40-70 MiB), so the writer cuts the WAL itself
    // once it is past twice the limit (128 MiB): it stays within that plus what a round lets through.
    expect(largest, 'the largest space file WAL').to.be.below(256 * 1024 * 1024);
    expect(statSync(collectionWal).size, 'the collection file WAL').to.be.below(256 * 1024 * 1024);
  });

  it('never waits for a held snapshot when a WAL is past its limit, nor folds on the event loop what piled up meanwhile', async function () {
    const { engine, wal, step, lastSeq } = oneSpace(12);
    // A checkpoint copying the space holds this snapshot; the WAL cannot be cut back past it meanwhile.
    const snapshot = engine.snapshot();
    const heldSeq = snapshot.seq;
    const pastLimit: number[] = [];
    while (pastLimit.length < 8) {
      const ms = step();
      if (statSync(wal).size >= 64 * 1024 * 1024) pastLimit.push(ms);
      await setImmediate();
    }
    // Each of these steps may try to cut the WAL back. Waiting for the snapshot (the connection's busy handler, 5 s)
    // would have held the event loop that long each time: this is a hang check, not a speed target.
    expect(Math.max(...pastLimit), 'the slowest step past the WAL limit while the snapshot is held, ms').to.be.below(2500);
    expect(snapshot.seq).to.equal(heldSeq);
    snapshot.close();
    // Right after: the WAL holds everything written under the snapshot, unfolded. The writer leaves it to the folding
    // thread (cutting it now would fold all of it on the event loop)...
    const piled = statSync(wal).size;
    step();
    expect(statSync(wal).size, 'the WAL right after the snapshot ended').to.be.at.least(piled);
    // ... and cuts it back once that thread has folded nearly all of it.
    await waitFor(
      () => {
        step();
        return statSync(wal).size < 8 * 1024 * 1024;
      },
      { what: 'the WAL cut back after the snapshot', timeoutMs: 30_000, intervalMs: 20 },
    );
    expect(engine.appliedSeq).to.equal(lastSeq());
  });

  it('before a snapshot, waits for the folding thread to fold a burst of writes, so that holding it folds little on the event loop', async function () {
    const { engine, file, wal, step } = oneSpace(13, 3000);
    await waitFor(() => descriptorsOn(wal) === 2, { what: 'the folding thread on the new file' });
    // A reader (another connection, as a checkpoint's snapshot would be) holds the WAL from before the burst, so that
    // the folding thread folds none of it meanwhile, however fast it is: when the reader ends, all of it is unfolded.
    const reader = new Database(file, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM objects').get();
    // A burst: about 25 MiB of new objects, most of it new pages at the file's end.
    for (let n = 0; n < 160; n++) step();
    await setImmediate();
    expect(statSync(wal).size, 'the WAL holds the burst').to.be.above(16 * 1024 * 1024);
    reader.exec('COMMIT');
    reader.close();
    await engine.foldsSettled();
    const folded = statSync(file).size;
    const snapshot = engine.snapshot();
    try {
      const source = snapshot.source('s');
      expect(source.frozen, 'the file itself is the snapshot').to.equal(true);
      // What the snapshot folded on the event loop is at most what the file grew by in it.
      expect(source.bytes - folded, 'bytes the snapshot itself folded into the file').to.be.below(8 * 1024 * 1024);
      expect(source.bytes, 'a database of that burst').to.be.above(16 * 1024 * 1024);
    } finally {
      snapshot.close();
    }
  });

  it('closes a snapshot\'s connections only once the folding thread has written out the WAL they held back', async function () {
    const { engine, wal, step } = oneSpace(14);
    // Descriptors of this process open on the WAL: the writer's, the folding thread's, and a snapshot's while open.
    const walDescriptors = (): number => descriptorsOn(wal);
    await waitFor(() => walDescriptors() === 2, { what: 'the writer and the folding thread on the WAL' });
    const snapshot = engine.snapshot();
    expect(walDescriptors(), 'with the snapshot held').to.equal(3);
    // Written under the snapshot: more than a settled WAL holds (4 MiB), left to the folding thread.
    for (let n = 0; n < 40; n++) step();
    snapshot.close();
    // Closing a file truncated to nothing (limitWal) makes ext4 write out all of it that is dirty first, on the event loop.
    expect(walDescriptors(), 'right after the snapshot ended: its connection stays open, holding nothing').to.equal(3);
    await waitFor(() => walDescriptors() === 2, { what: 'the snapshot\'s connection closed once the WAL is folded', timeoutMs: 30_000 });
  });

  it('after a stop between a space file and the collection, replays from the collection\'s seq and applies each record once', function () {
    let engine = open();
    engine.apply([
      { op: load('plm', '1.0', ['type']), seq: 1 },
      { op: create('s'), seq: 2 },
      { op: commit('s', put('a', { type: 'x' })), seq: 3 },
    ]);
    engine.close();
    // A step that reached the space file but not the collection row: the file is at seq 4, the collection at 3.
    const file = SpaceFile.open(path.join(dir, 'spaces', 's.2.sqlite'), { cacheKiB: 1024 });
    file.commit([put('b', { type: 'y' }), del('a')], 4);
    file.close();
    engine = open();
    expect(engine.appliedSeq).to.equal(3);
    engine.apply([
      { op: commit('s', put('b', { type: 'y' }), del('a')), seq: 4 },
      { op: commit('s', put('c', { type: 'y' })), seq: 5 },
    ]);
    expect(engine.appliedSeq).to.equal(5);
    expect(engine.page('s', {}, undefined, 10).map((o) => o.key)).to.deep.equal(['b', 'c']);
    expect(engine.page('s', { type: 'y' }, undefined, 10).map((o) => o.key)).to.deep.equal(['b', 'c']);
    expect(engine.space('s')).to.include({ objectCount: 2, updatedSeq: 5 });
  });

  it('removes a space file the collection does not list (a create cut short), and makes the space again on replay', function () {
    let engine = open();
    engine.apply([{ op: load('plm', '1.0', ['type']), seq: 1 }]);
    engine.close();
    const orphan = SpaceFile.create(path.join(dir, 'spaces', 's.2.sqlite'), 's', { name: 'plm', version: '1.0', indexes: ['type'] }, 2, { cacheKiB: 1024 });
    orphan.close();
    engine = open();
    expect(existsSync(path.join(dir, 'spaces', 's.2.sqlite'))).to.equal(false);
    expect(engine.spaces()).to.deep.equal([]);
    engine.apply([{ op: create('s'), seq: 2 }]);
    expect(readdirSync(path.join(dir, 'spaces')).filter((n) => n.endsWith('.sqlite'))).to.deep.equal(['s.2.sqlite']);
    expect(engine.space('s')).to.deep.include({ createdSeq: 2, objectCount: 0 });
  });

  it('refuses what does not apply with the errors the API reports, changing nothing', function () {
    const engine = open();
    engine.apply([
      { op: load('plm', '1.0', ['type']), seq: 1 },
      { op: create('s'), seq: 2 },
      { op: commit('s', put('a', { type: 'x' })), seq: 3 },
    ]);
    expect(() => engine.apply([{ op: commit('s', put('b', {}), del('zz')), seq: 4 }])).to.throw(ConflictError, /ops\[1\] deletes "zz"/);
    expect(() => engine.apply([{ op: commit('t', put('b', {})), seq: 4 }])).to.throw(NotFoundError, /space "t" does not exist/);
    expect(() => engine.page('s', { owner: 'x' }, undefined, 10)).to.throw(BadRequestError, /cannot be queried by "owner": indexed fields: type/);
    expect(() => engine.text('s', '../x')).to.throw(BadRequestError);
    expect(engine.page('s', {}, undefined, 10).map((o) => o.key)).to.deep.equal(['a']);
    expect(engine.space('s')).to.include({ objectCount: 1, updatedSeq: 3 });
    expect(engine.appliedSeq).to.equal(3);
  });

  it('refuses a file of another format or another kind, naming it', function () {
    const engine = open();
    engine.apply([{ op: load('plm', '1.0'), seq: 1 }, { op: create('s'), seq: 2 }]);
    engine.close();
    const other = path.join(dir, 'other.sqlite');
    const file = SpaceFile.create(other, 'x', { name: 'plm', version: '1.0', indexes: [] }, 1, { cacheKiB: 1024 });
    file.close();
    expect(() => SpaceFile.create(other, 'x', { name: 'plm', version: '1.0', indexes: [] }, 1, { cacheKiB: 1024 })).to.throw(/already holds a database/);
    expect(() => SpaceFile.open(path.join(dir, 'collection.sqlite'), { cacheKiB: 1024 })).to.throw(/collection\.sqlite is not a checkpointd space file/);
    const db = new Database(other);
    db.exec('UPDATE space SET format = 3');
    db.close();
    expect(() => SpaceFile.open(other, { cacheKiB: 1024 })).to.throw(/other\.sqlite is a space file of format 3; this version reads formats 1 and 2/);
  });

  it('shares one read transaction among the lookups of a turn of the event loop, ended with the turn and before any write', async function () {
    const engine = open();
    engine.apply([{ op: load('plm', '1.0', ['type']), seq: 1 }, { op: create('s'), seq: 2 }, { op: commit('s', put('a', { type: 'x' })), seq: 3 }]);
    engine.close();
    const filePath = path.join(dir, 'spaces', 's.2.sqlite');
    const file = SpaceFile.open(filePath, { cacheKiB: 1024 });
    const other = new Database(filePath);
    try {
      const put2 = other.prepare("INSERT INTO objects (key, value) VALUES (?, '{}')");
      const seen = other.prepare('SELECT value FROM objects WHERE key = ?').pluck();
      expect(file.has('a')).to.equal(true);
      // Another connection's write after this turn's first lookup is not in the turn's snapshot...
      put2.run('z');
      expect(file.has('z')).to.equal(false);
      expect(file.text('z')).to.equal(undefined);
      // ...but a write of this connection commits on its own, at once, not inside the lookups' transaction.
      file.commit([put('b', { type: 'y' })], 4);
      expect(seen.get('b')).to.equal('{"type":"y"}');
      expect(file.has('z')).to.equal(true);
      put2.run('z2');
      expect(file.has('z2')).to.equal(false);
      // The next turn reads afresh.
      await setImmediate();
      expect(file.has('z2')).to.equal(true);
      await setImmediate();
      // Nothing holds the WAL once the turn is over: a fold that must wait for every reader goes through at once.
      other.pragma('busy_timeout = 0');
      expect(other.pragma('wal_checkpoint(TRUNCATE)')).to.deep.equal([{ busy: 0, log: 0, checkpointed: 0 }]);
    } finally {
      other.close();
      file.close();
    }
  });

  it('finds a space file holding less than the collection counts applied (a power loss kept one file\'s newest transactions and lost another\'s), or missing', function () {
    let engine = open();
    engine.apply([{ op: load('plm', '1.0', ['type']), seq: 1 }, { op: create('s'), seq: 2 }, { op: create('t'), seq: 3 }, { op: commit('s', put('a', { type: 'x' })), seq: 4 }]);
    expect(engine.lostWrites).to.equal(null);
    engine.close();
    const file = path.join(dir, 'spaces', 's.2.sqlite');
    const before = readFileSync(file);
    engine = open();
    engine.apply([{ op: commit('s', put('b', { type: 'y' })), seq: 5 }, { op: commit('t', put('c', { type: 'y' })), seq: 6 }]);
    engine.close();
    // The disk kept the collection's step and t's, and none of s's: s's file as it was before it.
    writeFileSync(file, before);
    engine = open();
    expect(engine.lostWrites).to.match(/space file s\.2\.sqlite \(space "s"\) holds the records up to seq 4, but the collection recorded it holding those up to seq 5: it lost writes/);
    engine.close();
    writeFileSync(file, '');
    engine = open();
    expect(engine.lostWrites).to.match(/space file s\.2\.sqlite \(space "s"\) cannot be read, though the collection lists it \(cut short by a power loss\?\): .*is not a checkpointd space file/);
    engine.close();
    rmSync(file);
    engine = open();
    expect(engine.lostWrites).to.match(/space file s\.2\.sqlite \(space "s"\) is missing, though the collection lists it/);
    engine.close();
  });

  it('records each space\'s applied seq in an engine made before it did, from the next write of the space on', function () {
    let engine = open();
    engine.apply([{ op: load('plm', '1.0', ['type']), seq: 1 }, { op: create('s'), seq: 2 }, { op: commit('s', put('a', { type: 'x' })), seq: 3 }]);
    engine.close();
    const collection = new Database(path.join(dir, 'collection.sqlite'));
    collection.exec('ALTER TABLE spaces DROP COLUMN applied_seq');
    collection.close();
    engine = open();
    expect(engine.lostWrites).to.equal(null);
    engine.apply([{ op: commit('s', put('b', { type: 'y' })), seq: 4 }]);
    engine.close();
    const reopened = new Database(path.join(dir, 'collection.sqlite'), { readonly: true });
    expect(reopened.prepare('SELECT id, applied_seq FROM spaces').all()).to.deep.equal([{ id: 's', applied_seq: 4 }]);
    reopened.close();
  });
});
