/** Configuration: load and validate the daemon's settings. The only door into `src/config/`. */
export { loadConfig, parseCompression, DataEnv, PortEnv, VaultEnv, type CheckpointCompression, type CheckpointConfig, type Config, type FailoverConfig, type ApiTlsConfig } from './load-config.js';
export { chooseConfigFile, loadCommandConfig, ConfigEnv, type ConfigFileChoice } from './config-file.js';
export { readCertificateAuthorities, readServerCertificate, type ServerCertificate } from './tls-files.js';
export { parseSize } from './size.js';
export { parseDuration } from './duration.js';
export { CheckpointEvents, type CheckpointEvent, type JournalSync, type LogLevel, type NodeRole } from './schema.js';
export * from './defaults.js';
