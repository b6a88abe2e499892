import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Catalogue, checkpointFileName } from '../../src/checkpoint/catalogue.js';
import { silentLogger } from '../../src/log/index.js';
import { removeLargeFile, TempPrefix } from '../../src/vault/index.js';

const MiB = 1024 * 1024;

/** Records the lengths each file opened from now on is truncated to (node:fs itself, watched; nothing of ours replaced). */
function watchTruncations(): { lengths: (file: string) => number[]; all: () => number[]; stop: () => void } {
  const realOpen = fs.open;
  const seen = new Map<string, number[]>();
  fs.open = (async (...args: Parameters<typeof fs.open>) => {
    const handle = await realOpen(...args);
    const file = path.basename(String(args[0]));
    const truncate = handle.truncate.bind(handle);
    handle.truncate = async (length?: number) => {
      seen.set(file, [...(seen.get(file) ?? []), length ?? 0]);
      return truncate(length);
    };
    return handle;
  });
  return {
    lengths: (prefix) => [...seen].filter(([f]) => f.startsWith(prefix)).flatMap(([, l]) => l),
    all: () => [...seen.values()].flat(),
    stop: () => {
      fs.open = realOpen;
    },
  };
}

describe('removing a large file a slice at a time', function () {
  let dir: string;
  let watch: ReturnType<typeof watchTruncations>;
  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-remove-'));
    watch = watchTruncations();
  });
  afterEach(async function () {
    watch.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('gives the blocks back a slice at a time, then unlinks it', async function () {
    const file = path.join(dir, 'big');
    await fs.writeFile(file, randomBytes(5 * MiB));
    await removeLargeFile(file, MiB);
    await fs.access(file).then(() => expect.fail('the file is still there'), () => undefined);
    expect(watch.all()).to.deep.equal([4 * MiB, 3 * MiB, 2 * MiB, MiB, 0]);
  });

  it('never cuts short a file this process has open: its reader reads on to the end', async function () {
    const file = path.join(dir, 'big');
    const data = randomBytes(5 * MiB);
    await fs.writeFile(file, data);
    const reader = await fs.open(file, 'r');
    try {
      await removeLargeFile(file, MiB);
      await fs.access(file).then(() => expect.fail('the file is still there'), () => undefined);
      expect(watch.all()).to.deep.equal([]);
      const read = Buffer.alloc(data.length);
      const { bytesRead } = await reader.read(read, 0, data.length, 0);
      expect(bytesRead).to.equal(data.length);
      expect(read.equals(data)).to.equal(true);
    } finally {
      await reader.close();
    }
  });

  it('never cuts short a file with another name: a hard link made as a copy keeps all of it', async function () {
    const file = path.join(dir, 'big');
    const data = randomBytes(5 * MiB);
    await fs.writeFile(file, data);
    await fs.link(file, path.join(dir, 'copy'));
    await removeLargeFile(file, MiB);
    await fs.access(file).then(() => expect.fail('the file is still there'), () => undefined);
    expect(watch.all()).to.deep.equal([]);
    expect((await fs.readFile(path.join(dir, 'copy'))).equals(data)).to.equal(true);
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
    const download = await fs.open(b, 'r');
    try {
      await catalogue.remove(1);
      await catalogue.remove(2);
      expect((await fs.readdir(dir)).filter((n) => n.startsWith('Checkpoint-') || n.startsWith(TempPrefix))).to.deep.equal([]);
      // Renamed to a temp name first, then cut down 32 MiB at a time.
      expect(watch.lengths(`${TempPrefix}${checkpointFileName(1)}-`), 'checkpoint 1, which nobody had open').to.deep.equal([8 * MiB, 0]);
      expect(watch.lengths(`${TempPrefix}${checkpointFileName(2)}-`), 'checkpoint 2, being downloaded').to.deep.equal([]);
      const read = Buffer.alloc(data.length);
      expect((await download.read(read, 0, data.length, 0)).bytesRead).to.equal(data.length);
      expect(read.equals(data)).to.equal(true);
    } finally {
      await download.close();
    }
  });
});
