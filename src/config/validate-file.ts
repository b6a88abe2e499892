/**
 * Checks a parsed configuration file against the schema (schema.ts) and turns
 * ajv's first complaint into one sentence an operator can act on: the dotted
 * key, what it must be, and what it was.
 */
import type { ErrorObject, SchemaObject, ValidateFunction } from 'ajv';
import { mustBe, showValue } from './messages.js';
import type { ConfigFile } from './schema.js';

/** Compiled on first use (compile-schema.ts says why). */
let compiled: Promise<ValidateFunction<ConfigFile>> | null = null;

function validator(): Promise<ValidateFunction<ConfigFile>> {
  compiled ??= import('./compile-schema.js').then(({ compileConfigSchema }) => compileConfigSchema());
  return compiled;
}

/**
 * `data` typed as a {@link ConfigFile}, or the reason it is not one (without
 * the `config FILE:` prefix, which the caller adds).
 */
export async function validateConfigFile(data: unknown): Promise<{ ok: true; file: ConfigFile } | { ok: false; reason: string }> {
  const validate = await validator();
  if (validate(data)) return { ok: true, file: data };
  const error = validate.errors?.[0];
  return { ok: false, reason: error === undefined ? 'does not match the schema' : describe(error) };
}

function describe(error: ErrorObject): string {
  const parentSchema = error.parentSchema as SchemaObject | undefined;
  const key = dottedKey(error.instancePath);
  if (error.keyword === 'additionalProperties') {
    const unknown = String((error.params as { additionalProperty: unknown }).additionalProperty);
    const known = Object.keys((parentSchema?.properties ?? {}) as Record<string, unknown>).join(', ');
    return key === ''
      ? `unknown key "${unknown}"; known top-level keys: ${known}`
      : `unknown key "${key}.${unknown}"; known keys under "${key}": ${known}`;
  }
  if (key === '') return `must hold a JSON object at the top level, got ${describeTopLevel(error.data)}`;
  const expected = typeof parentSchema?.description === 'string' ? parentSchema.description : (error.message ?? 'valid');
  return mustBe(key, expected, error.data);
}

/** `/api/port` → `api.port` (JSON Pointer, RFC 6901, unescaped). */
function dottedKey(instancePath: string): string {
  if (instancePath === '') return '';
  return instancePath
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

function describeTopLevel(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return `${typeof value} ${showValue(value)}`;
}
