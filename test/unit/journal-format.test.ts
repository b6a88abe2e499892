import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MaxRecordBytes } from '../../src/config/defaults.js';
import { PayloadTooLargeError } from '../../src/errors.js';
import { countedJournalFiles, crc32c, decodeFrame, decodeFrameHead, encodeRecord, journalFileName, listJournalFiles, parseJournalFileName } from '../../src/journal/index.js';

describe('journal format', function () {
  describe('crc32c', function () {
    it('matches the published CRC-32C check value for "123456789"', function () {
      expect(crc32c(Buffer.from('123456789'))).to.equal(0xe3069283);
    });

    it('matches the RFC 3720 (iSCSI) test vectors', function () {
      expect(crc32c(Buffer.alloc(0))).to.equal(0);
      expect(crc32c(Buffer.alloc(32, 0x00))).to.equal(0x8a9136aa);
      expect(crc32c(Buffer.alloc(32, 0xff))).to.equal(0x62a8ab43);
      expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).to.equal(0x46dd794e);
      expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).to.equal(0x113fdb5c);
    });

    it('continues a checksum over a buffer split at any point', function () {
      const data = Buffer.from('group commit shares one fdatasync between many records');
      const whole = crc32c(data);
      for (let k = 0; k <= data.length; k++) {
        expect(crc32c(data.subarray(k), crc32c(data.subarray(0, k))), `split at ${k}`).to.equal(whole);
      }
    });
  });

  describe('record frames', function () {
    it('frames a record as payload length, CRC-32C of length and payload, then the JSON payload', function () {
      const frame = encodeRecord({ seq: 7, epoch: 2, op: { put: 'k', value: 'é' } });
      const length = frame.readUInt32LE(0);
      expect(frame.length).to.equal(8 + length);
      const payload = frame.subarray(8);
      expect(JSON.parse(payload.toString('utf8'))).to.deep.equal({ seq: 7, epoch: 2, op: { put: 'k', value: 'é' } });
      expect(frame.readUInt32LE(4)).to.equal(crc32c(payload, crc32c(frame.subarray(0, 4))));
    });

    it('reads only the seq and epoch of a record whose op type it was not asked to parse, and parses the others as decodeFrame does', function () {
      const commit = encodeRecord({ seq: 12, epoch: 3, op: { type: 'commit', space: 's', ops: [{ op: 'put', key: 'k', value: 'é' }] } });
      const restore = encodeRecord({ seq: 13, epoch: 3, op: { type: 'restore', checkpoint: 2 } });
      const untyped = encodeRecord({ seq: 14, epoch: 3, op: [1, 2] });
      const types = new Set(['restore']);
      expect(decodeFrameHead(commit, types)).to.deep.equal({ ok: true, record: { seq: 12, epoch: 3, op: null } });
      expect(decodeFrameHead(restore, types)).to.deep.equal(decodeFrame(restore));
      expect(decodeFrameHead(untyped, types)).to.deep.equal({ ok: true, record: { seq: 14, epoch: 3, op: [1, 2] } });
      const damaged = Buffer.from(commit);
      damaged[damaged.length - 2]! ^= 0x20;
      expect(decodeFrameHead(damaged, types)).to.deep.equal({ ok: false, reason: 'checksum mismatch' });
    });

    it('refuses a record over MaxRecordBytes rather than write one no reader accepts', function () {
      expect(() => encodeRecord({ seq: 1, epoch: 1, op: 'x'.repeat(MaxRecordBytes) })).to.throw(PayloadTooLargeError);
    });

    it('refuses an op that is not JSON', function () {
      expect(() => encodeRecord({ seq: 1, epoch: 1, op: undefined })).to.throw(TypeError);
    });
  });

  describe('journal file names', function () {
    it('names the first seq and the epoch, padded to nine digits and growing past them', function () {
      expect(journalFileName(1, 1)).to.equal('journal-000000001-000000001.log');
      expect(journalFileName(123456789, 7)).to.equal('journal-123456789-000000007.log');
      expect(journalFileName(1234567890, 1234567890)).to.equal('journal-1234567890-1234567890.log');
      expect(() => journalFileName(1, 0)).to.throw(RangeError);
    });

    it('reads both names: with an epoch, and without one (earlier versions)', function () {
      expect(parseJournalFileName('journal-000000101-000000002.log')).to.deep.equal({ firstSeq: 101, epoch: 2 });
      expect(parseJournalFileName('journal-000000101.log')).to.deep.equal({ firstSeq: 101, epoch: null });
      expect(parseJournalFileName('journal-101-000000002.log')).to.equal(null);
      expect(parseJournalFileName('journal-000000101-2.log')).to.equal(null);
      expect(parseJournalFileName('journal-000000101-000000000.log')).to.equal(null);
    });

    it('counts a superseded epoch\'s file that starts after a newer epoch\'s as void', function () {
      const file = (firstSeq: number, epoch: number | null) => ({ path: `f${firstSeq}-${epoch}`, firstSeq, epoch });
      const { counted, superseded } = countedJournalFiles([file(1, null), file(51, 1), file(101, 1), file(101, 2), file(151, 1), file(160, 2), file(170, 3), file(171, 2)]);
      expect(counted.map((f) => f.path)).to.deep.equal(['f1-null', 'f51-1', 'f101-1', 'f101-2', 'f160-2', 'f170-3']);
      expect(superseded.map((f) => f.path)).to.deep.equal(['f151-1', 'f171-2']);
    });

    it('lists only journal files, in numeric seq order', async function () {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-'));
      try {
        const names = [
          'journal-000000010.log',
          'journal-1000000000.log',
          'journal-000000009.log',
          'journal-000000001.log',
          'journal-12.log',
          'journal-000000002.log.tmp',
          'journal-000000010-000000002.log',
          'journal-000000009-000000003.log',
          'notes.txt',
        ];
        for (const name of names) await fs.writeFile(path.join(dir, name), '');
        const files = await listJournalFiles(dir);
        expect(files.map((f) => [f.firstSeq, f.epoch])).to.deep.equal([[1, null], [9, null], [9, 3], [10, null], [10, 2], [1000000000, null]]);
        expect(files[0]!.path).to.equal(path.join(dir, 'journal-000000001.log'));
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });

    it('treats a missing folder as an empty journal', async function () {
      expect(await listJournalFiles(path.join(os.tmpdir(), 'cpd-does-not-exist-' + process.pid))).to.deep.equal([]);
    });
  });
});
