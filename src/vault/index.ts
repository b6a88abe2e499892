export { fsyncDir, readIfExists, removeTempFiles, setTempOwner, StaleTempMs, tempPathFor, TempPrefix, writeFileAtomic } from './atomic-file.js';
export { installationId, InstallationFile } from './installation.js';
export { PidLock } from './pid-lock.js';
export { removeLargeFile, ShrinkStepBytes } from './remove-large-file.js';
export { VaultPaths } from './vault-paths.js';
