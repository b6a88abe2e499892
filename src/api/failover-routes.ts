/** `POST /api/admin/failover/switchover|pause|resume`: operations for collection-admin tokens. */
import type { FastifyInstance } from 'fastify';
import { UnavailableError } from '../errors.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { FailoverAnswer, SwitchoverAnswer, SwitchoverBody } from './schemas.js';

/** What pause and resume do. */
const Actions = {
  pause: {
    summary: 'Pause automatic promotion for the whole installation (maintenance)',
    description: 'A mark in FileVault/failover/paused that every node reads.',
    operationId: 'pauseFailover',
    answers: { 507: 'the file system is full; promotion was not paused' },
  },
  resume: { summary: 'Resume automatic promotion', description: 'Removes the mark pause made.', operationId: 'resumeFailover', answers: {} },
} as const;

/** Register the failover operations routes. */
export function failoverRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  app.post<{ Body: { candidate?: string } | undefined }>(
    '/api/admin/failover/switchover',
    {
      onRequest: admin,
      schema: {
        summary: 'Hand the primary role to a standby now',
        description: 'On the primary: it stops acknowledging, answers the commits in flight, hands the journal over and releases the lease naming the successor, then follows it.',
        tags: ['operations'],
        operationId: 'switchover',
        body: SwitchoverBody,
        answers: {
          200: { description: 'handed over', json: SwitchoverAnswer },
          404: 'no connected standby has the name given',
          409: 'this node is not the primary, or no standby is connected',
          503: 'this node is still starting, or the handover failed (the detail says what the node did)',
        },
      },
    },
    async (request) => {
      const manager = ctx.failoverManager();
      if (manager === null) throw new UnavailableError('this node is still starting; try again in a moment');
      const { from, to } = await manager.switchover(request.body?.candidate);
      return { href: href(ctx, 'admin', 'failover', 'switchover'), data: { from, to, status: manager.status() } };
    },
  );
  for (const action of ['pause', 'resume'] as const) {
    const { answers, ...doc } = Actions[action];
    const schema = {
      ...doc,
      tags: ['operations'],
      answers: { 200: { description: 'done; the failover status', json: FailoverAnswer }, 503: 'this node is still starting, or the FileVault cannot be written (the detail says why)', ...answers },
    };
    app.post(`/api/admin/failover/${action}`, { onRequest: admin, schema }, async (request) => {
      const manager = ctx.failoverManager();
      if (manager === null) throw new UnavailableError('this node is still starting; try again in a moment');
      await manager.setPaused(action === 'pause', request.ip);
      return { href: href(ctx, 'admin', 'failover', action), data: manager.status() };
    });
  }
}
