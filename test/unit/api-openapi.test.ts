/**
 * The API description's generator (src/api/openapi.ts) on a Fastify app of
 * its own: a route without a description is refused when it is registered;
 * an automatic HEAD is folded into its GET, a HEAD registered with its GET is
 * an operation; the role check, a JSON body and the path parameters show in
 * the operation. The whole document of the real daemon: test/integration/openapi.test.ts.
 */
import { expect } from 'chai';
import Fastify from 'fastify';
import os from 'node:os';
import path from 'node:path';
import { requireRole } from '../../src/api/auth.js';
import { openApiDocument, recordRoutes } from '../../src/api/openapi.js';
import { SpaceParams, TemplateBody } from '../../src/api/schemas.js';
import { TokenStore } from '../../src/api/token-store.js';

type Operation = { operationId: string; security: unknown[]; parameters?: { name: string; in: string }[]; requestBody?: { required: boolean }; responses: Record<string, unknown> };
type Paths = Record<string, Record<string, Operation>>;

const described = (operationId: string): { summary: string; tags: string[]; operationId: string; answers: Record<number, { description: string }> } => ({
  summary: `the ${operationId} route`,
  tags: ['spaces'],
  operationId,
  answers: { 200: { description: 'fine' } },
});

describe('API description generator (openapi.ts)', function () {
  it('refuses a route without a summary, operationId, known tag or success answer when it is registered', function () {
    const app = Fastify();
    recordRoutes(app);
    expect(() => app.get('/bare', async () => 'x')).to.throw(/GET \/bare lacks summary, operationId, tags .*, answers/);
    expect(() => app.get('/tag', { schema: { ...described('tagged'), tags: ['nonsense'] } }, async () => 'x')).to.throw(/lacks tags/);
    expect(() => app.get('/errors-only', { schema: { ...described('errorsOnly'), answers: { 404: 'gone' } } }, async () => 'x')).to.throw(/lacks answers/);
    expect(() => app.get('/fine', { schema: described('fine') }, async () => 'x')).to.not.throw();
  });

  it("folds a GET's automatic HEAD into it, and makes a HEAD registered with its GET an operation without bodies", async function () {
    const app = Fastify();
    const routes = recordRoutes(app);
    app.get('/a', { schema: described('getA') }, async () => 'a');
    app.route({ method: ['GET', 'HEAD'], url: '/b', schema: { ...described('getB'), answers: { 200: { description: 'a file', content: { 'application/zip': {} } } } }, handler: async () => 'b' });
    await app.ready();
    expect(routes.map((r) => r.method)).to.deep.include.members(['GET', 'HEAD', ['GET', 'HEAD']]);
    const paths = openApiDocument(routes, { version: '0', serverUrl: '' }).paths as Paths;
    expect(Object.keys(paths['/a']!)).to.deep.equal(['get']);
    expect(Object.keys(paths['/b']!)).to.deep.equal(['get', 'head']);
    expect(paths['/b']!.head!.operationId).to.equal('headGetB');
    expect(paths['/b']!.get!.responses['200']).to.have.property('content');
    expect(paths['/b']!.head!.responses['200']).to.not.have.property('content');
  });

  it('shows the role check as bearer security with 401 and 403, a JSON body with 400, 413 and 415, and the path parameters', async function () {
    const tokens = await TokenStore.open(path.join(os.tmpdir(), `cpd-no-tokens-${process.pid}.json`));
    const app = Fastify();
    const routes = recordRoutes(app);
    app.post('/api/space/:id', { onRequest: requireRole(tokens, ['collection-admin']), schema: { ...described('admin'), params: SpaceParams, body: TemplateBody } }, async () => 'x');
    app.get('/api/space/:id', { onRequest: requireRole(tokens, ['collection-admin', 'member']), schema: { ...described('anyone'), params: SpaceParams } }, async () => 'x');
    app.get('/open', { schema: described('open') }, async () => 'x');
    await app.ready();
    const paths = openApiDocument(routes, { version: '0', serverUrl: '' }).paths as Paths;
    const admin = paths['/api/space/{id}']!.post!;
    expect(admin.security).to.deep.equal([{ bearerAuth: ['collection-admin'] }]);
    expect(Object.keys(admin.responses)).to.deep.equal(['200', '400', '401', '403', '413', '415', 'default']);
    expect(admin.requestBody!.required).to.equal(true);
    expect(admin.parameters).to.deep.equal([{ name: 'id', in: 'path', required: true, description: SpaceParams.properties.id.description, schema: { type: 'string' } }]);
    const anyone = paths['/api/space/{id}']!.get!;
    expect(anyone.security).to.deep.equal([{ bearerAuth: ['collection-admin', 'member'] }]);
    expect(Object.keys(anyone.responses)).to.deep.equal(['200', '401', 'default']);
    expect(paths['/open']!.get!.security).to.deep.equal([]);
    expect(Object.keys(paths['/open']!.get!.responses)).to.deep.equal(['200', 'default']);
  });
});
