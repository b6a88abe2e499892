import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JournalCorruptError } from '../../src/errors.js';
import {
  JournalWriter,
  encodeRecord,
  journalFileName,
  scanJournal,
  type JournalRecord,
  type ScanResult,
} from '../../src/journal/index.js';
import { silentLogger, type Logger } from '../../src/log/index.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { waitFor } from '../helpers/wait-for.js';

const Epoch = 1;

/** Writes records `from`..`to` through a real writer, one roll per entry of `rollAfter`. */
async function writeJournal(dir: string, from: number, to: number, rollAfter: number[] = []): Promise<void> {
  const writer = await JournalWriter.open({
    dir,
    nextSeq: from,
    epoch: Epoch,
    sync: 'commit',
    groupCommitMs: 0,
    syncIntervalMs: 1000,
    logger: silentLogger(),
  });
  for (let seq = from; seq <= to; seq++) {
    await writer.append(opFor(seq)).durable;
    if (rollAfter.includes(seq)) await writer.roll();
  }
  await writer.close();
}

function opFor(seq: number): unknown {
  return { put: `k${seq}`, value: { n: seq, text: 'x'.repeat(seq % 7) } };
}

/** Where each record's frame starts in a file holding `ops` from seq 1. */
function frameOffsetsOf(ops: unknown[]): number[] {
  let offset = 0;
  return ops.map((op, i) => {
    const at = offset;
    offset += encodeRecord({ seq: i + 1, epoch: Epoch, op }).length;
    return at;
  });
}

/** Where each record's frame starts in a file holding `from`..`to` written by {@link writeJournal}. */
function frameOffsets(from: number, to: number): number[] {
  const offsets: number[] = [];
  let offset = 0;
  for (let seq = from; seq <= to; seq++) {
    offsets.push(offset);
    offset += encodeRecord({ seq, epoch: Epoch, op: opFor(seq) }).length;
  }
  return offsets;
}

async function scan(dir: string, repair: boolean, logger: Logger = silentLogger(), fromSeq?: number) {
  const records: JournalRecord[] = [];
  const result = await scanJournal(dir, { repair, logger, fromSeq, onRecord: (r) => records.push(r) });
  return { result, seqs: records.map((r) => r.seq), records };
}

async function corruption(dir: string): Promise<JournalCorruptError> {
  try {
    await scan(dir, true);
  } catch (err) {
    if (err instanceof JournalCorruptError) return err;
    throw err;
  }
  throw new Error('expected a JournalCorruptError');
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('journal recovery (scanJournal)', function () {
  let dir: string;
  let file: string;

  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-'));
    file = path.join(dir, journalFileName(1, 1));
  });

  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads a missing folder, an empty folder and empty files as no records', async function () {
    expect((await scan(path.join(dir, 'none'), true)).result).to.deep.equal({
      lastSeq: 0,
      lastEpoch: 0,
      files: 0,
      records: 0,
      bytes: 0,
      cut: null,
    } satisfies ScanResult);
    await fs.writeFile(file, '');
    expect((await scan(dir, true)).result).to.include({ lastSeq: 0, lastEpoch: 0, files: 1, records: 0, cut: null });
  });

  it('accepts an empty last file named for the next seq', async function () {
    await writeJournal(dir, 1, 3, [3]);
    const { result } = await scan(dir, true);
    expect(result).to.include({ lastSeq: 3, files: 2, cut: null });
  });

  it('reports the last seq and epoch, the files and the bytes read', async function () {
    await writeJournal(dir, 1, 6, [3]);
    const { result, seqs } = await scan(dir, false);
    expect(seqs).to.deep.equal(range(1, 6));
    const bytes = range(1, 6).reduce((sum, seq) => sum + encodeRecord({ seq, epoch: Epoch, op: opFor(seq) }).length, 0);
    expect(result).to.deep.equal({ lastSeq: 6, lastEpoch: Epoch, files: 2, records: 6, bytes, cut: null });
  });

  it('delivers only records after fromSeq, still checking the earlier ones', async function () {
    await writeJournal(dir, 1, 10, [4]);
    const { result, seqs } = await scan(dir, false, silentLogger(), 6);
    expect(seqs).to.deep.equal([7, 8, 9, 10]);
    expect(result).to.include({ records: 10, lastSeq: 10 });
  });

  it('parses the records up to fromSeq only for the op types asked for (earlierTypes, onEarlier), and still refuses damage in them', async function () {
    const writer = await JournalWriter.open({ dir, nextSeq: 1, epoch: Epoch, sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger: silentLogger() });
    const ops = [{ type: 'commit', ops: [] }, { type: 'restore', checkpoint: 4 }, { put: 'no type first' }, { type: 'commit' }, { type: 'restore', checkpoint: 9 }, { type: 'commit' }];
    for (const op of ops) await writer.append(op).durable;
    await writer.close();
    const earlier: JournalRecord[] = [];
    const later: JournalRecord[] = [];
    const options = { repair: false, logger: silentLogger(), fromSeq: 5, earlierTypes: new Set(['restore']), onEarlier: (r: JournalRecord) => earlier.push(r), onRecord: (r: JournalRecord) => later.push(r) };
    const result = await scanJournal(dir, options);
    expect(result).to.include({ records: 6, lastSeq: 6 });
    // The restores, and a record laid out otherwise than encodeRecord writes a typed op (parsed to be sure); not the commits.
    expect(earlier).to.deep.equal([
      { seq: 2, epoch: Epoch, op: { type: 'restore', checkpoint: 4 } },
      { seq: 3, epoch: Epoch, op: { put: 'no type first' } },
      { seq: 5, epoch: Epoch, op: { type: 'restore', checkpoint: 9 } },
    ]);
    expect(later.map((r) => r.seq)).to.deep.equal([6]);
    // A flipped byte in the payload of seq 4 (a commit, not parsed) is still found by its checksum.
    const bytes = await fs.readFile(file);
    const at = frameOffsetsOf(ops).at(3)! + 8 + 3;
    bytes[at]! ^= 0x01;
    await fs.writeFile(file, bytes);
    const err = await scanJournal(dir, options).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(JournalCorruptError);
    expect((err as JournalCorruptError).message).to.include('checksum mismatch').and.include('last good seq is 3');
  });

  it('reads records straddling read chunks and a record larger than a chunk', async function () {
    const big = 'b'.repeat(2 * 1024 * 1024 + 3);
    const ops: unknown[] = [];
    for (let i = 0; i < 2500; i++) ops.push(i === 1200 ? { big } : { i, pad: 'p'.repeat(i % 1500) });
    const writer = await JournalWriter.open({
      dir,
      nextSeq: 1,
      epoch: Epoch,
      sync: 'commit',
      groupCommitMs: 0,
      syncIntervalMs: 1000,
      logger: silentLogger(),
    });
    await Promise.all(ops.map((op) => writer.append(op).durable));
    await writer.close();
    const { records, result } = await scan(dir, true);
    expect(result.cut).to.equal(null);
    expect(records.map((r) => r.op)).to.deep.equal(ops);
  });

  describe('a torn or corrupt tail', function () {
    it('is cut at the last good record; the records before survive and the writer continues with the next seq', async function () {
      await writeJournal(dir, 1, 10);
      const size = (await fs.stat(file)).size;
      await fs.truncate(file, size - 5); // the last record was torn mid-write
      const lastStart = frameOffsets(1, 10)[9]!;
      const { logger, lines } = captureLogger();

      const { result, seqs } = await scan(dir, true, logger);

      expect(seqs).to.deep.equal(range(1, 9));
      expect(result.lastSeq).to.equal(9);
      expect(result.cut).to.deep.include({ file, offset: lastStart, bytesCut: size - 5 - lastStart });
      expect((await fs.stat(file)).size).to.equal(lastStart);
      const warning = await waitFor(() => lines.find((l) => l.level === 'warn'), { what: 'the warning', timeoutMs: 2000 });
      expect(warning).to.include({ file, offset: lastStart, bytesCut: size - 5 - lastStart });
      expect(String(warning.message)).to.match(/cut/);

      await writeJournal(dir, result.lastSeq + 1, 11);
      const rescan = await scan(dir, true);
      expect(rescan.seqs).to.deep.equal(range(1, 11));
      expect(rescan.result.cut).to.equal(null);
    });

    it('is cut where the first of two batches in flight never landed (a hole of zeros) and the second did: nothing from the hole on was acknowledged', async function () {
      await writeJournal(dir, 1, 10);
      const bytes = await fs.readFile(file);
      const offsets = frameOffsets(1, 10);
      // The crash: batch 6..7 never reached the disk (reads back as zeros), batch 8..10 written after it did.
      bytes.fill(0, offsets[5], offsets[7]);
      await fs.writeFile(file, bytes);

      const reported = await scan(dir, false);
      expect(reported.seqs).to.deep.equal(range(1, 5));
      expect(reported.result.cut).to.deep.include({ file, offset: offsets[5], bytesCut: bytes.length - offsets[5]! });
      expect(reported.result.cut?.reason).to.match(/later batch landed past a hole/);

      const { result, seqs } = await scan(dir, true);
      expect(seqs).to.deep.equal(range(1, 5));
      expect(result.lastSeq).to.equal(5);
      expect((await fs.stat(file)).size).to.equal(offsets[5]);
    });

    it('still stops when what follows a hole is more than one batch (acknowledged records cannot be cut)', async function () {
      const small = [1, 2, 3].map((seq) => encodeRecord({ seq, epoch: Epoch, op: opFor(seq) }));
      const hole = Buffer.alloc(encodeRecord({ seq: 4, epoch: Epoch, op: opFor(4) }).length);
      const big = [5, 6, 7, 8, 9].map((seq) => encodeRecord({ seq, epoch: Epoch, op: 'x'.repeat(1024 * 1024) }));
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(file, Buffer.concat([...small, hole, ...big]));
      const error = await corruption(dir);
      expect(error).to.include({ file, lastGoodSeq: 3 });
      expect(error.message).to.include('5 valid record(s) follow');
    });

    it('is cut when a byte of the last record is flipped', async function () {
      await writeJournal(dir, 1, 10);
      const bytes = await fs.readFile(file);
      const lastStart = frameOffsets(1, 10)[9]!;
      bytes[lastStart + 12]! ^= 0x01;
      await fs.writeFile(file, bytes);

      const { result, seqs } = await scan(dir, true);

      expect(seqs).to.deep.equal(range(1, 9));
      expect(result.cut).to.deep.include({ file, offset: lastStart, bytesCut: bytes.length - lastStart, reason: 'checksum mismatch' });
      expect((await fs.stat(file)).size).to.equal(lastStart);
    });

    it('is cut when zeros follow the last record (space allocated, never written)', async function () {
      await writeJournal(dir, 1, 4);
      const size = (await fs.stat(file)).size;
      await fs.appendFile(file, Buffer.alloc(4096));
      const { result, seqs } = await scan(dir, true);
      expect(seqs).to.deep.equal(range(1, 4));
      expect(result.cut).to.deep.include({ offset: size, bytesCut: 4096 });
    });

    it('is cut back to an empty file when its only record is torn', async function () {
      await writeJournal(dir, 1, 3, [3]);
      await writeJournal(dir, 4, 4);
      const last = path.join(dir, journalFileName(4, 1));
      await fs.truncate(last, 6);
      const { result } = await scan(dir, true);
      expect(result).to.include({ lastSeq: 3 });
      expect(result.cut).to.deep.include({ file: last, offset: 0, bytesCut: 6 });
      expect((await fs.stat(last)).size).to.equal(0);
    });

    it('is reported but left on disk with repair:false', async function () {
      await writeJournal(dir, 1, 10);
      const size = (await fs.stat(file)).size;
      await fs.truncate(file, size - 5);
      const before = await fs.readFile(file);

      const { result, seqs } = await scan(dir, false);

      expect(seqs).to.deep.equal(range(1, 9));
      expect(result.cut).to.deep.include({ file, offset: frameOffsets(1, 10)[9] });
      expect(Buffer.compare(await fs.readFile(file), before)).to.equal(0);
    });
  });

  describe('damage in the middle', function () {
    it('stops with JournalCorruptError naming file, offset and last good seq when a middle record has a flipped byte, and changes nothing', async function () {
      await writeJournal(dir, 1, 10);
      const bytes = await fs.readFile(file);
      const fifth = frameOffsets(1, 10)[4]!;
      bytes[fifth + 20]! ^= 0xff;
      await fs.writeFile(file, bytes);

      const error = await corruption(dir);

      expect(error).to.include({ file, offset: fifth, lastGoodSeq: 4 });
      expect(error.message)
        .to.include(file)
        .and.include(`offset ${fifth}`)
        .and.include('last good seq is 4')
        .and.include('5 valid record(s) follow')
        .and.match(/restore .* from a copy/)
        .and.match(/aside/);
      expect(Buffer.compare(await fs.readFile(file), bytes)).to.equal(0);
    });

    it('stops on a bad frame in a file that is not the last, even with nothing after it in that file', async function () {
      await writeJournal(dir, 1, 6, [3]);
      const size = (await fs.stat(file)).size;
      await fs.truncate(file, size - 5);
      const error = await corruption(dir);
      expect(error).to.include({ file, offset: frameOffsets(1, 3)[2], lastGoodSeq: 2 });
      expect(error.message).to.include('1 later journal file(s)');
      expect((await fs.stat(file)).size).to.equal(size - 5);
    });

    it('stops on a seq gap between files', async function () {
      await writeJournal(dir, 1, 5);
      await fs.writeFile(
        path.join(dir, journalFileName(8, 1)),
        Buffer.concat([8, 9].map((seq) => encodeRecord({ seq, epoch: Epoch, op: opFor(seq) }))),
      );
      const error = await corruption(dir);
      expect(error).to.include({ file: path.join(dir, journalFileName(8, 1)), offset: 0, lastGoodSeq: 5 });
      expect(error.message).to.include('seqs 6..7 are missing');
    });

    it("stops when a file's first record is not the seq its name says", async function () {
      await fs.writeFile(
        path.join(dir, journalFileName(3, 1)),
        Buffer.concat([1, 2].map((seq) => encodeRecord({ seq, epoch: Epoch, op: opFor(seq) }))),
      );
      const error = await corruption(dir);
      expect(error).to.include({ offset: 0, lastGoodSeq: 0 });
      expect(error.message).to.include('its first record is seq 1');
    });

    it('stops on a repeated seq inside a file', async function () {
      const frames = [1, 2, 2, 3].map((seq) => encodeRecord({ seq, epoch: Epoch, op: opFor(seq) }));
      await fs.writeFile(file, Buffer.concat(frames));
      const error = await corruption(dir);
      expect(error).to.include({ offset: frames[0]!.length + frames[1]!.length, lastGoodSeq: 2 });
    });
  });
});
