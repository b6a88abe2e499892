/**
 * The rules an operation must pass against the state it applies to, whatever
 * holds that state (the in-memory `StoreState` or the storage engine): the
 * checks and their errors are written once, here.
 */
import { MaxTransactionOps } from '../config/index.js';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.js';
import { compareVersions, show, validateObjectKey, validateSpaceId, validateTemplateName, validateVersion } from './identifiers.js';
import type { TxOp } from './ops.js';
import type { SpaceInfo } from './space.js';
import { checkTemplate, sameIndexes, type TemplateDef, type TemplateRef } from './template.js';

/** What the rules read of a state: its templates and its spaces. */
export interface Catalogue {
  template(name: string, version: string): TemplateDef | undefined;
  space(id: string): SpaceInfo | undefined;
}

/** The error for space `id`, which does not exist. */
export function noSuchSpaceError(id: string): NotFoundError {
  return new NotFoundError(`space "${id}" does not exist; create it with POST /api/space`);
}

/** The space `id` (validated); NotFoundError naming how to create it. */
export function requireSpaceInfo(catalogue: Catalogue, id: string): SpaceInfo {
  const space = catalogue.space(validateSpaceId(id));
  if (space === undefined) throw noSuchSpaceError(id);
  return space;
}

/** The loaded template `ref` names; NotFoundError naming how to load it. */
export function requireTemplate(catalogue: Catalogue, ref: TemplateRef): TemplateDef {
  const name = validateTemplateName(ref.name);
  const version = validateVersion(ref.version);
  const def = catalogue.template(name, version);
  if (def === undefined) {
    throw new NotFoundError(
      `template ${name} version ${version} is not loaded; load it first with POST /api/template ` +
        `{"name":"${name}","version":"${version}","indexes":[...]}`,
    );
  }
  return def;
}

/**
 * The checked, frozen definition a `template.load` adds, or null when the same
 * version is loaded with the same indexes (a no-op); ConflictError when it is
 * loaded with other indexes.
 */
export function checkTemplateLoad(catalogue: Catalogue, template: TemplateDef): TemplateDef | null {
  const def = checkTemplate(template);
  const loaded = catalogue.template(def.name, def.version);
  if (loaded === undefined) return def;
  if (sameIndexes(loaded, def)) return null;
  throw new ConflictError(
    `template ${def.name} version ${def.version} is already loaded with indexes [${loaded.indexes.join(', ')}]; ` +
      `a template version never changes: load the new indexes as a new version and upgrade spaces to it`,
  );
}

/** The template a `space.create` of `id` follows; NotFoundError or ConflictError as the API reports them. */
export function checkSpaceCreate(catalogue: Catalogue, id: string, ref: TemplateRef): TemplateDef {
  validateSpaceId(id);
  const def = requireTemplate(catalogue, ref);
  if (catalogue.space(id) !== undefined) {
    throw new ConflictError(`space "${id}" already exists; choose another id, or upgrade it with PUT /api/space/${id}/template`);
  }
  return def;
}

/** The newer template version a `space.upgrade` moves space `id` to; NotFoundError or ConflictError as the API reports them. */
export function checkSpaceUpgrade(catalogue: Catalogue, id: string, version: string): TemplateDef {
  validateVersion(version);
  const current = requireSpaceInfo(catalogue, id).template;
  const def = catalogue.template(current.name, version);
  if (def === undefined) {
    throw new NotFoundError(
      `template ${current.name} version ${version} is not loaded, so space "${id}" cannot move to it; ` +
        `load it first with POST /api/template {"name":"${current.name}","version":"${version}","indexes":[...]}`,
    );
  }
  if (compareVersions(version, current.version) <= 0) {
    throw new ConflictError(
      `space "${id}" follows template ${current.name} version ${current.version}; version ${version} is not newer, ` +
        `and an upgrade only moves forward: load and name a version newer than ${current.version}`,
    );
  }
  return def;
}

/** A transaction's size and keys; BadRequestError naming the op at fault. */
export function checkTransaction(ops: readonly TxOp[]): void {
  if (ops.length === 0 || ops.length > MaxTransactionOps) {
    throw new BadRequestError(`a transaction holds 1 to ${MaxTransactionOps} operations; this one holds ${ops.length}`);
  }
  ops.forEach((op, i) => {
    try {
      validateObjectKey(op.key);
    } catch (error) {
      throw new BadRequestError(`ops[${i}]: ${(error as Error).message}`);
    }
  });
}

/** The error for a delete, at `ops[i]`, of a key space `spaceId` does not hold at that point: nothing of the transaction applies. */
export function missingDeleteError(spaceId: string, key: string, i: number): ConflictError {
  return new ConflictError(
    `ops[${i}] deletes ${show(key)}, which does not exist in space "${spaceId}" at that point; ` +
      `nothing in the transaction was applied (leave the delete out, or put the object first)`,
  );
}

/** The error for a query or index walk by `field`, which space `info`'s template does not index. */
export function notIndexedError(info: SpaceInfo, indexFields: readonly string[], field: string): BadRequestError {
  const indexed = indexFields.length === 0 ? 'it indexes no fields' : `indexed fields: ${indexFields.join(', ')}`;
  return new BadRequestError(`space "${info.id}" (template ${info.template.name} ${info.template.version}) cannot be queried by ${show(field)}: ${indexed}`);
}

/** A query's filter as [field, wanted] pairs, each on an indexed field with one string value; BadRequestError otherwise. */
export function checkFilter(info: SpaceInfo, indexFields: readonly string[], filter: Readonly<Record<string, string>>): [string, string][] {
  const conditions = Object.entries(filter);
  for (const [field, wanted] of conditions) {
    if (!indexFields.includes(field)) throw notIndexedError(info, indexFields, field);
    if (typeof wanted !== 'string') throw new BadRequestError(`query value for "${field}" must be one string, not ${show(wanted)}`);
  }
  return conditions;
}
