/** Spaces: create and upgrade (collection-admin), list and read (any token). */
import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../errors.js';
import { validateSpaceId, type SpaceInfo, type StoreState, type TemplateRef } from '../store/index.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { SpaceBody, UpgradeBody } from './schemas.js';

function resource(ctx: ApiContext, s: SpaceInfo): { href: string; data: SpaceInfo } {
  return { href: href(ctx, 'space', s.id), data: s };
}

/** The space `id` in `state`, or a 404 that says how to find the right one. */
export function requireSpace(state: StoreState, id: string): SpaceInfo {
  const space = state.space(id);
  if (space === undefined) throw new NotFoundError(`space ${id} does not exist; GET /api/space lists the spaces`);
  return space;
}

/** Register the space routes. */
export function spaceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  const anyone = requireRole(ctx.tokens, ['collection-admin', 'member']);

  app.post<{ Body: { id: string; template: TemplateRef } }>('/api/space', { onRequest: admin, schema: { body: SpaceBody } }, async (request, reply) => {
    const id = validateSpaceId(request.body.id);
    const { state } = await ctx.store.commit({ type: 'space.create', id, template: request.body.template });
    const body = resource(ctx, requireSpace(state, id));
    return reply.code(201).header('location', body.href).send(body);
  });

  app.get('/api/space', { onRequest: anyone }, async () => ({
    href: href(ctx, 'space'),
    data: ctx.store.state.spaces().map((s) => resource(ctx, s)),
  }));

  app.get<{ Params: { id: string } }>('/api/space/:id', { onRequest: anyone }, async (request) => {
    const id = validateSpaceId(request.params.id);
    return resource(ctx, requireSpace(ctx.store.state, id));
  });

  app.put<{ Params: { id: string }; Body: { version: string } }>('/api/space/:id/template', { onRequest: admin, schema: { body: UpgradeBody } }, async (request) => {
    const id = validateSpaceId(request.params.id);
    const { state } = await ctx.store.commit({ type: 'space.upgrade', id, version: request.body.version });
    return resource(ctx, requireSpace(state, id));
  });
}
