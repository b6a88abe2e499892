/**
 * `npm run bench -- NAME`: runs one benchmark (or, with no name, all but those
 * that run only when named). Each prints its figures beside a reference
 * measured in the same run.
 */
import { autoBench } from './auto.js';
import { checkpointBench } from './checkpoint.js';
import { commitBench } from './commit.js';
import { enginesBench } from './engines.js';
import { failoverBench } from './failover.js';
import { layoutBench } from './layout.js';
import { scaleBench } from './scale.js';

const benches: Record<string, () => Promise<void>> = { commit: commitBench, checkpoint: checkpointBench, auto: autoBench, failover: failoverBench, scale: scaleBench, engines: enginesBench, layout: layoutBench };
/** Not part of a run of all: engines installs two storage engines (compiling one) outside the repository, for a comparison, not a figure of ours. */
const onlyWhenNamed = new Set(['engines']);

const name = process.argv[2];
const chosen = name === undefined ? Object.keys(benches).filter((n) => !onlyWhenNamed.has(n)) : [name];
for (const n of chosen) {
  const bench = benches[n];
  if (bench === undefined) {
    console.error(`unknown benchmark ${n}; known: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  await bench();
}
