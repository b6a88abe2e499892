import { expect } from 'chai';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ConflictError, JournalWriteError } from '../../src/errors.js';
import {
  JournalWriter,
  journalFileName,
  listJournalFiles,
  scanJournal,
  type JournalRecord,
  type JournalWriterOptions,
} from '../../src/journal/index.js';
import { silentLogger } from '../../src/log/index.js';
import { breakDescriptor } from '../helpers/descriptor.js';
import { waitFor } from '../helpers/wait-for.js';

function options(dir: string, overrides: Partial<JournalWriterOptions> = {}): JournalWriterOptions {
  return { dir, nextSeq: 1, epoch: 1, sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger: silentLogger(), ...overrides };
}

async function readBack(dir: string): Promise<JournalRecord[]> {
  const records: JournalRecord[] = [];
  await scanJournal(dir, { repair: false, logger: silentLogger(), onRecord: (r) => records.push(r) });
  return records;
}


/** Collects unhandled rejections while a test runs. */
function watchUnhandledRejections(): { reasons: unknown[]; stop: () => void } {
  const reasons: unknown[] = [];
  const listener = (reason: unknown): void => {
    reasons.push(reason);
  };
  process.on('unhandledRejection', listener);
  return { reasons, stop: () => process.off('unhandledRejection', listener) };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe('JournalWriter', function () {
  let dir: string;

  beforeEach(async function () {
    // realpath: /proc/self/fd shows resolved paths.
    dir = path.join(await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-'))), 'journal');
  });

  afterEach(async function () {
    await fs.rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('creates the folder and a first file named for nextSeq', async function () {
    const writer = await JournalWriter.open(options(dir, { nextSeq: 42 }));
    await writer.close();
    expect((await listJournalFiles(dir)).map((f) => path.basename(f.path))).to.deep.equal([journalFileName(42, 1)]);
  });

  it('writes records that a scan reads back in order, with seq, epoch and op', async function () {
    const writer = await JournalWriter.open(options(dir, { epoch: 3 }));
    const ops = [{ put: 'a' }, { delete: 'b' }, ['x', 1, null], 'plain'];
    await Promise.all(ops.map((op) => writer.append(op).durable));
    await writer.close();
    expect(await readBack(dir)).to.deep.equal(ops.map((op, i) => ({ seq: i + 1, epoch: 3, op })));
  });

  it('appends to the newest file when reopened at the scanned lastSeq + 1', async function () {
    const first = await JournalWriter.open(options(dir));
    for (let i = 0; i < 3; i++) await first.append({ i }).durable;
    await first.close();
    const scan = await scanJournal(dir, { repair: true, logger: silentLogger() });
    const second = await JournalWriter.open(options(dir, { nextSeq: scan.lastSeq + 1 }));
    expect(second.stats.file).to.equal(first.stats.file);
    expect(second.append({ i: 3 }).seq).to.equal(4);
    await second.close();
    expect((await readBack(dir)).map((r) => r.seq)).to.deep.equal([1, 2, 3, 4]);
    expect(await listJournalFiles(dir)).to.have.length(1);
  });

  it('refuses to open at a seq the newest file is already past', async function () {
    const writer = await JournalWriter.open(options(dir, { nextSeq: 10 }));
    await writer.close();
    let error: unknown;
    try {
      await JournalWriter.open(options(dir, { nextSeq: 5 }));
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(ConflictError);
  });

  it('hands out seqs at once, without gaps, and resolves durable in seq order', async function () {
    const writer = await JournalWriter.open(options(dir));
    const resolved: number[] = [];
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      const { seq, durable } = writer.append({ i });
      expect(seq).to.equal(i + 1);
      waits.push(durable.then(() => void resolved.push(seq)));
      if (i % 10 === 9) await nextTurn(); // let several batches form
    }
    await Promise.all(waits);
    await writer.close();
    expect(resolved).to.deep.equal(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(writer.stats.batches).to.be.greaterThan(1);
  });

  it('makes 200 concurrent appends share a handful of fsyncs', async function () {
    const writer = await JournalWriter.open(options(dir));
    await Promise.all(Array.from({ length: 200 }, (_, i) => writer.append({ i }).durable));
    const { fsyncs, batches, lastSeq, lastDurableSeq } = writer.stats;
    await writer.close();
    expect(lastSeq).to.equal(200);
    expect(lastDurableSeq).to.equal(200);
    expect(fsyncs).to.equal(batches);
    expect(fsyncs).to.be.lessThan(10);
  });

  it('with groupCommitMs, waits for appends from later turns to join the first batch', async function () {
    const writer = await JournalWriter.open(options(dir, { groupCommitMs: 200 }));
    const waits = [writer.append(1).durable];
    await nextTurn();
    waits.push(writer.append(2).durable);
    await nextTurn();
    waits.push(writer.append(3).durable);
    await Promise.all(waits);
    const { fsyncs, batches } = writer.stats;
    await writer.close();
    expect({ fsyncs, batches }).to.deep.equal({ fsyncs: 1, batches: 1 });
  });

  it('makes 64 committers, each awaiting its own commits, share fsyncs', async function () {
    const writer = await JournalWriter.open(options(dir));
    await Promise.all(
      Array.from({ length: 64 }, async (_, worker) => {
        for (let i = 0; i < 10; i++) await writer.append({ worker, i }).durable;
      }),
    );
    const { fsyncs, lastDurableSeq } = writer.stats;
    await writer.close();
    expect(lastDurableSeq).to.equal(640);
    expect(fsyncs).to.be.lessThan(640 / 8);
    expect((await readBack(dir)).map((r) => r.seq)).to.deep.equal(Array.from({ length: 640 }, (_, i) => i + 1));
  });

  it('keeps seqs gap-free across a roll and names the new file for the next seq', async function () {
    const writer = await JournalWriter.open(options(dir));
    for (let i = 0; i < 5; i++) await writer.append({ i }).durable;
    const rolled = await writer.roll();
    expect(path.basename(rolled)).to.equal(journalFileName(6, 1));
    expect(writer.stats.file).to.equal(rolled);
    for (let i = 5; i < 10; i++) await writer.append({ i }).durable;
    await writer.close();
    expect((await listJournalFiles(dir)).map((f) => f.firstSeq)).to.deep.equal([1, 6]);
    const scan = await scanJournal(dir, { repair: false, logger: silentLogger() });
    expect(scan).to.include({ files: 2, records: 10, lastSeq: 10 });
  });

  it('writes records queued before a roll into the old file', async function () {
    const writer = await JournalWriter.open(options(dir));
    const queued = [writer.append('a'), writer.append('b'), writer.append('c')];
    const rolled = await writer.roll();
    expect(path.basename(rolled)).to.equal(journalFileName(4, 1));
    await Promise.all(queued.map((q) => q.durable));
    expect(writer.append('d').seq).to.equal(4);
    await writer.close();
    // The scan checks that the new file's first record is the seq its name says.
    expect((await readBack(dir)).map((r) => r.op)).to.deep.equal(['a', 'b', 'c', 'd']);
  });

  it('rolls while committers keep appending: the records handed out before the roll end the old file, the rest start the new one', async function () {
    const writer = await JournalWriter.open(options(dir));
    let running = true;
    // Each committer appends again the moment its record is durable, so the queue is never empty for long.
    const committers = Array.from({ length: 16 }, async (_, c) => {
      for (let i = 0; running; i++) await writer.append({ c, i }).durable;
    });
    await waitFor(() => writer.stats.lastDurableSeq >= 200, { what: 'the committers to get going', timeoutMs: 20_000 });
    let rolledTo: string | null = null;
    const roll = writer.roll().then((file) => (rolledTo = file));
    try {
      await waitFor(() => rolledTo !== null, { what: 'the roll to end under steady appends', timeoutMs: 20_000 });
    } finally {
      running = false;
      await Promise.all(committers);
      await roll;
    }
    await writer.close();
    const files = await listJournalFiles(dir);
    expect(files.map((f) => f.path)).to.deep.equal([files[0]!.path, rolledTo]);
    const scan = await scanJournal(dir, { repair: false, logger: silentLogger() });
    expect(scan).to.include({ files: 2, lastSeq: scan.records });
    expect(files[1]!.firstSeq).to.be.greaterThan(200);
  });

  it('does not create a second file when rolled twice with nothing in between', async function () {
    const writer = await JournalWriter.open(options(dir));
    await writer.append('a').durable;
    const first = await writer.roll();
    expect(await writer.roll()).to.equal(first);
    await writer.close();
    expect(await listJournalFiles(dir)).to.have.length(2);
  });

  it('writes a new epoch into a new file of its own, never into the previous epoch\'s (even an empty one)', async function () {
    const first = await JournalWriter.open(options(dir, { epoch: 1 }));
    await first.append('old').durable;
    const empty = await first.roll();
    await first.close();
    const second = await JournalWriter.open(options(dir, { epoch: 2, nextSeq: 2 }));
    await second.append('new').durable;
    await second.close();
    expect((await listJournalFiles(dir)).map((f) => path.basename(f.path))).to.deep.equal([journalFileName(1, 1), journalFileName(2, 1), journalFileName(2, 2)]);
    expect((await fs.stat(empty)).size).to.equal(0);
    expect((await readBack(dir)).map((r) => [r.seq, r.epoch])).to.deep.equal([[1, 1], [2, 2]]);
    expect((await scanJournal(dir, { repair: false, logger: silentLogger() })).lastEpoch).to.equal(2);
  });

  it('refuses to open for an epoch older than the newest file\'s', async function () {
    const newer = await JournalWriter.open(options(dir, { epoch: 3 }));
    await newer.close();
    const err = await rejection(JournalWriter.open(options(dir, { epoch: 2 })));
    expect(err).to.be.instanceOf(ConflictError);
    expect((err as Error).message).to.match(/epoch 3, newer than this writer's epoch 2/);
  });

  it('splits a queue larger than MaxBatchBytes into batches of at most that size', async function () {
    // groupCommitMs: all ten wait for one flush, which would write them as one 10 MiB batch without the bound.
    const writer = await JournalWriter.open(options(dir, { groupCommitMs: 20 }));
    const big = 'x'.repeat(1024 * 1024);
    const appended = Array.from({ length: 10 }, () => writer.append(big));
    await Promise.all(appended.map((a) => a.durable));
    await writer.close();
    // 1 MiB and a few bytes each: three fit in 4 MiB, four do not.
    expect(writer.stats.batches).to.equal(4);
    expect((await readBack(dir)).map((r) => r.seq)).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it('writes what is queued on close, then refuses appends', async function () {
    const writer = await JournalWriter.open(options(dir));
    const last = writer.append('queued');
    await writer.close();
    await last.durable;
    expect(() => writer.append('late')).to.throw(JournalWriteError, /closed/);
    expect((await readBack(dir)).map((r) => r.op)).to.deep.equal(['queued']);
  });

  describe('in interval mode', function () {
    it('acknowledges once the write reaches the OS, and fsyncs on close', async function () {
      const writer = await JournalWriter.open(options(dir, { sync: 'interval', syncIntervalMs: 60_000 }));
      await Promise.all(Array.from({ length: 10 }, (_, i) => writer.append({ i }).durable));
      expect(writer.stats).to.include({ lastSeq: 10, lastDurableSeq: 0, fsyncs: 0 });
      await writer.close();
      expect(writer.stats).to.include({ lastDurableSeq: 10, fsyncs: 1 });
      expect(await readBack(dir)).to.have.length(10);
    });

    it('fsyncs on its timer', async function () {
      const writer = await JournalWriter.open(options(dir, { sync: 'interval', syncIntervalMs: 10 }));
      try {
        await Promise.all(Array.from({ length: 10 }, (_, i) => writer.append({ i }).durable));
        await waitFor(() => writer.stats.lastDurableSeq === 10, { what: 'the interval fsync', timeoutMs: 2000, intervalMs: 5 });
        expect(writer.stats.fsyncs).to.be.at.least(1);
      } finally {
        await writer.close();
      }
    });
  });

  describe('when the disk fails', function () {
    it('tells onFailure first, rejects every unacknowledged commit, cuts the file back and goes on', async function () {
      if (!existsSync('/proc/self/fd')) this.skip();
      const unhandled = watchUnhandledRejections();
      try {
        const failures: Array<{ lastDurableSeq: number; err: Error; rejectionSeen: boolean }> = [];
        let rejectionSeen = false;
        const writer = await JournalWriter.open(
          options(dir, { onFailure: (lastDurableSeq, err) => failures.push({ lastDurableSeq, err, rejectionSeen }) }),
        );
        for (let i = 1; i <= 3; i++) await writer.append(i).durable;
        const goodBytes = (await fs.stat(writer.stats.file)).size;

        // Close the writer's descriptor behind its back: the next write fails with EBADF.
        breakDescriptor(writer.stats.file);
        const watched = writer.append(4);
        writer.append(5); // nobody awaits this one: its rejection must not go unhandled
        const error = await rejection(
          watched.durable.catch((err: unknown) => {
            rejectionSeen = true;
            throw err;
          }),
        );

        expect(error).to.be.instanceOf(JournalWriteError);
        expect((error as Error).message)
          .to.include(path.basename(writer.stats.file))
          .and.include('EBADF')
          .and.include('not acknowledged');
        expect(failures).to.have.length(1);
        expect(failures[0]).to.include({ lastDurableSeq: 3, rejectionSeen: false });
        expect(failures[0]!.err).to.be.instanceOf(JournalWriteError);
        expect(writer.stats.lastSeq).to.equal(3);

        const next = writer.append('after');
        expect(next.seq).to.equal(4);
        await next.durable;
        await writer.close();
        expect((await fs.stat(writer.stats.file)).size).to.be.greaterThan(goodBytes);
        const records = await readBack(dir);
        expect(records.map((r) => r.op)).to.deep.equal([1, 2, 3, 'after']);

        await nextTurn();
        await nextTurn();
        expect(unhandled.reasons).to.deep.equal([]);
      } finally {
        unhandled.stop();
      }
    });

    it('with many committers and writes in flight, keeps exactly the acknowledged records, gap-free', async function () {
      if (!existsSync('/proc/self/fd')) this.skip();
      const unhandled = watchUnhandledRejections();
      try {
        const failures: number[] = [];
        const writer = await JournalWriter.open(options(dir, { onFailure: (seq) => failures.push(seq) }));
        const acked = new Set<string>();
        let rejected = 0;
        let stop = false;
        const committers = Array.from({ length: 32 }, async (_, c) => {
          for (let i = 0; !stop; i++) {
            const id = `${c}-${i}`;
            try {
              await writer.append({ id }).durable;
              acked.add(id);
            } catch (err) {
              expect(err).to.be.instanceOf(JournalWriteError);
              rejected++;
            }
          }
        });
        await waitFor(() => acked.size >= 500, { what: '500 acknowledged records' });
        breakDescriptor(writer.stats.file); // every write still to come on this handle fails with EBADF
        await waitFor(() => failures.length > 0 && acked.size >= 1000, { what: 'the failure, then 1000 acknowledged records' });
        stop = true;
        await Promise.all(committers);
        await writer.close();

        expect(rejected).to.be.greaterThan(0);
        const records = await readBack(dir);
        expect(records.map((r) => r.seq)).to.deep.equal(records.map((_, i) => i + 1));
        expect(new Set(records.map((r) => (r.op as { id: string }).id))).to.deep.equal(acked);
        await nextTurn();
        expect(unhandled.reasons).to.deep.equal([]);
      } finally {
        unhandled.stop();
      }
    });

    it('refuses further commits when the file cannot be cut back', async function () {
      if (!existsSync('/dev/full')) this.skip();
      const unhandled = watchUnhandledRejections();
      try {
        // Writes to /dev/full fail with ENOSPC, and it cannot be truncated.
        await fs.mkdir(dir);
        await fs.symlink('/dev/full', path.join(dir, journalFileName(1, 1)));
        const failures: number[] = [];
        const writer = await JournalWriter.open(options(dir, { onFailure: (seq) => failures.push(seq) }));
        const first = writer.append('lost');
        writer.append('ignored');
        const error = await rejection(first.durable);
        expect(error).to.be.instanceOf(JournalWriteError);
        expect((error as Error).message).to.include('ENOSPC').and.include('not acknowledged');
        expect(failures).to.deep.equal([0]);
        await waitFor(
          () => {
            try {
              writer.append('refused');
              return false;
            } catch (err) {
              return err instanceof JournalWriteError && /restarts/.test(err.message);
            }
          },
          { what: 'the writer to refuse commits', timeoutMs: 2000, intervalMs: 5 },
        );
        await writer.close();
        await nextTurn();
        await nextTurn();
        expect(unhandled.reasons).to.deep.equal([]);
      } finally {
        unhandled.stop();
      }
    });
  });
});
