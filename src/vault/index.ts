export { currentTempOwner, fsyncDir, fsyncDirSync, readIfExists, removeTempFiles, setTempOwner, tempPathFor, TempPrefix, writeFileAtomic } from './atomic-file.js';
export { installationId, InstallationFile } from './installation.js';
export { checkVaultMount, findMount, parseMountInfo, type CommandLine, type MountInfo, type VaultMountCheckOptions, type VaultMountReport, type VaultMountVerdict } from './mount-check.js';
export { PidLock } from './pid-lock.js';
export { removeLargeFile } from './remove-large-file.js';
export { VaultPaths } from './vault-paths.js';
