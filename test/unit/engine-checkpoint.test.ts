import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { engineSpaceSources, readManifest, stageCheckpoint, verifyCheckpointArchive, writeCheckpointArchive } from '../../src/checkpoint/index.js';
import { silentLogger } from '../../src/log/index.js';
import { Engine, checkSpaceFile, collectionArchiveFile, type StoreOp } from '../../src/store/index.js';
import { commit, create, load, put, del } from '../helpers/store-ops.js';

const execFileP = promisify(execFile);

/** Every object of every space, with each space's description: what two engines must agree on. */
function contents(engine: Engine): unknown {
  return engine.spaces().map((info) => ({ info, objects: engine.page(info.id, {}, undefined, 1_000_000), byType: engine.page(info.id, { type: 'b' }, undefined, 1_000_000).map((o) => o.key) }));
}

describe('storage engine checkpoints (manifest formats 2 and 3: a space is its engine file)', function () {
  let dir: string;
  const engines: Engine[] = [];

  function open(name: string): Engine {
    const engine = Engine.open({ dir: path.join(dir, name), cacheBytes: 8 << 20, logger: silentLogger() });
    engines.push(engine);
    return engine;
  }

  function header(seq: number, scope: 'collection' | 'space' = 'collection') {
    return { id: 1, scope, description: '', time: new Date().toISOString(), trigger: 'manual', node: 'a', epoch: 1, seq };
  }

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cpd-engine-checkpoint-'));
  });

  afterEach(function () {
    for (const engine of engines.splice(0)) engine.close();
    // close() returns once the engine's WAL folding thread closed its connections too (store-engine.test.ts).
    rmSync(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  /** An engine with two spaces of `n` objects each, seqs 1..4. */
  function filled(engine: Engine, n: number): number {
    const ops = () => Array.from({ length: n }, (_, i) => put(`k${String(i).padStart(6, '0')}`, { type: ['a', 'b', 'c'][i % 3]!, n: i, pad: 'x'.repeat(100) }));
    const records: StoreOp[] = [load('plm', '1.0', ['type']), create('s1'), create('s2'), commit('s1', ...ops()), commit('s2', ...ops())];
    engine.apply(records.map((op, i) => ({ op, seq: i + 1 })));
    return records.length;
  }

  it('writes the spaces as they were at the snapshot while commits go on, and reads them back into another engine exactly', async function () {
    const source = open('source');
    let seq = filled(source, 900);
    const before = contents(source);
    const snapshot = source.snapshot();
    const target = path.join(dir, 'Checkpoint-000000001');
    let written;
    try {
      expect(snapshot.seq).to.equal(seq);
      const writing = writeCheckpointArchive(target, header(snapshot.seq), collectionArchiveFile(snapshot), engineSpaceSources(snapshot, ['s1', 's2'], dir), {
        compression: { method: 'deflate', level: 1 },
        format: 3,
      });
      // Commits land in the engine while the snapshot is held: none of them may be in the checkpoint. Over 8 MiB of
      // them, so that SQLite tries to fold its WAL into the very files the checkpoint reads (every 1,000 pages). The
      // check of each file as it is archived counts the snapshot's 900 objects, not the thousands the WAL holds now.
      expect(snapshot.source('s1').frozen, 'a snapshot with no other reader reads the files as they lie').to.equal(true);
      for (let i = 0; i < 300; i++) {
        const space = i % 2 === 0 ? 's1' : 's2';
        source.apply([{ op: commit(space, del(`k${String(i).padStart(6, '0')}`), ...Array.from({ length: 100 }, (_, j) => put(`new${i}-${j}`, { type: 'b', pad: 'y'.repeat(300) }))), seq: ++seq }]);
      }
      written = await writing;
    } finally {
      snapshot.close();
    }
    expect(contents(source)).to.not.deep.equal(before);
    expect(written.manifest.format).to.equal(3);
    expect(written.manifest.spaces.map((s) => s.files.map((f) => f.path))).to.deep.equal([['space/s1/store/space.sqlite'], ['space/s2/store/space.sqlite']]);
    await execFileP('unzip', ['-tq', target]);
    const verified = await verifyCheckpointArchive(target);
    expect(verified.ok, JSON.stringify(verified)).to.equal(true);
    expect(readdirSync(dir).filter((n) => n.startsWith('snapshot-')), 'the snapshot copies are removed').to.deep.equal([]);

    const restored = open('restored');
    const staged = (await stageCheckpoint(target, written.manifest, restored, { spaces: ['s1', 's2'], collection: false })).spaces;
    restored.install(staged, written.manifest.seq + 1, [{ name: 'plm', version: '1.0', indexes: ['type'] }]);
    expect(readdirSync(path.join(restored.dir, 'spaces')).filter((n) => n.includes('.staged-')), 'nothing left under a staged name').to.deep.equal([]);
    const expected = (before as { info: { updatedSeq: number } }[]).map((s) => ({ ...s, info: { ...s.info, updatedSeq: written.manifest.seq + 1 } }));
    expect(contents(restored)).to.deep.equal(expected);
    expect(restored.appliedSeq).to.equal(written.manifest.seq + 1);
    // The restored engine goes on from there, and keeps all of it across a close and an open.
    restored.apply([{ op: commit('s1', put('after', { type: 'b' })), seq: written.manifest.seq + 2 }]);
    restored.close();
    const reopened = open('restored');
    expect(reopened.page('s1', { type: 'b' }, undefined, 1_000_000).map((o) => o.key)).to.include('after');
    expect(reopened.space('s2')).to.deep.equal((expected[1] as { info: unknown }).info);
  });

  it('archives the snapshot\'s files even when a rebuild replaces the engine\'s folder while the checkpoint reads them (hard links in the scratch folder)', async function () {
    const engine = open('rebuilt');
    filled(engine, 300);
    const before = contents(engine);
    const scratch = path.join(dir, 'scratch');
    await fs.mkdir(scratch);
    const snapshot = engine.snapshot(undefined, scratch);
    expect(snapshot.source('s1').frozen).to.equal(true);
    expect(snapshot.source('s1').path.startsWith(scratch), 'the snapshot names its link').to.equal(true);
    // A fenced primary rejoining: its engine is rebuilt elsewhere and put in place of the folder, same file names.
    const other = open('rebuilt.rebuild');
    filled(other, 7);
    engines.splice(engines.indexOf(engine), 1);
    engines.splice(engines.indexOf(other), 1);
    engines.push(engine.replaceWith(other));
    const target = path.join(dir, 'Checkpoint-000000040');
    let written;
    try {
      written = await writeCheckpointArchive(target, header(snapshot.seq), collectionArchiveFile(snapshot), engineSpaceSources(snapshot, ['s1', 's2'], scratch), { compression: { method: 'store' }, format: 3 });
    } finally {
      snapshot.close();
    }
    expect(readdirSync(scratch), 'the links are removed with the snapshot').to.deep.equal([]);
    expect(written.manifest.spaces.map((s) => s.objects)).to.deep.equal([300, 300]);
    const restored = open('rebuilt-restored');
    const staged = (await stageCheckpoint(target, written.manifest, restored, { spaces: ['s1', 's2'], collection: false })).spaces;
    restored.install(staged, written.manifest.seq + 1, [{ name: 'plm', version: '1.0', indexes: ['type'] }]);
    expect(contents(restored)).to.deep.equal((before as { info: { updatedSeq: number } }[]).map((s) => ({ ...s, info: { ...s.info, updatedSeq: written.manifest.seq + 1 } })));
  });

  it('copies a space out with SQLite\'s backup when an older snapshot keeps its WAL from being folded in, and both hold their own seq', async function () {
    const engine = open('two');
    let seq = filled(engine, 30);
    const first = engine.snapshot(['s1']);
    const atFirst = engine.page('s1', {}, undefined, 1000);
    engine.apply([{ op: commit('s1', put('late', { type: 'b' }), del('k000000')), seq: ++seq }]);
    const second = engine.snapshot(['s1']);
    const atSecond = engine.page('s1', {}, undefined, 1000);
    engine.apply([{ op: commit('s1', put('later', { type: 'c' })), seq: ++seq }]);
    const manifests = [];
    try {
      expect(first.source('s1').frozen).to.equal(true);
      expect(second.source('s1').frozen, 'the first snapshot holds the WAL back').to.equal(false);
      for (const [i, snapshot] of [first, second].entries()) {
        const target = path.join(dir, `Checkpoint-00000001${i}`);
        const written = await writeCheckpointArchive(target, { ...header(snapshot.seq, 'space'), id: 10 + i }, null, engineSpaceSources(snapshot, ['s1'], dir), { compression: { method: 'deflate', level: 1 }, format: 2 });
        manifests.push({ target, manifest: written.manifest });
      }
    } finally {
      first.close();
      second.close();
    }
    expect(readdirSync(dir).filter((n) => n.startsWith('snapshot-')), 'the backup copy is removed').to.deep.equal([]);
    for (const [i, expected] of [atFirst, atSecond].entries()) {
      const restored = open(`two-restored-${i}`);
      restored.apply([{ op: load('plm', '1.0', ['type']), seq: 1 }]);
      const { target, manifest } = manifests[i]!;
      restored.install((await stageCheckpoint(target, manifest, restored, { spaces: ['s1'], collection: false })).spaces, 2);
      expect(restored.page('s1', {}, undefined, 1000), `snapshot ${i + 1}`).to.deep.equal(expected);
    }
  });

  it('restores one space of a checkpoint over the same space, leaving the others, and removes the file it replaced', async function () {
    const engine = open('one');
    const seq = filled(engine, 50);
    const snapshot = engine.snapshot(['s1']);
    const target = path.join(dir, 'Checkpoint-000000002');
    let written;
    try {
      written = await writeCheckpointArchive(target, header(snapshot.seq, 'space'), null, engineSpaceSources(snapshot, ['s1'], dir), { compression: { method: 'store' }, format: 2 });
    } finally {
      snapshot.close();
    }
    const s1Before = engine.page('s1', {}, undefined, 1000);
    engine.apply([{ op: commit('s1', del('k000001'), put('zz', { type: 'b' })), seq: seq + 1 }, { op: commit('s2', put('zz', { type: 'a' })), seq: seq + 2 }]);
    const staged = (await stageCheckpoint(target, written.manifest, engine, { spaces: ['s1'], collection: false })).spaces;
    engine.install(staged, seq + 3);
    expect(engine.page('s1', {}, undefined, 1000)).to.deep.equal(s1Before);
    expect(engine.space('s1')).to.include({ objectCount: 50, updatedSeq: seq + 3 });
    expect(engine.text('s2', 'zz')).to.equal('{"type":"a"}');
    expect(readdirSync(path.join(dir, 'one', 'spaces')).filter((n) => n.endsWith('.sqlite')).sort()).to.deep.equal([`s1.${seq + 3}.sqlite`, 's2.3.sqlite']);
  });

  /** Space s1's file of a closed engine `name` holding 400 objects a space (filled), and its bytes with one page's cells overwritten. */
  async function damagedFile(name: string): Promise<{ file: string; good: Buffer; damaged: Buffer }> {
    const engine = open(name);
    filled(engine, 400);
    engine.close();
    const file = path.join(dir, name, 'spaces', 's1.2.sqlite');
    const good = await fs.readFile(file);
    expect(good.length).to.be.greaterThan(8 * 4096);
    const damaged = Buffer.from(good);
    damaged.fill(0xff, 5 * 4096 + 8, 5 * 4096 + 400);
    return { file, good, damaged };
  }

  it('refuses a space file whose pages are damaged (SQLite\'s structure check, on a worker thread), naming it', async function () {
    const { file, damaged } = await damagedFile('damaged');
    const info = { id: 's1', template: { name: 'plm', version: '1.0' }, objectCount: 400, createdSeq: 2, updatedSeq: 4 };
    await checkSpaceFile(file, info);
    await fs.writeFile(file, damaged);
    let error: Error | null = null;
    await checkSpaceFile(file, info).catch((err: Error) => (error = err));
    expect(String(error)).to.include(`${file} fails SQLite's check`);
    expect(String(error), 'one line').to.match(/^[^\n]+$/);
    await checkSpaceFile(path.join(dir, 'damaged', 'spaces', 's2.3.sqlite'), { ...info, id: 's2', createdSeq: 3, updatedSeq: 5 });
  });

  it('checks each space file as the snapshot froze it, or its copy, while archiving it: a damaged engine file fails the checkpoint, naming the space', async function () {
    const { file, damaged } = await damagedFile('damaged-engine');
    await fs.writeFile(file, damaged);
    const reopened = open('damaged-engine');
    for (const copied of [false, true]) {
      // A snapshot held first keeps the second one from folding the WAL in: the second is copied out (SQLite's backup).
      const older = copied ? reopened.snapshot(['s1']) : null;
      if (copied) reopened.apply([{ op: commit('s1', put('late', { type: 'b' })), seq: reopened.appliedSeq + 1 }]);
      const snapshot = reopened.snapshot(['s1', 's2']);
      const target = path.join(dir, `Checkpoint-00000002${copied ? 1 : 0}`);
      let error: Error | null = null;
      try {
        expect(snapshot.source('s1').frozen).to.equal(!copied);
        await writeCheckpointArchive(target, header(snapshot.seq, 'collection'), collectionArchiveFile(snapshot), engineSpaceSources(snapshot, ['s1', 's2'], dir), { compression: { method: 'store' }, format: 3 }).catch((err: Error) => (error = err));
      } finally {
        snapshot.close();
        older?.close();
      }
      expect(String(error), copied ? 'the copy' : 'the frozen file').to.match(/space s1 is damaged in the engine: [^\n]* fails SQLite's check: [^\n]+; no checkpoint was made/);
      expect(String(error), 'names the engine\'s file').to.include(`engine: ${file} ${copied ? '(copied out as ' : 'fails'}`);
      expect(readdirSync(dir).filter((n) => n.startsWith('Checkpoint-') || n.startsWith('snapshot-')), 'no checkpoint, no copy left').to.deep.equal([]);
    }
  });

  it('checks a space file read back from a format-2 checkpoint (not checked when made), and refuses a damaged one; one from a format-3 checkpoint is matched against its manifest', async function () {
    const { good, damaged } = await damagedFile('old-format');
    const info = { id: 's1', template: { name: 'plm', version: '1.0' }, objects: 400, createdSeq: 2, updatedSeq: 4 };
    // Archived as an earlier release wrote it: the file's bytes as they are, with no check when made.
    let made = 30;
    const archive = async (bytes: Buffer, format: 2 | 3, objects = info.objects) => {
      const target = path.join(dir, `Checkpoint-0000000${++made}`);
      const source = { ...info, objects, files: [{ path: 'space/s1/store/space.sqlite', chunks: async function* () { yield bytes; } }] };
      return { target, manifest: (await writeCheckpointArchive(target, header(4, 'space'), null, [source], { compression: { method: 'store' }, format })).manifest };
    };
    const reader = open('reader');
    reader.apply([{ op: load('plm', '1.0', ['type']), seq: 1 }]);
    const old = await archive(damaged, 2);
    let error: Error | null = null;
    await stageCheckpoint(old.target, old.manifest, reader, { collection: false }).catch((err: Error) => (error = err));
    expect(String(error)).to.match(/fails SQLite's check/);
    const lying = await archive(good, 3, 401);
    error = null;
    await stageCheckpoint(lying.target, lying.manifest, reader, { collection: false }).catch((err: Error) => (error = err));
    expect(String(error)).to.match(/where the manifest lists/);
    expect(readdirSync(path.join(dir, 'reader', 'spaces')).filter((n) => n.includes('staged')), 'nothing staged is left').to.deep.equal([]);
    const fine = await archive(good, 3);
    reader.install((await stageCheckpoint(fine.target, fine.manifest, reader, { collection: false })).spaces, 5);
    expect(reader.space('s1')).to.include({ objectCount: 400 });
    expect(reader.page('s1', { type: 'b' }, undefined, 1000)).to.have.length(133);
  });

  it('reads checkpoints made by release 0.1.0 (format 1, NDJSON files) into the engine: what that release served, and the same index answers', async function () {
    const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/format-1');
    const expected = JSON.parse(await fs.readFile(path.join(fixtures, 'expected.json'), 'utf8')) as {
      templates: { name: string; version: string; indexes: string[] }[];
      spaces: Record<string, { template: { name: string; version: string }; objects: { key: string; data: unknown }[] }>;
    };
    const engine = open('format-1');
    const file = path.join(fixtures, 'collection.zip');
    const manifest = await readManifest(file);
    expect(manifest.format).to.equal(1);
    const staged = await stageCheckpoint(file, manifest, engine, { collection: true });
    engine.install(staged.spaces, manifest.seq + 1, staged.collection!.templates);
    expect(engine.templates()).to.deep.equal(expected.templates);
    expect(engine.spaces().map((s) => s.id).sort()).to.deep.equal(Object.keys(expected.spaces).sort());
    let queries = 0;
    for (const [id, space] of Object.entries(expected.spaces)) {
      expect(engine.space(id)!.template).to.deep.equal(space.template);
      const objects = engine.page(id, {}, undefined, 1_000_000).map((o) => ({ key: o.key, data: JSON.parse(o.text) as unknown }));
      expect(objects, `space ${id}`).to.deep.equal(space.objects);
      // Every index answer the engine gives from the file it built, against a scan of what the release served.
      for (const field of engine.indexedFields(id)) {
        const terms = new Set<string>();
        for (const o of space.objects) {
          const v = (o.data as Record<string, unknown>)[field];
          for (const t of Array.isArray(v) ? v : [v]) if (typeof t === 'string' || typeof t === 'number' || typeof t === 'boolean') terms.add(String(t));
        }
        for (const term of terms) {
          queries++;
          const holds = space.objects.filter((o) => {
            const v = (o.data as Record<string, unknown>)[field];
            return (Array.isArray(v) ? v : [v]).some((t) => (typeof t === 'string' || typeof t === 'number' || typeof t === 'boolean') && String(t) === term);
          });
          expect(engine.page(id, { [field]: term }, undefined, 1_000_000).map((o) => o.key), `${id} ${field}=${term}`).to.deep.equal(holds.map((o) => o.key));
        }
      }
    }
    expect(queries, 'index answers compared').to.be.greaterThan(10);
    // The space checkpoint of docs, over the restored docs.
    const spaceFile = path.join(fixtures, 'space-docs.zip');
    const spaceManifest = await readManifest(spaceFile);
    engine.install((await stageCheckpoint(spaceFile, spaceManifest, engine, { collection: false })).spaces, manifest.seq + 2);
    expect(engine.page('docs', {}, undefined, 1000).map((o) => ({ key: o.key, data: JSON.parse(o.text) as unknown }))).to.deep.equal(expected.spaces.docs!.objects);
  });

  it('refuses a staged file whose content does not match its manifest, and leaves no staged file behind', async function () {
    const engine = open('bad');
    filled(engine, 10);
    const snapshot = engine.snapshot(['s1']);
    const target = path.join(dir, 'Checkpoint-000000003');
    let written;
    try {
      written = await writeCheckpointArchive(target, header(snapshot.seq, 'space'), null, engineSpaceSources(snapshot, ['s1'], dir), { compression: { method: 'store' }, format: 2 });
    } finally {
      snapshot.close();
    }
    // A manifest that tells another count than the file (as a checkpoint made from a damaged engine would).
    const lying = { ...written.manifest, spaces: written.manifest.spaces.map((s) => ({ ...s, objects: s.objects + 1 })) };
    let error: Error | null = null;
    await stageCheckpoint(target, lying, engine, { spaces: ['s1'], collection: false }).catch((err: Error) => (error = err));
    expect(error).to.be.instanceOf(Error);
    expect(String(error)).to.match(/where the manifest lists/);
    expect(readdirSync(path.join(dir, 'bad', 'spaces')).filter((n) => n.includes('staged'))).to.deep.equal([]);
    await fs.rm(target);
  });
});
