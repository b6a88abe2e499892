/**
 * Health endpoints for load balancers and systemd, unauthenticated. As in
 * Patroni's REST API, the status code is the answer; the body is a courtesy.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiContext } from './context.js';

function answer(reply: FastifyReply, ok: boolean, ctx: ApiContext): FastifyReply {
  return reply
    .code(ok ? 200 : 503)
    .header('cache-control', 'no-store')
    .send({ status: ok ? 'ok' : 'unavailable', role: ctx.failover()?.role ?? ctx.role(), seq: ctx.store.state.seq });
}

/** Register /health, /liveness, /readiness, /primary and /standby (GET and HEAD). */
export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  // The process is up and its event loop answers.
  app.get('/liveness', async (_request, reply) => answer(reply, true, ctx));
  // Serving requests (not starting, not shutting down).
  app.get('/health', async (_request, reply) => answer(reply, ctx.serving(), ctx));
  const primary = (): boolean => ctx.serving() && ctx.role() === 'primary' && ctx.store.writable;
  // A secondary that has read the journal to its end lately: it could take over with no long replay.
  const standby = (): boolean => ctx.serving() && ctx.failoverManager()?.caughtUp() === true;
  // Ready to take its role's traffic: a primary holding the lease, or a caught-up secondary (a fenced
  // primary, or a secondary that cannot read the journal, is not).
  app.get('/readiness', async (_request, reply) => answer(reply, primary() || standby(), ctx));
  // 200 only on the primary holding the lease: where writes go.
  app.get('/primary', async (_request, reply) => answer(reply, primary(), ctx));
  app.get('/standby', async (_request, reply) => answer(reply, standby(), ctx));
}
