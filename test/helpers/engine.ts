/** A storage engine in a folder of a test's temporary tree, for stores the tests open. */
import path from 'node:path';
import { silentLogger } from '../../src/log/index.js';
import { Engine } from '../../src/store/index.js';

let made = 0;

/** A new, empty engine in a new folder under `root` (8 MiB of cache). */
export function tempEngine(root: string): Engine {
  return Engine.open({ dir: path.join(root, `engine-${process.pid}-${++made}`), cacheBytes: 8 << 20, logger: silentLogger() });
}
