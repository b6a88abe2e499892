/** The reliability suites by name (`npm run soak -- NAME`); each lives in its own file here. */
import type { Suite } from './suite.js';

export const suites: Record<string, Suite> = {};
