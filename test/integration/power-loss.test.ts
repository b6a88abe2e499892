/**
 * The storage engine skips fsyncs (the journal is the source of truth), so a
 * power loss may keep one engine file's newest transactions and lose
 * another's. A restart must notice a space file that holds less than the
 * collection counts applied, and rebuild from a checkpoint and the journal,
 * not serve the older file. The power loss is made with real signals and the
 * files as the disk would hold them: SIGSTOP, copy the space file and its
 * WAL (an image of them at that moment), SIGCONT, more writes, SIGKILL, then
 * the copies put back as if their later writes never reached the disk.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DaemonProcess, suiteDaemons } from '../helpers/daemon-process.js';

describe('a power loss that kept the collection file\'s newest writes and lost a space file\'s', function () {
  this.timeout(60_000);
  const suite = suiteDaemons();

  it('is found at the restart, which rebuilds the engine from the checkpoint and the journal and serves every acknowledged write', async function () {
    const dir = await suite.folder('cpd-power-loss-');
    const config = { node: { name: 'a', role: 'primary' } };
    const a = suite.track(await DaemonProcess.start({ dir, config }));
    await a.seedSpaces(['s', 't']);
    const acked = new Map<string, unknown>();
    const put = async (space: string, i: number): Promise<void> => {
      const value = { type: i % 3 === 0 ? 'Doc' : 'Part', i };
      expect((await a.request('PUT', `/api/space/${space}/object/k${i}`, { body: value })).status).to.equal(201);
      acked.set(`${space}/k${i}`, value);
    };
    for (let i = 0; i < 30; i++) await put('s', i);
    expect((await a.request('POST', '/api/admin/checkpoint', { body: { description: 'before' } })).status).to.equal(201);
    for (let i = 30; i < 60; i++) await put('s', i);
    // A read applies every acknowledged commit to the engine first.
    expect((await a.query('/api/space/s/object')).status).to.equal(200);

    const spacesDir = path.join(dir, 'data', 'engine', 'spaces');
    const sFile = (await fs.readdir(spacesDir)).find((n) => /^s\.\d+\.sqlite$/.test(n))!;
    const image = path.join(dir, 'image');
    await fs.mkdir(image);
    a.child.kill('SIGSTOP');
    const copied: string[] = [];
    try {
      for (const name of [sFile, `${sFile}-wal`]) {
        try {
          await fs.copyFile(path.join(spacesDir, name), path.join(image, name));
          copied.push(name);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    } finally {
      a.child.kill('SIGCONT');
    }
    for (let i = 60; i < 100; i++) await put('s', i);
    for (let i = 0; i < 20; i++) await put('t', i);
    expect((await a.query('/api/space/t/object')).status).to.equal(200);
    await a.kill('SIGKILL');

    // The disk kept the collection file's steps and t's, and none of s's after the image.
    for (const name of [sFile, `${sFile}-wal`, `${sFile}-shm`]) await fs.rm(path.join(spacesDir, name), { force: true });
    for (const name of copied) await fs.copyFile(path.join(image, name), path.join(spacesDir, name));

    const b = suite.track(await DaemonProcess.start({ dir, config }));
    const rebuilt = b.lines.find((l) => l.message === 'the data folder does not follow this journal; rebuilding it from the newest checkpoint');
    expect(rebuilt?.reason, 'the restart saw the lost writes').to.match(new RegExp(`space file ${sFile.replace(/\./g, '\\.')} \\(space "s"\\) holds the records up to seq \\d+, but the collection recorded it holding those up to seq \\d+: it lost writes`));
    expect(b.lines.some((l) => l.message === 'start-up checkpoint loaded')).to.equal(true);
    for (const space of ['s', 't']) {
      const res = await b.query(`/api/space/${space}/object`);
      expect(res.status).to.equal(200);
      const present = new Map((res.body as { data: { key: string; data: unknown }[] }).data.map((o) => [`${space}/${o.key}`, o.data]));
      const lost = [...acked].filter(([k]) => k.startsWith(`${space}/`)).filter(([k, v]) => JSON.stringify(present.get(k)) !== JSON.stringify(v)).map(([k]) => k);
      expect(lost, `acknowledged writes of space ${space} missing after the restart`).to.deep.equal([]);
    }
  });
});
