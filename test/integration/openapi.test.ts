/**
 * The API description, `GET /api/openapi.json`, on a real daemon: it holds
 * every route the daemon's Fastify registered (recorded by a hook of this
 * test's own, loaded into the daemon, not by the code that makes the
 * document), it is a valid OpenAPI 3.1 document by an independent validator
 * (@seriousme/openapi-schema-validator, the OpenAPI Initiative's JSON schema
 * of 3.1) and its schemas are valid JSON Schema 2020-12 (ajv), and what the
 * daemon really answers — status, media type, body — is what it describes.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { childEnv, CliPath, DaemonProcess, tempDir, type Answer } from '../helpers/daemon-process.js';

const run = promisify(execFile);

/**
 * Loaded into the daemon with --import: Fastify announces each instance it
 * makes on the `fastify.initialization` diagnostics channel, and an onRoute
 * hook added there sees every route registered after, written one JSON line
 * each to the file CHECKPOINTD_TEST_ROUTES names.
 */
const RouteRecorder = `
import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync } from 'node:fs';
subscribe('fastify.initialization', ({ fastify }) => {
  fastify.addHook('onRoute', (route) => appendFileSync(process.env.CHECKPOINTD_TEST_ROUTES, JSON.stringify({ method: route.method, url: route.url }) + '\\n'));
});
`;

interface Recorded {
  method: string | string[];
  url: string;
}

type Json = Record<string, unknown>;
interface Operation {
  operationId: string;
  tags?: string[];
  security: Record<string, string[]>[];
  parameters?: { name: string; in: string }[];
  responses: Record<string, Json>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; responses: Record<string, Json> };
}

const Methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** `/api/space/:id` as OpenAPI writes it. */
const template = (url: string): string => url.replace(/:([A-Za-z0-9]+)/g, '{$1}');

/** Every Schema Object in `value`: under `schema` keys of parameters, headers and media types, and the components. */
function schemasIn(doc: Document): unknown[] {
  const found: unknown[] = Object.values(doc.components.schemas);
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) {
        if (key === 'schema') found.push(child);
        else walk(child);
      }
    }
  };
  walk(doc.paths);
  walk(doc.components.responses);
  return found;
}

/** Ids for ajv: `#/components/schemas/X` as an absolute URI of its own. */
const Base = 'https://checkpointd.invalid/schemas/';
function rebased(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rebased);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? v.replace('#/components/schemas/', Base) : rebased(v)]),
  );
}

describe('API description (GET /api/openapi.json, real daemon)', function () {
  this.timeout(60_000);
  let d: DaemonProcess;
  let doc: Document;
  let recorded: Recorded[];
  let member: string;
  let work: string;
  const ajv = new Ajv2020({ strict: true, strictTypes: false, validateFormats: false, allErrors: true });
  const validators = new Map<unknown, ValidateFunction>();

  before(async function () {
    work = await tempDir('cpd-openapi-');
    const recorder = path.join(work, 'route-recorder.mjs');
    const routesFile = path.join(work, 'routes.ndjson');
    await fs.writeFile(recorder, RouteRecorder);
    d = await DaemonProcess.start({ env: { NODE_OPTIONS: `--import=${pathToFileURL(recorder).href}`, CHECKPOINTD_TEST_ROUTES: routesFile } });
    member = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'm', '--role', 'member'], { env: childEnv() })).stdout.trim();
    const res = await d.request('GET', '/api/openapi.json', { token: null });
    expect(res.status, res.text).to.equal(200);
    doc = res.body as Document;
    recorded = (await fs.readFile(routesFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Recorded);
    for (const [name, schema] of Object.entries(doc.components.schemas)) ajv.addSchema({ ...(rebased(schema) as object), $id: `${Base}${name}` });
  });
  after(async function () {
    await d?.cleanup();
    await fs.rm(work, { recursive: true, force: true });
  });

  /** The operation for `method` on `path`, and the answer it documents for `status` (a reference followed). */
  function documented(method: string, path: string, status: number): { operation: Operation; response: Json } {
    const item = doc.paths[path];
    // A GET's automatic HEAD is folded into the GET.
    const operation = item?.[method.toLowerCase()] ?? (method === 'HEAD' ? item?.get : undefined);
    expect(operation, `${method} ${path} is in the document`).to.not.equal(undefined);
    let response = operation!.responses[String(status)];
    expect(response, `${method} ${path} documents ${status}`).to.not.equal(undefined);
    const ref = response!.$ref;
    if (typeof ref === 'string') response = doc.components.responses[ref.replace('#/components/responses/', '')];
    return { operation: operation!, response: response! };
  }

  /** Expect `answer` to `method path` to be one the document describes: its status, media type and body. */
  function conforms(method: string, path: string, answer: Answer): void {
    const { response } = documented(method, path, answer.status);
    const content = response.content as Record<string, { schema?: unknown }> | undefined;
    const type = answer.headers.get('content-type')?.split(';')[0]?.trim();
    if (answer.text === '' || method === 'HEAD') {
      if (method !== 'HEAD') expect(content, `${method} ${path} ${answer.status} has no body`).to.equal(undefined);
      return;
    }
    expect(content, `${method} ${path} ${answer.status} documents a body`).to.not.equal(undefined);
    expect(Object.keys(content!), `${method} ${path} ${answer.status}: media type`).to.include(type);
    const schema = content![type!]!.schema;
    if (schema === undefined || type === undefined || !type.endsWith('json')) return;
    let validate = validators.get(schema);
    if (validate === undefined) validators.set(schema, (validate = ajv.compile(rebased(schema) as object)));
    expect(validate(answer.body), `${method} ${path} ${answer.status}: ${ajv.errorsText(validate.errors)}\n${answer.text.slice(0, 500)}`).to.equal(true);
  }

  /** `d.request`, and the answer checked against the document. */
  async function call(method: string, path: string, url: string, options: Parameters<DaemonProcess['request']>[2] = {}): Promise<Answer> {
    const answer = await d.request(method, url, options);
    conforms(method, path, answer);
    return answer;
  }

  it('serves an OpenAPI 3.1 document without a token', async function () {
    const res = await d.request('GET', '/api/openapi.json', { token: null });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    expect(doc.openapi).to.match(/^3\.1\.\d+$/);
    expect((doc as unknown as { info: { version: string } }).info.version).to.equal(((await d.request('GET', '/api/admin/status')).body as { data: { version: string } }).data.version);
  });

  it('holds every route the daemon registered, with its method (an automatic HEAD folded into its GET), and no other', function () {
    expect(recorded.length, 'routes recorded in the daemon').to.be.greaterThan(30);
    const expected = new Set<string>();
    for (const route of recorded) {
      const methods = typeof route.method === 'string' ? [route.method] : route.method;
      const automaticHead = route.method === 'HEAD' && recorded.some((r) => r.url === route.url && (r.method === 'GET' || (Array.isArray(r.method) && r.method.includes('GET'))));
      for (const method of methods) expected.add(`${automaticHead ? 'GET' : method} ${template(route.url)}`);
    }
    const described = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) for (const method of Object.keys(item).filter((k) => Methods.includes(k))) described.add(`${method.toUpperCase()} ${path}`);
    expect([...expected].filter((r) => !described.has(r)), 'registered but not described').to.deep.equal([]);
    expect([...described].filter((r) => !expected.has(r)), 'described but not registered').to.deep.equal([]);
    // The routes this test exercises are among them (a recorder that saw nothing would pass the comparison above).
    for (const r of ['GET /health', 'GET /metrics', 'POST /api/admin/checkpoint/import', 'HEAD /api/collection/checkpoint/{id}/download', 'GET /api/openapi.json']) expect(expected).to.include(r);
  });

  it('is valid OpenAPI 3.1 by @seriousme/openapi-schema-validator, with every reference resolving', async function () {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
    expect(result.errors, JSON.stringify(result.errors, null, 2)).to.equal(undefined);
    expect(result.valid).to.equal(true);
    expect(validator.version).to.equal('3.1');
    expect(() => validator.resolveRefs()).to.not.throw();
  });

  it('refuses a broken document (the validator can fail)', async function () {
    const broken = structuredClone(doc);
    delete broken.paths['/api/space']!.get!.responses['200']!.description;
    const result = await new Validator().validate(broken as unknown as Record<string, unknown>);
    expect(result.valid).to.equal(false);
  });

  it('has Schema Objects that are valid JSON Schema 2020-12 (ajv, strict), path parameters declared, operationIds unique', function () {
    for (const schema of schemasIn(doc)) {
      expect(ajv.validateSchema(rebased(schema) as object), `${JSON.stringify(schema).slice(0, 200)}: ${ajv.errorsText()}`).to.equal(true);
      expect(() => ajv.compile(rebased(schema) as object)).to.not.throw();
    }
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(item)) {
        expect(ids.has(op.operationId), `operationId ${op.operationId} once`).to.equal(false);
        ids.add(op.operationId);
        expect((op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name), `${method} ${path}: path parameters`).to.deep.equal(names);
      }
    }
  });

  it('gives the vendor checkpoint routes exactly the paths docs/API.md names', async function () {
    const api = await fs.readFile(path.resolve(import.meta.dirname, '../../docs/API.md'), 'utf8');
    const vendor: [string, string][] = [
      ['post', '/api/space/{spaceId}/checkpoint'],
      ['get', '/api/space/{spaceId}/checkpoint'],
      ['get', '/api/space/{spaceId}/checkpoint/{id}'],
      ['post', '/api/space/{spaceId}/checkpoint/{id}'],
      ['delete', '/api/space/{spaceId}/checkpoint/{id}'],
      ['get', '/api/space/{spaceId}/checkpoint/{id}/download'],
      ['post', '/api/admin/checkpoint'],
      ['get', '/api/collection/checkpoint'],
      ['get', '/api/collection/checkpoint/{id}'],
      ['post', '/api/collection/checkpoint/{id}'],
      ['delete', '/api/collection/checkpoint/{id}'],
      ['get', '/api/collection/checkpoint/{id}/download'],
    ];
    for (const [method, p] of vendor) {
      expect(doc.paths[p]?.[method], `${method.toUpperCase()} ${p}`).to.not.equal(undefined);
      expect(doc.paths[p]![method]!.security).to.deep.equal([{ bearerAuth: ['collection-admin'] }]);
    }
    // docs/API.md writes each of them (the download and delete rows as …/checkpoint/{id}/download and …/checkpoint/{id}).
    for (const p of ['/api/space/{spaceId}/checkpoint', '/api/admin/checkpoint', '/api/collection/checkpoint', '/api/space/{spaceId}/checkpoint/{id}', '/api/collection/checkpoint/{id}']) expect(api).to.include(p);
  });

  it('documents the download answers: 200, 206, 304, 412, 416 (with Content-Range), and HEAD', function () {
    for (const p of ['/api/collection/checkpoint/{id}/download', '/api/space/{spaceId}/checkpoint/{id}/download']) {
      const get = doc.paths[p]!.get!;
      expect(Object.keys(get.responses)).to.include.members(['200', '206', '304', '412', '416']);
      expect(Object.keys(get.responses['200']!.content as Json)).to.deep.equal(['application/zip']);
      expect(Object.keys(get.responses['206']!.headers as Json)).to.include.members(['Content-Range', 'ETag', 'Last-Modified', 'Content-Length']);
      expect(Object.keys(get.responses['416']!.headers as Json)).to.include('Content-Range');
      expect((get.parameters ?? []).filter((q) => q.in === 'header').map((q) => q.name)).to.include.members(['Range', 'If-Range', 'If-Match', 'If-None-Match', 'If-Modified-Since', 'If-Unmodified-Since']);
      const head = doc.paths[p]!.head!;
      expect(Object.keys(head.responses)).to.include.members(['200', '206', '304', '412', '416']);
      expect(head.responses['200']!.content).to.equal(undefined);
    }
    const importBody = (doc.paths['/api/admin/checkpoint/import']!.post as unknown as { requestBody: { content: Json } }).requestBody;
    expect(Object.keys(importBody.content)).to.have.members(['application/zip', 'application/octet-stream']);
  });

  it('answers every error as the Problem schema, and says who may call each route', function () {
    const problem = { $ref: '#/components/schemas/Problem' };
    let errors = 0;
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, response] of Object.entries(op.responses)) {
          if (!(status === 'default' || Number(status) >= 400)) continue;
          // A health check's 503 is its answer, not an error: the same body as its 200.
          if (op.tags?.includes('health') === true && status === '503') continue;
          const resolved = typeof response.$ref === 'string' ? doc.components.responses[response.$ref.replace('#/components/responses/', '')]! : response;
          errors++;
          if (method === 'head') continue;
          expect(resolved.content, `${method} ${p} ${status}`).to.deep.equal({ 'application/problem+json': { schema: problem } });
        }
        expect(op.responses, `${method} ${p}`).to.have.property('default');
        const open = p === '/api/openapi.json' || !p.startsWith('/api/');
        if (open) expect(op.security, `${method} ${p}`).to.deep.equal([]);
        else {
          expect(op.security, `${method} ${p}`).to.have.length(1);
          expect(op.security[0]!.bearerAuth, `${method} ${p}`).to.be.an('array').that.is.not.empty;
          expect(['collection-admin', 'member'], `${method} ${p}`).to.include.members(op.security[0]!.bearerAuth!);
          expect(op.responses, `${method} ${p}`).to.have.property('401');
        }
      }
    }
    expect(errors).to.be.greaterThan(100);
    expect(doc.paths['/api/admin/status']!.get!.responses).to.have.property('403');
    expect(doc.paths['/api/space/{id}/object/{key}']!.put!.responses).to.not.have.property('403');
  });

  it('describes what the daemon really answers (status, media type, body) along a walk through every route', async function () {
    // Health, metrics, the document itself.
    for (const p of ['/liveness', '/health', '/readiness', '/primary']) expect((await call('GET', p, p, { token: null })).status).to.equal(200);
    expect((await call('GET', '/standby', '/standby', { token: null })).status).to.equal(503);
    expect((await call('HEAD', '/health', '/health', { token: null })).status).to.equal(200);
    expect((await call('GET', '/metrics', '/metrics', { token: null })).status).to.equal(200);
    await call('GET', '/api/openapi.json', '/api/openapi.json', { token: null });

    // Templates and spaces.
    const plm = { name: 'plm', version: '1.0', indexes: ['type'] };
    expect((await call('POST', '/api/template', '/api/template', { body: plm })).status).to.equal(201);
    expect((await call('POST', '/api/template', '/api/template', { body: plm })).status).to.equal(200);
    expect((await call('POST', '/api/template', '/api/template', { body: { ...plm, indexes: ['other'] } })).status).to.equal(409);
    expect((await call('POST', '/api/template', '/api/template', { body: { name: 'plm' } })).status).to.equal(400);
    expect((await call('POST', '/api/template', '/api/template', { raw: '{"name":', headers: { 'content-type': 'application/json' } })).status).to.equal(400);
    expect((await call('POST', '/api/template', '/api/template', { raw: 'plm', headers: { 'content-type': 'text/plain' } })).status).to.equal(415);
    expect((await call('POST', '/api/template', '/api/template', { body: { ...plm, version: '1.1' } })).status).to.equal(201);
    expect((await call('GET', '/api/template', '/api/template')).status).to.equal(200);
    expect((await call('GET', '/api/template/{name}/{version}', '/api/template/plm/1.0')).status).to.equal(200);
    expect((await call('GET', '/api/template/{name}/{version}', '/api/template/plm/9.9')).status).to.equal(404);
    expect((await call('POST', '/api/space', '/api/space', { body: { id: 'test', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
    expect((await call('POST', '/api/space', '/api/space', { body: { id: 'test', template: { name: 'plm', version: '1.0' } } })).status).to.equal(409);
    expect((await call('POST', '/api/space', '/api/space', { body: { id: 'x', template: { name: 'none', version: '1.0' } } })).status).to.equal(404);
    expect((await call('POST', '/api/space', '/api/space', { body: { id: 'x', template: { name: 'plm', version: '1.0' } }, token: member })).status).to.equal(403);
    expect((await call('GET', '/api/space', '/api/space', { token: null })).status).to.equal(401);
    expect((await call('GET', '/api/space', '/api/space', { token: member })).status).to.equal(200);
    expect((await call('GET', '/api/space/{id}', '/api/space/test')).status).to.equal(200);
    expect((await call('GET', '/api/space/{id}', '/api/space/..')).status).to.equal(400);
    expect((await call('GET', '/api/space/{id}', '/api/space/nope')).status).to.equal(404);
    expect((await call('PUT', '/api/space/{id}/template', '/api/space/test/template', { body: { version: '1.1' } })).status).to.equal(200);
    expect((await call('PUT', '/api/space/{id}/template', '/api/space/test/template', { body: { version: '1.0' } })).status).to.equal(409);

    // Objects.
    const obj = '/api/space/{id}/object/{key}';
    expect((await call('PUT', obj, '/api/space/test/object/k1', { body: { type: 'Part', name: 'bolt' }, token: member })).status).to.equal(201);
    expect((await call('PUT', obj, '/api/space/test/object/k1', { body: { type: 'Part', name: 'nut' } })).status).to.equal(200);
    expect((await call('PUT', obj, '/api/space/test/object/k2', { body: 7 })).status).to.equal(201);
    expect((await call('PUT', obj, '/api/space/nope/object/k1', { body: 1 })).status).to.equal(404);
    expect((await call('GET', obj, '/api/space/test/object/k1')).body).to.deep.include({ data: { type: 'Part', name: 'nut' } });
    expect((await call('GET', obj, '/api/space/test/object/none')).status).to.equal(404);
    const query = '/api/space/{id}/object';
    expect(((await call('GET', query, '/api/space/test/object?type=Part')).body as { data: unknown[] }).data).to.have.length(1);
    expect(((await call('GET', query, '/api/space/test/object')).body as { data: unknown[] }).data).to.have.length(2);
    expect((await call('GET', query, '/api/space/test/object?colour=red')).status).to.equal(400);
    expect((await call('GET', query, '/api/space/test/object?type=a&type=b')).status).to.equal(400);
    const tx = '/api/space/{id}/transaction';
    expect((await call('POST', tx, '/api/space/test/transaction', { body: { ops: [{ op: 'put', key: 'k3', value: { type: 'Part' } }, { op: 'delete', key: 'k2' }] } })).status).to.equal(200);
    expect((await call('POST', tx, '/api/space/test/transaction', { body: { ops: [{ op: 'delete', key: 'k2' }] } })).status).to.equal(409);
    expect((await call('DELETE', obj, '/api/space/test/object/k3')).status).to.equal(200);
    expect((await call('DELETE', obj, '/api/space/test/object/k3')).status).to.equal(404);

    // Checkpoints: make, list, read, download (whole, a range, conditional, HEAD), import, restore, delete.
    const created = await call('POST', '/api/admin/checkpoint', '/api/admin/checkpoint', { body: { description: 'before' } });
    expect(created.status).to.equal(201);
    const id = (created.body as { data: { id: number; sha256: string; size: number } }).data;
    expect((await call('POST', '/api/admin/checkpoint', '/api/admin/checkpoint', { body: { other: 1 } })).status).to.equal(400);
    const spaceCreated = await call('POST', '/api/space/{spaceId}/checkpoint', '/api/space/{spaceId}/checkpoint'.replace('{spaceId}', 'test'));
    expect(spaceCreated.status).to.equal(201);
    const spaceId = (spaceCreated.body as { data: { id: number } }).data.id;
    expect((await call('POST', '/api/space/{spaceId}/checkpoint', '/api/space/nope/checkpoint')).status).to.equal(404);
    expect((await call('GET', '/api/collection/checkpoint', '/api/collection/checkpoint')).status).to.equal(200);
    expect((await call('GET', '/api/space/{spaceId}/checkpoint', '/api/space/test/checkpoint')).status).to.equal(200);
    expect((await call('GET', '/api/space/{spaceId}/checkpoint', '/api/space/nope/checkpoint')).status).to.equal(404);
    expect((await call('GET', '/api/collection/checkpoint/{id}', `/api/collection/checkpoint/${id.id}`)).status).to.equal(200);
    expect((await call('GET', '/api/collection/checkpoint/{id}', '/api/collection/checkpoint/abc')).status).to.equal(400);
    expect((await call('GET', '/api/collection/checkpoint/{id}', '/api/collection/checkpoint/999')).status).to.equal(404);
    expect((await call('GET', '/api/space/{spaceId}/checkpoint/{id}', `/api/space/test/checkpoint/${spaceId}`)).status).to.equal(200);
    const download = '/api/collection/checkpoint/{id}/download';
    const file = `/api/collection/checkpoint/${id.id}/download`;
    const etag = `"${id.sha256}"`;
    expect((await call('GET', download, file)).status).to.equal(200);
    expect((await call('GET', download, file, { headers: { range: 'bytes=0-9' } })).status).to.equal(206);
    expect((await call('GET', download, file, { headers: { 'if-none-match': `W/${etag}` } })).status).to.equal(304);
    expect((await call('GET', download, file, { headers: { 'if-match': '"other"' } })).status).to.equal(412);
    expect((await call('GET', download, file, { headers: { range: `bytes=${id.size}-` } })).status).to.equal(416);
    const head = await call('HEAD', download, file);
    expect(head.status).to.equal(200);
    expect(head.headers.get('content-length')).to.equal(String(id.size));
    expect((await call('HEAD', download, file, { headers: { range: 'bytes=0-9' } })).status).to.equal(206);
    expect((await call('GET', '/api/space/{spaceId}/checkpoint/{id}/download', `/api/space/test/checkpoint/${spaceId}/download`)).status).to.equal(200);
    expect((await call('HEAD', '/api/space/{spaceId}/checkpoint/{id}/download', `/api/space/test/checkpoint/${spaceId}/download`)).status).to.equal(200);

    // Import: the bytes of checkpoint 1 under a fresh id; a file that is not a checkpoint is 422, an empty body 400.
    const bytes = Buffer.from(await (await fetch(`${d.url}${file}`, { headers: { authorization: `Bearer ${d.token}` } })).arrayBuffer());
    const post = async (body: Buffer | string, type: string): Promise<Answer> => {
      const res = await fetch(`${d.url}/api/admin/checkpoint/import`, { method: 'POST', headers: { authorization: `Bearer ${d.token}`, 'content-type': type }, body });
      const text = await res.text();
      const answer = { status: res.status, headers: res.headers, text, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
      conforms('POST', '/api/admin/checkpoint/import', answer);
      return answer;
    };
    expect((await post(bytes, 'application/zip')).status).to.equal(201);
    expect((await post(Buffer.from('not a checkpoint'), 'application/octet-stream')).status).to.equal(422);
    expect((await post('', 'application/zip')).status).to.equal(400);
    expect((await post('{}', 'application/json')).status).to.equal(400);

    // Delete (a space checkpoint nothing needs), restore, and a delete the journal refuses.
    const spare = (await call('POST', '/api/space/{spaceId}/checkpoint', '/api/space/test/checkpoint', { body: { description: 'spare' } })).body as { data: { id: number } };
    expect((await call('DELETE', '/api/space/{spaceId}/checkpoint/{id}', `/api/space/test/checkpoint/${spare.data.id}`)).status).to.equal(204);
    expect((await call('POST', '/api/space/{spaceId}/checkpoint/{id}', `/api/space/test/checkpoint/${id.id}`)).status).to.equal(200);
    expect((await call('POST', '/api/collection/checkpoint/{id}', `/api/collection/checkpoint/${spaceId}`)).status).to.equal(200);
    expect((await call('DELETE', '/api/collection/checkpoint/{id}', `/api/collection/checkpoint/${spaceId}`)).status).to.equal(409);
    expect((await call('DELETE', '/api/space/{spaceId}/checkpoint/{id}', `/api/space/test/checkpoint/999`)).status).to.equal(404);

    // Operations.
    expect((await call('GET', '/api/admin/status', '/api/admin/status')).status).to.equal(200);
    expect((await call('GET', '/api/admin/status', '/api/admin/status', { token: member })).status).to.equal(403);
    expect((await call('POST', '/api/admin/failover/pause', '/api/admin/failover/pause')).status).to.equal(200);
    expect((await call('POST', '/api/admin/failover/resume', '/api/admin/failover/resume')).status).to.equal(200);
    expect((await call('POST', '/api/admin/failover/switchover', '/api/admin/failover/switchover', { body: {} })).status).to.equal(409);
    expect((await call('POST', '/api/admin/failover/switchover', '/api/admin/failover/switchover', { body: { candidate: 'nobody' } })).status).to.equal(404);
  });
});
