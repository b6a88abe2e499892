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

  app.get<{ Params: { spaceId: string } }>('/api/space/:spaceId/checkpoint', { onRequest: admin }, async (request) => {
    const spaceId = validateSpaceId(request.params.spaceId);
    const entries = (await catalogue.list()).filter((e) => covers(e, spaceId));
    if (entries.length === 0 && ctx.store.state.space(spaceId) === undefined) throw new NotFoundError(`space ${spaceId} does not exist and no checkpoint covers it`);
    return { href: href(ctx, 'space', spaceId, 'checkpoint'), data: entries.map((e) => checkpointResource(ctx, e)) };
  });

  app.post<{ Params: { spaceId: string }; Body: unknown }>(
    '/api/space/:spaceId/checkpoint',
    { onRequest: admin },
    async (request, reply) => {
      const spaceId = validateSpaceId(request.params.spaceId);
      const text = description(request.body);
      if (ctx.store.refusal !== null) throw new UnavailableError(`${ctx.store.refusal}; create checkpoints on the primary`);
      const entry = await ctx.checkpointer.create({ scope: 'space', spaceId, description: text, trigger: 'manual' });
      const body = checkpointResource(ctx, entry);
      return reply.code(201).header('location', body.href).send(body);
    },
  );

  app.get<{ Params: { spaceId: string; id: string } }>('/api/space/:spaceId/checkpoint/:id', { onRequest: admin }, async (request) =>
    checkpointResource(ctx, await spaceCheckpoint(request.params.spaceId, request.params.id)),
  );

  // GET and HEAD registered together: a HEAD answers the real Content-Length (Fastify's automatic HEAD route would say 0).
  app.route<{ Params: { spaceId: string; id: string } }>({
    method: ['GET', 'HEAD'],
    url: '/api/space/:spaceId/checkpoint/:id/download',
    onRequest: admin,
    handler: async (request, reply) => sendDownload(request, reply, download(await spaceCheckpoint(request.params.spaceId, request.params.id))),
  });

  app.post<{ Params: { spaceId: string; id: string } }>('/api/space/:spaceId/checkpoint/:id', { onRequest: admin }, async (request) => {
    const entry = await spaceCheckpoint(request.params.spaceId, request.params.id);
    const result = await ctx.checkpointer.restore(entry.id, validateSpaceId(request.params.spaceId));
    return { ...checkpointResource(ctx, result.entry), restored: { scope: result.scope, spaces: result.spaces, seq: result.seq } };
  });

  app.delete<{ Params: { spaceId: string; id: string } }>('/api/space/:spaceId/checkpoint/:id', { onRequest: admin }, async (request, reply) => {
    const entry = await spaceCheckpoint(request.params.spaceId, request.params.id);
    await ctx.checkpointer.delete(entry.id);
    return reply.code(204).send();
  });

  app.get('/api/collection/checkpoint', { onRequest: admin }, async () => ({
    href: href(ctx, 'collection', 'checkpoint'),
    data: (await catalogue.list()).map((e) => checkpointResource(ctx, e)),
  }));

  app.get<{ Params: { id: string } }>('/api/collection/checkpoint/:id', { onRequest: admin }, async (request) =>
    checkpointResource(ctx, await catalogue.get(parseId(request.params.id))),
  );

  app.route<{ Params: { id: string } }>({
    method: ['GET', 'HEAD'],
    url: '/api/collection/checkpoint/:id/download',
    onRequest: admin,
    handler: async (request, reply) => sendDownload(request, reply, download(await catalogue.get(parseId(request.params.id)))),
  });

  app.post<{ Params: { id: string } }>('/api/collection/checkpoint/:id', { onRequest: admin }, async (request) => {
    const result = await ctx.checkpointer.restore(parseId(request.params.id));
    return { ...checkpointResource(ctx, result.entry), restored: { scope: result.scope, spaces: result.spaces, seq: result.seq } };
  });

  app.delete<{ Params: { id: string } }>('/api/collection/checkpoint/:id', { onRequest: admin }, async (request, reply) => {
    await ctx.checkpointer.delete(parseId(request.params.id));
    return reply.code(204).send();
  });

  app.post<{ Body: unknown }>('/api/admin/checkpoint', { onRequest: admin }, async (request, reply) => {
    const text = description(request.body);
    if (ctx.store.refusal !== null) throw new UnavailableError(`${ctx.store.refusal}; create checkpoints on the primary`);
    const entry = await ctx.checkpointer.create({ scope: 'collection', description: text, trigger: 'manual' });
    const body = checkpointResource(ctx, entry);
    return reply.code(201).header('location', body.href).send(body);
  });
}
