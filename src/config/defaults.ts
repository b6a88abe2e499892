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
/** A node's role when the configuration names none: a standalone primary. */
export const DefaultNodeRole = 'primary' as const;
/** Longest node name accepted; it appears in manifests, logs and the lease. */
export const MaxNodeNameLength = 64;
/** Local data folder, relative to the configuration file's folder. */
export const DefaultDataPath = 'data';
/** Shared FileVault folder, relative to the configuration file's folder. */
export const DefaultFileVaultPath = 'FileVault';
/** Name of the hashed-token file inside the data folder when `auth.tokensFile` is not set. */
export const DefaultTokensFileName = 'tokens.json';
/**
 * Longest a client may take to send a whole request (headers and body) before
 * its connection is closed with 408: a client that promises a body and never
 * sends it must not hold a connection (Node's default is 300 s). Answers, such
 * as a long checkpoint download, are not limited by it.
 */
export const RequestTimeoutMs = 30_000;
/** Smallest `api.bodyLimitBytes` accepted: below this even an error body would not fit. */
export const MinBodyLimitBytes = 1024;
/** Longest `journal.groupCommitMs`: waiting longer would only slow every commit. */
export const MaxGroupCommitMs = 1000;
/** Shortest `journal.syncIntervalMs`. */
export const MinSyncIntervalMs = 1;
/** Longest `journal.syncIntervalMs`: the most commits `interval` mode may lose on a crash. */
export const MaxSyncIntervalMs = 60_000;
/** Checkpoint compression until the benchmark says otherwise: fast deflate. */
export const DefaultCheckpointCompression = 'deflate:1';
/** Journal bytes since the newest collection checkpoint that make the next one (`checkpoint.journalThreshold`). */
export const DefaultJournalThreshold = '256MiB';
/** Smallest `checkpoint.journalThreshold`: below this every few commits would start a full checkpoint. */
export const MinJournalThresholdBytes = 4096;
/** Lowest `checkpoint.maxDiskRate`, bytes a second: below it a checkpoint of any size takes hours. */
export const MinDiskRateBytes = 1024 * 1024;
/** How often chokidar polls the journal folder when `checkpoint.watch.usePolling` is on. */
export const DefaultWatchIntervalMs = 500;
/** Triggers within this many milliseconds make one checkpoint. */
export const DefaultCoalesceMs = 1000;
/** Longest `checkpoint.coalesceMs`. */
export const MaxCoalesceMs = 3_600_000;
/** Automatic collection checkpoints kept by count (`checkpoint.retention.keepLast`). */
export const DefaultKeepLast = 7;
/** First wait before retrying a failed automatic checkpoint; doubles up to the maximum. */
export const DefaultRetryMinMs = 1000;
/** Longest wait between retries of a failed automatic checkpoint. */
export const DefaultRetryMaxMs = 300_000;
/** How often the primary sends a heartbeat over WebSocket. */
export const DefaultHeartbeatMs = 500;
/** A secondary counts the primary's heartbeat as gone after this long without one. */
export const DefaultHeartbeatTimeoutMs = 2000;
/** A lease not renewed for this long (on the watcher's own clock) is expired. */
export const DefaultLeaseTtlMs = 5000;
/** How often the primary renews its lease. */
export const DefaultRenewMs = 1000;
/** The primary stops acknowledging this long before its lease could expire anywhere. */
export const DefaultSafetyMarginMs = 1000;
/** Name of the cluster token file inside FileVault/failover when `failover.clusterTokenFile` is not set. */
export const DefaultClusterTokenFileName = 'cluster.token';
/**
 * Whether a node starts on a FileVault whose mount caches attributes, names
 * or pages (see `vault/mount-check.ts`): off, so such a mount refuses start-up
 * rather than let a secondary promote past a live primary on a stale lease.
 */
export const DefaultAllowCachedVault = false;
/** The configuration file `checkpointd run` and `token create` read without `--config` or CHECKPOINTD_CONFIG (where the systemd unit keeps it). */
export const DefaultConfigFile = '/etc/checkpointd/checkpointd.json';
