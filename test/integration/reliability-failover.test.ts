/**
 * The failover soak (test/soak/failover.ts) at three trials: two SIGKILLs and
 * one SIGSTOP of the primary under concurrent writes, checked for lost or
 * fenced acknowledgements and for two nodes answering 200 on `/primary`.
 * `npm run soak -- failover` runs the same code for 30 trials.
 */
import { expect } from 'chai';
import { failover } from '../soak/failover.js';

describe('reliability: failover soak (3 trials)', function () {
  this.timeout(90_000);

  it('fails over three times under writes with no acknowledged write lost, none acknowledged by a fenced node, and never two primaries', async () => {
    const report = await failover.run({ trials: 3, log: () => undefined });
    expect(report.violations, report.summary).to.deep.equal([]);
    const f = report.figures;
    expect(f.failovers, 'every trial made a failover').to.equal(3);
    expect(f.sigkills, 'a primary was killed').to.be.at.least(1);
    expect(f.sigstops, 'a primary was paused').to.be.at.least(1);
    expect(f.writesAcknowledged, 'writes were acknowledged').to.be.above(100);
    expect(f.writesRefused, 'writes sent to a node that is not the primary were refused').to.be.above(0);
    expect(f.sampleRounds, '/primary was sampled throughout').to.be.above(20);
  });
});
