/** Templates: load one (collection-admin), list and read them (any token). */
import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../errors.js';
import { validateTemplateName, validateVersion, type TemplateDef } from '../store/index.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { LocationHeader, WriteRefusals } from './openapi.js';
import { TemplateBody, TemplateList, TemplateParams, TemplateResource } from './schemas.js';

function resource(ctx: ApiContext, t: TemplateDef): { href: string; data: TemplateDef } {
  return { href: href(ctx, 'template', t.name, t.version), data: t };
}

/** Register the template routes. */
export function templateRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  const anyone = requireRole(ctx.tokens, ['collection-admin', 'member']);

  const loadTemplate = {
    summary: 'Load a template version',
    description: 'A version never changes: load other indexes as a new version, and upgrade spaces to it.',
    tags: ['templates'],
    operationId: 'loadTemplate',
    body: TemplateBody,
    answers: {
      201: { description: 'loaded', json: TemplateResource, headers: { Location: LocationHeader } },
      200: { description: 'this version was already loaded, with the same indexes', json: TemplateResource, headers: { Location: LocationHeader } },
      400: 'the body, the name, the version or an index field is not valid',
      409: 'this version is already loaded with other indexes',
      ...WriteRefusals,
    },
  };
  app.post<{ Body: { name: string; version: string; indexes?: string[] } }>('/api/template', { onRequest: admin, schema: loadTemplate }, async (request, reply) => {
    const template: TemplateDef = { name: request.body.name, version: request.body.version, indexes: request.body.indexes ?? [] };
    const existed = ctx.store.state.template(template.name, template.version) !== undefined;
    const { state } = await ctx.store.commit({ type: 'template.load', template });
    const loaded = state.template(template.name, template.version)!;
    const body = resource(ctx, loaded);
    return reply.code(existed ? 200 : 201).header('location', body.href).send(body);
  });

  const listTemplates = { summary: 'List the loaded template versions', tags: ['templates'], operationId: 'listTemplates', answers: { 200: { description: 'every loaded version', json: TemplateList } } };
  app.get('/api/template', { onRequest: anyone, schema: listTemplates }, async () => ({
    href: href(ctx, 'template'),
    data: ctx.store.state.templates().map((t) => resource(ctx, t)),
  }));

  const getTemplate = {
    summary: 'One loaded template version',
    tags: ['templates'],
    operationId: 'getTemplate',
    params: TemplateParams,
    answers: { 200: { description: 'the template version', json: TemplateResource }, 400: 'the name or version is not valid', 404: 'that version is not loaded' },
  };
  app.get<{ Params: { name: string; version: string } }>('/api/template/:name/:version', { onRequest: anyone, schema: getTemplate }, async (request) => {
    const name = validateTemplateName(request.params.name);
    const version = validateVersion(request.params.version);
    const template = ctx.store.state.template(name, version);
    if (template === undefined) throw new NotFoundError(`template ${name} version ${version} is not loaded; GET /api/template lists the loaded ones`);
    return resource(ctx, template);
  });
}
