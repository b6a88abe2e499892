import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  CheckpointFormatError,
  readCheckpointArchive,
  readManifest,
  verifyCheckpointArchive,
  writeCheckpointArchive,
  type ArchiveFileSource,
  type Compression,
  type ManifestHeader,
  type SpaceSource,
} from '../../src/checkpoint/archive/index.js';
import { ConflictError } from '../../src/errors.js';

const execFileP = promisify(execFile);

const header: ManifestHeader = {
  id: 3,
  scope: 'collection',
  description: 'nightly',
  time: '2023-06-16T16:55:28.0760109Z',
  trigger: 'manual',
  node: 'node-a',
  epoch: 2,
  seq: 1234,
};

/** A source that yields `chunks` each time it is read, counting the reads. */
function source(p: string, chunks: (string | Buffer)[]): ArchiveFileSource & { passes: number } {
  const s = {
    path: p,
    passes: 0,
    chunks: () => {
      s.passes++;
      return chunks;
    },
  };
  return s;
}

function bytesOf(chunks: (string | Buffer)[]): Buffer {
  return Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c)));
}

function ndjson(n: number, space: string): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(JSON.stringify({ key: `${space}-${i}`, value: { type: i % 2 ? 'Part' : 'Dokument', name: `Ünïcode € ${i}` } }) + '\n');
  return lines;
}

interface Fixture {
  collection: ArchiveFileSource;
  spaces: SpaceSource[];
  expected: Map<string, Buffer>;
}

function fixture(): Fixture {
  const coll = [JSON.stringify({ templates: [{ name: 'plm', version: '1.0' }] }) + '\n'];
  const storeA = ndjson(3000, 'a');
  const indexA = [randomBytes(70_000), randomBytes(1)];
  const storeB = ndjson(5, 'b');
  const spaces: SpaceSource[] = [
    { id: 'alpha', template: { name: 'plm', version: '1.0' }, objects: 3000, createdSeq: 1, updatedSeq: 1200, files: [source('space/alpha/store/objects.ndjson', storeA), source('space/alpha/index/type.idx', indexA)] },
    { id: 'b-2.x_y', template: { name: 'plm', version: '1.1' }, objects: 5, createdSeq: 3, updatedSeq: 4, files: [source('space/b-2.x_y/store/objects.ndjson', storeB)] },
  ];
  const expected = new Map<string, Buffer>([
    ['collection/collection.json', bytesOf(coll)],
    ['space/alpha/store/objects.ndjson', bytesOf(storeA)],
    ['space/alpha/index/type.idx', bytesOf(indexA)],
    ['space/b-2.x_y/store/objects.ndjson', bytesOf(storeB)],
  ]);
  return { collection: source('collection/collection.json', coll), spaces, expected };
}

async function readAll(file: string, only?: (p: string) => boolean): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  await readCheckpointArchive(
    file,
    {
      async file(entry, data) {
        const chunks: Buffer[] = [];
        for await (const c of data) chunks.push(c);
        got.set(entry.path, Buffer.concat(chunks));
      },
    },
    only === undefined ? {} : { only },
  );
  return got;
}

describe('checkpoint archive: writing and reading back', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-archive-'));
  });
  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('keeps the event loop turning while a source encodes (a timer ticks between its pieces)', async function () {
    // A synchronous source whose pieces each cost CPU but are too small to fill a batch, so the
    // writer reaches no I/O while reading them: only its breathing lets a timer fire meanwhile.
    const busy = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    let ticks = 0;
    let ticksAtFirstPiece = -1;
    let ticksAtLastPiece = -1;
    const slow: ArchiveFileSource = {
      path: 'space/s/store/objects.ndjson',
      chunks: function* () {
        ticksAtFirstPiece = ticks;
        for (let i = 0; i < 60; i++) {
          busy(2);
          yield `{"key":"k${i}","value":1}\n`;
        }
        ticksAtLastPiece = ticks;
      },
    };
    const timer = setInterval(() => ticks++, 1);
    try {
      await writeCheckpointArchive(path.join(dir, 'slow'), { ...header, scope: 'space' }, null, [{ id: 's', template: { name: 't', version: '1' }, objects: 1, createdSeq: 1, updatedSeq: 1, files: [slow] }], { compression: { method: 'store' } });
    } finally {
      clearInterval(timer);
    }
    expect(ticksAtFirstPiece, 'the source was read').to.be.at.least(0);
    expect(ticksAtLastPiece - ticksAtFirstPiece, 'timer ticks while the source is read').to.be.greaterThan(1);
  });

  const deflated: [string, Compression][] = [
    ['deflated at level 1', { method: 'deflate', level: 1 }],
    ['deflated at level 6', { method: 'deflate', level: 6 }],
  ];
  // Both levels in test:e2e (CHECKPOINTD_EXHAUSTIVE=1); one of them, a different one each run, in npm test.
  const modes: [string, Compression][] = [['stored', { method: 'store' }], ...(process.env.CHECKPOINTD_EXHAUSTIVE === '1' ? deflated : [deflated[Math.floor(Math.random() * 2)]!])];
  for (const [what, compression] of modes) {
    it(`writes a ${what} checkpoint that verifies, whose manifest reads back, and whose every entry reads back byte for byte`, async function () {
      const f = fixture();
      const target = path.join(dir, 'Checkpoint-000000003');
      const written = await writeCheckpointArchive(target, header, f.collection, f.spaces, { compression });

      const bytes = await fs.readFile(target);
      expect(written.size).to.equal(bytes.length);
      expect(written.sha256).to.equal(createHash('sha256').update(bytes).digest('hex'));
      expect(written.manifest).to.include({ format: 1, id: 3, scope: 'collection', seq: 1234, epoch: 2, node: 'node-a', trigger: 'manual', time: header.time });
      expect(written.manifest.collection?.size).to.equal(f.expected.get('collection/collection.json')!.length);
      expect(written.manifest.spaces.map((s) => s.id)).to.deep.equal(['alpha', 'b-2.x_y']);
      for (const s of written.manifest.spaces) {
        for (const file of s.files) expect(file.sha256).to.equal(createHash('sha256').update(f.expected.get(file.path)!).digest('hex'));
      }

      const verdict = await verifyCheckpointArchive(target);
      expect(verdict).to.deep.equal({ ok: true, manifest: written.manifest });
      expect(await readManifest(target)).to.deep.equal(written.manifest);
      const got = await readAll(target);
      expect([...got.keys()]).to.deep.equal([...f.expected.keys()]);
      for (const [p, data] of f.expected) expect(got.get(p)!.equals(data), p).to.equal(true);
    });
  }

  for (const [what, compression] of modes) {
    it(`reads each source once (${what})`, async function () {
      const f = fixture();
      await writeCheckpointArchive(path.join(dir, 'c'), header, f.collection, f.spaces, { compression });
      for (const s of [f.collection, ...f.spaces.flatMap((s) => s.files)]) expect((s as ReturnType<typeof source>).passes).to.equal(1);
    });
  }

  for (const [what, compression] of modes) {
    it(`puts manifest.json first and passes unzip -t and extraction by Info-ZIP (${what})`, async function () {
      const f = fixture();
      const target = path.join(dir, 'Checkpoint-000000003');
      await writeCheckpointArchive(target, header, f.collection, f.spaces, { compression });
      const listing = (await execFileP('unzip', ['-Z1', target])).stdout.trim().split('\n');
      expect(listing).to.deep.equal(['manifest.json', ...f.expected.keys()]);
      await execFileP('unzip', ['-tq', target]);
      const out = path.join(dir, 'out');
      await execFileP('unzip', ['-q', '-o', '-d', out, target]);
      for (const [p, data] of f.expected) expect((await fs.readFile(path.join(out, p))).equals(data), p).to.equal(true);
      const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8')) as unknown;
      expect(manifest).to.deep.equal(await readManifest(target));
    });
  }

  for (const [what, compression] of modes) {
    it(`writes zip64 records that verify and that unzip -t accepts (forced, ${what})`, async function () {
      const f = fixture();
      const target = path.join(dir, 'Checkpoint-000000003');
      await writeCheckpointArchive(target, header, f.collection, f.spaces, { compression, forceZip64: true });
      expect((await verifyCheckpointArchive(target)).ok).to.equal(true);
      const got = await readAll(target);
      for (const [p, data] of f.expected) expect(got.get(p)!.equals(data), p).to.equal(true);
      const { stdout } = await execFileP('unzip', ['-t', target]);
      expect(stdout).to.include('No errors detected');
      expect((await execFileP('unzip', ['-Zv', target])).stdout).to.include('PKWARE 64-bit sizes');
      const bytes = await fs.readFile(target);
      expect(bytes.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), 'zip64 end record').to.equal(true);
    });
  }

  it('writes multi-byte text byte for byte across batch after batch, in pieces of every size', async function () {
    // Pieces from 1 to 40k UTF-16 units (small ones joined, large ones written alone), 1–4 UTF-8 bytes each, so
    // that the batcher's 1 MiB batches end near pieces that fit only by their byte count and pieces that do not.
    const alphabet = ['a', 'é', '€', '😀', '"', '\n'];
    let seed = 11;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const pieces: string[] = [];
    let bytes = 0;
    while (bytes < 3.5 * 1024 * 1024) {
      const length = rand(4) === 0 ? 1 + rand(40_000) : 1 + rand(300);
      let piece = '';
      while (piece.length < length) piece += alphabet[rand(alphabet.length)]!.repeat(1 + rand(50));
      pieces.push(piece);
      bytes += Buffer.byteLength(piece);
    }
    const expected = bytesOf(pieces);
    const target = path.join(dir, 'text');
    const spaces: SpaceSource[] = [{ id: 't', template: { name: 'plm', version: '1.0' }, objects: 1, createdSeq: 1, updatedSeq: 1, files: [source('space/t/store/objects.ndjson', pieces)] }];
    const written = await writeCheckpointArchive(target, { ...header, scope: 'space' }, null, spaces, { compression: { method: 'store' } });
    expect(written.manifest.spaces[0]!.files[0]!.size).to.equal(expected.length);
    const got = await readAll(target);
    expect(got.get('space/t/store/objects.ndjson')!.equals(expected)).to.equal(true);
  });

  it('handles empty (0-byte) files, stored and deflated', async function () {
    for (const compression of [{ method: 'store' }, { method: 'deflate', level: 6 }] as Compression[]) {
      const target = path.join(dir, `empty-${compression.method}`);
      const spaces: SpaceSource[] = [
        { id: 'e', template: { name: 'plm', version: '1.0' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: [source('space/e/store/objects.ndjson', []), source('space/e/index/type.idx', ['', Buffer.alloc(0)])] },
      ];
      const written = await writeCheckpointArchive(target, header, source('collection/collection.json', []), spaces, { compression });
      expect(written.manifest.spaces[0]!.files.map((x) => x.size)).to.deep.equal([0, 0]);
      expect((await verifyCheckpointArchive(target)).ok).to.equal(true);
      const got = await readAll(target);
      expect([...got.values()].map((b) => b.length)).to.deep.equal([0, 0, 0]);
      await execFileP('unzip', ['-tq', target]);
    }
  });

  it('writes a space-scope checkpoint without a collection entry', async function () {
    const target = path.join(dir, 'c');
    const spaces: SpaceSource[] = [{ id: 'test', template: { name: 'plm', version: '1.0' }, objects: 1, createdSeq: 1, updatedSeq: 1, files: [source('space/test/store/objects.ndjson', ['{"key":"k","value":1}\n'])] }];
    const written = await writeCheckpointArchive(target, { ...header, scope: 'space' }, null, spaces, { compression: { method: 'deflate', level: 6 } });
    expect(written.manifest.collection).to.equal(null);
    expect((await execFileP('unzip', ['-Z1', target])).stdout.trim().split('\n')).to.deep.equal(['manifest.json', 'space/test/store/objects.ndjson']);
  });

  it('reports progress up to the total of the source bytes', async function () {
    const f = fixture();
    const seen: number[] = [];
    await writeCheckpointArchive(path.join(dir, 'c'), header, f.collection, f.spaces, { compression: { method: 'deflate', level: 1 }, onProgress: (n) => seen.push(n) });
    const total = [...f.expected.values()].reduce((n, b) => n + b.length, 0);
    expect(seen.length).to.be.greaterThan(1);
    expect(seen.every((n, i) => i === 0 || n >= seen[i - 1]!)).to.equal(true);
    expect(seen.at(-1)).to.equal(total);
    const reads: [number, number][] = [];
    await verifyCheckpointArchive(path.join(dir, 'c'), { onProgress: (done, all) => reads.push([done, all]) });
    expect(reads.at(-1)).to.deep.equal([total, total]);
  });

  for (const [what, compression] of modes) {
    it(`removes the target when the write is aborted (${what})`, async function () {
      const controller = new AbortController();
      const slow: ArchiveFileSource = {
        path: 'space/s/store/objects.ndjson',
        chunks: async function* () {
          for (let i = 0; i < 100; i++) {
            if (i === 50) controller.abort();
            yield 'x'.repeat(10_000);
            await new Promise((resolve) => setImmediate(resolve));
          }
        },
      };
      const target = path.join(dir, 'aborted');
      const spaces: SpaceSource[] = [{ id: 's', template: { name: 'plm', version: '1.0' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: [slow] }];
      const err = await writeCheckpointArchive(target, { ...header, scope: 'space' }, null, spaces, { compression, signal: controller.signal }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(Error).with.property('name', 'AbortError');
      expect(await fs.readdir(dir)).to.deep.equal([]);
    });
  }

  it('removes the target when a source fails part way', async function () {
    const failing: ArchiveFileSource = {
      path: 'space/s/store/objects.ndjson',
      chunks: function* () {
        yield 'a\n'.repeat(1_000_000);
        throw new Error('disk read failed');
      },
    };
    const target = path.join(dir, 'failing');
    const spaces: SpaceSource[] = [{ id: 's', template: { name: 'plm', version: '1.0' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: [failing] }];
    const err = await writeCheckpointArchive(target, { ...header, scope: 'space' }, null, spaces, { compression: { method: 'store' } }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Error).with.property('message', 'disk read failed');
    expect(await fs.readdir(dir)).to.deep.equal([]);
  });

  it('refuses to write over an existing path and leaves it as it was', async function () {
    const target = path.join(dir, 'Checkpoint-000000003');
    await fs.writeFile(target, 'keep me');
    const f = fixture();
    const err = await writeCheckpointArchive(target, header, f.collection, f.spaces, { compression: { method: 'store' } }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ConflictError);
    expect(await fs.readFile(target, 'utf8')).to.equal('keep me');
  });

  it('refuses entry paths and ids outside the layout before creating anything', async function () {
    const bad: [string, ArchiveFileSource | null, SpaceSource[]][] = [
      ['a collection path elsewhere', source('collection/other.json', []), []],
      ['a space id with a slash', source('collection/collection.json', []), [{ id: 'a/b', template: { name: 'p', version: '1' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: [] }]],
      ['a file of another space', source('collection/collection.json', []), [{ id: 'a', template: { name: 'p', version: '1' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: [source('space/b/store/x', [])] }]],
      ['a climbing file name', source('collection/collection.json', []), [{ id: 'a', template: { name: 'p', version: '1' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: [source('space/a/store/../../x', [])] }]],
      ['a space listed twice', source('collection/collection.json', []), [0, 1].map(() => ({ id: 'a', template: { name: 'p', version: '1' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: [] }))],
    ];
    for (const [what, collection, spaces] of bad) {
      const target = path.join(dir, 'c');
      const err = await writeCheckpointArchive(target, header, collection, spaces, { compression: { method: 'store' } }).catch((e: unknown) => e);
      expect(err, what).to.be.instanceOf(CheckpointFormatError);
      expect(await fs.readdir(dir), what).to.deep.equal([]);
    }
  });

  it('reads only the entries `only` selects, and still checks the headers of the others', async function () {
    const f = fixture();
    const target = path.join(dir, 'c');
    await writeCheckpointArchive(target, header, f.collection, f.spaces, { compression: { method: 'deflate', level: 6 } });
    const got = await readAll(target, (p) => p.endsWith('/store/objects.ndjson'));
    expect([...got.keys()]).to.deep.equal(['space/alpha/store/objects.ndjson', 'space/b-2.x_y/store/objects.ndjson']);
    // Damage the local header (its time field) of the skipped index entry.
    const bytes = await fs.readFile(target);
    // The name is in the (stored) manifest first, then in the entry's local header.
    const name = 'space/alpha/index/type.idx';
    const at = bytes.indexOf(name, bytes.indexOf(name) + 1) - 30 + 10;
    bytes[at] = bytes[at]! ^ 0xff;
    await fs.writeFile(target, bytes);
    const err = await readAll(target, (p) => p.endsWith('/store/objects.ndjson')).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CheckpointFormatError).with.property('entry', 'space/alpha/index/type.idx');
  });

  it('drains and checks what a consumer leaves unread', async function () {
    const f = fixture();
    const target = path.join(dir, 'c');
    await writeCheckpointArchive(target, header, f.collection, f.spaces, { compression: { method: 'deflate', level: 1 } });
    const firsts: string[] = [];
    await readCheckpointArchive(target, {
      async file(entry, data) {
        for await (const _c of data) {
          firsts.push(entry.path);
          break;
        }
      },
    });
    expect(firsts).to.deep.equal([...f.expected.keys()].filter((p) => f.expected.get(p)!.length > 0));
  });

  it('writes and reads an archive past 4 GiB (set CHECKPOINTD_ZIP64_TEST=1: about a minute, 4.5 GB of disk)', async function () {
    if (process.env.CHECKPOINTD_ZIP64_TEST !== '1') this.skip();
    this.timeout(30 * 60_000);
    const block = Buffer.alloc(1024 * 1024, ndjson(100, 'big').join(''));
    const big = (mib: number): ArchiveFileSource['chunks'] =>
      function* () {
        for (let i = 0; i < mib; i++) yield block;
      };
    const spaces: SpaceSource[] = [
      {
        id: 'big',
        template: { name: 'plm', version: '1.0' },
        objects: 0,
        createdSeq: 0,
        updatedSeq: 0,
        files: [
          { path: 'space/big/store/objects.ndjson', chunks: big(4200) },
          { path: 'space/big/index/after.idx', chunks: () => ['small entry past 4 GiB\n'] },
        ],
      },
    ];
    for (const compression of [{ method: 'store' }, { method: 'deflate', level: 1 }] as Compression[]) {
      const target = path.join(dir, `big-${compression.method}`);
      const written = await writeCheckpointArchive(target, { ...header, scope: 'space' }, null, spaces, { compression });
      if (compression.method === 'store') expect(written.size).to.be.greaterThan(2 ** 32);
      expect(written.manifest.spaces[0]!.files[0]!.size).to.equal(4200 * 1024 * 1024);
      expect(await verifyCheckpointArchive(target)).to.deep.equal({ ok: true, manifest: written.manifest });
      const { stdout } = await execFileP('unzip', ['-t', target], { maxBuffer: 1 << 20 });
      expect(stdout).to.include('No errors detected');
      await fs.rm(target);
    }
  });
});
