/** Spaces: create and upgrade (collection-admin), list and read (any token). */
import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../errors.js';
import { validateSpaceId, type SpaceInfo, type StateView, type TemplateRef } from '../store/index.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { LocationHeader, WriteRefusals } from './openapi.js';
import { SpaceBody, SpaceList, SpaceParams, SpaceResource, UpgradeBody } from './schemas.js';

function resource(ctx: ApiContext, s: SpaceInfo): { href: string; data: SpaceInfo } {
  return { href: href(ctx, 'space', s.id), data: s };
}

/** The space `id` in `state`, or a 404 that says how to find the right one. */
export function requireSpace(state: StateView, id: string): SpaceInfo {
  const space = state.space(id);
  if (space === undefined) throw new NotFoundError(`space ${id} does not exist; GET /api/space lists the spaces`);
  return space;
}

/** Register the space routes. */
export function spaceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  const anyone = requireRole(ctx.tokens, ['collection-admin', 'member']);

  const createSpace = {
    summary: 'Create a space from a loaded template version',
    tags: ['spaces'],
    operationId: 'createSpace',
    body: SpaceBody,
    answers: {
      201: { description: 'created', json: SpaceResource, headers: { Location: LocationHeader } },
      400: 'the body or the space id is not valid',
      404: 'the template version is not loaded',
      409: 'a space with this id exists',
      ...WriteRefusals,
    },
  };
  app.post<{ Body: { id: string; template: TemplateRef } }>('/api/space', { onRequest: admin, schema: createSpace }, async (request, reply) => {
    const id = validateSpaceId(request.body.id);
    const { state } = await ctx.store.commit({ type: 'space.create', id, template: request.body.template });
    const body = resource(ctx, requireSpace(state, id));
    return reply.code(201).header('location', body.href).send(body);
  });

  const listSpaces = { summary: 'List the spaces', tags: ['spaces'], operationId: 'listSpaces', answers: { 200: { description: 'every space', json: SpaceList } } };
  app.get('/api/space', { onRequest: anyone, schema: listSpaces }, async () => ({
    href: href(ctx, 'space'),
    data: ctx.store.state.spaces().map((s) => resource(ctx, s)),
  }));

  const getSpace = {
    summary: 'One space: its template, object count and seqs',
    tags: ['spaces'],
    operationId: 'getSpace',
    params: SpaceParams,
    answers: { 200: { description: 'the space', json: SpaceResource }, 400: 'the space id is not valid', 404: 'no such space' },
  };
  app.get<{ Params: { id: string } }>('/api/space/:id', { onRequest: anyone, schema: getSpace }, async (request) => {
    const id = validateSpaceId(request.params.id);
    return resource(ctx, requireSpace(ctx.store.state, id));
  });

  const upgradeSpace = {
    summary: 'Upgrade a space to a newer loaded version of its template',
    tags: ['spaces'],
    operationId: 'upgradeSpace',
    params: SpaceParams,
    body: UpgradeBody,
    answers: {
      200: { description: 'upgraded', json: SpaceResource },
      400: 'the body or the space id is not valid',
      404: 'no such space, or that version of its template is not loaded',
      409: 'that version is not newer than the one the space follows',
      ...WriteRefusals,
    },
  };
  app.put<{ Params: { id: string }; Body: { version: string } }>('/api/space/:id/template', { onRequest: admin, schema: upgradeSpace }, async (request) => {
    const id = validateSpaceId(request.params.id);
    const { state } = await ctx.store.commit({ type: 'space.upgrade', id, version: request.body.version });
    return resource(ctx, requireSpace(state, id));
  });
}
