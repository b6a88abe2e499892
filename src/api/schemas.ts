/** JSON schemas of request bodies; Fastify validates them (ajv) before a handler runs. */
import { MaxTransactionOps } from '../config/index.js';

/** POST /api/template */
export const TemplateBody = {
  type: 'object',
  required: ['name', 'version'],
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    version: { type: 'string' },
    indexes: { type: 'array', items: { type: 'string' }, maxItems: 32 },
  },
} as const;

const TemplateRefSchema = {
  type: 'object',
  required: ['name', 'version'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, version: { type: 'string' } },
} as const;

/** POST /api/space */
export const SpaceBody = {
  type: 'object',
  required: ['id', 'template'],
  additionalProperties: false,
  properties: { id: { type: 'string' }, template: TemplateRefSchema },
} as const;

/** PUT /api/space/{id}/template */
export const UpgradeBody = {
  type: 'object',
  required: ['version'],
  additionalProperties: false,
  properties: { version: { type: 'string' } },
} as const;

/** POST /api/space/{id}/transaction (each op is checked by the store, which names its position). */
export const TransactionBody = {
  type: 'object',
  required: ['ops'],
  additionalProperties: false,
  properties: { ops: { type: 'array', minItems: 1, maxItems: MaxTransactionOps, items: { type: 'object' } } },
} as const;
