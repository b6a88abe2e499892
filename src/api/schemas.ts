/**
 * The JSON schemas of the API, one place for each shape. Request bodies and
 * path parameters are given to Fastify, which validates them (ajv) before a
 * handler runs; answers are described here for the API description
 * (`GET /api/openapi.json`, openapi.ts) only, never given to Fastify as
 * `response` schemas (see openapi.ts for why). {@link Components} names the
 * shapes that the description shows once and refers to.
 */
import { MaxTransactionOps } from '../config/index.js';

/** A JSON schema, as plain data. */
export type JsonSchema = Readonly<Record<string, unknown>>;

// ---- Path parameters (Fastify checks only that they are strings: the handlers check their form, naming the rule)

const SpaceIdText = { type: 'string', description: 'a space id: 1–64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, never containing ".."' } as const;
const ObjectKeyText = { type: 'string', description: 'an object key: 1–256 characters of A-Z a-z 0-9 . _ ~ : @ -, never ".."' } as const;
const CheckpointIdText = { type: 'string', description: 'a checkpoint id: a positive integer, as in /api/collection/checkpoint/3' } as const;

/** /api/template/{name}/{version} */
export const TemplateParams = {
  type: 'object',
  required: ['name', 'version'],
  properties: {
    name: { type: 'string', description: 'a template name: 1–64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, never containing ".."' },
    version: { type: 'string', description: 'a template version, as loaded' },
  },
} as const;

/** /api/space/{id} and the object routes under it. */
export const SpaceParams = { type: 'object', required: ['id'], properties: { id: SpaceIdText } } as const;

/** /api/space/{id}/object/{key} */
export const ObjectParams = { type: 'object', required: ['id', 'key'], properties: { id: SpaceIdText, key: ObjectKeyText } } as const;

/** /api/space/{spaceId}/checkpoint (the vendor API's name for the space). */
export const SpaceCheckpointsParams = { type: 'object', required: ['spaceId'], properties: { spaceId: SpaceIdText } } as const;

/** /api/space/{spaceId}/checkpoint/{id} */
export const SpaceCheckpointParams = { type: 'object', required: ['spaceId', 'id'], properties: { spaceId: SpaceIdText, id: CheckpointIdText } } as const;

/** /api/collection/checkpoint/{id} */
export const CheckpointParams = { type: 'object', required: ['id'], properties: { id: CheckpointIdText } } as const;

// ---- Request bodies


/** POST /api/template */
export const TemplateBody = {
  type: 'object',
  required: ['name', 'version'],
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    version: { type: 'string' },
    indexes: { type: 'array', items: { type: 'string' }, maxItems: 32, description: 'top-level fields to index (each element of an array field too); none if absent' },
  },
} as const;

const TemplateRefSchema = {
  type: 'object',
  required: ['name', 'version'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, version: { type: 'string' } },
} as const;

/** POST /api/space */
export const SpaceBody = {
  type: 'object',
  required: ['id', 'template'],
  additionalProperties: false,
  properties: { id: { type: 'string' }, template: TemplateRefSchema },
} as const;

/** PUT /api/space/{id}/template */
export const UpgradeBody = {
  type: 'object',
  required: ['version'],
  additionalProperties: false,
  properties: { version: { type: 'string' } },
} as const;

/** POST /api/space/{id}/transaction (each op is checked by the store, which names its position). */
export const TransactionBody = {
  type: 'object',
  required: ['ops'],
  additionalProperties: false,
  properties: {
    ops: {
      type: 'array',
      minItems: 1,
      maxItems: MaxTransactionOps,
      items: { type: 'object', description: '{"op":"put","key":KEY,"value":ANY JSON} or {"op":"delete","key":KEY}' },
    },
  },
} as const;

/** POST /api/admin/failover/switchover (optional). */
export const SwitchoverBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { candidate: { type: 'string', minLength: 1, maxLength: 64, description: 'the standby to hand over to; else the connected standby furthest along' } },
} as const;

/**
 * POST …/checkpoint: `{"description": …}`, optional. For the description only:
 * the handler checks it, so that a refusal says what to send.
 */
export const CheckpointCreateBody = {
  type: 'object',
  additionalProperties: false,
  properties: { description: { type: 'string', maxLength: 1000 } },
} as const;

// ---- Answers (for the API description only)

/** The body of every error answer, `application/problem+json` (RFC 9457). */
export const Problem = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', description: 'always "about:blank": the status says what kind of error it is' },
    title: { type: 'string', description: "the status code's reason phrase" },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    detail: { type: 'string', description: 'what was wrong, and what to do' },
    instance: { type: 'string', description: 'the path of the request' },
  },
} as const;

const Href = { type: 'string', format: 'uri', description: 'built from api.publicUrl' } as const;
const Seq = { type: 'integer', minimum: 0, description: 'a journal position' } as const;

/** A loaded template version. */
export const Template = {
  type: 'object',
  required: ['name', 'version', 'indexes'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, version: { type: 'string' }, indexes: { type: 'array', items: { type: 'string' } } },
} as const;

/** GET /api/template/{name}/{version}, and what loading one answers. */
export const TemplateResource = { type: 'object', required: ['href', 'data'], additionalProperties: false, properties: { href: Href, data: Template } } as const;

/** GET /api/template */
export const TemplateList = { type: 'object', required: ['href', 'data'], additionalProperties: false, properties: { href: Href, data: { type: 'array', items: TemplateResource } } } as const;

/** A space: its template, object count and seqs. */
export const Space = {
  type: 'object',
  required: ['id', 'template', 'objectCount', 'createdSeq', 'updatedSeq'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    template: TemplateRefSchema,
    objectCount: { type: 'integer', minimum: 0 },
    createdSeq: Seq,
    updatedSeq: Seq,
  },
} as const;

/** GET /api/space/{id} */
export const SpaceResource = { type: 'object', required: ['href', 'data'], additionalProperties: false, properties: { href: Href, data: Space } } as const;

/** GET /api/space */
export const SpaceList = { type: 'object', required: ['href', 'data'], additionalProperties: false, properties: { href: Href, data: { type: 'array', items: SpaceResource } } } as const;

/** What a put or delete of one object answers, once durable. */
export const ObjectWritten = { type: 'object', required: ['key', 'seq'], additionalProperties: false, properties: { key: { type: 'string' }, seq: Seq } } as const;

/** GET /api/space/{id}/object/{key}: the value as stored. */
export const ObjectResource = { type: 'object', required: ['href', 'data'], additionalProperties: false, properties: { href: Href, data: { description: 'the value, any JSON, as it was sent' } } } as const;

/** GET /api/space/{id}/object?…: the matches, sorted by key. */
export const QueryAnswer = {
  type: 'object',
  required: ['href', 'data'],
  additionalProperties: false,
  properties: {
    href: Href,
    next: { type: 'string', format: 'uri', description: 'the URL of the next page; absent on the last page' },
    data: {
      type: 'array',
      items: { type: 'object', required: ['key', 'data'], additionalProperties: false, properties: { key: { type: 'string' }, data: { description: 'the value, any JSON' } } },
    },
  },
} as const;

/** POST /api/space/{id}/transaction */
export const TransactionAnswer = { type: 'object', required: ['seq'], additionalProperties: false, properties: { seq: Seq } } as const;

/** What a checkpoint resource says of its checkpoint. */
export const CheckpointData = {
  type: 'object',
  required: ['description', 'time', 'id', 'scope', 'spaces', 'size', 'sha256', 'seq', 'trigger'],
  additionalProperties: false,
  properties: {
    description: { type: 'string' },
    time: { type: 'string', format: 'date-time', description: 'when it was made: ISO 8601 UTC, 7 fractional digits' },
    id: { type: 'integer', minimum: 1 },
    scope: { enum: ['space', 'collection'] },
    spaces: { type: 'array', items: { type: 'string' }, description: 'the spaces it holds' },
    size: { type: 'integer', minimum: 0, description: 'bytes of the file' },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$', description: "the file's SHA-256, also its ETag" },
    seq: { ...Seq, description: 'the journal position it is consistent with' },
    trigger: { type: 'string', description: 'why it was made: manual, journal-threshold, event:NAME, schedule' },
  },
} as const;

/** One of a checkpoint resource's links. */
export const CheckpointLink = {
  type: 'object',
  required: ['rel', 'href', 'method'],
  additionalProperties: false,
  properties: { rel: { enum: ['restore', 'delete', 'download'] }, href: Href, method: { enum: ['POST', 'DELETE', 'GET'] } },
} as const;

const checkpointResourceProperties = {
  href: { ...Href, description: '/api/collection/checkpoint/{id}, built from api.publicUrl' },
  data: CheckpointData,
  links: { type: 'array', items: CheckpointLink },
} as const;

/** The vendor checkpoint API's resource for one checkpoint. */
export const CheckpointResource = { type: 'object', required: ['href', 'data', 'links'], additionalProperties: false, properties: checkpointResourceProperties } as const;

/** GET /api/collection/checkpoint, GET /api/space/{spaceId}/checkpoint */
export const CheckpointList = { type: 'object', required: ['href', 'data'], additionalProperties: false, properties: { href: Href, data: { type: 'array', items: CheckpointResource } } } as const;

/** What a restore answers: the checkpoint, and what it restored. */
export const RestoredCheckpoint = {
  type: 'object',
  required: ['href', 'data', 'links', 'restored'],
  additionalProperties: false,
  properties: {
    ...checkpointResourceProperties,
    restored: {
      type: 'object',
      required: ['scope', 'spaces', 'seq'],
      additionalProperties: false,
      properties: { scope: { enum: ['space', 'collection'] }, spaces: { type: 'array', items: { type: 'string' } }, seq: { ...Seq, description: 'the journal record of the restore' } },
    },
  },
} as const;

/** What an import answers: the checkpoint under its new id, and where it came from. */
export const ImportedCheckpoint = {
  type: 'object',
  required: ['href', 'data', 'links', 'imported'],
  additionalProperties: false,
  properties: {
    ...checkpointResourceProperties,
    imported: {
      type: 'object',
      required: ['originalId', 'installation', 'otherInstallation'],
      additionalProperties: false,
      properties: {
        originalId: { type: 'integer', minimum: 1, description: 'its id where it was made' },
        installation: { type: ['string', 'null'], description: 'the installation that made it (null: an older file that does not say)' },
        otherInstallation: { type: 'boolean' },
      },
    },
  },
} as const;

/** A health endpoint's courtesy body: the status code is the answer. */
export const HealthAnswer = {
  type: 'object',
  required: ['status', 'role', 'seq', 'at'],
  additionalProperties: false,
  properties: {
    status: { enum: ['ok', 'unavailable'] },
    role: { enum: ['primary', 'secondary', 'fenced'] },
    seq: Seq,
    at: { type: 'string', format: 'date-time', description: 'the instant the answer holds for (the lease was valid then, for a 200 from /primary); an answer delivered late says so' },
  },
} as const;

const NullableMs = { type: ['integer', 'null'] } as const;

/** The failover role machine's view (`data.failover` of status; docs/API.md "Failover" names every field). */
export const FailoverStatus = {
  type: 'object',
  required: ['role', 'epoch', 'paused', 'lease', 'standbys', 'heartbeatSilentMs', 'leaseUnchangedMs', 'leaseRenewedAgoMs', 'fencedBecause', 'standby', 'members'],
  additionalProperties: false,
  properties: {
    role: { enum: ['primary', 'secondary', 'fenced'] },
    epoch: { type: 'integer', minimum: 0 },
    paused: { type: 'boolean', description: 'automatic promotion is paused for the installation' },
    lease: { type: ['object', 'null'], description: 'the lease as this node holds it (a primary) or last read it: holder, url, epoch, counter, time, released' },
    standbys: { type: 'array', items: { type: 'object' }, description: "a primary's connected standbys: node, appliedSeq, lag, lastAckAgoMs, roundTripMs, address, …" },
    heartbeatSilentMs: NullableMs,
    leaseUnchangedMs: NullableMs,
    leaseRenewedAgoMs: NullableMs,
    fencedBecause: { type: ['string', 'null'] },
    standby: { type: ['object', 'null'], description: "a secondary's view: caughtUp, appliedSeq, primarySeq, lag, primarySilent, lastCaughtUpAgoMs, followError, promotionRefused, visibilityLag, checkpoints" },
    members: { type: 'array', items: { type: 'object' }, description: 'the cluster view, one per node: node, url, role, epoch, state, lag, lastHeartbeatAgoMs, newestCheckpoint, self' },
  },
} as const;

/** GET /api/admin/status (docs/API.md names every field; the nested figures are open to additions). */
export const StatusAnswer = {
  type: 'object',
  required: ['href', 'data'],
  additionalProperties: false,
  properties: {
    href: Href,
    data: {
      type: 'object',
      required: ['version', 'node', 'seq', 'spaces', 'templates', 'journal', 'recovery', 'checkpoints', 'failover'],
      additionalProperties: false,
      properties: {
        version: { type: 'string', description: "checkpointd's version" },
        node: {
          type: 'object',
          required: ['name', 'role', 'startedAt', 'pid'],
          properties: { name: { type: 'string' }, role: { enum: ['primary', 'secondary'] }, startedAt: { type: 'string', format: 'date-time' }, pid: { type: 'integer' } },
        },
        seq: Seq,
        spaces: { type: 'integer', minimum: 0 },
        templates: { type: 'integer', minimum: 0 },
        journal: {
          type: 'object',
          required: ['sync', 'writing', 'lastDurableSeq', 'olderFiles'],
          description: 'sync mode, whether this node writes the journal, and (a writer) its file, bytes, seqs, fsyncs and batches',
          properties: {
            sync: { enum: ['commit', 'interval'] },
            writing: { type: 'boolean' },
            lastDurableSeq: Seq,
            olderFiles: {
              type: 'object',
              required: ['state', 'belowSeq', 'files', 'bytes', 'error'],
              additionalProperties: false,
              description: 'the background check of the journal files start-up did not read (they hold only records the data folder holds)',
              properties: {
                state: { enum: ['checking', 'verified', 'damaged', 'unreadable'] },
                belowSeq: { type: 'integer', minimum: 0, description: 'the files checked hold the records below this seq (0: start-up read every file)' },
                files: { type: 'integer', minimum: 0 },
                bytes: { type: ['integer', 'null'], description: 'bytes of valid records the last finished check read' },
                error: { type: ['string', 'null'], description: 'the damage found (file, offset) and what to do, or why the files could not be read' },
              },
            },
          },
        },
        recovery: { type: 'object', description: 'what start-up recovered: startCheckpointSeq, replayed, lastSeq, tailCut' },
        checkpoints: {
          type: 'object',
          required: ['error', 'count', 'newest', 'unreadable'],
          description: 'count, newest, unreadable (files that cannot be used, and why), neededByJournal, automatic, retention, restoring',
          properties: {
            error: { type: ['string', 'null'], description: 'why the checkpoint folder cannot be read, or null' },
            count: { type: ['integer', 'null'] },
            newest: { type: ['object', 'null'], description: 'id, scope, trigger, time, seq, size' },
            unreadable: {
              type: 'array',
              items: { type: 'object', required: ['id', 'problem'], additionalProperties: false, properties: { id: { type: 'integer' }, problem: { type: 'string' } } },
            },
          },
        },
        failover: { oneOf: [FailoverStatus, { type: 'null' }], description: 'null while the node starts' },
      },
    },
  },
} as const;

/** POST /api/admin/failover/switchover */
export const SwitchoverAnswer = {
  type: 'object',
  required: ['href', 'data'],
  additionalProperties: false,
  properties: {
    href: Href,
    data: { type: 'object', required: ['from', 'to', 'status'], additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' }, status: FailoverStatus } },
  },
} as const;

/** POST /api/admin/failover/pause|resume */
export const FailoverAnswer = { type: 'object', required: ['href', 'data'], additionalProperties: false, properties: { href: Href, data: FailoverStatus } } as const;

/** The shapes the API description shows once, under these names, and refers to wherever they occur. */
export const Components: Readonly<Record<string, JsonSchema>> = {
  Problem,
  TemplateRef: TemplateRefSchema,
  TemplateBody,
  Template,
  TemplateResource,
  TemplateList,
  SpaceBody,
  UpgradeBody,
  Space,
  SpaceResource,
  SpaceList,
  ObjectWritten,
  ObjectResource,
  QueryAnswer,
  TransactionBody,
  TransactionAnswer,
  CheckpointCreateBody,
  CheckpointData,
  CheckpointLink,
  CheckpointResource,
  CheckpointList,
  RestoredCheckpoint,
  ImportedCheckpoint,
  HealthAnswer,
  StatusAnswer,
  FailoverStatus,
  SwitchoverBody,
  SwitchoverAnswer,
  FailoverAnswer,
};
