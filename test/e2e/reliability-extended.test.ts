/**
 * The reliability suites' trials beyond the sampled ones in `npm test`, so
 * that `npm test` stays under 5 minutes on 2 cores: the corruption suite at
 * random offsets, the crash suite at a random seed, and the load suite's
 * trial of a primary alone. Random seeds are printed; SOAK_SEED replays one.
 * `npm run soak -- <suite>` runs each at full length (docs/RELIABILITY.md).
 */
import { expect } from 'chai';
import { runCorruption } from '../soak/corruption.js';
import { runCrash } from '../soak/crash.js';
import { runLoad } from '../soak/load.js';

describe('reliability, extended trials', function () {
  this.timeout(240_000);

  it('corruption: detects every damage at random offsets (random seed), and never serves a wrong value', async function () {
    const log = (line: string): void => console.log(`      [corruption] ${line}`);
    const r = await runCorruption({ trials: 2, standbyTrials: 0, log });
    log(r.summary);
    expect(r.violations).to.deep.equal([]);
    const { checkpointFaults = 0, journalFaults = 0, olderJournalFaults = 0 } = r.figures;
    expect(checkpointFaults + journalFaults + olderJournalFaults, 'files damaged').to.equal(2);
  });

  it('crash: keeps every listed checkpoint whole and every acknowledged write, killed at a random moment (random seed)', async function () {
    const log = (line: string): void => console.log(`      [crash] ${line}`);
    const r = await runCrash({ trials: 2, bulkObjects: 600, maxKillFraction: 0.8, log });
    log(r.summary);
    expect(r.violations).to.deep.equal([]);
    expect(r.figures.kills).to.equal(2);
    expect(r.figures.checkpointsVerified).to.be.at.least(2);
  });

  it('load: a primary alone takes every transaction and query, with no lease lost and renewals on time', async function () {
    const report = await runLoad({ trials: 1, objects: 150_000, checkpointEveryMs: 2000, readerPauseMs: 0, log: () => undefined });
    console.log(`      [load] ${report.summary}`);
    expect(report.violations, report.summary).to.deep.equal([]);
    expect(report.figures.objects).to.equal(150_000);
    expect(report.figures.renewals, 'the primary renewed its lease under the load').to.be.at.least(2);
    expect(report.figures.queries, 'large queries ran alongside the writes').to.be.at.least(1);
  });
});
