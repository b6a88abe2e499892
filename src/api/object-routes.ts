/** Objects: put, get, delete, query by indexed field, and transactions (any token). */
import type { FastifyInstance } from 'fastify';
import { BadRequestError, NotFoundError } from '../errors.js';
import { validateObjectKey, validateSpaceId, type Json, type TxOp } from '../store/index.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { jsonWithArray } from './json-stream.js';
import { TransactionBody } from './schemas.js';
import { requireSpace } from './space-routes.js';

interface ObjectParams {
  id: string;
  key: string;
}

/** Register the object and transaction routes. */
export function objectRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const anyone = requireRole(ctx.tokens, ['collection-admin', 'member']);
  const params = (p: ObjectParams): { id: string; key: string } => ({ id: validateSpaceId(p.id), key: validateObjectKey(p.key) });

  app.put<{ Params: ObjectParams; Body: Json }>('/api/space/:id/object/:key', { onRequest: anyone }, async (request, reply) => {
    const { id, key } = params(request.params);
    if (request.body === undefined) throw new BadRequestError('the request body is empty; send the object as JSON with Content-Type: application/json');
    const existed = ctx.store.state.space(id) !== undefined && ctx.store.state.getObject(id, key) !== undefined;
    const { seq } = await ctx.store.commit({ type: 'commit', space: id, ops: [{ op: 'put', key, value: request.body }] });
    return reply.code(existed ? 200 : 201).header('location', href(ctx, 'space', id, 'object', key)).send({ key, seq });
  });

  app.get<{ Params: ObjectParams }>('/api/space/:id/object/:key', { onRequest: anyone }, async (request) => {
    const { id, key } = params(request.params);
    const state = ctx.store.state;
    requireSpace(state, id);
    const value = state.getObject(id, key);
    if (value === undefined) throw new NotFoundError(`object ${key} does not exist in space ${id}`);
    return { href: href(ctx, 'space', id, 'object', key), data: value };
  });

  app.delete<{ Params: ObjectParams }>('/api/space/:id/object/:key', { onRequest: anyone }, async (request) => {
    const { id, key } = params(request.params);
    const state = ctx.store.state;
    requireSpace(state, id);
    if (state.getObject(id, key) === undefined) throw new NotFoundError(`object ${key} does not exist in space ${id}`);
    const { seq } = await ctx.store.commit({ type: 'commit', space: id, ops: [{ op: 'delete', key }] });
    return { key, seq };
  });

  app.get<{ Params: { id: string }; Querystring: Record<string, string | string[]> }>('/api/space/:id/object', { onRequest: anyone }, async (request, reply) => {
    const id = validateSpaceId(request.params.id);
    const filter: Record<string, string> = {};
    for (const [field, value] of Object.entries(request.query)) {
      if (typeof value !== 'string') throw new BadRequestError(`query field ${field} is given more than once; give each field once (fields combine with AND)`);
      filter[field] = value;
    }
    const state = ctx.store.state;
    requireSpace(state, id);
    const matches = state.queryText(id, filter);
    const query = new URLSearchParams(filter).toString();
    const answerHref = href(ctx, 'space', id, 'object') + (query === '' ? '' : `?${query}`);
    // The stored texts spliced in; a large answer a slice at a time, so that it never holds the main thread (health, heartbeat) for long.
    const body = jsonWithArray({ href: answerHref }, 'data', matches, ({ key, text }) => `{"key":${JSON.stringify(key)},"data":${text}}`);
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.post<{ Params: { id: string }; Body: { ops: TxOp[] } }>('/api/space/:id/transaction', { onRequest: anyone, schema: { body: TransactionBody } }, async (request) => {
    const id = validateSpaceId(request.params.id);
    const { seq } = await ctx.store.commit({ type: 'commit', space: id, ops: request.body.ops });
    return { seq };
  });
}
