/** Operations routes for collection-admin tokens. */
import type { FastifyInstance } from 'fastify';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';

/** The checkpoints: how many, the newest, and the files that cannot be used (and why). */
async function checkpointStatus(ctx: ApiContext): Promise<Record<string, unknown>> {
  const catalogue = ctx.checkpointer.catalogue;
  const entries = await catalogue.list();
  const newest = entries.at(-1);
  return {
    count: entries.length,
    newest: newest === undefined ? null : { id: newest.id, scope: newest.manifest.scope, trigger: newest.manifest.trigger, time: newest.manifest.time, seq: newest.manifest.seq, size: newest.size },
    unreadable: [...catalogue.unreadable, ...catalogue.damaged].map(([id, problem]) => ({ id, problem })),
    neededByJournal: [...ctx.store.restoreReferences.keys()],
    automatic: ctx.auto()?.status() ?? null,
    retention: { keepLast: ctx.config.checkpoint.retention.keepLast, keepWithinMs: ctx.config.checkpoint.retention.keepWithinMs },
  };
}

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
        recovery: { startCheckpointSeq: ctx.store.recovery.baseSeq, replayed, lastSeq: scan.lastSeq, tailCut: scan.cut },
        checkpoints: await checkpointStatus(ctx),
        failover: ctx.failover(),
      },
    };
  });
}
