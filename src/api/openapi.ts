/**
 * The API description: `GET /api/openapi.json`, an OpenAPI 3.1 document made
 * from the routes themselves. An `onRoute` hook records every route as
 * Fastify registers it, with its options; the document is built from those
 * once, at the first request (every route is registered by then).
 *
 * Each route carries its description in its own `schema`: the parts Fastify
 * acts on (`params`, `body`: validated before the handler runs) and parts it
 * ignores, read only here — `summary`, `description`, `tags` and
 * `operationId` (as @fastify/swagger reads them), `parameters` and
 * `requestBody` for what the handler checks itself (download headers, the
 * free-form query, a body whose refusals the handler words), and `answers`,
 * the answers by status. Answers are deliberately not Fastify's
 * `schema.response`: with one, Fastify serialises the answer with
 * fast-json-stringify, which drops every property the schema does not name
 * and writes them in the schema's order, so a description would change what
 * the API answers. The integration test checks real answers against the
 * document instead.
 *
 * Who may call a route is read from its `onRequest` role check (auth.ts), and
 * the answers every route of a kind shares (401, 403, 413, 415, and any other
 * error as problem+json) are added here. Fastify's automatic HEAD route of a
 * GET is folded into the GET; a route registered for HEAD itself (a
 * download) gets its own `head` operation. A route without a summary,
 * operationId, tag or answers is refused when it is registered: every route
 * is described.
 */
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { ApiContext } from './context.js';
import { ProblemContentType } from './problem.js';
import { Components, type JsonSchema } from './schemas.js';
import { Roles, type Role } from './token-store.js';

/** A response header, as the description shows it. */
export interface HeaderDoc {
  description: string;
  schema: JsonSchema;
}

/** One answer of a route. */
export interface AnswerDoc {
  description: string;
  /** A JSON body (`application/json`). */
  json?: JsonSchema;
  /** Bodies of other media types; `{}` for one without a JSON schema (a ZIP). */
  content?: Readonly<Record<string, { schema?: JsonSchema }>>;
  headers?: Readonly<Record<string, HeaderDoc>>;
}

/** A route's answers by status; a string is a problem+json error answer with that description. */
export type Answers = Readonly<Partial<Record<number, AnswerDoc | string>>>;

/** A request parameter the handler reads itself (OpenAPI's Parameter Object). */
export interface ParameterDoc {
  name: string;
  in: 'query' | 'header';
  description: string;
  required?: boolean;
  schema: JsonSchema;
  style?: 'form';
  explode?: boolean;
}

/** A request body the handler reads and checks itself (OpenAPI's Request Body Object). */
export interface RequestBodyDoc {
  description: string;
  required: boolean;
  content: Readonly<Record<string, { schema?: JsonSchema }>>;
}

declare module 'fastify' {
  interface FastifySchema {
    /** One line: what the route does. */
    summary?: string;
    /** More, when one line is not enough (markdown). */
    description?: string;
    /** Its group in the description, one of {@link Tags}. */
    tags?: readonly string[];
    /** A unique name for the operation (client generators name functions after it). */
    operationId?: string;
    /** Request parameters the handler reads itself: for the description only. */
    parameters?: readonly ParameterDoc[];
    /** A request body the handler reads itself: for the description only (one Fastify validates is `body`). */
    requestBody?: RequestBodyDoc;
    /** The answers by status: for the description only (not `response`: see openapi.ts). */
    answers?: Answers;
  }
}

/** A route as Fastify registered it. */
export interface RouteRecord {
  method: string | readonly string[];
  url: string;
  schema: FastifySchema | undefined;
  /** The roles its role check lets through; null: no token needed. */
  roles: readonly Role[] | null;
}

/** The groups of operations, in the order the description lists them. */
export const Tags: readonly { name: string; description: string }[] = [
  { name: 'templates', description: 'Template versions: the indexes of the spaces made from them.' },
  { name: 'spaces', description: 'Spaces, each made from a template version.' },
  { name: 'objects', description: 'Objects of a space: put, get, delete, query by indexed field, transactions.' },
  { name: 'checkpoints', description: "The vendor checkpoint API (ShareAspace's), and import, which is not part of it. collection-admin tokens only." },
  { name: 'operations', description: 'Status and failover operations. collection-admin tokens only.' },
  { name: 'health', description: 'For load balancers and systemd, no token: the status code is the answer, the body a courtesy.' },
  { name: 'metrics', description: 'Prometheus metrics, no token (docs/METRICS.md).' },
  { name: 'description', description: 'This document, no token.' },
];

/** The `Location` header of a 201 (or 200) that names the resource. */
export const LocationHeader: HeaderDoc = { description: 'the URL of the resource (built from api.publicUrl)', schema: { type: 'string', format: 'uri' } };

/** The refusals of a request that writes, when the node or its storage cannot take it; nothing was changed. */
export const WriteRefusals = {
  503: 'this node does not take writes now (a secondary, fenced, starting), or the FileVault cannot be used (permission denied, read-only, missing, an I/O error): the detail names the path and the fix; nothing was changed',
  507: 'the file system is full; nothing was changed',
} as const;

/** The refusals of a request that reads the FileVault (checkpoint files), when it cannot be read. */
export const ReadRefusals = {
  503: 'the FileVault cannot be read (permission denied, missing, an I/O error): the detail names the path and the fix',
} as const;

const ComponentNames = new Map<object, string>(Object.entries(Components).map(([name, schema]) => [schema, name]));

const problemContent = { [ProblemContentType]: { schema: { $ref: '#/components/schemas/Problem' } } };

/** The answers shared by every route of a kind, under #/components/responses. */
const SharedResponses: Record<string, unknown> = {
  Unauthorized: {
    description: 'no token, a malformed Authorization header, or a token that is not valid',
    headers: { 'WWW-Authenticate': { description: 'the Bearer challenge (RFC 6750), with error="invalid_token" or "invalid_request" when a token was sent', schema: { type: 'string' } } },
    content: problemContent,
  },
  Forbidden: { description: "the token's role may not use this route", content: problemContent },
  PayloadTooLarge: { description: 'the body is larger than api.bodyLimitBytes', content: problemContent },
  UnsupportedMediaType: { description: 'the body is not sent as one of the media types described', content: problemContent },
  Error: {
    description:
      'any other error, as problem+json: 414 (a URL over 8192 characters), 500 (the daemon log has the details), and for bytes that are not HTTP/1.1 a 400, 408 or 431 after which the connection closes',
    content: problemContent,
  },
};

const responseRef = (name: string): { $ref: string } => ({ $ref: `#/components/responses/${name}` });

/** `schema` for the document: every shape named in {@link Components} becomes a reference to it (except at `root`). */
function docSchema(schema: unknown, root = false): unknown {
  if (Array.isArray(schema)) return schema.map((item) => docSchema(item));
  if (schema === null || typeof schema !== 'object') return schema;
  const name = ComponentNames.get(schema);
  if (name !== undefined && !root) return { $ref: `#/components/schemas/${name}` };
  return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, docSchema(value)]));
}

/** `/api/space/:id` as `/api/space/{id}`, and the parameter names in order. */
function openApiPath(url: string): { path: string; names: string[] } {
  const names: string[] = [];
  const path = url
    .split('/')
    .map((segment) => {
      if (!segment.startsWith(':')) return segment;
      const name = segment.slice(1);
      if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) throw new Error(`route ${url}: parameter ${segment} is not a plain name; the API description cannot show it`);
      names.push(name);
      return `{${name}}`;
    })
    .join('/');
  return { path, names };
}

function answer(doc: AnswerDoc | string): unknown {
  if (typeof doc === 'string') return { description: doc, content: problemContent };
  const content = { ...(doc.json === undefined ? {} : { 'application/json': { schema: doc.json } }), ...doc.content };
  return {
    description: doc.description,
    ...(doc.headers === undefined ? {} : { headers: docSchema(doc.headers) }),
    ...(Object.keys(content).length === 0 ? {} : { content: docSchema(content) }),
  };
}

/** Does `schema` accept JSON null (a body that may be left out)? */
function allowsNull(schema: unknown): boolean {
  const type = (schema as { type?: unknown } | null)?.type;
  return type === 'null' || (Array.isArray(type) && type.includes('null'));
}

/** The operation for one method of `route` (the GET's description serves a HEAD, without bodies). */
function operation(route: RouteRecord, names: string[], head: boolean): Record<string, unknown> {
  const schema = route.schema!;
  const properties = (schema.params as { properties?: Record<string, { description?: string }> } | undefined)?.properties ?? {};
  const parameters: unknown[] = names.map((name) => {
    const property = properties[name];
    if (property === undefined) throw new Error(`route ${route.url}: parameter ${name} has no schema in schema.params`);
    const { description, ...rest } = property;
    return { name, in: 'path', required: true, ...(description === undefined ? {} : { description }), schema: docSchema(rest) };
  });
  for (const p of schema.parameters ?? []) parameters.push({ ...p, schema: docSchema(p.schema) });

  let requestBody: unknown;
  if (schema.body !== undefined && schema.requestBody !== undefined) throw new Error(`route ${route.url}: both body and requestBody; give one`);
  if (schema.body !== undefined) requestBody = { required: !allowsNull(schema.body), content: { 'application/json': { schema: docSchema(schema.body) } } };
  if (schema.requestBody !== undefined) requestBody = { ...schema.requestBody, content: docSchema(schema.requestBody.content) };
  const jsonBody = requestBody !== undefined && 'application/json' in (requestBody as { content: object }).content;

  const responses: Record<string, unknown> = {};
  for (const [status, doc] of Object.entries(schema.answers!)) {
    if (doc === undefined) continue;
    const described = answer(doc) as { description: string; headers?: Record<string, unknown>; content?: unknown };
    responses[status] = head ? { description: described.description, ...(described.headers === undefined ? {} : { headers: described.headers }) } : described;
  }
  if (route.roles !== null) {
    responses['401'] ??= responseRef('Unauthorized');
    if (Roles.some((role) => !route.roles!.includes(role))) responses['403'] ??= responseRef('Forbidden');
  }
  if (jsonBody) {
    responses['400'] ??= { description: 'the body is not valid JSON, or not what is described', content: problemContent };
    responses['413'] ??= responseRef('PayloadTooLarge');
  }
  if (requestBody !== undefined) responses['415'] ??= responseRef('UnsupportedMediaType');
  responses.default = responseRef('Error');

  const who = route.roles === null ? 'No token.' : `Token: ${route.roles.join(' or ')}.`;
  const operationId = head ? `head${schema.operationId!.charAt(0).toUpperCase()}${schema.operationId!.slice(1)}` : schema.operationId!;
  const summary = head ? `The headers of: ${schema.summary!.charAt(0).toLowerCase()}${schema.summary!.slice(1)}` : schema.summary!;
  const body = head ? 'The headers a GET would answer, Content-Length included (also with Range), and no body.' : schema.description;
  return {
    operationId,
    summary,
    description: body === undefined ? who : `${body}\n\n${who}`,
    tags: [...schema.tags!],
    security: route.roles === null ? [] : [{ bearerAuth: [...route.roles] }],
    ...(parameters.length === 0 ? {} : { parameters }),
    ...(requestBody === undefined || head ? {} : { requestBody }),
    responses,
  };
}

const methodsOf = (method: string | readonly string[]): readonly string[] => (typeof method === 'string' ? [method] : method);

/** Refuse, at registration, a route the description would not cover. */
function checkDescribed(route: RouteOptions): void {
  const methods = methodsOf(route.method);
  const s = route.schema;
  const missing = [
    s?.summary === undefined ? 'summary' : null,
    s?.operationId === undefined ? 'operationId' : null,
    s?.tags === undefined || s.tags.length === 0 || !s.tags.every((t) => Tags.some((tag) => tag.name === t)) ? 'tags (from Tags in openapi.ts)' : null,
    s?.answers === undefined || !Object.keys(s.answers).some((status) => status.startsWith('2') || status.startsWith('3')) ? 'answers (with a success)' : null,
  ].filter((m) => m !== null);
  if (missing.length > 0) throw new Error(`route ${methods.join('|')} ${route.url} lacks ${missing.join(', ')} in its schema; every route is described in GET /api/openapi.json (src/api/openapi.ts)`);
}

/** The role check among a route's onRequest hooks, if it has one. */
function rolesOf(route: RouteOptions): readonly Role[] | null {
  const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
  for (const hook of hooks as unknown[]) {
    const roles: unknown = (hook as { roles?: unknown }).roles;
    if (Array.isArray(roles)) return roles as readonly Role[];
  }
  return null;
}

/** Record every route of `app` as it is registered (call before any route is added); refuses one that is not described. */
export function recordRoutes(app: FastifyInstance): RouteRecord[] {
  const routes: RouteRecord[] = [];
  app.addHook('onRoute', (route) => {
    checkDescribed(route);
    routes.push({ method: route.method, url: route.url ?? route.path, schema: route.schema, roles: rolesOf(route) });
  });
  return routes;
}

/** The OpenAPI 3.1 document of `routes`. */
export function openApiDocument(routes: readonly RouteRecord[], info: { version: string; serverUrl: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const ids = new Set<string>();
  for (const route of routes) {
    const methods = methodsOf(route.method);
    // Fastify's automatic HEAD route of a GET: folded into the GET (every GET answers HEAD).
    if (route.method === 'HEAD' && routes.some((r) => r.url === route.url && methodsOf(r.method).includes('GET'))) continue;
    const { path, names } = openApiPath(route.url);
    const item = (paths[path] ??= {});
    for (const method of methods) {
      const key = method.toLowerCase();
      if (item[key] !== undefined) throw new Error(`${method} ${path} is registered twice`);
      const op = operation(route, names, method === 'HEAD');
      const id = op.operationId as string;
      if (ids.has(id)) throw new Error(`operationId ${id} is used twice`);
      ids.add(id);
      item[key] = op;
    }
  }
  return {
    openapi: '3.1.1',
    info: {
      title: 'checkpointd API',
      version: info.version,
      description: [
        'The HTTP API of a checkpointd node (docs/API.md has the prose). Paths are absolute: the API under `/api`, health checks and metrics at the root.',
        'Errors are `application/problem+json` with a `detail` that says what to do. Every GET also answers HEAD (the headers, no body); the download routes list HEAD themselves.',
        'A 503 answered while the node shuts down comes from Fastify itself, as `application/json`.',
        'Not described here: the failover heartbeat, a WebSocket at `/api/failover` that only nodes use (cluster token; docs/ARCHITECTURE.md).',
      ].join('\n\n'),
    },
    ...(info.serverUrl === '' ? {} : { servers: [{ url: info.serverUrl, description: 'this node (api.publicUrl)' }] }),
    tags: Tags,
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(Components).map(([name, schema]) => [name, docSchema(schema, true)])),
      responses: SharedResponses,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'Authorization: Bearer TOKEN (docs/SECURITY.md). An operation lists the roles that may call it: collection-admin (everything) or member (data only).',
        },
      },
    },
  };
}

/** Register GET /api/openapi.json: no token, like the health checks and /metrics (it describes the API, it holds no data). */
export function openApiRoute(app: FastifyInstance, ctx: ApiContext, routes: readonly RouteRecord[]): void {
  let text: string | null = null;
  app.get(
    '/api/openapi.json',
    {
      schema: {
        summary: 'This document: the API as OpenAPI 3.1',
        description: 'Made from the routes themselves at the first request, so every route the daemon serves is in it.',
        tags: ['description'],
        operationId: 'getOpenApiDocument',
        answers: {
          200: {
            description: 'the OpenAPI 3.1 document',
            json: { type: 'object', required: ['openapi', 'info', 'paths'], properties: { openapi: { type: 'string', pattern: '^3\\.1\\.' }, info: { type: 'object' }, paths: { type: 'object' } } },
          },
        },
      },
    },
    async (_request, reply) => {
      text ??= JSON.stringify(openApiDocument(routes, { version: ctx.version, serverUrl: ctx.publicUrl() }));
      return reply.header('cache-control', 'no-cache').type('application/json; charset=utf-8').send(text);
    },
  );
}
