/**
 * Health endpoints for load balancers and systemd, unauthenticated. As in
 * Patroni's REST API, the status code is the answer; the body is a courtesy.
 *
 * A load balancer asks several times a second, so each answer is logged at
 * debug only (a 503 here is an answer, not a failure); a change of an
 * endpoint's answer (a standby that becomes primary, a primary that is
 * fenced) is logged once at info, with the role and seq behind it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from './context.js';

/** The health routes: their answers are logged at debug, and only a change at info. */
export const HealthPaths: ReadonlySet<string> = new Set(['/liveness', '/health', '/readiness', '/primary', '/standby']);

/** The last status each health endpoint answered, per server. */
const lastAnswers = new WeakMap<ApiContext, Map<string, number>>();

/** Log a health answer at info when it differs from that endpoint's previous one. */
export function healthAnswered(ctx: ApiContext, request: FastifyRequest, status: number): void {
  const path = request.routeOptions.url ?? '';
  let last = lastAnswers.get(ctx);
  if (last === undefined) lastAnswers.set(ctx, (last = new Map<string, number>()));
  const before = last.get(path);
  last.set(path, status);
  if (before === undefined || before === status) return;
  ctx.logger.info('health answer changed', { path, from: before, to: status, role: ctx.failover()?.role ?? ctx.role(), seq: ctx.store.state.seq });
}

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
