/**
 * The crash suite's few-trial run in `npm test` (the same code as
 * `npm run soak -- crash`): SIGKILL while checkpoints are written, restart,
 * and check listed checkpoints, leftovers and acknowledged writes, at one
 * fixed seed; test/e2e/reliability-extended.test.ts adds a random seed
 * (printed; SOAK_SEED replays it).
 */
import { expect } from 'chai';
import { runCrash } from '../soak/crash.js';
import type { SuiteReport } from '../soak/suite.js';

describe('reliability: crash during checkpoint (real daemon, SIGKILL)', function () {
  this.timeout(90_000);

  it('keeps every listed checkpoint whole, removes leftovers and serves every acknowledged write, whatever the kill moment', async function () {
    const log = (line: string): void => console.log(`      [crash] ${line}`);
    const reports: SuiteReport[] = [];
    // Kills inside the checkpoint (at most 0.8 of its mean duration), so the few trials hit the window.
    reports.push(await runCrash({ trials: 2, seed: 20261124, bulkObjects: 600, maxKillFraction: 0.8, log }));
    for (const r of reports) {
      log(r.summary);
      expect(r.violations).to.deep.equal([]);
    }
    const total = (name: string): number => reports.reduce((n, r) => n + (r.figures[name] ?? 0), 0);
    expect(total('kills')).to.equal(2);
    expect(total('killsInWindow'), 'kills that landed while a checkpoint temp file existed').to.be.at.least(1);
    expect(total('leftoversRemoved')).to.be.at.least(1);
    expect(total('checkpointsVerified')).to.be.at.least(2);
  });
});
