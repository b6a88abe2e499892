/**
 * The JSON Schema of a configuration file: one sub-schema per section, each
 * closed with `additionalProperties: false` so that a misspelt key is an error
 * rather than a silently ignored setting. Every key is optional; the loader
 * fills the gaps from `defaults.ts`.
 *
 * Each schema carries a `description` that completes the sentence
 * `"key" must be …`: the loader turns the first failing keyword into that
 * sentence instead of printing ajv's own wording. A new section (for example
 * `checkpoint` or `failover`) adds its schema to {@link sectionSchemas}, its
 * shape to {@link ConfigFile}, and its resolution to `load-config.ts`.
 */
import type { SchemaObject } from 'ajv';
import {
  MaxCoalesceMs,
  MaxGroupCommitMs,
  MaxNodeNameLength,
  MaxSyncIntervalMs,
  MinBodyLimitBytes,
  MinSyncIntervalMs,
} from './defaults.js';

/** Roles a node can be configured with. */
export const NodeRoles = ['primary', 'secondary'] as const;
/** A node's configured role. */
export type NodeRole = (typeof NodeRoles)[number];

/** When the journal is fsynced: before each acknowledgement, or on a timer. */
export const JournalSyncModes = ['commit', 'interval'] as const;
/** The journal's fsync mode. */
export type JournalSync = (typeof JournalSyncModes)[number];

/**
 * System events that make an automatic collection checkpoint (trigger
 * `event:<name>`), each switchable in `checkpoint.events`.
 */
export const CheckpointEvents = ['space-created', 'space-upgraded', 'template-loaded', 'restore-done', 'promotion', 'clean-shutdown', 'crash-recovery'] as const;
/** One of {@link CheckpointEvents}. */
export type CheckpointEvent = (typeof CheckpointEvents)[number];

/** Log levels, most severe first. */
export const LogLevels = ['error', 'warn', 'info', 'debug'] as const;
/** A log level. */
export type LogLevel = (typeof LogLevels)[number];

/** A configuration file as written, after it passed {@link configSchema}. `null` means "derive it". */
export interface ConfigFile {
  $comment?: string;
  node?: { name?: string | null; role?: NodeRole };
  api?: { host?: string; port?: number; publicUrl?: string | null; bodyLimitBytes?: number | string; tls?: { cert?: string; key?: string } | null };
  paths?: { data?: string; fileVault?: string };
  auth?: { tokensFile?: string | null };
  journal?: { sync?: JournalSync; groupCommitMs?: number; syncIntervalMs?: number };
  store?: { cacheSize?: number | string };
  checkpoint?: {
    compression?: string;
    directWrites?: boolean;
    maxDiskRate?: number | string | null;
    journalThreshold?: number | string | null;
    watch?: { usePolling?: boolean; intervalMs?: number };
    events?: Partial<Record<CheckpointEvent, boolean>>;
    schedule?: string | null;
    coalesceMs?: number;
    retention?: { keepLast?: number; keepWithin?: string | number | null };
    retry?: { minMs?: number; maxMs?: number };
  };
  failover?: {
    clusterTokenFile?: string | null;
    heartbeatMs?: number;
    heartbeatTimeoutMs?: number;
    leaseTtlMs?: number;
    renewMs?: number;
    safetyMarginMs?: number;
    onRoleChange?: string | null;
    tls?: { ca?: string | null; serverName?: string | null };
    allowCachedVault?: boolean;
  };
  log?: { level?: LogLevel };
}

/** What `api.bodyLimitBytes` must be; also used after the size string is parsed. */
export const bodyLimitExpected = `a size of at least ${MinBodyLimitBytes} bytes (an integer or a string like "64MiB")`;
/** What `api.publicUrl` must be; also used by the URL check the schema cannot express. */
export const publicUrlExpected = 'an absolute http or https URL without query or fragment, or null';

function section(properties: Record<string, SchemaObject>): SchemaObject {
  return { type: 'object', description: 'an object', additionalProperties: false, properties };
}

function oneOf(values: readonly string[]): SchemaObject {
  return { enum: values, description: `one of ${values.map((v) => `"${v}"`).join(', ')}` };
}

function integer(minimum: number, maximum: number): SchemaObject {
  return { type: 'integer', minimum, maximum, description: `an integer from ${minimum} to ${maximum}` };
}

const path: SchemaObject = { type: 'string', minLength: 1, description: 'a non-empty path' };

/** What `api.tls` must be; the loader also says it when one of the two files is missing. */
export const apiTlsExpected = 'an object with "cert" and "key" (paths of PEM files), or null for plain HTTP';

/** `node`: who this node is. `name: null` = the host name. */
export const nodeSchema = section({
  name: {
    type: ['string', 'null'],
    pattern: `^[A-Za-z0-9._-]{1,${MaxNodeNameLength}}$`,
    description: `a name of 1 to ${MaxNodeNameLength} letters, digits, ".", "_" or "-", or null for the host name`,
  },
  role: oneOf(NodeRoles),
});

/** `api`: where the HTTP API listens, how it names itself, and its TLS certificate. */
export const apiSchema = section({
  host: { type: 'string', minLength: 1, description: 'a non-empty host name or address' },
  port: integer(0, 65535),
  publicUrl: { type: ['string', 'null'], minLength: 1, description: publicUrlExpected },
  bodyLimitBytes: { type: ['integer', 'string'], minimum: MinBodyLimitBytes, description: bodyLimitExpected },
  // Both keys are required together; the loader says which one is missing, which `required` here could not.
  tls: { type: ['object', 'null'], additionalProperties: false, properties: { cert: path, key: path }, description: apiTlsExpected },
});

/** `paths`: local data and the shared FileVault; relative to the configuration file's folder. */
export const pathsSchema = section({ data: path, fileVault: path });

/** `auth`: where hashed tokens live. `tokensFile: null` = `<paths.data>/tokens.json`. */
export const authSchema = section({
  tokensFile: { type: ['string', 'null'], minLength: 1, description: 'a non-empty path, or null' },
});

/** `journal`: durability against speed. */
export const journalSchema = section({
  sync: oneOf(JournalSyncModes),
  groupCommitMs: integer(0, MaxGroupCommitMs),
  syncIntervalMs: integer(MinSyncIntervalMs, MaxSyncIntervalMs),
});

const flag: SchemaObject = { type: 'boolean', description: 'true or false' };

/** `store`: the storage engine under paths.data. */
export const storeSchema = section({
  cacheSize: { type: ['integer', 'string'], minimum: 0, description: 'a size (an integer or a string like "256MiB")' },
});

/** `checkpoint`: how checkpoint files are written, and when they are made and pruned automatically. */
export const checkpointSchema = section({
  compression: {
    type: 'string',
    pattern: '^(store|deflate(:[1-9])?)$',
    description: '"store", "deflate", or "deflate:1" to "deflate:9" (the level)',
  },
  directWrites: flag,
  maxDiskRate: { type: ['integer', 'string', 'null'], minimum: 0, description: 'a size a second (an integer or a string like "32MiB"), or null for no limit' },
  journalThreshold: { type: ['integer', 'string', 'null'], minimum: 0, description: 'a size (an integer or a string like "256MiB"), or null for none' },
  watch: section({ usePolling: flag, intervalMs: integer(10, 60_000) }),
  events: section(Object.fromEntries(CheckpointEvents.map((event) => [event, flag]))),
  schedule: { type: ['string', 'null'], minLength: 1, description: 'a cron expression (seconds field allowed), or null for none' },
  coalesceMs: integer(0, MaxCoalesceMs),
  retention: section({
    keepLast: integer(1, 1_000_000),
    keepWithin: { type: ['string', 'integer', 'null'], minimum: 0, description: 'a duration like "7d", or null' },
  }),
  retry: section({ minMs: integer(10, 3_600_000), maxMs: integer(10, 86_400_000) }),
});

/** `failover`: heartbeat, lease and promotion timing, the cluster token, the role-change hook, how the primary's certificate is verified, whether a caching FileVault mount is allowed. */
export const failoverSchema = section({
  clusterTokenFile: { type: ['string', 'null'], minLength: 1, description: 'a non-empty path, or null' },
  heartbeatMs: integer(50, 60_000),
  heartbeatTimeoutMs: integer(100, 600_000),
  leaseTtlMs: integer(200, 600_000),
  renewMs: integer(50, 60_000),
  safetyMarginMs: integer(0, 600_000),
  onRoleChange: { type: ['string', 'null'], minLength: 1, description: 'a command, or null' },
  tls: section({
    ca: { type: ['string', 'null'], minLength: 1, description: 'a non-empty path of a PEM file, or null for the system\'s certificate authorities' },
    serverName: { type: ['string', 'null'], minLength: 1, description: 'a host name the primary\'s certificate holds, or null for the host of the lease URL' },
  }),
  allowCachedVault: { type: 'boolean', description: 'true or false (true: start on a FileVault mount that caches, with a warning)' },
});

/** `log`: how much the daemon says. */
export const logSchema = section({ level: oneOf(LogLevels) });

/** Every section, in the order an example file lists them. */
export const sectionSchemas = {
  node: nodeSchema,
  api: apiSchema,
  paths: pathsSchema,
  auth: authSchema,
  journal: journalSchema,
  store: storeSchema,
  checkpoint: checkpointSchema,
  failover: failoverSchema,
  log: logSchema,
} satisfies Record<keyof Omit<ConfigFile, '$comment'>, SchemaObject>;

/** The whole file: the sections, and a top-level `$comment` for the operator's notes. */
export const configSchema: SchemaObject = {
  type: 'object',
  description: 'a JSON object',
  additionalProperties: false,
  properties: { ...sectionSchemas, $comment: { type: 'string', description: 'a string' } },
};
