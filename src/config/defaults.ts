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
/** `store.cacheSize`: the page cache the storage engine's files share, what bounds its memory whatever the data's size. */
export const DefaultStoreCacheSize = '256MiB';
/** Smallest `store.cacheSize`. */
export const MinStoreCacheBytes = 16 * 1024 * 1024;

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

/*
 * Fixed limits and timings: not configuration keys (no file sets them), but
 * values an operator or a client meets in behaviour, logs and the docs
 * (docs/CONFIGURATION.md "Fixed limits and timings" lists them).
 */

// Requests and the data they carry.
/** Longest URL accepted (414 beyond). */
export const MaxUrlLength = 8192;
/** Longest single path parameter (a space id, key, …) the router matches (414 beyond). */
export const MaxParamLength = 512;
/** Most operations in one commit (a transaction body's `ops`). */
export const MaxTransactionOps = 10_000;
/** Longest template version accepted. */
export const MaxVersionLength = 32;
/** Objects in one page of a query when the request gives no `limit`. */
export const DefaultQueryLimit = 1000;
/** Most objects one page of a query may ask for (`limit`). */
export const MaxQueryLimit = 10_000;
/** Most indexed fields one template may name. */
export const MaxTemplateIndexes = 32;
/** Deepest nesting accepted in a value; deeper ones would risk a stack overflow in JSON.stringify. */
export const MaxValueDepth = 1000;
/** Longest checkpoint description, in characters. */
export const MaxDescriptionLength = 1000;
/** A token added to or removed from the tokens file counts within this long: how often its mtime is re-checked. */
export const TokenRecheckMs = 1000;
/** Longest a metrics scrape waits for one read of the FileVault (a hung network mount must not hang the scrape). */
export const ScrapeVaultWaitMs = 2000;

// The journal.
/**
 * Most bytes one batch write of several records holds (a single record may be
 * larger, up to MaxRecordBytes). Recovery relies on it: at most one batch can
 * have landed past one that did not (journal/record.ts).
 */
export const MaxBatchBytes = 4 * 1024 * 1024;

// Failover.
/** How often a secondary checks the two channels (heartbeat, lease) and applies the journal without a heartbeat. */
export const FailoverTickMs = 100;
/** How often a secondary applies the journal even without a heartbeat (and re-reads the pause mark). */
export const FollowMs = 500;
/** Longest wait between retries of a failing catch-up (from FollowMs, doubling). */
export const FollowRetryMaxMs = 10_000;
/** A secondary is caught up when it read the journal to its end within this long (or heartbeatTimeoutMs, if longer). */
export const CaughtUpWithinMs = 3 * FollowMs;
/** A secondary reads the lease every `failover.renewMs / 2`, but at least this far apart… */
export const LeasePollMinMs = 25;
/** …and at most this far apart. */
export const LeasePollMaxMs = 250;
/** First wait before a secondary reconnects its heartbeat; doubles up to HeartbeatReconnectMaxMs. */
export const HeartbeatReconnectMinMs = 100;
/** Longest wait between a secondary's heartbeat reconnection attempts. */
export const HeartbeatReconnectMaxMs = 2000;
/** Longest a secondary waits for the heartbeat WebSocket's opening handshake. */
export const HeartbeatHandshakeTimeoutMs = 2000;
/**
 * The renewal thread stops renewing when the main thread has not run for
 * this long: a process whose event loop is wedged (not paused: a collection
 * of a large heap takes seconds, not this) serves nobody, and must let a
 * secondary take over rather than hold the lease for ever. Under systemd the
 * watchdog (WatchdogSec=10s in the shipped unit) restarts such a process first.
 */
export const MainThreadStallMs = 30_000;
/** How often a secondary looks for a new checkpoint to verify ahead of need (the standby pre-loader). */
export const PreloadIntervalMs = 500;

// The daemon's life.
/**
 * Longest a clean shutdown may take before the process exits anyway: in-flight
 * requests, then the clean-shutdown checkpoint. systemd's TimeoutStopSec must
 * be longer.
 */
export const ShutdownTimeoutMs = 60_000;
/**
 * How long a shutdown waits for the requests in flight (a commit takes
 * milliseconds) before it cuts their connections: a slow download or a body
 * that never ends must not hold the journal and the lease until
 * ShutdownTimeoutMs runs out.
 */
export const InFlightGraceMs = 10_000;
/** A main-thread pause at least this long is logged (at warn) and counted. */
export const PauseThresholdMs = 1000;
/** How often the pause monitor's timer ticks. */
export const PauseTickMs = 100;
/** How often the systemd `STATUS=` line is recomputed, so `systemctl status` shows a role change. */
export const SystemdStatusPollMs = 1000;
/**
 * How long a temp file may go unwritten before anyone may take it for a
 * crash's leftover. A checkpoint being written is written to every few
 * milliseconds; a temp file nobody has touched for this long has no writer.
 */
export const StaleTempMs = 10 * 60 * 1000;

// The command-line client.
/** Where the daemon listens when neither `--url` nor CHECKPOINTD_URL says otherwise. */
export const DefaultDaemonUrl = `http://${DefaultApiHost}:${DefaultApiPort}`;
/** How long the CLI waits for the TCP connection; an answer itself may take long (a restore, a big checkpoint). */
export const ConnectTimeoutMs = 10_000;
/** Largest JSON answer the CLI reads into memory (a list of many thousands of checkpoints fits). */
export const MaxAnswerBytes = 64 * 1024 * 1024;
/** How often `restore` asks the daemon how far it has read, while its POST waits (terminal only). */
export const RestorePollMs = 250;
