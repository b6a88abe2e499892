/**
 * The HTTP server. Fastify was chosen for JSON-schema validation built in
 * (ajv), its speed, and steady upkeep (docs/ARCHITECTURE.md "Libraries, and
 * why"). Its own logger is off: requests are logged through winston, without
 * headers, so no secret leaks.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { adminRoutes } from './admin-routes.js';
import { checkpointImportRoute } from './checkpoint-import.js';
import { checkpointRoutes } from './checkpoint-routes.js';
import { answerClientError } from './client-error.js';
import { failoverRoutes } from './failover-routes.js';
import { ChallengeError } from './auth.js';
import type { ApiContext } from './context.js';
import { healthAnswered, HealthPaths, healthRoutes } from './health-routes.js';
import { metricsRoutes } from './metrics-routes.js';
import { objectRoutes } from './object-routes.js';
import { parseJsonBody } from './json-body.js';
import { openApiRoute, recordRoutes } from './openapi.js';
import { ProblemContentType, toProblem } from './problem.js';
import { spaceRoutes } from './space-routes.js';
import { templateRoutes } from './template-routes.js';
import { MaxParamLength, MaxUrlLength, RequestTimeoutMs } from '../config/index.js';

/**
 * Build the Fastify app with every route; the caller listens. With `tls` (the
 * `api.tls` certificate and key, already read) it serves HTTPS, and the
 * failover heartbeat on the same server is wss.
 */
export function buildServer(ctx: ApiContext, tls: { cert: Buffer; key: Buffer } | null = null): FastifyInstance {
  const app = Fastify({
    logger: false,
    https: tls === null ? null : { cert: tls.cert, key: tls.key },
    bodyLimit: ctx.config.api.bodyLimitBytes,
    requestTimeout: RequestTimeoutMs,
    routerOptions: { maxParamLength: MaxParamLength },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    clientErrorHandler: answerClientError,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    schemaErrorFormatter: (errors, dataVar) => {
      const first = errors[0];
      const where = `${dataVar}${first?.instancePath.replaceAll('/', '.') ?? ''}`;
      const detail = first?.keyword === 'additionalProperties'
        ? `${where} has an unknown property ${JSON.stringify((first.params as { additionalProperty?: string }).additionalProperty)}`
        : `${where} ${first?.message ?? 'is invalid'}`;
      return new Error(detail);
    },
    // Errors the router raises before any route runs (a bad percent-encoding): problem+json too.
    frameworkErrors: (err, request, reply) => {
      const path = request.url.split('?')[0];
      const { problem } = toProblem(err, path);
      void (reply as FastifyReply).code(problem.status).type(ProblemContentType).send(problem);
    },
  });

  // Before any route: every route is recorded for the API description (and refused if it is not described).
  const routes = recordRoutes(app);

  // JSON only (Fastify's text/plain parser would store any text): 415 for anything else.
  // Our own JSON parser, so that a refusal says what was wrong and where.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    done(null, parseJsonBody(body as string));
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.url.length > MaxUrlLength) {
      await reply.code(414).type(ProblemContentType).send(toProblem({ statusCode: 414, message: `the URL is longer than ${MaxUrlLength} characters` }).problem);
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const status = reply.statusCode;
    const refused = status === 401 || status === 403;
    // The route's template, never the URL: a label per URL would grow without bound.
    ctx.metrics.requestAnswered(request.method, request.routeOptions.url, status, reply.elapsedTime);
    if (refused && request.authFailure !== undefined) ctx.metrics.authFailed(request.authFailure);
    // Health answers (a 503 is an answer there) at debug, a change of one at info.
    const health = HealthPaths.has(request.routeOptions.url ?? '');
    if (health) healthAnswered(ctx, request, status);
    // Successful requests log at debug; skip building the line at all when debug is off (the hot path).
    if ((health || (status < 500 && !refused)) && !ctx.logger.isDebugEnabled()) return;
    const line = { method: request.method, path: request.url.split('?')[0], status, ms: Math.round(reply.elapsedTime), principal: request.principal?.name };
    if (health) ctx.logger.debug('request', line);
    else if (status >= 500) ctx.logger.error('request', line);
    else if (refused) ctx.logger.warn('request refused', line);
    else ctx.logger.debug('request', line);
  });

  app.setErrorHandler(async (err, request, reply) => {
    const { problem, internal } = toProblem(err, request.url.split('?')[0]);
    if (internal) ctx.logger.error('request failed', { method: request.method, path: problem.instance, err });
    if (err instanceof ChallengeError) void reply.header('www-authenticate', err.challenge);
    return reply.code(problem.status).type(ProblemContentType).send(problem);
  });

  app.setNotFoundHandler(async (request, reply) => {
    const { problem } = toProblem({ statusCode: 404, message: `no route ${request.method} ${request.url.split('?')[0]}; see docs/API.md` }, request.url.split('?')[0]);
    return reply.code(404).type(ProblemContentType).send(problem);
  });

  healthRoutes(app, ctx);
  metricsRoutes(app, ctx);
  templateRoutes(app, ctx);
  spaceRoutes(app, ctx);
  objectRoutes(app, ctx);
  adminRoutes(app, ctx);
  checkpointRoutes(app, ctx);
  checkpointImportRoute(app, ctx);
  failoverRoutes(app, ctx);
  openApiRoute(app, ctx, routes);
  return app;
}
