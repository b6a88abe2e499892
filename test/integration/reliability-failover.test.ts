/**
 * The failover soak (test/soak/failover.ts) at six trials: one of each fault
 * kind in a seeded order (SIGKILL, SIGSTOP, stalled-and-late FileVault writes,
 * restart as configured primary, a secondary's read errors, a secondary's slow
 * listings), under concurrent writes, checked for lost or fenced
 * acknowledgements, two nodes answering 200 on `/primary`, and nodes whose
 * final states differ. `npm run soak -- failover` runs the same code for 30
 * trials. The seed is printed; SOAK_SEED replays it.
 */
import { expect } from 'chai';
import { runFailover } from '../soak/failover.js';
import { VaultFaults } from '../helpers/vault-faults.js';

describe('reliability: failover soak (6 trials, one of each fault)', function () {
  this.timeout(120_000);

  it('fails over under every fault kind with no acknowledged write lost, none acknowledged by a fenced node, never two primaries, and every node holding the same acknowledged history', async () => {
    const shimMissing = await VaultFaults.available();
    const log = (line: string): void => console.log(`      [failover] ${line}`);
    const report = await runFailover({ trials: 6, log: (line) => (line.startsWith('seed') || line.startsWith('fault shim') ? log(line) : undefined) });
    log(report.summary);
    expect(report.violations, report.summary).to.deep.equal([]);
    const f = report.figures;
    expect(f.failovers, 'every trial made a failover').to.equal(6);
    expect(f.sigkills, 'a primary was killed').to.be.at.least(1);
    expect(f.sigstops, 'a primary was paused').to.be.at.least(1);
    expect(f.restarts, 'a primary was restarted as configured primary').to.be.at.least(1);
    expect((f.restartWaitedOut ?? 0) + (f.restartFollowedHolder ?? 0), 'the restarted primary did not claim at once').to.equal(f.restarts);
    if (shimMissing === null) {
      expect(f.stalls, 'a primary\'s FileVault writes stalled').to.be.at.least(1);
      expect(f.stalledCalls, 'write calls were actually held by the shim').to.be.above(0);
      // Whether the one stall trial holds a journal write (rather than a lease or checkpoint write) when the lease
      // lapses is up to timing, so its late bytes are counted and reported here, not required: a late journal write
      // after a promotion is forced and checked in test/e2e/failover-stalls.test.ts ("a stalled write of the old
      // primary that lands after the promotion is void"), and the soak's violations above cover it whenever it happens.
      log(`late journal writes in a superseded epoch's file: ${f.lateJournalWrites ?? 0} trial(s)`);
      expect(f.readErrors, 'a secondary\'s reads failed').to.be.at.least(1);
      expect(f.readsFailed, 'reads actually failed').to.be.above(0);
      expect(f.slowListings, 'a secondary listed slowly').to.be.at.least(1);
    } else {
      log(`storage faults not run: ${shimMissing}`);
    }
    expect(f.writesAcknowledged, 'writes were acknowledged').to.be.above(100);
    expect(f.writesRefused, 'writes sent to a node that is not the primary were refused').to.be.above(0);
    expect(f.nodesCompared, 'every node\'s final state was read, and a fresh node\'s from the FileVault').to.equal(4);
    expect(f.sampleRounds, '/primary was sampled throughout').to.be.above(20);
  });
});
