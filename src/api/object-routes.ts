/** Objects: put, get, delete, query by indexed field, and transactions (any token). */
import type { FastifyInstance } from 'fastify';
import { DefaultQueryLimit, MaxQueryLimit } from '../config/index.js';
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

/** `limit` of a query page: a whole number from 1 to MaxQueryLimit. */
function queryLimit(text: string): number {
  const n = /^[0-9]{1,6}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MaxQueryLimit)) throw new BadRequestError(`limit ${JSON.stringify(text)} is not valid: give a whole number from 1 to ${MaxQueryLimit} (objects per page; ${DefaultQueryLimit} when not given)`);
  return n;
}

/**
 * The cursor of the page after `key`: opaque to clients (base64url of a small
 * JSON object), so that what it holds may change without breaking their URLs.
 */
function cursorFor(key: string): string {
  return Buffer.from(JSON.stringify({ after: key })).toString('base64url');
}

/** The key a cursor continues after; BadRequestError for one this API did not make. */
function cursorKey(cursor: string): string {
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error('not base64url');
    return validateObjectKey((JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { after?: unknown } | null)?.after);
  } catch {
    throw new BadRequestError(`cursor ${JSON.stringify(cursor.slice(0, 80))} is not one this API gave out: follow the \`next\` URL of the previous page as it is, or ask again without cursor for the first page`);
  }
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
    const existed = ctx.store.holds(id, key);
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
      'A value matches by its text, so `?n=5` matches 5 and "5". Matches are sorted by key and come a page at a time: `limit` objects (1,000 when not given, at most 10,000); ' +
      'when more may follow, the answer has `next` (also sent as a `Link` header with rel="next"): the URL of the next page, whose `cursor` continues after the last key of this one. ' +
      'Pages read the store as it is when each is asked for: an object committed meanwhile shows on a later page when its key comes after the cursor; no key is answered twice. ' +
      '`limit` and `cursor` are paging parameters, never field conditions.',
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
      { name: 'limit', in: 'query', description: `objects in this page: 1 to ${MaxQueryLimit} (${DefaultQueryLimit} when not given)`, required: false, schema: { type: 'integer', minimum: 1, maximum: MaxQueryLimit } },
      { name: 'cursor', in: 'query', description: 'where this page starts: the `cursor` of the previous answer\'s `next` URL, as it is', required: false, schema: { type: 'string' } },
    ],
    answers: {
      200: {
        description: 'one page of the matching objects, sorted by key',
        json: QueryAnswer,
        headers: { Link: { description: 'when more may follow: `<URL of the next page>; rel="next"` (the answer\'s `next`)', schema: { type: 'string' } } },
      },
      400: 'the space id is not valid, a field is not indexed by the space, a field is given more than once, `limit` is not a whole number in range, or `cursor` is not one this API gave out',
      404: 'no such space',
    },
  } as const;
  app.get<{ Params: { id: string }; Querystring: Record<string, string | string[]> }>('/api/space/:id/object', { onRequest: anyone, schema: queryObjects }, async (request, reply) => {
    const id = validateSpaceId(request.params.id);
    const filter: Record<string, string> = {};
    // The paging parameters as given, for the links: the next page keeps `limit` and moves `cursor`.
    const given: { limit?: string; cursor?: string } = {};
    let limit = DefaultQueryLimit;
    let after: string | undefined;
    for (const [field, value] of Object.entries(request.query)) {
      if (typeof value !== 'string') throw new BadRequestError(`query field ${field} is given more than once; give each field once (fields combine with AND)`);
      if (field === 'limit') [limit, given.limit] = [queryLimit(value), value];
      else if (field === 'cursor') [after, given.cursor] = [cursorKey(value), value];
      else filter[field] = value;
    }
    const state = ctx.store.state;
    requireSpace(state, id);
    // One more than the page: whether a next page exists, without a count.
    const matches: { key: string; text: string }[] = [];
    for (const match of state.queryMatches(id, filter, after)) {
      matches.push(match);
      if (matches.length > limit) break;
    }
    const more = matches.length > limit;
    if (more) matches.length = limit;
    const base = href(ctx, 'space', id, 'object');
    const page = (extra: Record<string, string>): string => {
      const query = new URLSearchParams({ ...filter, ...extra }).toString();
      return base + (query === '' ? '' : `?${query}`);
    };
    const head: Record<string, string> = { href: page(given) };
    if (more) {
      head.next = page({ ...given, cursor: cursorFor(matches.at(-1)!.key) });
      void reply.header('Link', `<${head.next}>; rel="next"`);
    }
    // The stored texts spliced in; a large answer a slice at a time, so that it never holds the main thread (health, heartbeat) for long.
    const body = jsonWithArray(head, 'data', matches, ({ key, text }) => `{"key":${JSON.stringify(key)},"data":${text}}`);
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
