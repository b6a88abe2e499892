/**
 * `GET|HEAD /metrics`: Prometheus text, unauthenticated like the health
 * endpoints (docs/METRICS.md), so a scraper needs no token. It shows
 * figures, never secrets: no token, key or space id is a label (metrics.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from './context.js';

/** Register /metrics (HEAD comes with GET). */
export function metricsRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const schema = {
    summary: 'Prometheus metrics (text exposition format)',
    tags: ['metrics'],
    operationId: 'metrics',
    answers: { 200: { description: 'the metrics (docs/METRICS.md)', content: { 'text/plain': { schema: { type: 'string' } } }, headers: { 'Cache-Control': { description: 'no-store', schema: { type: 'string' } } } } },
  };
  app.get('/metrics', { schema }, async (_request, reply) => {
    const text = await ctx.metrics.scrape();
    return reply.header('cache-control', 'no-store').type(ctx.metrics.contentType).send(text);
  });
}
