/**
 * The vendor checkpoint API (ShareAspace's checkpoint API; docs/API.md
 * "Checkpoints"), to the letter:
 * resources under /api/space/{spaceId}/checkpoint, the same resources at
 * /api/collection/checkpoint/{id}, and POST /api/admin/checkpoint for a
 * collection checkpoint. collection-admin tokens only.
 */
import type { FastifyInstance } from 'fastify';
import { checkpointFileName, type CatalogueEntry } from '../checkpoint/index.js';
import { MaxDescriptionLength } from '../config/index.js';
import { BadRequestError, NotFoundError, UnavailableError } from '../errors.js';
import { validateSpaceId } from '../store/index.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { sendDownload, type Download } from './file-download.js';
import { LocationHeader, ReadRefusals, WriteRefusals, type Answers, type HeaderDoc, type ParameterDoc, type RequestBodyDoc } from './openapi.js';
import { ProblemContentType } from './problem.js';
import { CheckpointCreateBody, CheckpointList, CheckpointParams, CheckpointResource, Problem, RestoredCheckpoint, SpaceCheckpointParams, SpaceCheckpointsParams } from './schemas.js';

/** The description from a create body: optional, at most MaxDescriptionLength characters. */
function description(body: unknown): string {
  if (body === undefined || body === null) return '';
  if (typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('the body must be a JSON object like {"description":"before the upgrade"}, or empty');
  const { description: text, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new BadRequestError(`body has an unknown property ${JSON.stringify(unknown[0])}; only "description" is accepted`);
  if (text === undefined) return '';
  if (typeof text !== 'string' || text.length > MaxDescriptionLength) throw new BadRequestError(`body.description must be a string of at most ${MaxDescriptionLength} characters`);
  return text;
}

/** The vendor checkpoint API's resource for one checkpoint. */
export function checkpointResource(ctx: ApiContext, entry: CatalogueEntry): Record<string, unknown> {
  const self = href(ctx, 'collection', 'checkpoint', String(entry.id));
  const m = entry.manifest;
  return {
    href: self,
    data: {
      description: m.description,
      time: m.time,
      id: entry.id,
      scope: m.scope,
      spaces: m.spaces.map((s) => s.id),
      size: entry.size,
      sha256: entry.sha256,
      seq: m.seq,
      trigger: m.trigger,
    },
    links: [
      { rel: 'restore', href: self, method: 'POST' },
      { rel: 'delete', href: self, method: 'DELETE' },
      { rel: 'download', href: `${self}/download`, method: 'GET' },
    ],
  };
}

function parseId(text: string): number {
  if (!/^\d{1,15}$/.test(text) || Number(text) < 1) throw new BadRequestError(`checkpoint id ${JSON.stringify(text).slice(0, 40)} must be a positive integer, as in /api/collection/checkpoint/3`);
  return Number(text);
}

/** A checkpoint file as a download. */
const download = (entry: CatalogueEntry): Download => ({ file: entry.file, size: entry.size, sha256: entry.sha256, name: checkpointFileName(entry.id), contentType: 'application/zip', modified: entry.writtenAt });

const covers = (entry: CatalogueEntry, spaceId: string): boolean => entry.manifest.spaces.some((s) => s.id === spaceId);

// ---- The API description of these routes (openapi.ts)

/** The optional body of a create: the handler checks it, so that a refusal says what to send. */
const CreateBody: RequestBodyDoc = {
  description: '{"description": "…"} (at most 1,000 characters), or no body at all; a request that says Content-Type: application/json must carry one',
  required: false,
  content: { 'application/json': { schema: CheckpointCreateBody } },
};

const header = (description: string, schema: Record<string, unknown> = { type: 'string' }): HeaderDoc => ({ description, schema });
const ETag = header('strong: the SHA-256 of the file, quoted');
const LastModified = header('when the file was written (an HTTP date)');
const FileHeaders = {
  'Content-Length': header('the bytes of this answer (a HEAD answers the real length too)', { type: 'integer', minimum: 0 }),
  'Content-Disposition': header('attachment; filename="Checkpoint-NNNNNNNNN"'),
  ETag,
  'Last-Modified': LastModified,
  'Accept-Ranges': header('bytes'),
  'Cache-Control': header('private, no-transform'),
};

/** The request headers a download honours (RFC 9110). */
const DownloadHeaders: readonly ParameterDoc[] = [
  { name: 'Range', in: 'header', description: 'one byte range, `bytes=START-[END]` or `bytes=-SUFFIX`: 206 (several ranges: the whole file, 200)', schema: { type: 'string' } },
  { name: 'If-Range', in: 'header', description: 'serve the Range only if the file is still this ETag (strong comparison) or Last-Modified date; else the whole file', schema: { type: 'string' } },
  { name: 'If-Match', in: 'header', description: 'answer only if the ETag is one of these (strong comparison), else 412', schema: { type: 'string' } },
  { name: 'If-Unmodified-Since', in: 'header', description: 'without If-Match: answer only if the file was not written after this date, else 412', schema: { type: 'string' } },
  { name: 'If-None-Match', in: 'header', description: 'answer 304 if the ETag is one of these (weak comparison: W/"…" matches)', schema: { type: 'string' } },
  { name: 'If-Modified-Since', in: 'header', description: 'without If-None-Match: answer 304 if the file was not written after this date', schema: { type: 'string' } },
];

/** What a download answers. */
const DownloadAnswers: Answers = {
  200: { description: 'the checkpoint file, streamed', content: { 'application/zip': {} }, headers: FileHeaders },
  206: {
    description: 'the requested byte range of the file (resume a broken download)',
    content: { 'application/zip': {} },
    headers: { ...FileHeaders, 'Content-Range': header('bytes START-END/SIZE') },
  },
  304: { description: 'If-None-Match or If-Modified-Since: the client has this file', headers: { ETag, 'Last-Modified': LastModified } },
  400: 'the checkpoint id (or the space id) is not valid',
  412: 'If-Match or If-Unmodified-Since: the file is not the one the request names',
  416: { description: 'the range cannot be served (it starts past the end, or the file is complete already)', content: { [ProblemContentType]: { schema: Problem } }, headers: { 'Content-Range': header('bytes */SIZE') } },
  ...ReadRefusals,
};

const DownloadDescription =
  'Streamed, never whole in memory. Ranges resume a broken download (`curl -C -`); conditional requests follow RFC 9110 in its order: If-Match, then If-Unmodified-Since (412), If-None-Match, then If-Modified-Since (304), then Range under If-Range. A HEAD answers the same headers, Content-Length included.';

/** What a restore answers. */
const RestoreAnswers = {
  200: { description: 'restored (journaled: a restart replays it)', json: RestoredCheckpoint },
  409: 'the checkpoint changed under its id since it was listed (its SHA-256 no longer matches), so it is not restored',
  422: 'the checkpoint does not verify, or it holds a space made from another template version than the one here (the detail names both)',
  ...WriteRefusals,
} as const;

/** What a delete answers. */
const DeleteAnswers = {
  204: { description: 'deleted: it leaves the list at once, and its file is given back a slice at a time' },
  409: 'a journaled restore still needs it, or it is the only checkpoint a restart could start from (make a newer one first)',
  ...WriteRefusals,
} as const;

/** Register the checkpoint routes. */
export function checkpointRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  const catalogue = ctx.checkpointer.catalogue;

  // A space route names a space that exists here or that some checkpoint covers (to restore it here).
  async function spaceCheckpoint(spaceIdText: string, idText: string): Promise<CatalogueEntry> {
    const spaceId = validateSpaceId(spaceIdText);
    const entry = await catalogue.get(parseId(idText));
    if (!covers(entry, spaceId)) throw new NotFoundError(`checkpoint ${entry.id} does not cover space ${spaceId}; GET /api/space/${spaceId}/checkpoint lists those that do`);
    return entry;
  }

  const listSpaceCheckpoints = {
    summary: 'List the checkpoints that cover a space',
    tags: ['checkpoints'],
    operationId: 'listSpaceCheckpoints',
    params: SpaceCheckpointsParams,
    answers: {
      200: { description: 'the space and collection checkpoints that hold the space, oldest first', json: CheckpointList },
      400: 'the space id is not valid',
      404: 'the space does not exist and no checkpoint covers it',
      ...ReadRefusals,
    },
  };
  app.get<{ Params: { spaceId: string } }>('/api/space/:spaceId/checkpoint', { onRequest: admin, schema: listSpaceCheckpoints }, async (request) => {
    const spaceId = validateSpaceId(request.params.spaceId);
    const entries = (await catalogue.list()).filter((e) => covers(e, spaceId));
    if (entries.length === 0 && ctx.store.state.space(spaceId) === undefined) throw new NotFoundError(`space ${spaceId} does not exist and no checkpoint covers it`);
    return { href: href(ctx, 'space', spaceId, 'checkpoint'), data: entries.map((e) => checkpointResource(ctx, e)) };
  });

  app.post<{ Params: { spaceId: string }; Body: unknown }>(
    '/api/space/:spaceId/checkpoint',
    {
      onRequest: admin,
      schema: {
        summary: 'Make a checkpoint of a space and its indexes',
        tags: ['checkpoints'],
        operationId: 'createSpaceCheckpoint',
        params: SpaceCheckpointsParams,
        requestBody: CreateBody,
        answers: {
          201: { description: 'made', json: CheckpointResource, headers: { Location: LocationHeader } },
          400: 'the space id or the body is not valid',
          404: 'no such space',
          ...WriteRefusals,
        },
      },
    },
    async (request, reply) => {
      const spaceId = validateSpaceId(request.params.spaceId);
      const text = description(request.body);
      if (ctx.store.refusal !== null) throw new UnavailableError(`${ctx.store.refusal}; create checkpoints on the primary`);
      const entry = await ctx.checkpointer.create({ scope: 'space', spaceId, description: text, trigger: 'manual' });
      const body = checkpointResource(ctx, entry);
      return reply.code(201).header('location', body.href).send(body);
    },
  );

  const getSpaceCheckpoint = {
    summary: 'One checkpoint that covers a space',
    tags: ['checkpoints'],
    operationId: 'getSpaceCheckpoint',
    params: SpaceCheckpointParams,
    answers: { 200: { description: 'the checkpoint', json: CheckpointResource }, 400: 'the space id or the checkpoint id is not valid', 404: 'no such checkpoint, or it does not cover the space', ...ReadRefusals },
  };
  app.get<{ Params: { spaceId: string; id: string } }>('/api/space/:spaceId/checkpoint/:id', { onRequest: admin, schema: getSpaceCheckpoint }, async (request) =>
    checkpointResource(ctx, await spaceCheckpoint(request.params.spaceId, request.params.id)),
  );

  // GET and HEAD registered together: a HEAD answers the real Content-Length (Fastify's automatic HEAD route would say 0).
  app.route<{ Params: { spaceId: string; id: string } }>({
    method: ['GET', 'HEAD'],
    url: '/api/space/:spaceId/checkpoint/:id/download',
    onRequest: admin,
    schema: {
      summary: 'Download a checkpoint that covers a space (a ZIP)',
      description: DownloadDescription,
      tags: ['checkpoints'],
      operationId: 'downloadSpaceCheckpoint',
      params: SpaceCheckpointParams,
      parameters: DownloadHeaders,
      answers: { ...DownloadAnswers, 404: 'no such checkpoint, or it does not cover the space' },
    },
    handler: async (request, reply) => sendDownload(request, reply, download(await spaceCheckpoint(request.params.spaceId, request.params.id))),
  });

  const restoreSpace = {
    summary: 'Restore one space from a space or collection checkpoint that covers it',
    description: 'A space that does not exist here is created from the checkpoint. Creates, restores and deletes run one at a time, in arrival order.',
    tags: ['checkpoints'],
    operationId: 'restoreSpaceCheckpoint',
    params: SpaceCheckpointParams,
    answers: { ...RestoreAnswers, 400: 'the space id or the checkpoint id is not valid', 404: 'no such checkpoint, or it does not cover the space' },
  };
  app.post<{ Params: { spaceId: string; id: string } }>('/api/space/:spaceId/checkpoint/:id', { onRequest: admin, schema: restoreSpace }, async (request) => {
    const entry = await spaceCheckpoint(request.params.spaceId, request.params.id);
    const result = await ctx.checkpointer.restore(entry.id, validateSpaceId(request.params.spaceId));
    return { ...checkpointResource(ctx, result.entry), restored: { scope: result.scope, spaces: result.spaces, seq: result.seq } };
  });

  const deleteSpaceCheckpoint = {
    summary: 'Delete a checkpoint that covers a space',
    tags: ['checkpoints'],
    operationId: 'deleteSpaceCheckpoint',
    params: SpaceCheckpointParams,
    answers: { ...DeleteAnswers, 400: 'the space id or the checkpoint id is not valid', 404: 'no such checkpoint, or it does not cover the space' },
  };
  app.delete<{ Params: { spaceId: string; id: string } }>('/api/space/:spaceId/checkpoint/:id', { onRequest: admin, schema: deleteSpaceCheckpoint }, async (request, reply) => {
    const entry = await spaceCheckpoint(request.params.spaceId, request.params.id);
    await ctx.checkpointer.delete(entry.id);
    return reply.code(204).send();
  });

  const listCheckpoints = {
    summary: 'List all checkpoints',
    tags: ['checkpoints'],
    operationId: 'listCheckpoints',
    answers: { 200: { description: 'every checkpoint, oldest first (files that cannot be read are left out and shown in status)', json: CheckpointList }, ...ReadRefusals },
  };
  app.get('/api/collection/checkpoint', { onRequest: admin, schema: listCheckpoints }, async () => ({
    href: href(ctx, 'collection', 'checkpoint'),
    data: (await catalogue.list()).map((e) => checkpointResource(ctx, e)),
  }));

  const getCheckpoint = {
    summary: 'One checkpoint',
    tags: ['checkpoints'],
    operationId: 'getCheckpoint',
    params: CheckpointParams,
    answers: { 200: { description: 'the checkpoint', json: CheckpointResource }, 400: 'the checkpoint id is not valid', 404: 'no such checkpoint', ...ReadRefusals },
  };
  app.get<{ Params: { id: string } }>('/api/collection/checkpoint/:id', { onRequest: admin, schema: getCheckpoint }, async (request) =>
    checkpointResource(ctx, await catalogue.get(parseId(request.params.id))),
  );

  app.route<{ Params: { id: string } }>({
    method: ['GET', 'HEAD'],
    url: '/api/collection/checkpoint/:id/download',
    onRequest: admin,
    schema: {
      summary: 'Download a checkpoint (a ZIP)',
      description: DownloadDescription,
      tags: ['checkpoints'],
      operationId: 'downloadCheckpoint',
      params: CheckpointParams,
      parameters: DownloadHeaders,
      answers: { ...DownloadAnswers, 404: 'no such checkpoint' },
    },
    handler: async (request, reply) => sendDownload(request, reply, download(await catalogue.get(parseId(request.params.id)))),
  });

  const restoreCheckpoint = {
    summary: 'Restore what a checkpoint holds',
    description:
      'A space checkpoint restores its space; a collection checkpoint everything (templates and spaces; spaces made after it are gone). Creates, restores and deletes run one at a time, in arrival order.',
    tags: ['checkpoints'],
    operationId: 'restoreCheckpoint',
    params: CheckpointParams,
    answers: { ...RestoreAnswers, 400: 'the checkpoint id is not valid', 404: 'no such checkpoint' },
  };
  app.post<{ Params: { id: string } }>('/api/collection/checkpoint/:id', { onRequest: admin, schema: restoreCheckpoint }, async (request) => {
    const result = await ctx.checkpointer.restore(parseId(request.params.id));
    return { ...checkpointResource(ctx, result.entry), restored: { scope: result.scope, spaces: result.spaces, seq: result.seq } };
  });

  const deleteCheckpoint = {
    summary: 'Delete a checkpoint',
    tags: ['checkpoints'],
    operationId: 'deleteCheckpoint',
    params: CheckpointParams,
    answers: { ...DeleteAnswers, 400: 'the checkpoint id is not valid', 404: 'no such checkpoint' },
  };
  app.delete<{ Params: { id: string } }>('/api/collection/checkpoint/:id', { onRequest: admin, schema: deleteCheckpoint }, async (request, reply) => {
    await ctx.checkpointer.delete(parseId(request.params.id));
    return reply.code(204).send();
  });

  const createCheckpoint = {
    summary: 'Make a collection checkpoint: the collection database, every space, every index',
    tags: ['checkpoints'],
    operationId: 'createCheckpoint',
    requestBody: CreateBody,
    answers: { 201: { description: 'made', json: CheckpointResource, headers: { Location: LocationHeader } }, 400: 'the body is not valid', ...WriteRefusals },
  };
  app.post<{ Body: unknown }>('/api/admin/checkpoint', { onRequest: admin, schema: createCheckpoint }, async (request, reply) => {
    const text = description(request.body);
    if (ctx.store.refusal !== null) throw new UnavailableError(`${ctx.store.refusal}; create checkpoints on the primary`);
    const entry = await ctx.checkpointer.create({ scope: 'collection', description: text, trigger: 'manual' });
    const body = checkpointResource(ctx, entry);
    return reply.code(201).header('location', body.href).send(body);
  });
}
