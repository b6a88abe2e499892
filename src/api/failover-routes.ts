/** `POST /api/admin/failover/switchover|pause|resume`: operations for collection-admin tokens. */
import type { FastifyInstance } from 'fastify';
import { UnavailableError } from '../errors.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';

/** Register the failover operations routes. */
export function failoverRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  app.post<{ Body: { candidate?: string } | undefined }>(
    '/api/admin/failover/switchover',
    { onRequest: admin, schema: { body: { type: ['object', 'null'], additionalProperties: false, properties: { candidate: { type: 'string', minLength: 1, maxLength: 64 } } } } },
    async (request) => {
      const manager = ctx.failoverManager();
      if (manager === null) throw new UnavailableError('this node is still starting; try again in a moment');
      const { from, to } = await manager.switchover(request.body?.candidate);
      return { href: href(ctx, 'admin', 'failover', 'switchover'), data: { from, to, status: manager.status() } };
    },
  );
  for (const action of ['pause', 'resume'] as const) {
    app.post(`/api/admin/failover/${action}`, { onRequest: admin }, async (request) => {
      const manager = ctx.failoverManager();
      if (manager === null) throw new UnavailableError('this node is still starting; try again in a moment');
      await manager.setPaused(action === 'pause', request.ip);
      return { href: href(ctx, 'admin', 'failover', action), data: manager.status() };
    });
  }
}
