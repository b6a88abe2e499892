export { fsyncDir, readIfExists, removeTempFiles, setTempOwner, tempPathFor, TempPrefix, writeFileAtomic } from './atomic-file.js';
export { installationId, InstallationFile } from './installation.js';
export { PidLock } from './pid-lock.js';
export { removeLargeFile } from './remove-large-file.js';
export { VaultPaths } from './vault-paths.js';
