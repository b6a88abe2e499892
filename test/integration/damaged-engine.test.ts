/**
 * Every checkpoint checks each space file (SQLite's structure check and its
 * row count) as it archives it (manifest format 3), so that a damaged engine
 * file fails the checkpoint instead of reaching one that a standby would
 * later install without checking it again. The damage is made on disk under
 * a real daemon (SIGSTOP, bytes overwritten in the middle of a space file,
 * SIGCONT); the advice the error gives is then followed.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DaemonProcess, suiteDaemons } from '../helpers/daemon-process.js';

describe('a space file damaged in a primary\'s engine', function () {
  this.timeout(60_000);
  const suite = suiteDaemons();

  it('fails the next checkpoint with a 500 naming the space and what to do, leaves no checkpoint, and a restart on a new engine folder serves every object', async function () {
    const dir = await suite.folder('cpd-damaged-engine-');
    const config = { node: { name: 'a', role: 'primary' } };
    const a = suite.track(await DaemonProcess.start({ dir, config }));
    await a.seedSpaces(['s']);
    const objects = Array.from({ length: 40 }, (_, t) => Array.from({ length: 25 }, (_, j) => ({ key: `k${t * 25 + j}`, data: { type: j % 2 === 0 ? 'Doc' : 'Part', pad: 'x'.repeat(200) } })));
    for (const batch of objects) {
      const ops = batch.map((o) => ({ op: 'put', key: o.key, value: o.data }));
      const res = await a.request('POST', '/api/space/s/transaction', { body: { ops } });
      expect(res.status, res.text).to.equal(200);
    }
    // The checkpoint folds the WAL into the space file: what the disk holds is then the whole space.
    const first = await a.request('POST', '/api/admin/checkpoint', { body: { description: 'sound' } });
    expect(first.status, first.text).to.equal(201);

    const spacesDir = path.join(dir, 'data', 'engine', 'spaces');
    const sFile = path.join(spacesDir, (await fs.readdir(spacesDir)).find((n) => /^s\.\d+\.sqlite$/.test(n))!);
    a.child.kill('SIGSTOP');
    try {
      const handle = await fs.open(sFile, 'r+');
      try {
        const pages = Math.floor((await handle.stat()).size / 4096);
        expect(pages, 'pages in the space file').to.be.greaterThan(20);
        await handle.write(Buffer.alloc(392, 0xff), 0, 392, Math.floor(pages / 2) * 4096 + 8);
      } finally {
        await handle.close();
      }
    } finally {
      a.child.kill('SIGCONT');
    }

    const failed = await a.request('POST', '/api/admin/checkpoint', { body: { description: 'over damage' } });
    expect(failed.status, failed.text).to.equal(500);
    expect(failed.headers.get('content-type')).to.match(/^application\/problem\+json/);
    const detail = (failed.body as { detail: string }).detail;
    expect(detail).to.match(/^space s is damaged in the engine: .*s\.\d+\.sqlite fails SQLite's check: .*; no checkpoint was made\. Stop this node, move its engine folder \(paths\.data\/engine\) aside and start it/);
    const listed = (await a.request('GET', '/api/collection/checkpoint')).body as { data: { data: { id: number; description: string } }[] };
    expect(listed.data.map((c) => c.data.description), 'checkpoints listed').to.deep.equal(['sound']);
    const files = await fs.readdir(path.join(dir, 'FileVault', 'checkpoint'));
    expect(files.filter((n) => n.startsWith('Checkpoint-')), 'checkpoint files').to.have.length(1);
    expect(files.filter((n) => n.includes('.tmp') || n.startsWith('.')), 'temp files left').to.deep.equal([]);

    // The advice: stop, move the engine folder aside, start.
    await a.kill('SIGTERM');
    await fs.rename(path.join(dir, 'data', 'engine'), path.join(dir, 'engine-damaged'));
    const b = suite.track(await DaemonProcess.start({ dir, config }));
    const res = await b.query('/api/space/s/object');
    expect(res.status).to.equal(200);
    const served = (res.body as { data: { key: string; data: unknown }[] }).data;
    expect(new Map(served.map((o) => [o.key, o.data]))).to.deep.equal(new Map(objects.flat().map((o) => [o.key, o.data])));
    const again = await b.request('POST', '/api/admin/checkpoint', { body: { description: 'after the rebuild' } });
    expect(again.status, again.text).to.equal(201);
  });
});
