/**
 * Defaults and limits in one place, named with their units. The configuration
 * loader fills every key that a file leaves out from here.
 */

/** TCP port of the HTTP API when the configuration names none. */
export const DefaultApiPort = 8470;
/** Loopback only unless the operator says otherwise. */
export const DefaultApiHost = '127.0.0.1';
/** Largest request body accepted (413 beyond). */
export const DefaultBodyLimitBytes = 1024 * 1024;
/** Commit mode: acknowledge only after fsync. */
export const DefaultJournalSync = 'commit' as const;
/** Extra time a group-commit leader waits for company before fsync; 0 = batches form while an fsync runs. */
export const DefaultGroupCommitMs = 0;
/** In `interval` mode, how often the journal is fsynced (Redis `appendfsync everysec`). */
export const DefaultSyncIntervalMs = 1000;
/** Log level. */
export const DefaultLogLevel = 'info' as const;
/** Longest space id, template name or version accepted. */
export const MaxIdLength = 64;
/** Longest object key accepted. */
export const MaxKeyLength = 256;
/** Largest journal record payload the reader accepts before calling a frame corrupt. */
export const MaxRecordBytes = 64 * 1024 * 1024;
