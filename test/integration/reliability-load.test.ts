/**
 * The load soak (test/soak/load.ts) at one short trial: a primary with a
 * standby, taking transactions of 1,000 puts (4 in flight), a reader asking
 * for a quarter of the collection again and again, and a checkpoint every
 * 2 s, with the product's lease timings. No request may be refused, the lease
 * never lost, the standby never promoted, every lease renewal must come within
 * 2.5 s of the one before — by the primary's histogram and by a poller of
 * lease.json outside the daemon — and every heartbeat within heartbeatTimeoutMs.
 * test/e2e/reliability-extended.test.ts adds the trial of a primary alone;
 * `npm run soak -- load` runs both at 3 million objects a trial.
 */
import { expect } from 'chai';
import { runLoad } from '../soak/load.js';

describe('reliability: load never fences a healthy primary (1 short trial, with a standby)', function () {
  this.timeout(240_000);

  it('takes every transaction and query under load with a standby following, with no lease lost, no promotion, renewals and heartbeats on time', async () => {
    const report = await runLoad({ trials: 1, standbyFirst: true, objects: 150_000, checkpointEveryMs: 2000, readerPauseMs: 0, log: () => undefined });
    console.log(`      [load] ${report.summary}`);
    expect(report.violations, report.summary).to.deep.equal([]);
    const f = report.figures;
    expect(f.trials).to.equal(1);
    expect(f.objects).to.equal(150_000);
    expect(f.renewals, 'the primary renewed its lease under the load').to.be.at.least(2);
    expect(f.queries, 'large queries ran alongside the writes').to.be.at.least(1);
    expect(f.checkpoints, 'checkpoints ran under the load').to.be.at.least(1);
    expect(f.heartbeats, 'the standby timed the heartbeats').to.be.at.least(4);
  });
});
