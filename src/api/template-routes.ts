/** Templates: load one (collection-admin), list and read them (any token). */
import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../errors.js';
import { validateTemplateName, validateVersion, type TemplateDef } from '../store/index.js';
import { requireRole } from './auth.js';
import { href, type ApiContext } from './context.js';
import { TemplateBody } from './schemas.js';

function resource(ctx: ApiContext, t: TemplateDef): { href: string; data: TemplateDef } {
  return { href: href(ctx, 'template', t.name, t.version), data: t };
}

/** Register the template routes. */
export function templateRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  const anyone = requireRole(ctx.tokens, ['collection-admin', 'member']);

  app.post<{ Body: { name: string; version: string; indexes?: string[] } }>('/api/template', { onRequest: admin, schema: { body: TemplateBody } }, async (request, reply) => {
    const template: TemplateDef = { name: request.body.name, version: request.body.version, indexes: request.body.indexes ?? [] };
    const existed = ctx.store.state.template(template.name, template.version) !== undefined;
    const { state } = await ctx.store.commit({ type: 'template.load', template });
    const loaded = state.template(template.name, template.version)!;
    const body = resource(ctx, loaded);
    return reply.code(existed ? 200 : 201).header('location', body.href).send(body);
  });

  app.get('/api/template', { onRequest: anyone }, async () => ({
    href: href(ctx, 'template'),
    data: ctx.store.state.templates().map((t) => resource(ctx, t)),
  }));

  app.get<{ Params: { name: string; version: string } }>('/api/template/:name/:version', { onRequest: anyone }, async (request) => {
    const name = validateTemplateName(request.params.name);
    const version = validateVersion(request.params.version);
    const template = ctx.store.state.template(name, version);
    if (template === undefined) throw new NotFoundError(`template ${name} version ${version} is not loaded; GET /api/template lists the loaded ones`);
    return resource(ctx, template);
  });
}
