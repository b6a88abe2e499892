import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import {
  CheckpointFormatError,
  readCheckpointArchive,
  readManifest,
  verifyCheckpointArchive,
  type FileEntry,
} from '../../src/checkpoint/archive/index.js';
import { expectFlipsRefused, FixtureIndex, FixtureLines, FixtureStore, smallCheckpoint } from '../helpers/archive-fixture.js';
import { rawCheckpoint, rawZip, type RawEntry } from '../helpers/raw-zip.js';

const execFileP = promisify(execFile);

const Store = FixtureStore;
const Index = FixtureIndex;
const lines = FixtureLines;

/** Read a checkpoint as a consumer would, recording how many bytes of each entry it saw. */
async function consume(file: string): Promise<{ error: unknown; seen: Map<string, number>; entries: Map<string, FileEntry> }> {
  const seen = new Map<string, number>();
  const entries = new Map<string, FileEntry>();
  try {
    await readCheckpointArchive(file, {
      async file(entry, data) {
        entries.set(entry.path, entry);
        seen.set(entry.path, 0);
        for await (const c of data) seen.set(entry.path, seen.get(entry.path)! + c.length);
      },
    });
    return { error: null, seen, entries };
  } catch (error) {
    return { error, seen, entries };
  }
}

describe('checkpoint archive: damaged and hostile files', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-hostile-'));
  });
  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  function good(method: 'store' | 'deflate'): Promise<string> {
    return smallCheckpoint(dir, method);
  }

  async function file(name: string, bytes: Buffer): Promise<string> {
    const f = path.join(dir, name);
    await fs.writeFile(f, bytes);
    return f;
  }

  /** Verify refuses the file, and reading it throws CheckpointFormatError with the same problem. */
  async function expectRefused(f: string, problem: RegExp, entry?: string | null, what = path.basename(f)): Promise<void> {
    const verdict = await verifyCheckpointArchive(f);
    expect(verdict.ok, `${what}: ${JSON.stringify(verdict)}`).to.equal(false);
    if (verdict.ok) return;
    expect(verdict.problem, what).to.match(problem);
    if (entry !== undefined) expect(verdict.entry, what).to.equal(entry);
    const { error, seen, entries } = await consume(f);
    expect(error).to.be.instanceOf(CheckpointFormatError);
    expect((error as CheckpointFormatError).problem).to.equal(verdict.problem);
    expect((error as CheckpointFormatError).status).to.equal(422);
    for (const [p, n] of seen) expect(n, `bytes of ${p} given to the consumer`).to.be.at.most(entries.get(p)!.size);
  }

  describe('damage to a checkpoint checkpointd wrote', function () {
    it('refuses the file truncated at any of several offsets', async function () {
      for (const method of ['store', 'deflate'] as const) {
        const bytes = await fs.readFile(await good(method));
        const n = bytes.length;
        for (const at of [0, 1, 3, 4, 30, 100, n >> 1, n - 120, n - 23, n - 22, n - 21, n - 1]) {
          await expectRefused(await file(`cut-${method}-${at}`, bytes.subarray(0, at)), /./, null);
        }
      }
    });

    it('refuses a byte flipped in an entry’s data, naming that entry', async function () {
      const f = await good('store');
      const bytes = await fs.readFile(f);
      const at = bytes.indexOf('"key":"k2"');
      bytes[at] = bytes[at]! ^ 0x01;
      await expectRefused(await file('flipped-data', bytes), /SHA-256 mismatch \(manifest [0-9a-f]{8}…, file [0-9a-f]{8}…\); the file is damaged, use another checkpoint/, Store);
      const err = (await consume(path.join(dir, 'flipped-data'))).error as CheckpointFormatError;
      expect(err.message).to.match(/^flipped-data: entry space\/test\/store\/objects\.ndjson: SHA-256 mismatch/);
    });

    it('refuses a byte flipped in the central directory', async function () {
      const bytes = await fs.readFile(await good('deflate'));
      const cd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
      bytes[cd + 40] = bytes[cd + 40]! ^ 0x04; // external attributes of the last record
      await expectRefused(await file('flipped-cd', bytes), /central directory record is damaged \(external attributes/, Index);
    });

    it('refuses a flipped byte at every 48th offset of the file from a random first one, stored and deflated (every offset: test/e2e/archive-every-byte.test.ts)', async function () {
      // Different offsets each run; a failure names the byte.
      await expectFlipsRefused(dir, 48, Math.floor(Math.random() * 48));
    });

    it('refuses extra bytes after the end record', async function () {
      const bytes = await fs.readFile(await good('store'));
      await expectRefused(await file('trailing', Buffer.concat([bytes, Buffer.from('junk')])), /extra bytes after its end record/, null);
    });
  });

  describe('files that are not checkpoints', function () {
    it('refuses a foreign ZIP made with zip -r: no manifest', async function () {
      const tree = path.join(dir, 'tree');
      await fs.mkdir(path.join(tree, 'space/test/store'), { recursive: true });
      await fs.writeFile(path.join(tree, 'space/test/store/objects.ndjson'), lines);
      await execFileP('zip', ['-q', '-r', path.join(dir, 'foreign.zip'), '.'], { cwd: tree });
      await expectRefused(path.join(dir, 'foreign.zip'), /no manifest\.json/, null);
    });

    it('refuses a file that is not a ZIP at all, and an empty file', async function () {
      await expectRefused(await file('text', Buffer.from('hello, I am not a zip file\n'.repeat(10))), /not a ZIP file/, null);
      await expectRefused(await file('empty', Buffer.alloc(0)), /empty/, null);
    });

    it('refuses a folder and a FIFO without hanging', async function () {
      await expectRefused(dir, /not a regular file/, null);
      const fifo = path.join(dir, 'fifo');
      await execFileP('mkfifo', [fifo]);
      await expectRefused(fifo, /not a regular file/, null);
    });

    it('reports a missing file as NotFoundError, not as a damaged checkpoint', async function () {
      const err = await verifyCheckpointArchive(path.join(dir, 'nope')).catch((e: unknown) => e);
      expect(err).to.have.property('status', 404);
      const err2 = await readManifest(path.join(dir, 'nope')).catch((e: unknown) => e);
      expect(err2).to.have.property('status', 404);
    });
  });

  describe('crafted archives', function () {
    const entry = (name: string, content = lines, more: Partial<RawEntry> = {}): RawEntry => ({ name, content, ...more });

    it('accepts what the raw builder crafts when nothing is wrong (the builder follows the format)', async function () {
      const f = await file('fine', rawCheckpoint([entry(Store), entry(Index, Buffer.from('idx'), { method: 'deflate' })]));
      const verdict = await verifyCheckpointArchive(f);
      expect(verdict.ok, JSON.stringify(verdict)).to.equal(true);
    });

    for (const name of ['../x', '/abs', 'space/../../x', 'space\\x', 'space/test/store/../../../etc/passwd', 'space//store/x', 'space/te st/store/x', 'C:/x', 'space/test/store/a\u0001b', 'space/test/other/x', 'space/test/store/x/y']) {
      it(`refuses the entry name ${JSON.stringify(name)}, naming it`, async function () {
        await expectRefused(await file('slip', rawCheckpoint([entry(Store), entry(name)])), /refused/, name);
      });
    }

    it('refuses a name listed twice', async function () {
      await expectRefused(await file('twice', rawCheckpoint([entry(Store), entry(Store)], { listed: [{ name: Store, content: lines }] })), /in the ZIP twice/, Store);
    });

    it('refuses an entry the manifest does not list', async function () {
      const f = await file('unlisted', rawCheckpoint([entry(Store), entry('space/test/store/extra.ndjson')], { listed: [{ name: Store, content: lines }] }));
      await expectRefused(f, /not listed in the manifest/, 'space/test/store/extra.ndjson');
    });

    it('refuses a listed entry that is missing', async function () {
      const f = await file('missing', rawCheckpoint([entry(Store)], { listed: [{ name: Store, content: lines }, { name: Index, content: lines }] }));
      await expectRefused(f, /missing from the ZIP/, Index);
    });

    it('refuses entries in another order than the manifest’s', async function () {
      const f = await file('order', rawCheckpoint([entry(Index), entry(Store)], { listed: [{ name: Store, content: lines }, { name: Index, content: lines }] }));
      await expectRefused(f, /out of order/, Index);
    });

    it('refuses a ZIP whose manifest.json is not the first entry', async function () {
      await expectRefused(await file('second', rawCheckpoint([entry(Store)], { before: [entry('space/test/index/a')] })), /not the first entry/, 'manifest.json');
    });

    it('refuses a manifest that is not JSON, or not of its format’s exact shape', async function () {
      const cases: [string, (m: Record<string, unknown>) => void, RegExp][] = [
        ['format 4', (m) => (m.format = 4), /format is 4, not one of 1, 2, 3 \(written by a newer checkpointd\?\)/],
        ['format 2 with NDJSON files', (m) => (m.format = 2), /files is not exactly \[space\/\S+\/store\/space\.sqlite\]/],
        ['an unknown field', (m) => (m.extra = true), /extra is not part of the manifest format/],
        ['a short SHA-256', (m) => ((m.spaces as { files: FileEntry[] }[])[0]!.files[0]!.sha256 = 'abc'), /sha256 is not 64 lowercase hex digits/],
        ['a negative size', (m) => ((m.spaces as { files: FileEntry[] }[])[0]!.files[0]!.size = -1), /size is not an integer/],
        ['a bad space id', (m) => ((m.spaces as { id: string }[])[0]!.id = '../up'), /spaces\[0\]\.id/],
        ['a missing seq', (m) => delete m.seq, /seq is missing/],
        ['a bad scope', (m) => (m.scope = 'all'), /scope/],
        ['a __proto__ key', (m) => Object.defineProperty(m, '__proto__', { value: { polluted: true }, enumerable: true }), /__proto__ is not part of the manifest format/],
      ];
      for (const [what, edit, problem] of cases) {
        await expectRefused(await file('shape', rawCheckpoint([entry(Store)], { edit })), problem, 'manifest.json', what);
      }
      const notJson = rawZip([{ name: 'manifest.json', content: Buffer.from('{"format":1,') }, entry(Store)]);
      await expectRefused(await file('notjson', notJson), /not valid UTF-8 JSON/, 'manifest.json');
    });

    it('refuses a manifest over 16 MiB before reading it', async function () {
      const f = await file('hugemanifest', rawZip([{ name: 'manifest.json', content: Buffer.from('{}'), method: 'deflate', declaredSize: 16 * 1024 * 1024 + 1 }]));
      await expectRefused(f, /over the 16777216-byte limit/, 'manifest.json');
    });

    it('refuses a zip bomb: an entry that inflates past its manifest size, with memory bounded and no byte past the limit handed out', async function () {
      const bomb = zlib.deflateRawSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
      const claimed = Buffer.alloc(1000, 0x20);
      const f = await file('bomb', rawCheckpoint([{ name: Store, content: claimed, method: 'deflate', rawData: bomb }]));
      const before = process.memoryUsage();
      let peak = 0;
      const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 1);
      try {
        await expectRefused(f, /inflates to more than the 1000 bytes the manifest lists/, Store);
      } finally {
        clearInterval(sample);
      }
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      expect(peak - before.arrayBuffers, 'growth of buffer memory').to.be.below(16 * 1024 * 1024);
      expect(process.memoryUsage().rss - before.rss, 'growth of RSS').to.be.below(48 * 1024 * 1024);
    });

    it('refuses a ZIP header size that differs from the manifest size', async function () {
      const f = await file('sizes', rawCheckpoint([entry(Store, lines, { method: 'deflate', declaredSize: lines.length + 5 })], { listed: [{ name: Store, content: lines }] }));
      await expectRefused(f, /the ZIP says it holds \d+ bytes, the manifest \d+/, Store);
    });

    it('refuses a stored entry holding more bytes than its header declares', async function () {
      const f = await file('stored-more', rawCheckpoint([entry(Store, lines, { declaredSize: 10 })]));
      await expectRefused(f, /stored but its compressed and uncompressed sizes differ/, Store);
    });

    it('refuses a deflated entry that stops short or has bytes after its end', async function () {
      const deflated = zlib.deflateRawSync(lines);
      const trailing = rawCheckpoint([{ name: Store, content: lines, method: 'deflate', rawData: Buffer.concat([deflated, Buffer.from('xx')]) }]);
      await expectRefused(await file('trailing-deflate', trailing), /compressed data ends 2 bytes before its stored length/, Store);
      const cut = rawCheckpoint([{ name: Store, content: lines, method: 'deflate', rawData: deflated.subarray(0, deflated.length - 3) }]);
      await expectRefused(await file('cut-deflate', cut), /compressed data is damaged|holds \d+ bytes/, Store);
      const short = rawCheckpoint([{ name: Store, content: lines, method: 'deflate', rawData: zlib.deflateRawSync(lines.subarray(0, 10)) }]);
      await expectRefused(await file('short-deflate', short), /holds 10 bytes, the manifest lists/, Store);
    });

    it('refuses a CRC-32 that does not match data whose SHA-256 does', async function () {
      await expectRefused(await file('crc', rawCheckpoint([entry(Store, lines, { crc: 1234 })])), /CRC-32 mismatch/, Store);
    });

    it('refuses compression methods other than store and deflate', async function () {
      const bytes = rawCheckpoint([entry(Store)]);
      const name = Buffer.from(Store);
      const local = bytes.indexOf(name) - 30;
      const central = bytes.lastIndexOf(name) - 46;
      bytes.writeUInt16LE(12, local + 8);
      bytes.writeUInt16LE(12, central + 10);
      await expectRefused(await file('bzip2', bytes), /compression method 12/, Store);
    });

    it('refuses headers whose time differs from the manifest time', async function () {
      const f = await file('time', rawCheckpoint([entry(Store)], { edit: (m) => (m.time = '2025-01-01T00:00:00.0000000Z') }));
      await expectRefused(f, /date and time differ from the manifest's time/, null);
    });
  });
});
