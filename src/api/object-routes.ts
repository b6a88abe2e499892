/** Objects: put, get, delete, query by indexed field, and transactions (any token). */
import type { FastifyInstance } from 'fastify';
import { BadRequestError, NotFoundError } from '../errors.js';
import { validateObjectKey, validateSpaceId, type Json, type TxOp } from '../store/index.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { jsonWithArray } from './json-stream.js';
import { LocationHeader, WriteRefusals } from './openapi.js';
import { ObjectParams as ObjectParamsSchema, ObjectResource, ObjectWritten, QueryAnswer, SpaceParams, TransactionAnswer, TransactionBody } from './schemas.js';
import { requireSpace } from './space-routes.js';

interface ObjectParams {
  id: string;
  key: string;
}

/** Register the object and transaction routes. */
export function objectRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const anyone = requireRole(ctx.tokens, ['collection-admin', 'member']);
  const params = (p: ObjectParams): { id: string; key: string } => ({ id: validateSpaceId(p.id), key: validateObjectKey(p.key) });

  const putObject = {
    summary: 'Put an object (any JSON), answered once durable',
    description: 'The value is stored as sent: at most api.bodyLimitBytes, nested at most 1,000 levels, without a `__proto__` or `constructor.prototype` key.',
    tags: ['objects'],
    operationId: 'putObject',
    params: ObjectParamsSchema,
    requestBody: { description: 'the object: any JSON', required: true, content: { 'application/json': { schema: {} } } },
    answers: {
      201: { description: 'a new object, durable', json: ObjectWritten, headers: { Location: LocationHeader } },
      200: { description: 'the object replaced, durable', json: ObjectWritten, headers: { Location: LocationHeader } },
      400: 'the space id, the key or the body is not valid (empty, not JSON, too deeply nested, a refused key)',
      404: 'no such space',
      ...WriteRefusals,
    },
  };
  app.put<{ Params: ObjectParams; Body: Json }>('/api/space/:id/object/:key', { onRequest: anyone, schema: putObject }, async (request, reply) => {
    const { id, key } = params(request.params);
    if (request.body === undefined) throw new BadRequestError('the request body is empty; send the object as JSON with Content-Type: application/json');
    const existed = ctx.store.state.space(id) !== undefined && ctx.store.state.getObject(id, key) !== undefined;
    const { seq } = await ctx.store.commit({ type: 'commit', space: id, ops: [{ op: 'put', key, value: request.body }] });
    return reply.code(existed ? 200 : 201).header('location', href(ctx, 'space', id, 'object', key)).send({ key, seq });
  });

  const getObject = {
    summary: 'Get an object',
    tags: ['objects'],
    operationId: 'getObject',
    params: ObjectParamsSchema,
    answers: { 200: { description: 'the object as stored', json: ObjectResource }, 400: 'the space id or the key is not valid', 404: 'no such space or object' },
  };
  app.get<{ Params: ObjectParams }>('/api/space/:id/object/:key', { onRequest: anyone, schema: getObject }, async (request) => {
    const { id, key } = params(request.params);
    const state = ctx.store.state;
    requireSpace(state, id);
    const value = state.getObject(id, key);
    if (value === undefined) throw new NotFoundError(`object ${key} does not exist in space ${id}`);
    return { href: href(ctx, 'space', id, 'object', key), data: value };
  });

  const deleteObject = {
    summary: 'Delete an object, answered once durable',
    tags: ['objects'],
    operationId: 'deleteObject',
    params: ObjectParamsSchema,
    answers: { 200: { description: 'deleted, durable', json: ObjectWritten }, 400: 'the space id or the key is not valid', 404: 'no such space or object', ...WriteRefusals },
  };
  app.delete<{ Params: ObjectParams }>('/api/space/:id/object/:key', { onRequest: anyone, schema: deleteObject }, async (request) => {
    const { id, key } = params(request.params);
    const state = ctx.store.state;
    requireSpace(state, id);
    if (state.getObject(id, key) === undefined) throw new NotFoundError(`object ${key} does not exist in space ${id}`);
    const { seq } = await ctx.store.commit({ type: 'commit', space: id, ops: [{ op: 'delete', key }] });
    return { key, seq };
  });

  const queryObjects = {
    summary: 'Query objects by indexed fields',
    description:
      'Each query field names an indexed field and the value to match (`?type=Part&owner=ann`): the conditions combine with AND; no field answers every object. ' +
      'A value matches by its text, so `?n=5` matches 5 and "5". Matches are sorted by key. A large answer is streamed (chunked), 1,000 objects at a time.',
    tags: ['objects'],
    operationId: 'queryObjects',
    params: SpaceParams,
    parameters: [
      {
        name: 'fields',
        in: 'query',
        description: 'FIELD=VALUE per indexed field, each field at most once',
        required: false,
        style: 'form',
        explode: true,
        schema: { type: 'object', additionalProperties: { type: 'string' } },
      },
    ],
    answers: {
      200: { description: 'the matching objects, sorted by key', json: QueryAnswer },
      400: 'the space id is not valid, a field is not indexed by the space, or a field is given more than once',
      404: 'no such space',
    },
  } as const;
  app.get<{ Params: { id: string }; Querystring: Record<string, string | string[]> }>('/api/space/:id/object', { onRequest: anyone, schema: queryObjects }, async (request, reply) => {
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

  const transaction = {
    summary: 'Put and delete objects of one space, all or nothing, answered once durable',
    tags: ['objects'],
    operationId: 'transaction',
    params: SpaceParams,
    body: TransactionBody,
    answers: {
      200: { description: 'all applied, durable', json: TransactionAnswer },
      400: 'the space id or an operation is not valid (the detail names its position)',
      404: 'no such space',
      409: 'a delete of a key that does not exist at that point: nothing was applied',
      ...WriteRefusals,
    },
  };
  app.post<{ Params: { id: string }; Body: { ops: TxOp[] } }>('/api/space/:id/transaction', { onRequest: anyone, schema: transaction }, async (request) => {
    const id = validateSpaceId(request.params.id);
    const { seq } = await ctx.store.commit({ type: 'commit', space: id, ops: request.body.ops });
    return { seq };
  });
}
