export { buildServer } from './server.js';
export { href, type ApiContext } from './context.js';
export { Metrics, type MetricsOptions } from './metrics.js';
export { TokenStore, Roles, type Role, type TokenEntry } from './token-store.js';
export { toProblem, ProblemContentType, type Problem } from './problem.js';
