/**
 * `npm run bench -- NAME`: runs one benchmark (or all with no name). Each
 * prints its figures beside a reference measured in the same run.
 */
import { autoBench } from './auto.js';
import { checkpointBench } from './checkpoint.js';
import { commitBench } from './commit.js';
import { failoverBench } from './failover.js';
import { scaleBench } from './scale.js';

const benches: Record<string, () => Promise<void>> = { commit: commitBench, checkpoint: checkpointBench, auto: autoBench, failover: failoverBench, scale: scaleBench };

const name = process.argv[2];
const chosen = name === undefined ? Object.keys(benches) : [name];
for (const n of chosen) {
  const bench = benches[n];
  if (bench === undefined) {
    console.error(`unknown benchmark ${n}; known: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  await bench();
}
