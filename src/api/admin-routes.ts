/** Operations routes for collection-admin tokens. */
import type { FastifyInstance } from 'fastify';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';

/** Register GET /api/admin/status. */
export function adminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  app.get('/api/admin/status', { onRequest: admin }, async () => {
    const state = ctx.store.state;
    const { scan, replayed } = ctx.store.recovery;
    return {
      href: href(ctx, 'admin', 'status'),
      data: {
        node: { name: ctx.config.node.name, role: ctx.role(), startedAt: ctx.startedAt, pid: process.pid },
        seq: state.seq,
        spaces: state.spaces().length,
        templates: state.templates().length,
        journal: { sync: ctx.config.journal.sync, ...ctx.store.journalStats },
        recovery: { replayed, lastSeq: scan.lastSeq, tailCut: scan.cut },
      },
    };
  });
}
