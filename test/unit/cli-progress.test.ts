/**
 * The CLI's progress bars: the line they print (ETA, rate, figures) for every
 * state a bar can be in, bars drawn on a stream that says it is a terminal,
 * and the restore bar against a scripted daemon that reports a restore the way
 * GET /api/admin/status does (0 total before reading, then the uncompressed
 * bytes of the entries read) and answers the restore with the smaller,
 * compressed file size.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { ApiClient } from '../../src/cli/api-client.js';
import { restoreCommand } from '../../src/cli/checkpoint-commands.js';
import { byteProgress, formatEta, progressLine, type ProgressFrame } from '../../src/cli/progress.js';
import { BrokenFigure, frameTotal, progressFrames } from '../helpers/progress-frames.js';

const MiB = 1024 * 1024;

/** A stream that says it is a terminal and keeps what was written to it. */
class FakeTerminal extends Writable {
  readonly isTTY = true;
  readonly columns = 160;
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.text += chunk.toString('utf8');
    callback();
  }
}

describe('CLI progress bars', function () {
  describe('formatEta', function () {
    it('says -- for a time left that is unknown, infinite, not a number or negative', function () {
      for (const seconds of [null, Number.NaN, Infinity, -Infinity, -1]) expect(formatEta(seconds), String(seconds)).to.equal('--');
    });

    it('rounds up to seconds, then minutes and seconds, then hours and minutes, and caps at 99 hours', function () {
      expect(formatEta(0)).to.equal('0s');
      expect(formatEta(7.2)).to.equal('8s');
      expect(formatEta(59)).to.equal('59s');
      expect(formatEta(60)).to.equal('1m00s');
      expect(formatEta(185)).to.equal('3m05s');
      expect(formatEta(7620)).to.equal('2h07m');
      expect(formatEta(99 * 3600 + 59 * 60)).to.equal('99h59m');
      expect(formatEta(100 * 3600)).to.equal('>99h');
    });
  });

  describe('progressLine', function () {
    const cases: [string, ProgressFrame][] = [
      ['nothing done yet, no time passed', { done: 0, total: 10 * MiB, startDone: 0, elapsedMs: 0 }],
      ['a zero rate (time passed, no byte)', { done: 0, total: 10 * MiB, startDone: 0, elapsedMs: 5000 }],
      ['a resumed download that has not moved', { done: 4 * MiB, total: 10 * MiB, startDone: 4 * MiB, elapsedMs: 3000 }],
      ['an unknown total', { done: 3 * MiB, total: null, startDone: 0, elapsedMs: 1000 }],
      ['a total of 0', { done: 0, total: 0, startDone: 0, elapsedMs: 1000 }],
      ['a total that is not a number', { done: 1, total: Number.NaN, startDone: 0, elapsedMs: 1000 }],
      ['an infinite total', { done: 1, total: Infinity, startDone: 0, elapsedMs: 1000 }],
      ['finished', { done: 10 * MiB, total: 10 * MiB, startDone: 0, elapsedMs: 2000 }],
      ['finished in the first frame', { done: 10 * MiB, total: 10 * MiB, startDone: 10 * MiB, elapsedMs: 0 }],
      ['more done than the total', { done: 12 * MiB, total: 10 * MiB, startDone: 0, elapsedMs: 2000 }],
      ['a done that is not a number', { done: Number.NaN, total: 10 * MiB, startDone: 0, elapsedMs: 2000 }],
      ['a clock that went backwards', { done: 1 * MiB, total: 10 * MiB, startDone: 0, elapsedMs: -5 }],
    ];
    for (const [what, frame] of cases) {
      it(`prints only finite figures for ${what}`, function () {
        const line = progressLine('restore', frame);
        expect(line).to.not.match(BrokenFigure);
        expect(line).to.match(/^restore \[[\u2588\u2591]{30}\] (\?|\d{1,3})% .+ of .+ \| .+\/s \| ETA (--|\d+s|\d+m\d\ds|\d+h\d\dm|>99h)$/);
      });
    }

    it('says ETA -- and a rate of -- until bytes have moved, then estimates from the rate since the bar started', function () {
      expect(progressLine('download', { done: 0, total: 4 * MiB, startDone: 0, elapsedMs: 5000 })).to.equal(`download [${'\u2591'.repeat(30)}] 0% 0 bytes of 4.0 MiB | --/s | ETA --`);
      // 1 MiB in 1 s: 3 MiB left take 3 s.
      expect(progressLine('download', { done: 1 * MiB, total: 4 * MiB, startDone: 0, elapsedMs: 1000 })).to.equal(
        `download [${'\u2588'.repeat(7)}${'\u2591'.repeat(23)}] 25% 1.0 MiB of 4.0 MiB | 1.0 MiB/s | ETA 3s`,
      );
      // Resumed at 2 MiB: only the 1 MiB since then counts for the rate.
      expect(progressLine('download', { done: 3 * MiB, total: 4 * MiB, startDone: 2 * MiB, elapsedMs: 2000 })).to.match(/75% 3\.0 MiB of 4\.0 MiB \| 512\.0 KiB\/s \| ETA 2s$/);
    });

    it('shows ? for the percentage and the total while the total is unknown', function () {
      expect(progressLine('verify', { done: 2048, total: null, startDone: 0, elapsedMs: 1000 })).to.equal(`verify [${'\u2591'.repeat(30)}] ?% 2.0 KiB of ? | 2.0 KiB/s | ETA --`);
    });

    it('says ETA 0s at the end, full bar', function () {
      expect(progressLine('export', { done: 5 * MiB, total: 5 * MiB, startDone: 0, elapsedMs: 2500 })).to.equal(`export [${'\u2588'.repeat(30)}] 100% 5.0 MiB of 5.0 MiB | 2.0 MiB/s | ETA 0s`);
    });
  });

  describe('byteProgress', function () {
    it('draws nothing on a stream that is not a terminal', function () {
      const stream = new FakeTerminal();
      Object.defineProperty(stream, 'isTTY', { value: false });
      const bar = byteProgress('verify', stream);
      bar.update(5, 10);
      bar.finish(10);
      bar.stop();
      expect(stream.text).to.equal('');
    });

    it('starts at the first report with a total and keeps that total: a later total is ignored, done is held within it', function () {
      const stream = new FakeTerminal();
      const bar = byteProgress('download', stream);
      bar.update(0, 0); // total not known yet: nothing drawn
      expect(stream.text).to.equal('');
      bar.update(0, 100 * 1024);
      bar.update(50 * 1024, 300 * 1024);
      bar.update(400 * 1024, 300 * 1024);
      bar.stop();
      const frames = progressFrames(stream.text, 'download');
      expect(frames.length).to.be.greaterThan(0);
      expect(new Set(frames.map(frameTotal))).to.deep.equal(new Set(['100.0 KiB']));
      expect(frames.at(-1)).to.match(/\] 100% 100\.0 KiB of 100\.0 KiB/);
      for (const frame of frames) expect(frame).to.not.match(BrokenFigure);
    });

    it('finish() draws the bar full at its own total, or at the given size when nothing had started it', function () {
      const started = new FakeTerminal();
      const a = byteProgress('restore', started);
      a.update(1 * MiB, 8 * MiB);
      a.finish(3 * MiB);
      a.stop();
      expect(progressFrames(started.text, 'restore').at(-1)).to.match(/\] 100% 8\.0 MiB of 8\.0 MiB \|/);
      const unstarted = new FakeTerminal();
      const b = byteProgress('restore', unstarted);
      b.finish(3 * MiB);
      b.stop();
      const frames = progressFrames(unstarted.text, 'restore');
      expect(frames.length).to.be.greaterThan(0);
      for (const frame of frames) expect(frame).to.match(/\] 100% 3\.0 MiB of 3\.0 MiB \| --\/s \| ETA 0s$/);
    });
  });

  describe('the restore bar (checkpoint restore against a scripted daemon)', function () {
    this.timeout(20_000);
    let dir: string;
    let server: http.Server;
    let client: ApiClient;
    /** What GET /api/admin/status reports as `restoring`, poll by poll; the restore's answer is held until all were served. */
    let reports: ({ id: number; doneBytes: number; totalBytes: number } | null)[];
    let polls: number;
    let heldAnswer: (() => void) | null;
    const fileSize = 3 * MiB; // the compressed checkpoint file, smaller than what the restore reads

    beforeEach(async function () {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-restore-bar-'));
      await fs.writeFile(path.join(dir, 'token'), 'scripted-token\n');
      polls = 0;
      heldAnswer = null;
      server = http.createServer((req, res) => {
        const send = (body: unknown): void => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        };
        if (req.method === 'GET' && req.url === '/api/admin/status') {
          const restoring = reports[Math.min(polls, reports.length - 1)] ?? null;
          polls++;
          send({ data: { checkpoints: { restoring } } });
          if (polls >= reports.length && heldAnswer !== null) heldAnswer();
          return;
        }
        if (req.method === 'POST' && req.url === '/api/collection/checkpoint/5') {
          const answer = (): void => {
            heldAnswer = null;
            send({ href: 'x', data: { id: 5, scope: 'collection', spaces: ['a'], trigger: 'manual', time: '', size: fileSize, sha256: '', seq: 3, description: '' }, restored: { scope: 'collection', spaces: ['a'], seq: 9 } });
          };
          if (polls >= reports.length) answer();
          else heldAnswer = answer;
          return;
        }
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      client = await ApiClient.open({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, tokenFile: path.join(dir, 'token') });
    });
    afterEach(async function () {
      await new Promise((resolve) => server.close(resolve));
      await fs.rm(dir, { recursive: true, force: true });
    });

    /** Run `checkpoint restore 5` with its bar on a fake terminal; returns the bar's frames and what it printed on stdout. */
    async function restore(): Promise<{ frames: string[]; stdout: string }> {
      const terminal = new FakeTerminal();
      let stdout = '';
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = (chunk: string | Uint8Array): boolean => {
        stdout += chunk.toString();
        return true;
      };
      try {
        await restoreCommand(client, '5', {}, terminal);
      } finally {
        process.stdout.write = write;
      }
      return { frames: progressFrames(terminal.text, 'restore'), stdout };
    }

    it('keeps the total the daemon reports from the first frame to the last, and fills it at the end (not the file size)', async function () {
      reports = [null, { id: 5, doneBytes: 0, totalBytes: 0 }, { id: 5, doneBytes: 2 * MiB, totalBytes: 10 * MiB }, { id: 5, doneBytes: 6 * MiB, totalBytes: 10 * MiB }];
      const { frames, stdout } = await restore();
      expect(stdout).to.equal('restored the whole collection (1 space) from checkpoint 5, journaled at seq 9\n');
      expect(polls).to.be.at.least(reports.length);
      expect(frames.length).to.be.at.least(2);
      expect(new Set(frames.map(frameTotal))).to.deep.equal(new Set(['10.0 MiB']));
      expect(frames[0]).to.match(/\] 20% 2\.0 MiB of 10\.0 MiB \| --\/s \| ETA --$/);
      expect(frames.at(-1)).to.match(/\] 100% 10\.0 MiB of 10\.0 MiB \|/);
      for (const frame of frames) expect(frame).to.not.match(BrokenFigure);
    });

    it('draws one full bar at the file size when the restore ended before any report showed it', async function () {
      reports = [null];
      const { frames } = await restore();
      expect(frames.length).to.be.greaterThan(0);
      for (const frame of frames) expect(frame).to.match(/\] 100% 3\.0 MiB of 3\.0 MiB \| --\/s \| ETA 0s$/);
    });
  });
});
