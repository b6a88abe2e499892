import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import {
  readCheckpointArchive,
  verifyCheckpointArchive,
  writeCheckpointArchive,
  type ArchiveFileSource,
  type Compression,
  type ManifestHeader,
  type SpaceSource,
} from '../../src/checkpoint/archive/index.js';
import { deflateSource, WorkerSink, workerSource } from '../../src/checkpoint/archive/worker-sink.js';
import type { FromWriteWorker, WriteWorkerInit } from '../../src/checkpoint/archive/write-worker-protocol.js';
import { lowerThreadPriority, writeWorkerMain } from '../../src/checkpoint/archive/write-worker.js';
import { CheckpointdError, storageFailure } from '../../src/errors.js';
import { threadCount } from '../helpers/threads.js';
import { waitFor } from '../helpers/wait-for.js';

const execFileP = promisify(execFile);
const MiB = 1024 * 1024;
/** Set by test:e2e, which runs this file again with every case. */
const Exhaustive = process.env.CHECKPOINTD_EXHAUSTIVE === '1';

/** Descriptors this process has open. */
function openFiles(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Whether the file system under `dir` opens files for O_DIRECT (ext4 does, tmpfs since Linux 6.6). */
async function directOpens(dir: string): Promise<boolean> {
  const probe = path.join(dir, 'o-direct-probe');
  try {
    await (await fs.open(probe, fs.constants.O_CREAT | fs.constants.O_WRONLY | fs.constants.O_DIRECT)).close();
    return true;
  } catch {
    return false;
  } finally {
    await fs.rm(probe, { force: true });
  }
}

const header: ManifestHeader = {
  id: 7,
  scope: 'space',
  description: 'worker',
  time: '2024-01-02T03:04:05.0000000Z',
  trigger: 'manual',
  node: 'node-a',
  epoch: 1,
  seq: 99,
};

function space(files: ArchiveFileSource[]): SpaceSource[] {
  return [{ id: 's', template: { name: 'plm', version: '1.0' }, objects: 0, createdSeq: 0, updatedSeq: 0, files }];
}



async function readAll(file: string): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  await readCheckpointArchive(file, {
    async file(entry, data) {
      const chunks: Buffer[] = [];
      for await (const c of data) chunks.push(c);
      got.set(entry.path, Buffer.concat(chunks));
    },
  });
  return got;
}

/** Text that compresses, with lines repeating from far back so that matches cross batch boundaries. */
function text(bytes: number, seed: number): Buffer {
  const lines: string[] = [];
  for (let i = 0, n = 0; n < bytes; i++) {
    const line = `{"key":"k-${seed}-${(i * 7919) % 5000}","value":{"n":${i % 977},"name":"Ünïcode € ${i % 311}"}}\n`;
    lines.push(line);
    n += Buffer.byteLength(line);
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

describe('checkpoint archive: the write worker', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-worker-'));
  });
  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  // Every level in test:e2e (CHECKPOINTD_EXHAUSTIVE=1); one of them, a different one each run, in npm test.
  for (const level of Exhaustive ? [1, 6, 9] : [[1, 6, 9][Math.floor(Math.random() * 3)]!]) {
    it(`deflates entries of 0 bytes, of exactly one batch, of a piece larger than a batch and of several batches, which our reader and unzip -t read back byte for byte (level ${level})`, async function () {
      const several = text(5 * MiB + 12345, 1);
      const expected = new Map<string, Buffer>([
        ['space/s/store/empty.ndjson', Buffer.alloc(0)],
        ['space/s/store/one.ndjson', text(MiB, 2)],
        ['space/s/store/big-piece.ndjson', text(3 * MiB + 1, 3)],
        ['space/s/store/several.ndjson', several],
        ['space/s/index/random.idx', randomBytes(2 * MiB + 7)],
      ]);
      const sources: ArchiveFileSource[] = [
        { path: 'space/s/store/empty.ndjson', chunks: () => [] },
        // Exactly one batch, given as one Buffer the size of a batch.
        { path: 'space/s/store/one.ndjson', chunks: () => [expected.get('space/s/store/one.ndjson')!] },
        // One piece larger than a batch: it passes as a batch of its own.
        { path: 'space/s/store/big-piece.ndjson', chunks: () => [expected.get('space/s/store/big-piece.ndjson')!] },
        // Many small strings, so that batches fill up to their size and split lines.
        { path: 'space/s/store/several.ndjson', chunks: () => several.toString('latin1').match(/[^]{1,3000}/g)!.map((s) => Buffer.from(s, 'latin1')) },
        { path: 'space/s/index/random.idx', chunks: () => [expected.get('space/s/index/random.idx')!.subarray(0, MiB - 3), expected.get('space/s/index/random.idx')!.subarray(MiB - 3)] },
      ];
      const target = path.join(dir, 'c');
      const written = await writeCheckpointArchive(target, header, null, space(sources), { compression: { method: 'deflate', level } });
      for (const f of written.manifest.spaces[0]!.files) expect(f.sha256, f.path).to.equal(createHash('sha256').update(expected.get(f.path)!).digest('hex'));
      expect(await verifyCheckpointArchive(target)).to.deep.equal({ ok: true, manifest: written.manifest });
      const got = await readAll(target);
      expect([...got.keys()]).to.deep.equal([...expected.keys()]);
      for (const [p, data] of expected) expect(got.get(p)!.equals(data), p).to.equal(true);
      const { stdout } = await execFileP('unzip', ['-t', target]);
      expect(stdout).to.include('No errors detected');
      const out = path.join(dir, 'out');
      await execFileP('unzip', ['-q', '-d', out, target]);
      for (const [p, data] of expected) expect((await fs.readFile(path.join(out, p))).equals(data), `${p} as unzip extracts it`).to.equal(true);
    });
  }

  it("primes each batch's deflate with the 32 KiB before it: a repeated 16 KiB block compresses over five batches as well as in one stream", async function () {
    const block = randomBytes(16 * 1024);
    const data = Buffer.concat(Array.from({ length: 320 }, () => block));
    const write = async (name: string, pieces: Buffer[]) =>
      (await writeCheckpointArchive(path.join(dir, name), header, null, space([{ path: 'space/s/store/repeat.ndjson', chunks: () => pieces }]), { compression: { method: 'deflate', level: 6 } })).size;
    // The same archive around an empty entry: the difference is the entry's deflated data (less the 2 bytes of an empty stream).
    const deflated = (await write('c', Array.from({ length: 320 }, () => block))) - (await write('empty', [])) + 2;
    const oneStream = zlib.deflateRawSync(data, { level: 6 }).length;
    // Batches deflated without a dictionary would each start with the whole random block again: 4 × 16 KiB more.
    expect(deflated).to.be.below(oneStream + 1024);
    expect((await readAll(path.join(dir, 'c'))).get('space/s/store/repeat.ndjson')!.equals(data)).to.equal(true);
    await execFileP('unzip', ['-tq', path.join(dir, 'c')]);
  });

  it('keeps what it writes in order when deflating a batch takes far longer than the next one, on two deflate threads', async function () {
    // Random bytes deflate slowly, zeros at once: a queue that wrote whatever finished first would mix them up.
    // The worker is driven directly with two deflate threads, whatever the machine's cores (a checkpoint gets one
    // fewer than the cores), and its file is then the entry's deflate stream alone.
    const slow = randomBytes(MiB);
    const fast = Buffer.alloc(MiB);
    const pieces = [slow, fast, slow, fast, fast, slow, fast];
    const handle = await fs.open(path.join(dir, 'file'), 'wx+');
    const init: WriteWorkerInit = { fd: handle.fd, directFd: null, level: 9, parallel: 2, deflateSource, writeBytes: MiB, batchBytes: MiB, hashReadBytes: 4 * MiB, syncEveryBytes: 0, maxUnsyncedBytes: 0, bytesPerSecond: 0 };
    const worker = new Worker(workerSource, { eval: true, workerData: init, execArgv: [] });
    try {
      const finished = new Promise<void>((resolve, reject) => {
        worker.on('message', (m: FromWriteWorker) => {
          if (m.type === 'failed') reject(new Error(m.error.message));
          else if (m.type === 'finished') resolve();
        });
        worker.on('error', reject);
      });
      pieces.forEach((piece, i) => {
        const batch = Buffer.allocUnsafeSlow(piece.length);
        piece.copy(batch);
        worker.postMessage({ type: 'batch', data: batch, last: i === pieces.length - 1 }, [batch.buffer]);
      });
      worker.postMessage({ type: 'finish' });
      await finished;
      expect(zlib.inflateRawSync(await fs.readFile(path.join(dir, 'file'))).equals(Buffer.concat(pieces))).to.equal(true);
    } finally {
      await worker.terminate();
      await handle.close();
    }
  });

  for (const compression of [{ method: 'store' }, { method: 'deflate', level: 1 }] as Compression[]) {
    it(`writes straight to the disk (O_DIRECT) the very bytes it writes through the page cache, ending mid-block (${compression.method})`, async function () {
      // Entries ending anywhere in a 4 KiB block, and more than the two 4 MiB buffers the file is read back with.
      const data = [Buffer.from('x'), randomBytes(4095), randomBytes(4097), text(3 * MiB + 17, 4), randomBytes(5 * MiB + 1)];
      const sources = data.map((d, i): ArchiveFileSource => ({ path: `space/s/store/f${i}.ndjson`, chunks: () => [d.subarray(0, d.length >> 1), d.subarray(d.length >> 1)] }));
      const fdsBefore = openFiles();
      const direct = await writeCheckpointArchive(path.join(dir, 'direct'), header, null, space(sources), { compression });
      const cached = await writeCheckpointArchive(path.join(dir, 'cached'), header, null, space(sources), { compression, directWrites: false });
      expect(direct.direct, 'written with O_DIRECT where the file system opens it so').to.equal(await directOpens(dir));
      expect(cached.direct).to.equal(false);
      const [a, b] = [await fs.readFile(path.join(dir, 'direct')), await fs.readFile(path.join(dir, 'cached'))];
      expect(a.length).to.equal(direct.size);
      expect(a.equals(b), 'the same bytes both ways').to.equal(true);
      expect(direct.sha256).to.equal(createHash('sha256').update(a).digest('hex'));
      expect(cached.sha256).to.equal(direct.sha256);
      const got = await readAll(path.join(dir, 'direct'));
      data.forEach((d, i) => expect(got.get(`space/s/store/f${i}.ndjson`)!.equals(d), `entry ${i}`).to.equal(true));
      await execFileP('unzip', ['-tq', path.join(dir, 'direct')]);
      expect(openFiles(), 'descriptors left open').to.equal(fdsBefore);
    });
  }

  it('falls back to the page cache where the file system opens a file for O_DIRECT but refuses its writes and reads (EINVAL)', async function () {
    // The worker's own code on a node:fs that refuses every write and read on the O_DIRECT descriptor, as a
    // file system does whose blocks are larger than the worker aligns to.
    const source = `var __name = (f) => f;
      const threads = require('node:worker_threads');
      const real = require('node:fs');
      const directFd = threads.workerData.directFd;
      const einval = (syscall) => Object.assign(new Error('EINVAL: invalid argument, ' + syscall), { code: 'EINVAL', errno: -22, syscall });
      const fs = { ...real,
        writeSync(fd, ...rest) { if (fd === directFd) throw einval('write'); return real.writeSync(fd, ...rest); },
        read(fd, buffer, offset, length, position, done) {
          if (fd === directFd) { setImmediate(() => done(einval('read'))); return; }
          real.read(fd, buffer, offset, length, position, done);
        },
      };
      (${writeWorkerMain.toString()})(threads, require('node:crypto'), require('node:zlib'), fs, require('node:os'), ${lowerThreadPriority.toString()});`;
    const file = path.join(dir, 'file');
    const handle = await fs.open(file, 'wx+');
    const directHandle = await fs.open(file, 'r+');
    const init: WriteWorkerInit = { fd: handle.fd, directFd: directHandle.fd, level: 0, parallel: 0, deflateSource: '', writeBytes: MiB, batchBytes: MiB, hashReadBytes: 4 * MiB, syncEveryBytes: MiB, maxUnsyncedBytes: 4 * MiB, bytesPerSecond: 0 };
    const worker = new Worker(source, { eval: true, workerData: init, execArgv: [] });
    try {
      const done = new Promise<{ size: number; sha256: string; direct: boolean }>((resolve, reject) => {
        worker.on('message', (m: FromWriteWorker) => {
          if (m.type === 'failed') reject(new Error(m.error.message));
          else if (m.type === 'finished') resolve(m);
        });
        worker.on('error', reject);
      });
      const sent = [randomBytes(5000), randomBytes(3 * MiB + 3), randomBytes(MiB)];
      worker.postMessage({ type: 'put', data: sent[0] });
      sent.slice(1).forEach((piece, i) => {
        const batch = Buffer.allocUnsafeSlow(piece.length);
        piece.copy(batch);
        worker.postMessage({ type: 'batch', data: batch, last: i === 1 }, [batch.buffer]);
      });
      worker.postMessage({ type: 'finish' });
      const finished = await done;
      const expected = Buffer.concat(sent);
      expect(finished.direct, 'reported as written through the page cache').to.equal(false);
      expect(finished.size).to.equal(expected.length);
      expect(finished.sha256).to.equal(createHash('sha256').update(expected).digest('hex'));
      expect((await fs.readFile(file)).equals(expected)).to.equal(true);
    } finally {
      await worker.terminate();
      await directHandle.close();
      await handle.close();
    }
  });

  for (const compression of [{ method: 'store' }, { method: 'deflate', level: 6 }] as Compression[]) {
    it(`removes the file and stops its worker when aborted mid-write (${compression.method})`, async function () {
      // Start (and stop) one worker first, so that threads started once per process (libuv's pool) are already there.
      await writeCheckpointArchive(path.join(dir, 'warm-up'), header, null, space([{ path: 'space/s/store/x.ndjson', chunks: () => ['x\n'] }]), { compression });
      await fs.rm(path.join(dir, 'warm-up'));
      const before = threadCount();
      const fdsBefore = openFiles();
      let during = 0;
      const controller = new AbortController();
      const endless: ArchiveFileSource = {
        path: 'space/s/store/objects.ndjson',
        chunks: async function* () {
          for (let i = 0; ; i++) {
            if (i === 40) {
              during = threadCount();
              controller.abort();
            }
            yield randomBytes(256 * 1024);
            await new Promise((resolve) => setImmediate(resolve));
          }
        },
      };
      const target = path.join(dir, 'aborted');
      const err = await writeCheckpointArchive(target, header, null, space([endless]), { compression, signal: controller.signal }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(Error).with.property('name', 'AbortError');
      // at least: the runtime may start a helper thread of its own meanwhile (seen once on a loaded machine)
      expect(during, 'a worker thread while writing').to.be.at.least(before + 1);
      await waitFor(() => threadCount() === before, { what: 'the worker thread to end', timeoutMs: 2000 });
      expect(await fs.readdir(dir)).to.deep.equal([]);
      expect(openFiles(), 'descriptors left open (the file, and its O_DIRECT one)').to.equal(fdsBefore);
    });
  }

  it('rejects with the ENOSPC of a full file system (a 4 MiB tmpfs), removes the file and stops its worker', async function () {
    const mount = path.join(dir, 'tiny');
    await fs.mkdir(mount);
    try {
      await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mount]);
    } catch {
      this.skip(); // Not root, or no mount here: the /dev/full test below covers the same path.
    }
    try {
      const before = threadCount();
      const target = path.join(mount, 'c');
      const err = await writeCheckpointArchive(target, header, null, space([{ path: 'space/s/index/random.idx', chunks: () => Array.from({ length: 12 }, () => randomBytes(MiB)) }]), {
        compression: { method: 'deflate', level: 1 },
      }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(Error).with.property('code', 'ENOSPC');
      expect(err).to.have.property('syscall', 'write');
      expect(storageFailure(err)?.status, 'answered as 507 Insufficient Storage').to.equal(507);
      expect(await fs.readdir(mount)).to.deep.equal([]);
      await waitFor(() => threadCount() <= before, { what: 'the worker thread to end', timeoutMs: 2000 });
    } finally {
      await execFileP('umount', [mount]);
    }
  });

  it('rejects with the ENOSPC of a write to /dev/full, with the message node:fs gives, and removes the file', async function () {
    const realOpen = fs.open;
    const target = path.join(dir, 'c');
    // The writer creates its file as usual but gets a descriptor of /dev/full, where every write fails with ENOSPC.
    fs.open = (async (...args: Parameters<typeof fs.open>) => {
      const handle = await realOpen(...args);
      if (args[0] !== target) return handle;
      await handle.close();
      return realOpen('/dev/full', 'r+');
    });
    syncBuiltinESMExports();
    try {
      const err = await writeCheckpointArchive(target, header, null, space([{ path: 'space/s/store/x.ndjson', chunks: () => ['x\n'.repeat(100)] }]), { compression: { method: 'store' } }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(Error).with.property('code', 'ENOSPC');
      expect(err).to.have.property('message', 'ENOSPC: no space left on device, write');
      expect(err).to.have.property('errno', -28);
      expect(storageFailure(err)?.code).to.equal('ENOSPC');
    } finally {
      fs.open = realOpen;
      syncBuiltinESMExports();
    }
    expect(await fs.readdir(dir)).to.deep.equal([]);
  });

  it('deflates on threads running at nice 10, below the main thread that serves commits (Linux)', async function () {
    const niceOf = (tid: string): number => {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    const seen = new Set<number>();
    const sample = setInterval(() => {
      for (const tid of readdirSync('/proc/self/task')) {
        try {
          seen.add(niceOf(tid));
        } catch {
          // the thread ended meanwhile
        }
      }
    }, 2);
    try {
      await writeCheckpointArchive(path.join(dir, 'nice'), header, null, space([{ path: 'space/s/store/x.ndjson', chunks: () => [text(8 * MiB, 9)] }]), { compression: { method: 'deflate', level: 6 } });
    } finally {
      clearInterval(sample);
    }
    expect(niceOf(String(process.pid)), 'the main thread').to.equal(0);
    expect([...seen]).to.include(10);
  });

  for (const direct of [false, true]) {
    it(`paces its writes and its read-back to bytesPerSecond, a writeBytes piece at a time, with no burst after a pause (${direct ? 'O_DIRECT' : 'page cache'})`, async function () {
      // The worker's own code on a node:fs that records when each write and read starts and how many bytes it moves.
      const source = `var __name = (f) => f;
        const threads = require('node:worker_threads');
        const real = require('node:fs');
        // Into shared memory, read once the worker has finished: [count, then kind (0 write, 1 read), start, bytes for each].
        const log = new Float64Array(threads.workerData.log);
        const note = (kind, bytes) => {
          const i = 1 + 3 * log[0]++;
          log[i] = kind;
          log[i + 1] = performance.now();
          log[i + 2] = bytes;
        };
        const fs = { ...real,
          writeSync(fd, data, offset, length, position) { note(0, length); return real.writeSync(fd, data, offset, length, position); },
          readSync(fd, buffer, offset, length, position) { note(1, length); return real.readSync(fd, buffer, offset, length, position); },
          read(fd, buffer, offset, length, position, done) { note(1, length); return real.read(fd, buffer, offset, length, position, done); },
        };
        (${writeWorkerMain.toString()})(threads, require('node:crypto'), require('node:zlib'), fs, require('node:os'), ${lowerThreadPriority.toString()});`;
      const file = path.join(dir, 'file');
      const handle = await fs.open(file, 'wx+');
      const directHandle = direct ? await fs.open(file, fs.constants.O_RDWR | fs.constants.O_DIRECT).catch(() => null) : null;
      if (direct && directHandle === null) {
        await handle.close();
        this.skip();
      }
      const Piece = 64 * 1024;
      const rate = 8 * MiB;
      const init: WriteWorkerInit = { fd: handle.fd, directFd: directHandle?.fd ?? null, level: 0, parallel: 0, deflateSource: '', writeBytes: Piece, batchBytes: MiB, hashReadBytes: Piece, syncEveryBytes: 0, maxUnsyncedBytes: 0, bytesPerSecond: rate };
      const log = new SharedArrayBuffer(8 * (1 + 3 * 1000));
      const worker = new Worker(source, { eval: true, workerData: { ...init, log }, execArgv: [] });
      try {
        type Move = { kind: 'write' | 'read'; at: number; bytes: number };
        const done = new Promise<{ moves: Move[]; size: number; sha256: string }>((resolve, reject) => {
          worker.on('message', (m: FromWriteWorker) => {
            if (m.type === 'failed') reject(new Error(m.error.message));
            else if (m.type === 'finished') {
              const values = new Float64Array(log);
              const moves = Array.from({ length: values[0]! }, (_, k): Move => ({ kind: values[1 + 3 * k] === 0 ? 'write' : 'read', at: values[2 + 3 * k]!, bytes: values[3 + 3 * k]! }));
              resolve({ moves, size: m.size, sha256: m.sha256 });
            }
          });
          worker.on('error', reject);
        });
        const data = randomBytes(2 * MiB);
        worker.postMessage({ type: 'batch', data: data.subarray(0, MiB), last: false });
        // A pause longer than the first MiB takes: the time it leaves unused must not let the next MiB go at once.
        await new Promise((resolve) => setTimeout(resolve, 400));
        worker.postMessage({ type: 'batch', data: data.subarray(MiB), last: true });
        worker.postMessage({ type: 'finish' });
        const { moves, size, sha256 } = await done;
        expect(size).to.equal(2 * MiB);
        expect(sha256).to.equal(createHash('sha256').update(data).digest('hex'));
        const writes = moves.filter((m) => m.kind === 'write');
        const reads = moves.filter((m) => m.kind === 'read');
        expect(writes.reduce((sum, m) => sum + m.bytes, 0)).to.equal(2 * MiB);
        expect(reads.reduce((sum, m) => sum + m.bytes, 0)).to.be.at.least(2 * MiB);
        // A direct write may carry one 4 KiB block more: the staging area holds writeBytes plus a block.
        for (const m of moves) expect(m.bytes, `a ${m.kind} of ${m.bytes} bytes`).to.be.at.most(Piece + (direct && m.kind === 'write' ? 4096 : 0));
        // From any move to any later one, no sooner than the bytes in between take at the rate: no burst anywhere,
        // also right after the pause. The worker takes its turn just before the call this records, so a thread
        // descheduled between the two (a busy machine) records a move late and the next one seemingly early, by as
        // long as it waited; a timer may also fire up to a millisecond early. So two pieces' time (15.6 ms) of
        // slack, plus 1.5 ms: a burst after the 400 ms pause is some 50 pieces early, and catching up on a schedule
        // would show as every later move early.
        const slackMs = (2 * Piece * 1000) / rate + 1.5;
        for (let i = 0; i < moves.length; i++) {
          for (let j = i + 1, bytes = moves[i]!.bytes; j < moves.length; bytes += moves[j]!.bytes, j++) {
            const ms = moves[j]!.at - moves[i]!.at;
            if (ms < (bytes * 1000) / rate - slackMs) expect.fail(`${moves[j]!.kind} ${j} started ${ms.toFixed(2)} ms after ${moves[i]!.kind} ${i}, ${bytes} bytes later`);
          }
        }
        const seconds = (moves[moves.length - 1]!.at - moves[0]!.at) / 1000;
        expect(seconds, 'the 4 MiB written and read back, at 8 MiB/s').to.be.at.least((4 * MiB - Piece) / rate - 0.05);
      } finally {
        await worker.terminate();
        await directHandle?.close();
        await handle.close();
      }
    });
  }

  it('writes a paced checkpoint (maxDiskRate) that reads back and verifies', async function () {
    const data = [text(MiB, 9), randomBytes(MiB + 5)];
    const sources = data.map((d, i): ArchiveFileSource => ({ path: `space/s/store/f${i}.ndjson`, chunks: () => [d] }));
    const started = performance.now();
    const written = await writeCheckpointArchive(path.join(dir, 'paced'), header, null, space(sources), { compression: { method: 'deflate', level: 1 }, maxDiskRate: 8 * MiB });
    const seconds = (performance.now() - started) / 1000;
    expect(seconds, 'written and read back at 8 MiB/s at most').to.be.at.least((2 * written.size) / (8 * MiB) - 0.1);
    expect((await verifyCheckpointArchive(path.join(dir, 'paced'))).ok).to.equal(true);
    const got = await readAll(path.join(dir, 'paced'));
    data.forEach((d, i) => expect(got.get(`space/s/store/f${i}.ndjson`)!.equals(d), `entry ${i}`).to.equal(true));
  });

  it('runs its writes no further ahead of the disk than maxUnsyncedBytes, however slow the fdatasyncs are', async function () {
    // The worker's own code on a node:fs whose fdatasync answers 20 ms late and which records, at each write,
    // how far the file's end is past the last finished sync. Without the limit the page cache takes all 32 MiB
    // before the second sync has finished.
    const source = `var __name = (f) => f;
      const threads = require('node:worker_threads');
      const real = require('node:fs');
      let end = 0, synced = 0, peak = 0;
      const fs = { ...real,
        writeSync(fd, data, offset, length, position) {
          const n = real.writeSync(fd, data, offset, length, position);
          end = Math.max(end, position + n);
          peak = Math.max(peak, end - synced);
          return n;
        },
        fdatasync(fd, done) {
          const to = end;
          setTimeout(() => real.fdatasync(fd, (err) => { if (err === null) synced = Math.max(synced, to); done(err); }), 20);
        },
        fsync(fd, done) {
          threads.parentPort.postMessage({ type: 'peak', peak });
          real.fsync(fd, done);
        },
      };
      (${writeWorkerMain.toString()})(threads, require('node:crypto'), require('node:zlib'), fs, require('node:os'), ${lowerThreadPriority.toString()});`;
    const handle = await fs.open(path.join(dir, 'file'), 'wx+');
    const init: WriteWorkerInit = { fd: handle.fd, directFd: null, level: 0, parallel: 0, deflateSource: '', writeBytes: MiB, batchBytes: MiB, hashReadBytes: 4 * MiB, syncEveryBytes: MiB, maxUnsyncedBytes: 4 * MiB, bytesPerSecond: 0 };
    const worker = new Worker(source, { eval: true, workerData: init, execArgv: [] });
    try {
      const done = new Promise<{ peak: number; size: number }>((resolve, reject) => {
        let peak = -1;
        worker.on('message', (m: FromWriteWorker | { type: 'peak'; peak: number }) => {
          if (m.type === 'peak') peak = m.peak;
          else if (m.type === 'failed') reject(new Error(m.error.message));
          else if (m.type === 'finished') resolve({ peak, size: m.size });
        });
        worker.on('error', reject);
      });
      // 32 batches of 1 MiB, all at once: only the limit holds the worker back.
      for (let i = 0; i < 32; i++) {
        const batch = Buffer.allocUnsafeSlow(MiB).fill(i);
        worker.postMessage({ type: 'batch', data: batch, last: i === 31 }, [batch.buffer]);
      }
      worker.postMessage({ type: 'finish' });
      const { peak, size } = await done;
      expect(size).to.equal(32 * MiB);
      expect(peak, 'bytes written past the last finished fdatasync, at most').to.be.at.most(init.maxUnsyncedBytes + init.writeBytes);
      expect(peak, 'the syncs did hold the writes back').to.be.at.least(init.maxUnsyncedBytes);
      expect((await handle.stat()).size).to.equal(32 * MiB);
    } finally {
      await worker.terminate();
      await handle.close();
    }
  });

  for (const level of [0, 1]) {
    it(`fills the batch buffers the worker gives back, and what it writes stays what was sent (${level === 0 ? 'store' : 'deflate:1'})`, async function () {
      // A buffer given back while still being written, hashed or deflated would be overwritten here with the
      // next batch's bytes: the file would not be the batches in order.
      const handle = await fs.open(path.join(dir, 'sink'), 'wx+');
      const sink = new WorkerSink(handle.fd, level);
      const batches = 64;
      const sent: Buffer[] = [];
      try {
        for (let i = 0; i < batches; i++) {
          const batch = sink.batchBuffer();
          expect(batch.byteOffset === 0 && batch.length === batch.buffer.byteLength, 'a batch buffer owns its ArrayBuffer').to.equal(true);
          // Random bytes (and an odd length) in every other batch: a deflated one then takes a while.
          const used = i % 2 === 0 ? batch.length : batch.length - 1 - i;
          if (i % 2 === 0) batch.fill(i);
          else randomBytes(used).copy(batch);
          sent.push(Buffer.from(batch.subarray(0, used)));
          await sink.batch(batch.subarray(0, used), i === batches - 1);
        }
        const [entry] = await sink.entriesWritten(1);
        const { size } = await sink.finish();
        const file = await fs.readFile(path.join(dir, 'sink'));
        expect(file.length).to.equal(size);
        const expected = Buffer.concat(sent);
        expect(entry!.sha256).to.equal(createHash('sha256').update(expected).digest('hex'));
        expect((level === 0 ? file : zlib.inflateRawSync(file)).equals(expected), 'the file holds the batches in order').to.equal(true);
        // 32 MiB may be in flight, and a few batches wait to be written or given back: not one buffer per batch.
        expect(sink.batchBuffersAllocated).to.be.within(1, 48);
      } finally {
        await sink.close();
        await handle.close();
      }
    });
  }

  it('turns a worker that dies into a rejection of the next wait, not a hang', async function () {
    const handle = await fs.open(path.join(dir, 'sink'), 'wx+');
    const sink = new WorkerSink(handle.fd, 6);
    try {
      // A batch owns its ArrayBuffer (it is moved to the worker).
      const batch = Buffer.allocUnsafeSlow(1000);
      randomBytes(1000).copy(batch);
      // As if the thread crashed: it exits without a word. Terminated while idle (before any batch): terminating
      // it while it makes a deflater would abort this whole process (a Node 20 bug the sink's close() avoids).
      await (sink as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      await sink.batch(batch, false).catch(() => undefined);
      const err = await sink.finish().catch((e: unknown) => e);
      expect(err).to.be.instanceOf(CheckpointdError);
      expect((err as Error).message).to.match(/write worker stopped \(exit code \d+\) before the checkpoint was written/);
      expect(() => sink.put(Buffer.from('more'))).to.throw(CheckpointdError);
    } finally {
      await sink.close();
      await handle.close();
    }
  });
});
