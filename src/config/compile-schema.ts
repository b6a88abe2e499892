/**
 * The configuration file's validator, compiled by ajv. validate-file.ts loads
 * this module on first use, so that a client command that reads no
 * configuration never loads ajv or compiles the schema (about 100 ms of CPU
 * a process).
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { configSchema, type ConfigFile } from './schema.js';

export function compileConfigSchema(): ValidateFunction<ConfigFile> {
  return new Ajv({ allErrors: false, verbose: true, allowUnionTypes: true, strict: true }).compile<ConfigFile>(configSchema);
}
