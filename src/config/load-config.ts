/**
 * Loads the daemon's configuration: read the file, check it against the
 * schema, fill every missing key from `defaults.ts`, apply the environment
 * overrides, resolve paths, and create the folders the daemon will write to.
 * Any problem is one {@link ConfigError} line naming the file and the key, so
 * the daemon refuses to start rather than run with a setting nobody meant.
 *
 * Relative paths in the file resolve against the file's own folder, so a
 * configuration means the same thing whatever directory the daemon starts in;
 * paths from the environment resolve against the current directory, as a shell
 * user expects.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import {
  DefaultAllowCachedVault,
  DefaultApiHost,
  DefaultApiPort,
  DefaultBodyLimitBytes,
  DefaultStoreCacheSize,
  MinStoreCacheBytes,
  DefaultDataPath,
  DefaultFileVaultPath,
  DefaultGroupCommitMs,
  DefaultJournalSync,
  DefaultLogLevel,
  DefaultCheckpointCompression,
  DefaultClusterTokenFileName,
  DefaultCoalesceMs,
  DefaultHeartbeatMs,
  DefaultHeartbeatTimeoutMs,
  DefaultLeaseTtlMs,
  DefaultRenewMs,
  DefaultSafetyMarginMs,
  DefaultJournalThreshold,
  DefaultKeepLast,
  DefaultRetryMaxMs,
  DefaultRetryMinMs,
  DefaultWatchIntervalMs,
  MinDiskRateBytes,
  MinJournalThresholdBytes,
  DefaultNodeRole,
  DefaultSyncIntervalMs,
  DefaultTokensFileName,
  MaxNodeNameLength,
  MinBodyLimitBytes,
} from './defaults.js';
import { validate as validateCron, validateDetailed as validateCronDetailed } from 'node-cron';
import { parseDuration } from './duration.js';
import { describeJsonError } from './json-error.js';
import { mustBe, osReason, showValue } from './messages.js';
import {
  bodyLimitExpected,
  publicUrlExpected,
  CheckpointEvents,
  type CheckpointEvent,
  type ConfigFile,
  type JournalSync,
  type LogLevel,
  type NodeRole,
} from './schema.js';
import { parseSize } from './size.js';
import { validateConfigFile } from './validate-file.js';

/** The daemon's configuration, every key filled and every path absolute. */
export interface Config {
  /** Absolute path of the configuration file read. */
  file: string;
  node: { name: string; role: NodeRole };
  /** `publicUrl: null` = the API derives it from where it listens; `tls: null` = plain HTTP. */
  api: { host: string; port: number; publicUrl: string | null; bodyLimitBytes: number; tls: ApiTlsConfig | null };
  paths: { data: string; fileVault: string };
  auth: { tokensFile: string };
  journal: { sync: JournalSync; groupCommitMs: number; syncIntervalMs: number };
  /** The storage engine: `cacheSize`, the page cache its files share, in bytes (what bounds its memory). */
  store: { cacheSize: number };
  checkpoint: CheckpointConfig;
  failover: FailoverConfig;
  log: { level: LogLevel };
}

/** `api.tls`: the PEM files the API serves HTTPS (and the heartbeat WSS) with; absolute paths, read at start-up. */
export interface ApiTlsConfig {
  /** The certificate, followed by any intermediates. */
  cert: string;
  key: string;
}

/** `failover`: timing, the cluster token, the role-change hook, how the primary's certificate is verified, whether a caching FileVault mount is allowed. */
export interface FailoverConfig {
  /** Shared secret secondaries present on the heartbeat WebSocket. */
  clusterTokenFile: string;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  leaseTtlMs: number;
  renewMs: number;
  safetyMarginMs: number;
  /** Run with the new role and epoch after each role change, or null. */
  onRoleChange: string | null;
  /**
   * How a secondary verifies the primary's certificate when its heartbeat
   * connects with wss: `ca` = a PEM bundle of trusted authorities (null: the
   * system's), `serverName` = the name to expect in the certificate (null: the
   * host of the URL in the lease).
   */
  tls: { ca: string | null; serverName: string | null };
  /**
   * Start on a FileVault whose mount caches attributes, names or pages (NFS
   * without actimeo=0 and lookupcache=none, SMB without cache=none, …) with a
   * warning, instead of refusing to: another node's lease or journal file may
   * then be read stale.
   */
  allowCachedVault: boolean;
}

/** `checkpoint`: file format, automatic triggers, retention. */
export interface CheckpointConfig {
  compression: CheckpointCompression;
  /** Write checkpoint files with O_DIRECT where the file system allows it, else through the page cache. */
  directWrites: boolean;
  /** Most bytes a second a checkpoint file is written and read back at, in small evenly spaced writes and reads; null = no limit. */
  maxDiskRate: number | null;
  /** Journal bytes since the newest collection checkpoint that make the next one; null = no threshold. */
  journalThreshold: number | null;
  watch: { usePolling: boolean; intervalMs: number };
  /** The system events that make a checkpoint. */
  events: Record<CheckpointEvent, boolean>;
  /** Cron expression (node-cron, seconds field allowed), or null. */
  schedule: string | null;
  coalesceMs: number;
  retention: { keepLast: number; keepWithinMs: number | null };
  retry: { minMs: number; maxMs: number };
}

/** How checkpoint ZIP entries are compressed. */
export type CheckpointCompression = { method: 'store' } | { method: 'deflate'; level: number };

/** `"store"`, `"deflate"` (level 6) or `"deflate:N"` as a {@link CheckpointCompression}. */
export function parseCompression(text: string): CheckpointCompression {
  if (text === 'store') return { method: 'store' };
  const level = text === 'deflate' ? 6 : Number(text.slice('deflate:'.length));
  return { method: 'deflate', level };
}

/** Environment variable overriding `api.port`. */
export const PortEnv = 'CHECKPOINTD_PORT';
/** Environment variable overriding `paths.data`. */
export const DataEnv = 'CHECKPOINTD_DATA';
/** Environment variable overriding `paths.fileVault`. */
export const VaultEnv = 'CHECKPOINTD_VAULT';

const nodeNamePattern = new RegExp(`^[A-Za-z0-9._-]{1,${MaxNodeNameLength}}$`);

/**
 * Reads and checks the configuration file `file` (relative to the current
 * directory), applies `CHECKPOINTD_PORT`, `CHECKPOINTD_DATA` and
 * `CHECKPOINTD_VAULT` from `env`, and creates the data, FileVault and tokens
 * folders if missing. Throws a one-line {@link ConfigError} on any problem.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const configPath = path.resolve(file);
  const fail = (reason: string): ConfigError => new ConfigError(`config ${configPath}: ${reason}`);

  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (error) {
    throw fail(`cannot read the file (${osReason(error)})`);
  }
  if (text.startsWith('\uFEFF')) text = text.slice(1); // a byte-order mark some editors write

  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw fail(`not valid JSON (${describeJsonError(text, error)})`);
  }
  const checked = await validateConfigFile(data);
  if (!checked.ok) throw fail(checked.reason);
  const raw: ConfigFile = checked.file;

  const name = raw.node?.name ?? hostname();
  if (!nodeNamePattern.test(name)) {
    throw fail(`"node.name" is not set and this host's name ${JSON.stringify(name)} cannot serve as one; set "node.name"`);
  }

  const publicUrl = raw.api?.publicUrl ?? null;
  const normalizedUrl = publicUrl === null ? null : normalizePublicUrl(publicUrl);
  if (normalizedUrl === undefined) throw fail(mustBe('api.publicUrl', publicUrlExpected, publicUrl));

  const bodyLimit = raw.api?.bodyLimitBytes ?? DefaultBodyLimitBytes;
  const bodyLimitBytes = sizeSetting(bodyLimit, 'api.bodyLimitBytes', fail);
  if (bodyLimitBytes < MinBodyLimitBytes) throw fail(mustBe('api.bodyLimitBytes', bodyLimitExpected, bodyLimit));

  const cacheSetting = raw.store?.cacheSize ?? DefaultStoreCacheSize;
  const cacheSize = sizeSetting(cacheSetting, 'store.cacheSize', fail);
  if (cacheSize < MinStoreCacheBytes) throw fail(mustBe('store.cacheSize', `a size of at least ${MinStoreCacheBytes / 1024 / 1024} MiB`, cacheSetting));

  let port = raw.api?.port ?? DefaultApiPort;
  const portOverride = envValue(env, PortEnv);
  if (portOverride !== undefined) {
    if (!/^\d{1,5}$/.test(portOverride) || Number(portOverride) > 65535) {
      throw fail(`environment variable ${PortEnv} must be an integer from 0 to 65535, got ${showValue(portOverride)}`);
    }
    port = Number(portOverride);
  }

  const configFolder = path.dirname(configPath);
  const dataOverride = envValue(env, DataEnv);
  const vaultOverride = envValue(env, VaultEnv);
  const dataFolder =
    dataOverride !== undefined ? path.resolve(dataOverride) : path.resolve(configFolder, raw.paths?.data ?? DefaultDataPath);
  const vaultFolder =
    vaultOverride !== undefined
      ? path.resolve(vaultOverride)
      : path.resolve(configFolder, raw.paths?.fileVault ?? DefaultFileVaultPath);
  const tls = resolveApiTls(raw.api?.tls ?? null, configFolder, fail);
  // The lease hands api.publicUrl to the other nodes: with TLS on, only an https URL reaches this one.
  if (tls !== null && normalizedUrl !== null && !normalizedUrl.startsWith('https:')) {
    throw fail(`"api.publicUrl" must be an https URL while "api.tls" is set (this node answers only TLS), got ${showValue(publicUrl)}`);
  }
  const tokensSetting = raw.auth?.tokensFile ?? null;
  const tokensFile =
    tokensSetting === null ? path.join(dataFolder, DefaultTokensFileName) : path.resolve(configFolder, tokensSetting);

  await ensureFolder(dataFolder, dataOverride === undefined ? '"paths.data"' : `"paths.data" (from ${DataEnv})`, fail);
  await ensureFolder(vaultFolder, vaultOverride === undefined ? '"paths.fileVault"' : `"paths.fileVault" (from ${VaultEnv})`, fail);
  await ensureFolder(path.dirname(tokensFile), '"auth.tokensFile"', fail);
  if (await isFolder(tokensFile)) throw fail(`"auth.tokensFile" ${tokensFile} is a folder, not a file (EISDIR)`);

  return {
    file: configPath,
    node: { name, role: raw.node?.role ?? DefaultNodeRole },
    api: { host: raw.api?.host ?? DefaultApiHost, port, publicUrl: normalizedUrl, bodyLimitBytes, tls },
    paths: { data: dataFolder, fileVault: vaultFolder },
    auth: { tokensFile },
    journal: {
      sync: raw.journal?.sync ?? DefaultJournalSync,
      groupCommitMs: raw.journal?.groupCommitMs ?? DefaultGroupCommitMs,
      syncIntervalMs: raw.journal?.syncIntervalMs ?? DefaultSyncIntervalMs,
    },
    store: { cacheSize },
    checkpoint: resolveCheckpoint(raw.checkpoint ?? {}, fail),
    failover: resolveFailover(raw.failover ?? {}, configFolder, vaultFolder, fail),
    log: { level: raw.log?.level ?? DefaultLogLevel },
  };
}

/** `api.tls` with both files resolved against the configuration file's folder; one without the other is an error. */
function resolveApiTls(raw: NonNullable<ConfigFile['api']>['tls'] | null, configFolder: string, fail: (reason: string) => ConfigError): ApiTlsConfig | null {
  if (raw === null || raw === undefined) return null;
  for (const [key, other] of [['cert', 'key'], ['key', 'cert']] as const) {
    if (raw[key] === undefined) throw fail(`"api.tls.${key}" is missing: HTTPS needs both "api.tls.cert" and "api.tls.key" (set "api.tls" to null for plain HTTP), got only "api.tls.${other}"`);
  }
  return { cert: path.resolve(configFolder, raw.cert!), key: path.resolve(configFolder, raw.key!) };
}

function resolveFailover(raw: NonNullable<ConfigFile['failover']>, configFolder: string, vaultFolder: string, fail: (reason: string) => ConfigError): FailoverConfig {
  const f: FailoverConfig = {
    clusterTokenFile: raw.clusterTokenFile == null ? path.join(vaultFolder, 'failover', DefaultClusterTokenFileName) : path.resolve(configFolder, raw.clusterTokenFile),
    heartbeatMs: raw.heartbeatMs ?? DefaultHeartbeatMs,
    heartbeatTimeoutMs: raw.heartbeatTimeoutMs ?? DefaultHeartbeatTimeoutMs,
    leaseTtlMs: raw.leaseTtlMs ?? DefaultLeaseTtlMs,
    renewMs: raw.renewMs ?? DefaultRenewMs,
    safetyMarginMs: raw.safetyMarginMs ?? DefaultSafetyMarginMs,
    onRoleChange: raw.onRoleChange ?? null,
    tls: { ca: raw.tls?.ca == null ? null : path.resolve(configFolder, raw.tls.ca), serverName: raw.tls?.serverName ?? null },
    allowCachedVault: raw.allowCachedVault ?? DefaultAllowCachedVault,
  };
  // The rules that keep two primaries from ever serving at once, and a live primary from being replaced.
  if (f.heartbeatTimeoutMs <= f.heartbeatMs) throw fail(`"failover.heartbeatTimeoutMs" (${f.heartbeatTimeoutMs}) must be longer than "failover.heartbeatMs" (${f.heartbeatMs})`);
  if (f.renewMs + f.safetyMarginMs >= f.leaseTtlMs) {
    throw fail(`"failover.renewMs" (${f.renewMs}) plus "failover.safetyMarginMs" (${f.safetyMarginMs}) must be shorter than "failover.leaseTtlMs" (${f.leaseTtlMs}), or a healthy primary would fence itself between renewals`);
  }
  return f;
}

/** The size `value` of setting `key` in bytes (parseSize), or the ConfigError `fail` makes of why it is not one. */
function sizeSetting(value: number | string, key: string, fail: (reason: string) => ConfigError): number {
  try {
    return parseSize(value, key);
  } catch (error) {
    throw fail(error instanceof ConfigError ? error.message : String(error));
  }
}

function resolveCheckpoint(raw: NonNullable<ConfigFile['checkpoint']>, fail: (reason: string) => ConfigError): CheckpointConfig {
  const thresholdSetting = raw.journalThreshold === undefined ? DefaultJournalThreshold : raw.journalThreshold;
  let journalThreshold: number | null = null;
  if (thresholdSetting !== null) {
    journalThreshold = sizeSetting(thresholdSetting, 'checkpoint.journalThreshold', fail);
    if (journalThreshold < MinJournalThresholdBytes) {
      throw fail(mustBe('checkpoint.journalThreshold', `a size of at least ${MinJournalThresholdBytes} bytes, or null for none`, thresholdSetting));
    }
  }
  let maxDiskRate: number | null = null;
  if (raw.maxDiskRate !== undefined && raw.maxDiskRate !== null) {
    maxDiskRate = sizeSetting(raw.maxDiskRate, 'checkpoint.maxDiskRate', fail);
    if (maxDiskRate < MinDiskRateBytes) {
      throw fail(mustBe('checkpoint.maxDiskRate', `a size a second of at least 1MiB (a 1 GiB checkpoint then takes half an hour), or null for no limit`, raw.maxDiskRate));
    }
  }
  const schedule = raw.schedule ?? null;
  if (schedule !== null && !validateCron(schedule)) {
    const why = validateCronDetailed(schedule).errors.map((e) => e.message).join('; ');
    throw fail(
      `"checkpoint.schedule" must be a cron expression like "0 0 3 * * *" (seconds minutes hours day-of-month month day-of-week; the seconds field may be left out), got ${showValue(schedule)}` +
        (why === '' ? '' : ` (${why})`),
    );
  }
  let keepWithinMs: number | null = null;
  const keepWithin = raw.retention?.keepWithin ?? null;
  if (keepWithin !== null) {
    try {
      keepWithinMs = parseDuration(keepWithin, 'checkpoint.retention.keepWithin');
    } catch (error) {
      throw fail(error instanceof ConfigError ? error.message : String(error));
    }
  }
  const retry = { minMs: raw.retry?.minMs ?? DefaultRetryMinMs, maxMs: raw.retry?.maxMs ?? DefaultRetryMaxMs };
  if (retry.maxMs < retry.minMs) throw fail(`"checkpoint.retry.maxMs" (${retry.maxMs}) must not be below "checkpoint.retry.minMs" (${retry.minMs})`);
  return {
    compression: parseCompression(raw.compression ?? DefaultCheckpointCompression),
    directWrites: raw.directWrites ?? true,
    maxDiskRate,
    journalThreshold,
    watch: { usePolling: raw.watch?.usePolling ?? true, intervalMs: raw.watch?.intervalMs ?? DefaultWatchIntervalMs },
    events: Object.fromEntries(CheckpointEvents.map((event) => [event, raw.events?.[event] ?? true])) as Record<CheckpointEvent, boolean>,
    schedule,
    coalesceMs: raw.coalesceMs ?? DefaultCoalesceMs,
    retention: { keepLast: raw.retention?.keepLast ?? DefaultKeepLast, keepWithinMs },
    retry,
  };
}

/** An environment variable's value; set-but-empty counts as unset, as in most shells' `VAR= cmd` idiom. */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * `raw` as the base every `href` is built on: an absolute http(s) URL without
 * query or fragment and without a trailing slash; undefined if it is not one.
 */
function normalizePublicUrl(raw: string): string | undefined {
  if (/[?#]/.test(raw)) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return url.href.replace(/\/+$/, '');
}

async function ensureFolder(folder: string, label: string, fail: (reason: string) => ConfigError): Promise<void> {
  try {
    await mkdir(folder, { recursive: true });
  } catch (error) {
    throw fail(`${label} folder ${folder} cannot be created (${osReason(error)})`);
  }
}

async function isFolder(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isDirectory();
  } catch {
    return false;
  }
}
