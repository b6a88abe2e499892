import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { stageCheckpoint } from '../../src/checkpoint/index.js';
import { readManifest } from '../../src/checkpoint/archive/index.js';
import { scanJournal } from '../../src/journal/index.js';
import { silentLogger } from '../../src/log/index.js';
import { Engine, type StoreOp } from '../../src/store/index.js';
import { DaemonProcess } from '../helpers/daemon-process.js';

interface Resource {
  href: string;
  data: { id: number; seq: number; spaces: string[] };
}

const checkpointFile = (dir: string, id: number): string => path.join(dir, 'FileVault', 'checkpoint', `Checkpoint-${String(id).padStart(9, '0')}`);

async function objects(d: DaemonProcess, space: string): Promise<Record<string, unknown>> {
  const res = await d.query(`/api/space/${space}/object`);
  expect(res.status, res.text).to.equal(200);
  return Object.fromEntries((res.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, o.data]));
}

async function seed(d: DaemonProcess, spaces: string[]): Promise<void> {
  await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } });
  for (const id of spaces) {
    await d.request('POST', '/api/space', { body: { id, template: { name: 'plm', version: '1.0' } } });
    for (let i = 0; i < 30; i++) await d.request('PUT', `/api/space/${id}/object/k${i}`, { body: { type: i % 3 === 0 ? 'Part' : 'Doc', i, space: id } });
  }
}

async function checkpoint(d: DaemonProcess, route: string): Promise<Resource> {
  const res = await d.request('POST', route, { body: { description: 'test' } });
  expect(res.status, res.text).to.equal(201);
  return res.body as Resource;
}

describe('checkpoint restore (real daemons on loopback)', function () {
  this.timeout(60_000);
  let d: DaemonProcess;

  beforeEach(async function () {
    d = await DaemonProcess.start();
    await seed(d, ['test', 'other']);
  });
  afterEach(async function () {
    await d.cleanup();
  });

  it('restores a space checkpoint into that space and leaves the others alone', async function () {
    const saved = await objects(d, 'test');
    const cp = await checkpoint(d, '/api/space/test/checkpoint');
    await d.request('PUT', '/api/space/test/object/k1', { body: { type: 'Changed' } });
    await d.request('DELETE', '/api/space/test/object/k2');
    await d.request('PUT', '/api/space/test/object/new', { body: { type: 'Part' } });
    await d.request('PUT', '/api/space/other/object/k1', { body: { type: 'Kept' } });
    const res = await d.request('POST', `/api/collection/checkpoint/${cp.data.id}`);
    expect(res.status, res.text).to.equal(200);
    expect(await objects(d, 'test')).to.deep.equal(saved);
    expect(((await d.query('/api/space/test/object?type=Part')).body as { data: unknown[] }).data).to.have.length(10);
    expect((await objects(d, 'other')).k1).to.deep.equal({ type: 'Kept' });
  });

  it('restores everything from a collection checkpoint: spaces made later are gone', async function () {
    const test = await objects(d, 'test');
    const other = await objects(d, 'other');
    const cp = await checkpoint(d, '/api/admin/checkpoint');
    await d.request('POST', '/api/space', { body: { id: 'late', template: { name: 'plm', version: '1.0' } } });
    await d.request('DELETE', '/api/space/other/object/k3');
    expect((await d.request('POST', `/api/collection/checkpoint/${cp.data.id}`)).status).to.equal(200);
    expect(await objects(d, 'test')).to.deep.equal(test);
    expect(await objects(d, 'other')).to.deep.equal(other);
    expect((await d.request('GET', '/api/space/late')).status).to.equal(404);
  });

  it('refuses a restore when the template version differs (422 naming both versions)', async function () {
    const cp = await checkpoint(d, '/api/space/test/checkpoint');
    await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.1', indexes: ['type'] } });
    expect((await d.request('PUT', '/api/space/test/template', { body: { version: '1.1' } })).status).to.equal(200);
    const res = await d.request('POST', `/api/space/test/checkpoint/${cp.data.id}`);
    expect(res.status).to.equal(422);
    expect((res.body as { detail: string }).detail).to.include('1.0').and.include('1.1');
  });

  it('leaves the previous state serving when the checkpoint turns out damaged mid-restore', async function () {
    const cp = await checkpoint(d, '/api/admin/checkpoint');
    await d.request('PUT', '/api/space/test/object/k1', { body: { type: 'After' } });
    const before = { test: await objects(d, 'test'), other: await objects(d, 'other') };
    // Damage the last entry: the restore reads and stages everything before it, then must give up.
    const file = checkpointFile(d.dir, cp.data.id);
    const bytes = await fs.readFile(file);
    const cd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])); // central directory starts after the last entry's data
    bytes[cd - 40]! ^= 0xff;
    await fs.writeFile(file, bytes);
    const res = await d.request('POST', `/api/collection/checkpoint/${cp.data.id}`);
    expect(res.status, res.text).to.be.within(400, 499);
    expect({ test: await objects(d, 'test'), other: await objects(d, 'other') }).to.deep.equal(before);
    expect((await d.request('PUT', '/api/space/test/object/still', { body: 1 })).status).to.equal(201);
  });

  it('journals commits on top of a restore, and a restart shows the restored state plus those commits', async function () {
    const cp = await checkpoint(d, '/api/space/test/checkpoint');
    await d.request('PUT', '/api/space/test/object/k5', { body: { type: 'Lost' } });
    expect((await d.request('POST', `/api/space/test/checkpoint/${cp.data.id}`)).status).to.equal(200);
    await d.request('PUT', '/api/space/test/object/after', { body: { type: 'Part', after: true } });
    const expected = await objects(d, 'test');
    expect(expected.k5, 'the restore brought k5 back as it was in the checkpoint').to.deep.equal({ type: 'Doc', i: 5, space: 'test' });
    await d.kill('SIGKILL');
    d = await DaemonProcess.start({ dir: d.dir });
    expect(await objects(d, 'test')).to.deep.equal(expected);
    expect((await objects(d, 'test')).after).to.deep.equal({ type: 'Part', after: true });
  });

  it('refuses to delete a checkpoint the journal still needs to replay a restore (409, saying why)', async function () {
    const cp = await checkpoint(d, '/api/space/test/checkpoint');
    await d.request('POST', `/api/space/test/checkpoint/${cp.data.id}`);
    const res = await d.request('DELETE', `/api/collection/checkpoint/${cp.data.id}`);
    expect(res.status).to.equal(409);
    expect((res.body as { detail: string }).detail).to.include('restore');
    await fs.access(checkpointFile(d.dir, cp.data.id));
  });

  it('reports foreign, truncated and bit-flipped checkpoint files, and never restores them', async function () {
    const good = await checkpoint(d, '/api/admin/checkpoint');
    const before = { test: await objects(d, 'test'), other: await objects(d, 'other') };
    const folder = path.join(d.dir, 'FileVault', 'checkpoint');
    // A foreign ZIP (Info-ZIP, no manifest) and a truncated copy of a good checkpoint, under checkpoint names.
    await fs.writeFile(path.join(d.dir, 'note.txt'), 'not a checkpoint');
    await promisify(execFile)('zip', ['-q', 'foreign.zip', 'note.txt'], { cwd: d.dir }); // zip insists on a .zip name
    await fs.rename(path.join(d.dir, 'foreign.zip'), path.join(folder, 'Checkpoint-000000050'));
    const bytes = await fs.readFile(checkpointFile(d.dir, good.data.id));
    await fs.writeFile(path.join(folder, 'Checkpoint-000000051'), bytes.subarray(0, Math.floor(bytes.length / 2)));
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 3)]! ^= 0x01;
    await fs.writeFile(path.join(folder, 'Checkpoint-000000052'), flipped);

    const list = (await d.request('GET', '/api/collection/checkpoint')).body as { data: Resource[] };
    expect(list.data.map((r) => r.data.id)).to.not.include.members([50, 51]);
    const status = (await d.request('GET', '/api/admin/status')).body as { data: { checkpoints: { unreadable: { id: number; problem: string }[] } } };
    expect(status.data.checkpoints.unreadable.map((u) => u.id)).to.include.members([50, 51]);
    expect(status.data.checkpoints.unreadable.find((u) => u.id === 50)!.problem).to.match(/manifest/i);
    for (const id of [50, 51, 52]) {
      const res = await d.request('POST', `/api/collection/checkpoint/${id}`);
      expect(res.status, `restore of ${id}: ${res.text}`).to.be.oneOf([404, 422]);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    }
    expect({ test: await objects(d, 'test'), other: await objects(d, 'other') }).to.deep.equal(before);
  });

  it('the vendor API\'s Tip: a checkpoint file copied into another installation\'s FileVault is listed and restores there', async function () {
    const cp = await checkpoint(d, '/api/space/test/checkpoint');
    const source = await objects(d, 'test');
    const target = await DaemonProcess.start();
    try {
      await target.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } });
      const name = path.basename(checkpointFile(d.dir, cp.data.id));
      await fs.copyFile(checkpointFile(d.dir, cp.data.id), path.join(target.dir, 'FileVault', 'checkpoint', name));
      const list = (await target.request('GET', '/api/collection/checkpoint')).body as { data: Resource[] };
      expect(list.data.map((r) => r.data.id)).to.deep.equal([cp.data.id]);
      const res = await target.request('POST', `/api/space/test/checkpoint/${cp.data.id}`);
      expect(res.status, res.text).to.equal(200);
      expect(await objects(target, 'test')).to.deep.equal(source);
      // The target's own next checkpoint does not take the copied file's id.
      const own = await checkpoint(target, '/api/admin/checkpoint');
      expect(own.data.id).to.be.greaterThan(cp.data.id);
    } finally {
      await target.cleanup();
    }
  });

  it('is consistent at one seq while writers go on: loading it and replaying the journal after its seq gives the acknowledged state', async function () {
    let stop = false;
    const acked = new Map<string, unknown>();
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        const value = { type: 'Part', w, i };
        const res = await d.request('PUT', `/api/space/test/object/${key}`, { body: value });
        if (res.status === 201) acked.set(key, value);
      }
    });
    const cps: Resource[] = [];
    for (let n = 0; n < 3; n++) cps.push(await checkpoint(d, '/api/admin/checkpoint'));
    stop = true;
    await Promise.all(writers);
    const live = await objects(d, 'test');
    for (const [key, value] of acked) expect(live[key]).to.deep.equal(value);
    for (const cp of cps) {
      const file = checkpointFile(d.dir, cp.data.id);
      const manifest = await readManifest(file);
      const engine = Engine.open({ dir: path.join(d.dir, `rebuilt-${cp.data.id}`), cacheBytes: 8 << 20, logger: silentLogger() });
      try {
        const staged = await stageCheckpoint(file, manifest, engine, { collection: true });
        engine.install(staged.spaces, manifest.seq, staged.collection!.templates, 'base');
        expect(engine.appliedSeq).to.equal(cp.data.seq);
        await scanJournal(path.join(d.dir, 'FileVault', 'journal'), {
          repair: false,
          fromSeq: cp.data.seq,
          logger: silentLogger(),
          onRecord: (rec) => engine.apply([{ op: rec.op as StoreOp, seq: rec.seq }]),
        });
        const rebuilt = Object.fromEntries(engine.page('test', {}, undefined, 1_000_000).map((o) => [o.key, JSON.parse(o.text) as unknown]));
        expect(rebuilt).to.deep.equal(live);
      } finally {
        engine.close();
      }
    }
  });
});
