/**
 * The hostile-input suite (test/soak/fuzz.ts) at 1,000 requests: the same code
 * as `npm run soak -- fuzz` (10,000). It must find nothing (no 5xx, hang, crash,
 * lost or changed data, restored crafted checkpoint, file outside the daemon's
 * folders), and its figures must show that each kind of hostile input was sent
 * and reached the daemon's checks. SOAK_SEED=N repeats a run.
 */
import { expect } from 'chai';
import { runFuzz } from '../soak/fuzz.js';

describe('reliability: hostile input (1,000 fuzzed requests on a real daemon)', function () {
  this.timeout(120_000);

  it('answers every request below 500 (but /standby), never hangs or exits, keeps every known and acknowledged object, restores no crafted checkpoint and writes nothing outside its folders', async function () {
    const lines: string[] = [];
    const report = await runFuzz({ trials: 1000, log: (line) => lines.push(line) });
    const context = `${report.summary}\n${lines.filter((l) => !l.startsWith('by route')).join('\n')}`;
    expect(report.violations, context).to.deep.equal([]);
    const f = report.figures;
    expect(f.requests, context).to.equal(1000);
    for (const zero of ['fiveXX', 'hangs', 'crashes', 'outsideFiles', 'craftedRestored']) expect(f[zero], `${zero}\n${context}`).to.equal(0);
    // Each kind of hostile input was sent...
    for (const sent of ['rawMalformed', 'wsUpgrades', 'traversalPaths', 'hugeBodies', 'hugeHeaders', 'deepJson', 'rangeRequests', 'authVariants', 'craftedPlaced', 'craftedRestoreAttempts', 'acknowledgedWrites']) {
      expect(f[sent], `${sent}\n${context}`).to.be.greaterThan(0);
    }
    // ...and reached the check meant for it: bad input, no or wrong token, wrong role, no such thing, too large, head too large.
    for (const status of ['400', '401', '403', '404', '413', '431']) expect(f[`status_${status}`], `status ${status}\n${context}`).to.be.greaterThan(0);
    expect(f.wsRefused, context).to.equal(f.wsUpgrades);
    // Every route answered a request below 400 (the last tenth of the run sends a well-formed one to each route nothing
    // reached yet), but the two that cannot on a lone primary: GET /standby (503) and a switchover with no standby (409).
    expect(f.routesCovered, context).to.equal(f.routesInTable! - 2);
  });
});
