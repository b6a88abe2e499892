/**
 * Health endpoints for load balancers and systemd, unauthenticated. As in
 * Patroni's REST API, the status code is the answer; the body is a courtesy.
 *
 * A load balancer asks several times a second, so each answer is logged at
 * debug only (a 503 here is an answer, not a failure); a change of an
 * endpoint's answer (a standby that becomes primary, a primary that is
 * fenced) is logged once at info, with the role and seq behind it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import { instantNow, type Instant } from '../clock.js';
import type { ApiContext } from './context.js';
import { HealthAnswer } from './schemas.js';

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

/**
 * Answer `holds` as it is at one instant, named in the body's `at`. An answer
 * can arrive late — written just before the process was paused (SIGSTOP, a
 * suspended VM) and delivered when it wakes — so `at` says when it was true:
 * a 200 from `/primary` means the lease was valid at `at`, not on arrival.
 * A load balancer's check timeout (HAProxy: `timeout check`, else `inter`)
 * discards such an answer.
 */
function answer(reply: FastifyReply, holds: (at: Instant) => boolean, ctx: ApiContext): FastifyReply {
  const at = instantNow();
  const ok = holds(at);
  return reply
    .code(ok ? 200 : 503)
    .header('cache-control', 'no-store')
    .send({ status: ok ? 'ok' : 'unavailable', role: ctx.failover()?.role ?? ctx.role(), seq: ctx.store.state.seq, at: new Date(at.wallMs).toISOString() });
}

/** A health route's description: 200 when `when`, else 503 (`always`: never 503 from here). */
function describe(operationId: string, when: string, always = false): { schema: FastifySchema } {
  const headers = { 'Cache-Control': { description: 'no-store', schema: { type: 'string' } } };
  const not = { 503: { description: 'not so: the status code is the answer (not an error)', json: HealthAnswer, headers } };
  return {
    schema: {
      summary: `200 when ${when}`,
      tags: ['health'],
      operationId,
      answers: { 200: { description: when, json: HealthAnswer, headers }, ...(always ? {} : not) },
    },
  };
}

/** Register /health, /liveness, /readiness, /primary and /standby (GET and HEAD). */
export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  // The process is up and its event loop answers.
  app.get('/liveness', describe('liveness', 'the process answers (restart it if not)', true), async (_request, reply) => answer(reply, () => true, ctx));
  // Serving requests (not starting, not shutting down).
  app.get('/health', describe('health', 'it serves requests (not starting, not shutting down)'), async (_request, reply) => answer(reply, () => ctx.serving(), ctx));
  const primary = (at: Instant): boolean => ctx.serving() && ctx.role() === 'primary' && ctx.store.refusalAt(at) === null;
  // A secondary that has read the journal to its end lately: it could take over with no long replay.
  const standby = (): boolean => ctx.serving() && ctx.failoverManager()?.caughtUp() === true;
  // Ready to take its role's traffic: a primary holding the lease, or a caught-up secondary (a fenced
  // primary, or a secondary that cannot read the journal, is not).
  app.get('/readiness', describe('readiness', '/primary or /standby would answer 200: the node can do its role\'s work'), async (_request, reply) => answer(reply, (at) => primary(at) || standby(), ctx));
  // 200 only on the primary holding the lease at `at`: where writes go.
  app.get('/primary', describe('primary', 'it is the primary and holds the lease: where writes go'), async (_request, reply) => answer(reply, primary, ctx));
  app.get(
    '/standby',
    describe('standby', 'it is a secondary that has read the journal to its end lately, with nothing it failed to apply, through a FileVault whose reads are timely: it could take over at once, and safely'),
    async (_request, reply) => answer(reply, standby, ctx),
  );
}
