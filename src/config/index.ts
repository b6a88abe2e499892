/** Configuration: load and validate the daemon's settings. The only door into `src/config/`. */
export { loadConfig, parseCompression, DataEnv, PortEnv, VaultEnv, type CheckpointCompression, type Config } from './load-config.js';
export { parseSize } from './size.js';
export type { JournalSync, LogLevel, NodeRole } from './schema.js';
export * from './defaults.js';
