import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { promises as fs, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ConflictError } from '../../src/errors.js';
import {
  claimEpoch,
  epochFileName,
  highestEpoch,
  LeaseFormatError,
  LeaseHolder,
  LeaseWatcher,
  SharedLeaseState,
  parseEpochFileName,
  readEpochClaim,
  readLease,
  readLeaseSync,
  writeLeaseSync,
  type Lease,
  type LeaseHolderOptions,
  type LeaseWatcherOptions,
} from '../../src/failover/index.js';
import { MainThreadStallMs } from '../../src/config/index.js';
import { silentLogger } from '../../src/log/index.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { waitFor } from '../helpers/wait-for.js';

type LogLine = Record<string, unknown> & { level: string; message: string };

function linesWith(lines: LogLine[], level: string, message: string): LogLine[] {
  return lines.filter((l) => l.level === level && l.message.startsWith(message));
}

function lease(overrides: Partial<Lease> = {}): Lease {
  return { holder: 'node-a', url: 'http://127.0.0.1:8470/api', epoch: 3, counter: 1, time: new Date().toISOString(), released: false, ...overrides };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err as Error,
  );
}

describe('failover lease and epochs', function () {
  let root: string;
  let dir: string;
  let stoppers: Array<() => void>;
  /** Set while the failover folder is replaced by a regular file. */
  let brokenAway: string | null;

  beforeEach(async function () {
    root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-failover-')));
    dir = path.join(root, 'failover');
    await fs.mkdir(dir);
    stoppers = [];
    brokenAway = null;
  });

  afterEach(async function () {
    for (const stop of stoppers) stop();
    await restoreFolder();
    await fs.rm(root, { recursive: true, force: true, maxRetries: 5 });
  });

  /** Make every read and write in the failover folder fail for real: the folder becomes a regular file (ENOTDIR). */
  async function breakFolder(): Promise<void> {
    brokenAway = `${dir}.away`;
    await fs.rename(dir, brokenAway);
    await fs.writeFile(dir, 'not a folder\n');
  }

  async function restoreFolder(): Promise<void> {
    if (brokenAway === null) return;
    await fs.rm(dir, { force: true });
    await fs.rename(brokenAway, dir);
    brokenAway = null;
  }

  function holder(overrides: Partial<LeaseHolderOptions> = {}): { holder: LeaseHolder; lost: string[] } {
    const h = new LeaseHolder({
      dir,
      node: 'node-a',
      url: 'http://127.0.0.1:8470/api',
      epoch: 3,
      renewMs: 10,
      ttlMs: 5000,
      safetyMarginMs: 1000,
      logger: silentLogger(),
      ...overrides,
    });
    const lost: string[] = [];
    h.onLost((reason) => lost.push(reason));
    stoppers.push(() => h.stop());
    return { holder: h, lost };
  }

  function watcher(overrides: Partial<LeaseWatcherOptions> = {}): LeaseWatcher {
    const w = new LeaseWatcher({ dir, pollMs: 5, logger: silentLogger(), ...overrides });
    stoppers.push(() => w.stop());
    return w;
  }

  describe('lease.json', function () {
    it('writes a lease that reads back field for field, leaving no temp file', async function () {
      const written = lease({ counter: 7, released: true });
      writeLeaseSync(dir, written);
      writeLeaseSync(dir, { ...written, counter: 8 });
      expect(await readLease(dir)).to.deep.equal({ ...written, counter: 8 });
      expect(await fs.readdir(dir)).to.deep.equal(['lease.json']);
    });

    it('reads a missing lease as null', async function () {
      expect(await readLease(dir)).to.equal(null);
    });

    it('refuses a lease.json that is not JSON, or not a lease, with an error naming the file', async function () {
      const file = path.join(dir, 'lease.json');
      await fs.writeFile(file, '{"holder": "node-a", "epo');
      const notJson = await rejection(readLease(dir));
      expect(notJson).to.be.instanceOf(LeaseFormatError);
      expect(notJson.message).to.include(file).and.include('not valid JSON');

      await fs.writeFile(file, JSON.stringify({ ...lease(), epoch: 'seven' }));
      const wrongShape = await rejection(readLease(dir));
      expect(wrongShape).to.be.instanceOf(LeaseFormatError);
      expect(wrongShape.message).to.include(file).and.include('"epoch"');
    });

    it('removes its temp file when the rename fails', async function () {
      await fs.mkdir(path.join(dir, 'lease.json', 'blocker'), { recursive: true });
      await rejection((async () => writeLeaseSync(dir, lease()))());
      expect(await fs.readdir(dir)).to.deep.equal(['lease.json']);
    });
  });

  describe('LeaseHolder', function () {
    it('takes the lease and raises the counter on every renewal', async function () {
      const { holder: h } = holder();
      await h.start();
      // Renewals run every 10 ms on their own thread: by the time this reads, one may have happened.
      const first = (await readLease(dir))!;
      expect(first).to.include({ holder: 'node-a', url: 'http://127.0.0.1:8470/api', epoch: 3, released: false });
      expect(first.counter).to.be.at.least(1);
      const seen: number[] = [];
      await waitFor(
        async () => {
          const counter = (await readLease(dir))!.counter;
          if (seen.at(-1) !== counter) seen.push(counter);
          return seen.length >= 4;
        },
        { what: 'four renewals', timeoutMs: 5000, intervalMs: 2 },
      );
      expect(seen).to.deep.equal([...seen].sort((a, b) => a - b));
      expect(new Set(seen).size).to.equal(seen.length);
      // The holder counts a renewal once the folder fsync after the rename is done.
      await waitFor(() => h.counter >= seen.at(-1)!, { what: 'the holder to count the last renewal', timeoutMs: 5000 });
      expect(h.valid()).to.equal(true);
    });

    it('continues the counter of its own epoch and starts at 1 for a newer epoch', async function () {
      writeLeaseSync(dir, lease({ epoch: 3, counter: 41 }));
      const same = holder({ renewMs: 60_000, ttlMs: 200_000 }).holder;
      await same.start();
      same.stop();
      expect((await readLease(dir))!.counter).to.equal(42);

      const newer = holder({ epoch: 4, renewMs: 60_000, ttlMs: 200_000 }).holder;
      await newer.start();
      newer.stop();
      expect(await readLease(dir)).to.include({ epoch: 4, counter: 1 });
    });

    it('refuses to start over a newer epoch in the lease or in a claim file (ConflictError naming it)', async function () {
      writeLeaseSync(dir, lease({ holder: 'node-b', epoch: 5, counter: 9 }));
      const error = await rejection(holder({ epoch: 4 }).holder.start());
      expect(error).to.be.instanceOf(ConflictError);
      expect(error.message).to.include('epoch 5').and.include('node-b');
      expect(await readLease(dir)).to.include({ holder: 'node-b', epoch: 5, counter: 9 });

      await claimEpoch(dir, { epoch: 6, node: 'node-c', sealedSeq: 0, time: new Date().toISOString() });
      const claimed = await rejection(holder({ epoch: 5, node: 'node-b' }).holder.start());
      expect(claimed).to.be.instanceOf(ConflictError);
      expect(claimed.message).to.include(epochFileName(6)).and.include('epoch 6');
      expect(await readLease(dir)).to.include({ holder: 'node-b', epoch: 5, counter: 9 });
    });

    it('rewrites a corrupt lease.json when it starts', async function () {
      await fs.writeFile(path.join(dir, 'lease.json'), 'garbage');
      const { holder: h } = holder({ renewMs: 60_000, ttlMs: 200_000 });
      await h.start();
      expect(await readLease(dir)).to.include({ holder: 'node-a', epoch: 3, counter: 1 });
    });

    it('is valid after it starts, and a lease\'s age runs from the start of the last successful write on the monotonic clock', async function () {
      const { holder: h } = holder({ renewMs: 60_000, ttlMs: 200_000, safetyMarginMs: 50_000 });
      expect(h.valid()).to.equal(false);
      expect(h.renewedAgoMs()).to.equal(null);
      await h.start();
      expect(h.valid()).to.equal(true);
      expect(h.renewedAgoMs()).to.be.within(0, 50_000);

      const shared = SharedLeaseState.create();
      const start = 5_000_000_000n; // ns
      const wall = Date.parse('2026-12-06T12:00:00Z');
      expect(shared.ageMs({ ns: start, wallMs: wall })).to.equal(null);
      shared.recordRenewal(start, wall, 1);
      expect(shared.ageMs({ ns: start + 149_999_000_000n, wallMs: wall + 149_999 })).to.equal(149_999);
      expect(shared.ageMs({ ns: start + 150_000_000_000n, wallMs: wall + 150_000 })).to.equal(150_000);
    });

    it('counts a host suspend: the monotonic clock stood still, the wall clock went on', function () {
      const shared = SharedLeaseState.create();
      const start = 5_000_000_000n;
      const wall = Date.parse('2026-12-06T12:00:00Z');
      shared.recordRenewal(start, wall, 1);
      // performance.now() / CLOCK_MONOTONIC did not move while the host slept for 150 s.
      expect(shared.ageMs({ ns: start + 1_000_000n, wallMs: wall + 150_000 })).to.equal(150_000);
      // A wall clock stepped back never makes a lease look younger than the monotonic clock says.
      expect(shared.ageMs({ ns: start + 2_000_000_000n, wallMs: wall - 60_000 })).to.equal(2000);
    });

    it('refuses timings where a renewal does not fit in ttlMs - safetyMarginMs', function () {
      expect(() => holder({ renewMs: 500, ttlMs: 1000, safetyMarginMs: 500 })).to.throw(RangeError, /renewMs/);
      expect(() => holder({ renewMs: 100, ttlMs: 1000, safetyMarginMs: 1000 })).to.throw(RangeError);
    });

    it('reports the lease lost once, at the moment renewals have failed for ttlMs - safetyMarginMs', async function () {
      // Renewals at 350 ms and 700 ms; validity ends at 500 ms, between them: only a timer sees it then.
      const { logger, lines } = captureLogger();
      const started = performance.now();
      const { holder: h, lost } = holder({ renewMs: 350, ttlMs: 600, safetyMarginMs: 100, logger });
      // Which renewals had failed when the loss was reported: the one at 350 ms only, so a timer, not the renewal at 700 ms, saw it.
      const failuresAtLoss: number[] = [];
      h.onLost(() => failuresAtLoss.push(h.failedRenewals));
      await h.start();
      await breakFolder();
      await waitFor(() => lost.length > 0, { what: 'the lease to be lost', timeoutMs: 5000, intervalMs: 2 });
      const lostAfter = performance.now() - started;
      expect(h.valid()).to.equal(false);
      expect(lostAfter, 'never before validity ends').to.be.at.least(500);
      expect(failuresAtLoss).to.deep.equal([1]);
      expect(lost).to.have.length(1);
      expect(lost[0]).to.match(/^lease renewal failed for \d+ms/);
      expect(Number(/for (\d+)ms/.exec(lost[0]!)![1])).to.be.at.least(500);
      expect(linesWith(lines, 'warn', 'lease renewal failed')).to.have.length(1);

      // The lease never comes back by itself, even once the folder works again.
      await restoreFolder();
      await delay(Math.max(0, started + 850 - performance.now()));
      expect(lost).to.have.length(1);
      expect(h.valid()).to.equal(false);
      expect((await readLease(dir))!.counter).to.equal(1);
    });

    it('logs a failure streak once and its recovery once, then renews again', async function () {
      const { logger, lines } = captureLogger();
      const { holder: h, lost } = holder({ logger });
      await h.start();
      await breakFolder();
      await waitFor(() => h.failedRenewals >= 3, { what: 'three failed renewals', timeoutMs: 5000, intervalMs: 2 });
      const warned = linesWith(lines, 'warn', 'lease renewal failed');
      expect(warned).to.have.length(1);
      expect(String(warned[0]!.error)).to.match(/ENOTDIR|ENOENT/);
      expect(h.valid()).to.equal(true);

      await restoreFolder();
      await waitFor(() => linesWith(lines, 'info', 'lease renewal recovered').length === 1, { what: 'the recovery log line', timeoutMs: 5000 });
      expect(h.failedRenewals).to.equal(0);
      const recoveredAt = h.counter;
      await waitFor(async () => (await readLease(dir))!.counter > recoveredAt, { what: 'a renewal after the recovery', timeoutMs: 5000 });
      expect(linesWith(lines, 'warn', 'lease renewal failed')).to.have.length(1);

      await breakFolder();
      await waitFor(() => linesWith(lines, 'warn', 'lease renewal failed').length === 2, { what: 'the second streak logged', timeoutMs: 5000 });
      await restoreFolder();
      await waitFor(() => linesWith(lines, 'info', 'lease renewal recovered').length === 2, { what: 'the second recovery', timeoutMs: 5000 });
      expect(lost).to.deep.equal([]);
      expect(h.valid()).to.equal(true);
    });

    /** Renew `theirs` as another primary would (a renewal of ours may overwrite one write) until `done`. */
    async function renewAsAnotherNode(theirs: Lease, done: () => boolean): Promise<Lease> {
      let last = theirs;
      await waitFor(
        async () => {
          if (done()) return true;
          last = { ...last, counter: last.counter + 1 };
          writeLeaseSync(dir, last);
          return false;
        },
        { what: 'the lease to be lost', timeoutMs: 5000, intervalMs: 5 },
      );
      return last;
    }

    it('reports the lease lost, naming the epoch, when another node writes a higher epoch, and stops renewing', async function () {
      const { holder: h, lost } = holder();
      await h.start();
      const theirs = await renewAsAnotherNode(lease({ holder: 'node-b', url: 'http://10.0.0.2:8470/api', epoch: 8 }), () => lost.length > 0);
      expect(h.valid()).to.equal(false);
      expect(lost[0]).to.include('epoch 8').and.include('node-b');
      await delay(100); // ten renewal periods: none may write over the newer lease
      expect(lost).to.have.length(1);
      expect(await readLease(dir)).to.deep.equal(theirs);
    });

    it('reports the lease lost when another node holds it at the same epoch', async function () {
      const { holder: h, lost } = holder();
      await h.start();
      await renewAsAnotherNode(lease({ holder: 'node-b', epoch: 3 }), () => lost.length > 0);
      expect(lost[0]).to.include('node-b').and.include('epoch 3');
    });

    it('reports the lease lost as soon as a higher epoch is claimed, before the new primary writes the lease', async function () {
      const { holder: h, lost } = holder();
      await h.start();
      await claimEpoch(dir, { epoch: 4, node: 'node-b', sealedSeq: 10, time: new Date().toISOString() });
      await waitFor(() => lost.length > 0, { what: 'the lease to be lost', timeoutMs: 5000, intervalMs: 2 });
      expect(h.valid()).to.equal(false);
      expect(lost).to.have.length(1);
      expect(lost[0]).to.include(epochFileName(4)).and.include('epoch 4');
      const ours = await readLease(dir);
      await delay(100);
      expect(await readLease(dir)).to.deep.equal(ours);
    });

    it('keeps renewing on its own thread while the main thread is blocked for longer than the lease is valid', async function () {
      const { holder: h, lost } = holder({ renewMs: 50, ttlMs: 600, safetyMarginMs: 100 });
      const renewals: number[] = [];
      h.onRenewed((r) => renewals.push(r.intervalMs));
      await h.start();
      const before = readLeaseSync(dir)!.counter;
      // Synchronous work on the main thread for 1.2 s: no timer, promise or I/O callback of this thread runs meanwhile.
      const until = performance.now() + 1200;
      while (performance.now() < until) {
        /* busy */
      }
      const during = readLeaseSync(dir)!.counter - before;
      expect(during, 'renewals written while the main thread was blocked').to.be.at.least(10);
      expect(h.valid(), 'valid right after the block: the last renewal is recent').to.equal(true);
      await waitFor(() => renewals.length >= during, { what: 'the renewal reports to arrive', timeoutMs: 5000 });
      expect(Math.max(...renewals), 'no renewal interval near the validity of 500 ms').to.be.below(250);
      expect(lost).to.deep.equal([]);
    });

    it('keeps renewing while every thread of libuv\'s pool is blocked in a file call', async function () {
      // Opening a FIFO for reading blocks until a writer comes: each open holds one pool thread.
      const fifos = Array.from({ length: 8 }, (_, i) => path.join(root, `fifo-${i}`));
      for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
      const { holder: h, lost } = holder({ renewMs: 50, ttlMs: 600, safetyMarginMs: 100 });
      await h.start();
      const blocked = fifos.map((fifo) => fs.readFile(fifo));
      try {
        // The pool is taken: a file call of this thread now waits behind the FIFO opens.
        const probe = fs.stat(dir).then(() => 'answered');
        const first = await Promise.race([probe, delay(300).then(() => 'waiting')]);
        expect(first, 'a pool-based file call waits while the pool is blocked').to.equal('waiting');
        const before = readLeaseSync(dir)!.counter;
        await delay(1000);
        expect(readLeaseSync(dir)!.counter - before, 'renewals written while the pool was blocked').to.be.at.least(8);
        expect(h.valid()).to.equal(true);
        expect(lost).to.deep.equal([]);
      } finally {
        for (const fifo of fifos) writeFileSync(fifo, 'x'); // a writer each: the opens return and the pool is free again
        await Promise.allSettled(blocked);
      }
    });

    it('stops renewing once the main thread has not run for mainThreadStallMs (30 s by default), so a wedged process lets a secondary take over', async function () {
      expect(MainThreadStallMs).to.equal(30_000);
      const { holder: h, lost } = holder({ renewMs: 50, ttlMs: 5000, safetyMarginMs: 1000, mainThreadStallMs: 300 });
      await h.start();
      const until = performance.now() + 800;
      while (performance.now() < until) {
        /* wedged */
      }
      const counter = readLeaseSync(dir)!.counter;
      expect(h.valid(), 'the renewal thread gave the lease up while the main thread was wedged').to.equal(false);
      await waitFor(() => lost.length === 1, { what: 'the loss to be reported', timeoutMs: 5000 });
      expect(lost[0]).to.match(/^the main thread has not run for \d+ms \(more than 300ms\)/);
      await delay(300);
      expect(readLeaseSync(dir)!.counter, 'no renewal after that').to.equal(counter);
    });

    it('writes released: true on release() and stops renewing', async function () {
      const { holder: h, lost } = holder();
      await h.start();
      await waitFor(() => h.counter >= 2, { what: 'a renewal', timeoutMs: 5000 });
      await h.release();
      const released = (await readLease(dir))!;
      expect(released).to.include({ holder: 'node-a', epoch: 3, released: true });
      expect(released.counter).to.be.greaterThan(1);
      expect(h.valid()).to.equal(false);
      await delay(100);
      expect(await readLease(dir)).to.deep.equal(released);
      expect(lost).to.deep.equal([]);
    });

    it('leaves a newer holder\'s lease alone on release()', async function () {
      const { holder: h } = holder({ renewMs: 60_000, ttlMs: 200_000 });
      await h.start();
      const theirs = lease({ holder: 'node-b', epoch: 4, counter: 2 });
      writeLeaseSync(dir, theirs);
      await h.release();
      expect(await readLease(dir)).to.deep.equal(theirs);
    });
  });

  describe('LeaseWatcher', function () {
    it('counts how long the lease stays unchanged and starts again when the counter changes', async function () {
      let now = 1000;
      writeLeaseSync(dir, lease({ counter: 1 }));
      const w = watcher({ now: () => now });
      await w.start();
      expect(w.current()).to.include({ holder: 'node-a', counter: 1 });
      expect(w.unchangedForMs()).to.equal(0);
      now = 1600;
      await delay(30); // several polls of the same content
      expect(w.unchangedForMs()).to.equal(600);

      writeLeaseSync(dir, lease({ counter: 2 }));
      await waitFor(() => w.current()?.counter === 2, { what: 'the watcher to see counter 2', timeoutMs: 5000 });
      expect(w.unchangedForMs()).to.equal(0);
      now = 1850;
      await waitFor(() => w.unchangedForMs() === 250, { what: 'a read at the new time' });
    });

    it('counts only time it has seen: without a read (a paused process) the lease does not grow older', async function () {
      let now = 1000;
      writeLeaseSync(dir, lease({ counter: 1 }));
      const w = watcher({ now: () => now });
      await w.start();
      now = 1300;
      await waitFor(() => w.unchangedForMs() === 300, { what: 'a read at the new time' });
      w.stop(); // no more reads, as in a process stopped with SIGSTOP
      now = 60_000;
      expect(w.unchangedForMs(), 'no read, no age').to.equal(300);
    });

    it('counts from start() when there is no lease yet', async function () {
      let now = 0;
      const w = watcher({ now: () => now });
      await w.start();
      expect(w.current()).to.equal(null);
      now = 400;
      await delay(30);
      expect(w.unchangedForMs()).to.equal(400);
      expect(w.released()).to.equal(false);
    });

    it('does not count a corrupt or unreadable lease as a change, and logs it once', async function () {
      let now = 0;
      const { logger, lines } = captureLogger();
      const first = lease({ counter: 5 });
      writeLeaseSync(dir, first);
      const w = watcher({ now: () => now, logger });
      await w.start();
      now = 500;
      // Replaced atomically, like every writer of lease.json does: a half-written file is not the subject here.
      await fs.writeFile(path.join(dir, 'scratch'), 'not json');
      await fs.rename(path.join(dir, 'scratch'), path.join(dir, 'lease.json'));
      await waitFor(() => linesWith(lines, 'warn', 'lease file unreadable').length > 0, { what: 'the read error to be logged', timeoutMs: 5000 });
      // Then an OS error instead of bad content: a symlink to itself (ELOOP).
      await fs.symlink('lease.json', path.join(dir, 'scratch'));
      await fs.rename(path.join(dir, 'scratch'), path.join(dir, 'lease.json'));
      // Time it could not read does not count: a failing poll sets the unchanged time back (polls every 5 ms).
      await waitFor(() => w.unchangedForMs() === 0, { what: 'a failing poll to set the unchanged time back', timeoutMs: 5000, intervalMs: 2 });
      await delay(30); // several more failing polls
      expect(linesWith(lines, 'warn', 'lease file unreadable')).to.have.length(1);
      expect(w.unchangedForMs(), 'time it could not read does not count').to.equal(0);
      expect(w.current()).to.deep.equal(first);

      now = 900;
      writeLeaseSync(dir, first); // the same content again: still no change
      await waitFor(() => linesWith(lines, 'info', 'lease file readable again').length > 0, { what: 'the recovery to be logged', timeoutMs: 5000 });
      expect(w.unchangedForMs()).to.equal(900);

      writeLeaseSync(dir, { ...first, counter: 6 });
      await waitFor(() => w.current()?.counter === 6, { what: 'the watcher to see counter 6', timeoutMs: 5000 });
      expect(w.unchangedForMs()).to.equal(0);
    });

    it('sees a released lease', async function () {
      let now = 0;
      const { holder: h } = holder();
      await h.start();
      const w = watcher({ now: () => now });
      await w.start();
      expect(w.released()).to.equal(false);
      now = 300;
      await h.release();
      await waitFor(() => w.released(), { what: 'the watcher to see the release', timeoutMs: 5000 });
      expect(w.current()).to.include({ holder: 'node-a', released: true });
      expect(w.unchangedForMs()).to.equal(0);
    });
  });

  describe('epoch claims', function () {
    it('names epoch files with 9 digits and parses back only canonical names', function () {
      expect(epochFileName(7)).to.equal('epoch-000000007');
      expect(parseEpochFileName('epoch-000000007')).to.equal(7);
      expect(parseEpochFileName(epochFileName(1_234_567_890))).to.equal(1_234_567_890);
      for (const name of ['epoch-1', 'epoch-0000000007', 'epoch-000000000', 'epoch-00000001x', 'epoch-000000007.tmp', 'Epoch-000000007']) {
        expect(parseEpochFileName(name), name).to.equal(null);
      }
      expect(() => epochFileName(0)).to.throw(RangeError);
      expect(() => epochFileName(1.5)).to.throw(RangeError);
    });

    it('lets exactly one of 20 concurrent claims of one epoch win', async function () {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => claimEpoch(dir, { epoch: 4, node: `node-${i}`, sealedSeq: 100 + i, time: new Date().toISOString() })),
      );
      expect(results.filter(Boolean)).to.have.length(1);
      const winner = results.indexOf(true);
      expect(await readEpochClaim(dir, 4)).to.include({ epoch: 4, node: `node-${winner}`, sealedSeq: 100 + winner });
      expect(await fs.readdir(dir)).to.deep.equal([epochFileName(4)]);
    });

    it('finds the highest epoch and ignores foreign names', async function () {
      expect(await highestEpoch(path.join(root, 'missing'))).to.equal(0);
      expect(await highestEpoch(dir)).to.equal(0);
      for (const epoch of [3, 12]) {
        expect(await claimEpoch(dir, { epoch, node: 'node-a', sealedSeq: 0, time: new Date().toISOString() })).to.equal(true);
      }
      for (const name of ['epoch-1', 'epoch-00000001x', 'notes.txt', 'epoch-0000000099', 'epoch-000000050.tmp', 'lease.json']) {
        await fs.writeFile(path.join(dir, name), '');
      }
      expect(await highestEpoch(dir)).to.equal(12);
    });

    it('reads an empty or unparsable claim file as null, and still counts it as claimed', async function () {
      await fs.writeFile(path.join(dir, epochFileName(4)), '');
      await fs.writeFile(path.join(dir, epochFileName(5)), '{"epoch": 5, "no');
      expect(await readEpochClaim(dir, 4)).to.equal(null);
      expect(await readEpochClaim(dir, 5)).to.equal(null);
      expect(await readEpochClaim(dir, 6)).to.equal(null);
      expect(await claimEpoch(dir, { epoch: 4, node: 'node-a', sealedSeq: 0, time: new Date().toISOString() })).to.equal(false);
      expect(await highestEpoch(dir)).to.equal(5);
    });
  });
});
