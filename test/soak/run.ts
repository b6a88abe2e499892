/**
 * `npm run soak -- NAME [--trials N]`: the reliability suites at full length
 * (docs/RELIABILITY.md lists them and their latest figures). `npm test` runs each
 * suite's few-trial version from test/integration/reliability-*.test.ts with
 * the same code. Exit status 1 when a suite finds a violation.
 */
import { suites } from './suites.js';

const [name, ...rest] = process.argv.slice(2);
const trialsAt = rest.indexOf('--trials');
const trials = trialsAt === -1 ? undefined : Number(rest[trialsAt + 1]);
if (trials !== undefined && !(Number.isInteger(trials) && trials > 0)) {
  console.error('--trials must be a positive integer');
  process.exit(2);
}
const chosen = name === undefined ? Object.keys(suites) : [name];
let failed = false;
for (const n of chosen) {
  const suite = suites[n];
  if (suite === undefined) {
    console.error(`unknown soak suite ${n}; known: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  const started = performance.now();
  const report = await suite.run({ trials: trials ?? suite.soakTrials, log: (line) => console.log(`[${n}] ${line}`) });
  console.log(`[${n}] ${report.summary} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  if (report.violations.length > 0) {
    failed = true;
    for (const v of report.violations) console.log(`[${n}] VIOLATION: ${v}`);
  }
}
process.exitCode = failed ? 1 : 0;
