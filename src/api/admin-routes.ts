/** Operations routes for collection-admin tokens. */
import type { FastifyInstance } from 'fastify';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { StatusAnswer } from './schemas.js';

/** The checkpoints: how many, the newest, and the files that cannot be used (and why); `error` when the folder cannot be read. */
async function checkpointStatus(ctx: ApiContext): Promise<Record<string, unknown>> {
  const catalogue = ctx.checkpointer.catalogue;
  // Status must answer when the FileVault does not (that is when an operator needs it most).
  let entries: Awaited<ReturnType<typeof catalogue.list>> | null = null;
  let error: string | null = null;
  try {
    entries = await catalogue.list();
  } catch (err) {
    error = `cannot read the checkpoint folder (${(err as Error).message}); is the FileVault mounted?`;
  }
  const newest = entries?.at(-1);
  return {
    error,
    count: entries?.length ?? null,
    newest: newest === undefined ? null : { id: newest.id, scope: newest.manifest.scope, trigger: newest.manifest.trigger, time: newest.manifest.time, seq: newest.manifest.seq, size: newest.size },
    unreadable: [...catalogue.unreadable, ...catalogue.damaged, ...catalogue.changed].map(([id, problem]) => ({ id, problem })),
    neededByJournal: [...ctx.store.restoreReferences.keys()],
    automatic: ctx.auto()?.status() ?? null,
    retention: { keepLast: ctx.config.checkpoint.retention.keepLast, keepWithinMs: ctx.config.checkpoint.retention.keepWithinMs },
    // A restore reading its checkpoint: `checkpointd checkpoint restore` polls this for its progress bar.
    restoring: ctx.checkpointer.restoring,
  };
}

/** Register GET /api/admin/status. */
export function adminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  const getStatus = {
    summary: "The node's status: role, seq, journal, recovery, checkpoints, failover and the cluster view",
    description: 'It answers when the FileVault does not: `data.checkpoints.error` then says why the checkpoint folder cannot be read.',
    tags: ['operations'],
    operationId: 'getStatus',
    answers: { 200: { description: 'the status (docs/API.md names every field)', json: StatusAnswer } },
  };
  app.get('/api/admin/status', { onRequest: admin, schema: getStatus }, async () => {
    const state = ctx.store.state;
    const { scan, replayed } = ctx.store.recovery;
    return {
      href: href(ctx, 'admin', 'status'),
      data: {
        version: ctx.version,
        node: { name: ctx.config.node.name, role: ctx.role(), startedAt: ctx.startedAt, pid: process.pid },
        seq: state.seq,
        spaces: state.spaces().length,
        templates: state.templates().length,
        // A node that does not write the journal (a secondary) has read every record it applied from the
        // FileVault's journal, so all of them are durable there.
        journal: { sync: ctx.config.journal.sync, writing: ctx.store.journalStats !== null, ...(ctx.store.journalStats ?? { lastDurableSeq: state.seq }), olderFiles: ctx.store.olderJournal.status() },
        recovery: { startCheckpointSeq: ctx.store.recovery.baseSeq, replayed, lastSeq: scan.lastSeq, tailCut: scan.cut },
        checkpoints: await checkpointStatus(ctx),
        failover: ctx.failover(),
      },
    };
  });
}
