/** The reliability suites by name (`npm run soak -- NAME`); each lives in its own file here. */
import { corruptionSuite } from './corruption.js';
import { crashSuite } from './crash.js';
import { failover } from './failover.js';
import { fuzzSuite } from './fuzz.js';
import { load } from './load.js';
import { storage } from './storage.js';
import type { Suite } from './suite.js';

export const suites: Record<string, Suite> = {
  crash: crashSuite,
  corruption: corruptionSuite,
  failover,
  storage,
  fuzz: fuzzSuite,
  load,
};
