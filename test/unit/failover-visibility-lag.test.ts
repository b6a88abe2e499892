/**
 * The vault's visibility lag as a secondary measures it (src/failover/visibility-lag.ts),
 * on an injected clock: beats announce lease counters and seqs, reads show them later.
 */
import { expect } from 'chai';
import { MinSamples, VisibilityLag } from '../../src/failover/index.js';

describe('VisibilityLag', function () {
  let now = 0;
  const lag = (forgetMs = 60_000): VisibilityLag => new VisibilityLag(VisibilityLag.boundFor({ leaseTtlMs: 5000, renewMs: 1000, safetyMarginMs: 1000 }), forgetMs, () => now);
  beforeEach(() => {
    now = 1000;
  });

  it('derives the bound from the lease timings: (leaseTtlMs - renewMs - safetyMarginMs) / 2', function () {
    expect(lag().boundMs).to.equal(1500);
    expect(VisibilityLag.boundFor({ leaseTtlMs: 1000, renewMs: 200, safetyMarginMs: 300 })).to.equal(250);
  });

  it('is unknown before any beat, and about 0 on a vault that shows each renewal before the beat arrives', function () {
    const l = lag();
    expect(l.leaseLagMs()).to.equal(null);
    expect(l.measured).to.equal(false);
    for (let counter = 1; counter <= MinSamples; counter++) {
      expect(l.measured, `measured after ${counter - 1} samples`).to.equal(false);
      l.leaseRead(1, counter, now); // the poll read the renewal first
      now += 10;
      l.beat(1, counter, 10 * counter);
      l.leaseRead(1, counter, now - 10);
      now += 990;
    }
    expect(l.measured).to.equal(true);
    expect(l.leaseLagMs()).to.equal(0);
    expect(l.tooHigh()).to.equal(false);
  });

  it('grows while a cache hides the renewals (the oldest unseen beat\'s age), and stays high by the median once they show all at once', function () {
    const l = lag();
    l.beat(1, 1, 1);
    l.leaseRead(1, 1, now);
    for (let counter = 2; counter <= 31; counter++) {
      now += 1000;
      l.beat(1, counter, counter);
      l.leaseRead(1, 1, 1000); // the cached file still shows counter 1
    }
    expect(l.leaseLagMs()).to.equal(29_000);
    expect(l.tooHigh()).to.equal(true);
    now += 1000;
    l.leaseRead(1, 31, now); // the cache expires: every beat's counter shows at once
    expect(l.leaseLagMs(), 'median of the last samples').to.be.greaterThan(1500);
    expect(l.tooHigh()).to.equal(true);
  });

  it('does not time an outage of lease reads as lag: beats that arrived before a failed read are dropped untimed', function () {
    const l = lag();
    l.beat(1, 1, 1);
    l.leaseRead(1, 1, now);
    // Reads fail for 3 s while beats 2..4 arrive; then the primary dies and a read shows counter 4.
    for (let counter = 2; counter <= 4; counter++) {
      now += 1000;
      l.beat(1, counter, counter);
    }
    l.leaseReadFailed(now);
    now += 1000;
    l.leaseRead(1, 4, now);
    expect(l.leaseLagMs()).to.equal(0);
    expect(l.tooHigh()).to.equal(false);
  });

  it('forgets a lag above the bound after forgetMs without news (a dead primary sends none), and keeps one under it', function () {
    const l = lag(20_000);
    for (let counter = 1; counter <= 3; counter++) {
      l.beat(1, counter, counter);
      now += 2000;
      l.leaseRead(1, counter, now);
    }
    expect(l.tooHigh()).to.equal(true);
    now += 20_001;
    expect(l.leaseLagMs()).to.equal(null);
    expect(l.measured).to.equal(false);
    expect(l.tooHigh()).to.equal(false);

    const good = lag(20_000);
    for (let counter = 1; counter <= MinSamples; counter++) {
      good.beat(1, counter, counter);
      now += 50;
      good.leaseRead(1, counter, now);
    }
    now += 60_000;
    expect(good.leaseLagMs(), 'a good lag is what the standby last knew').to.equal(50);
    expect(good.measured).to.equal(true);
  });

  it('times every counter a cached read skipped: the newest few of a batch, or a few fresh reads, do not outvote a cache that hides most renewals', function () {
    const l = lag();
    // Cycles of a 30 s cache over renewals every 100 ms: the read after it expires is fresh for a
    // moment (two beats of the counter it shows give samples of 0), then it hides the next 300
    // renewals and shows the last at once. The newest of those waited 100 ms, 200 ms, …
    let counter = 0;
    for (let cycle = 0; cycle < 3; cycle++) {
      counter++;
      l.beat(1, counter, counter);
      l.leaseRead(1, counter, now);
      now += 50;
      l.beat(1, counter, counter);
      l.leaseRead(1, counter, now);
      const shown = counter;
      const since = now;
      for (let i = 0; i < 300; i++) {
        now += 100;
        counter++;
        l.beat(1, counter, counter);
        l.leaseRead(1, shown, since);
      }
      now += 100;
      l.leaseRead(1, counter, now);
    }
    // Right after an expiry nothing is pending: the estimate is the samples' median alone.
    expect(l.leaseLagMs(), 'the median over every skipped counter').to.be.greaterThan(10_000);
    expect(l.tooHigh()).to.equal(true);
  });

  it('takes a beat whose counter the vault never showed within forgetMs as proof of a lag that long, above earlier good samples', function () {
    const l = lag(4000);
    // A standby's first reads are fresh (a cold cache): samples of 0, under the bound.
    for (let counter = 1; counter <= MinSamples; counter++) {
      l.beat(1, counter, counter);
      l.leaseRead(1, counter, now);
      now += 100;
    }
    expect(l.tooHigh()).to.equal(false);
    // Then the cache hides two renewals, and the primary dies (no more beats, no read shows them).
    l.beat(1, MinSamples + 1, 0);
    now += 200;
    l.beat(1, MinSamples + 2, 0);
    now += 3000;
    expect(l.tooHigh(), 'waiting beats').to.equal(true);
    now += 1001;
    expect(l.leaseLagMs(), 'the unseen beats are forgotten, and what they proved is kept').to.be.greaterThan(4000);
    expect(l.tooHigh()).to.equal(true);
    expect(l.measured, 'two lower bounds are not a measurement').to.equal(false);
    now += 4001;
    expect(l.leaseLagMs(), 'forgotten after forgetMs without news: unknown, and the mount decides').to.equal(null);
  });

  it('starts again when the epoch changes (a new primary), and times the journal apart', function () {
    const l = lag();
    l.beat(1, 5, 100);
    now += 4000;
    l.beat(2, 1, 120);
    expect(l.leaseLagMs(), 'the old epoch\'s unseen beat is dropped').to.equal(0);
    now += 300;
    l.journalApplied(2, 120);
    expect(l.journalLagMs()).to.equal(300);
  });
});
