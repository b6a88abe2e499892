export { fsyncDir, removeTempFiles, tempPathFor, TempPrefix, writeFileAtomic } from './atomic-file.js';
export { PidLock } from './pid-lock.js';
export { VaultPaths } from './vault-paths.js';
