import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DaemonProcess } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

async function journalFile(dir: string): Promise<string> {
  const folder = path.join(dir, 'FileVault', 'journal');
  const names = (await fs.readdir(folder)).filter((n) => n.endsWith('.log')).sort();
  return path.join(folder, names.at(-1)!);
}

async function seeded(puts: number): Promise<DaemonProcess> {
  const d = await DaemonProcess.start();
  await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: [] } });
  await d.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } });
  for (let i = 0; i < puts; i++) expect((await d.request('PUT', `/api/space/s/object/k${i}`, { body: { i } })).status).to.equal(201);
  await d.kill('SIGKILL');
  return d;
}

describe('journal recovery at start-up (real daemon)', function () {
  this.timeout(60_000);

  it('seals off a torn tail (left in the old file, never truncated), logs it, keeps every record before it, and goes on writing in a new file', async function () {
    const old = await seeded(5);
    const file = await journalFile(old.dir);
    const size = (await fs.stat(file)).size;
    await fs.truncate(file, size - 7); // the last record (k4) is torn
    const d = await DaemonProcess.start({ dir: old.dir });
    try {
      const cut = d.lines.find((l) => l.level === 'warn' && l.message === 'journal torn tail sealed off at the last good record');
      expect(cut, 'a warning about the torn tail').to.not.equal(undefined);
      expect((await fs.stat(file)).size, 'the torn bytes stay where they are').to.equal(size - 7);
      for (let i = 0; i < 4; i++) expect((await d.request('GET', `/api/space/s/object/k${i}`)).status).to.equal(200);
      expect((await d.request('GET', '/api/space/s/object/k4')).status).to.equal(404);
      expect((await d.request('PUT', '/api/space/s/object/after', { body: 1 })).status).to.equal(201);
      const restarted = await d.restart();
      expect((await restarted.request('GET', '/api/space/s/object/after')).status).to.equal(200);
      await restarted.cleanup();
    } finally {
      await d.cleanup();
    }
  });

  it('refuses to start (status 3) on a damaged record in the middle, and leaves the journal as it was', async function () {
    const old = await seeded(5);
    const file = await journalFile(old.dir);
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fs.writeFile(file, bytes);
    const d = DaemonProcess.spawn(old.dir, old.configFile);
    try {
      await waitFor(() => d.exit !== null, { what: 'the daemon to exit' });
      expect(d.exit?.code).to.equal(3);
      expect(d.stderr).to.include(path.basename(file)).and.match(/offset \d+/);
      expect(Buffer.compare(await fs.readFile(file), bytes)).to.equal(0);
    } finally {
      await d.cleanup();
    }
  });
});
