import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Catalogue, checkpointFileName } from '../../src/checkpoint/catalogue.js';
import { silentLogger } from '../../src/log/index.js';
import { removeLargeFile, TempPrefix } from '../../src/vault/index.js';

const MiB = 1024 * 1024;

describe('removing a large file a slice at a time', function () {
  let dir: string;
  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-remove-'));
  });
  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('gives the blocks back before unlinking: a second name of the file is left empty', async function () {
    const file = path.join(dir, 'big');
    await fs.writeFile(file, randomBytes(5 * MiB));
    // A second name keeps the inode alive after the unlink, so what was done to the file shows through it.
    await fs.link(file, path.join(dir, 'witness'));
    await removeLargeFile(file, MiB);
    await fs.access(file).then(() => expect.fail('the file is still there'), () => undefined);
    expect((await fs.stat(path.join(dir, 'witness'))).size).to.equal(0);
  });

  it('never cuts short a file this process has open: its reader reads on to the end', async function () {
    const file = path.join(dir, 'big');
    const data = randomBytes(5 * MiB);
    await fs.writeFile(file, data);
    await fs.link(file, path.join(dir, 'witness'));
    const reader = await fs.open(file, 'r');
    try {
      await removeLargeFile(file, MiB);
      await fs.access(file).then(() => expect.fail('the file is still there'), () => undefined);
      expect((await fs.stat(path.join(dir, 'witness'))).size).to.equal(data.length);
      const read = Buffer.alloc(data.length);
      const { bytesRead } = await reader.read(read, 0, data.length, 0);
      expect(bytesRead).to.equal(data.length);
      expect(read.equals(data)).to.equal(true);
    } finally {
      await reader.close();
    }
  });

  it('accepts a file that is already gone', async function () {
    await removeLargeFile(path.join(dir, 'nothing'));
  });

  it('is how the catalogue deletes a checkpoint: gone from the list at once, no temp file left, a download open meanwhile unharmed', async function () {
    const catalogue = new Catalogue(dir, silentLogger());
    await catalogue.init();
    // Catalogue.remove needs only the file; what is in it does not matter here.
    const a = path.join(dir, checkpointFileName(1));
    const b = path.join(dir, checkpointFileName(2));
    const data = randomBytes(40 * MiB);
    await fs.writeFile(a, data);
    await fs.writeFile(b, data);
    await fs.link(a, path.join(dir, 'witness-a'));
    await fs.link(b, path.join(dir, 'witness-b'));
    const download = await fs.open(b, 'r');
    try {
      await catalogue.remove(1);
      await catalogue.remove(2);
      expect((await fs.readdir(dir)).filter((n) => n.startsWith('Checkpoint-') || n.startsWith(TempPrefix))).to.deep.equal([]);
      expect((await fs.stat(path.join(dir, 'witness-a'))).size, 'shrunk (nobody had it open)').to.equal(0);
      expect((await fs.stat(path.join(dir, 'witness-b'))).size, 'left whole for its reader').to.equal(data.length);
      const read = Buffer.alloc(data.length);
      expect((await download.read(read, 0, data.length, 0)).bytesRead).to.equal(data.length);
      expect(read.equals(data)).to.equal(true);
    } finally {
      await download.close();
    }
  });
});
