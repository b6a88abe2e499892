/**
 * Templates: the named, versioned recipe a space is created from. A template
 * version never changes once loaded, so a space's shape is fully described by
 * the name and version it names; a change means loading a new version.
 */
import { MaxTemplateIndexes } from '../config/index.js';
import { BadRequestError } from '../errors.js';
import { compareVersions, validateFieldName, validateTemplateName, validateVersion } from './identifiers.js';

/** A template version: the fields its spaces index. */
export interface TemplateDef {
  name: string;
  version: string;
  indexes: string[];
}

/** A reference to one loaded template version. */
export interface TemplateRef {
  name: string;
  version: string;
}

/** A validated, frozen copy of `def` (the caller's object is neither kept nor changed); BadRequestError on any fault. */
export function checkTemplate(def: TemplateDef): TemplateDef {
  const name = validateTemplateName(def.name);
  const version = validateVersion(def.version);
  const indexes: unknown = def.indexes;
  if (!Array.isArray(indexes)) {
    throw new BadRequestError(`template ${name} ${version}: indexes must be an array of field names (for example ["type","owner"])`);
  }
  if (indexes.length > MaxTemplateIndexes) {
    throw new BadRequestError(`template ${name} ${version} names ${indexes.length} indexes; at most ${MaxTemplateIndexes} are allowed`);
  }
  const seen = new Set<string>();
  for (const [i, field] of indexes.entries()) {
    let checked: string;
    try {
      checked = validateFieldName(field);
    } catch (error) {
      throw new BadRequestError(`template ${name} ${version}: indexes[${i}]: ${(error as Error).message}`);
    }
    if (seen.has(checked)) throw new BadRequestError(`template ${name} ${version}: index field "${checked}" is named twice; name each once`);
    seen.add(checked);
  }
  return Object.freeze({ name, version, indexes: Object.freeze([...seen]) as string[] });
}

/** Whether two definitions of one name and version index the same fields (order does not matter). */
export function sameIndexes(a: TemplateDef, b: TemplateDef): boolean {
  if (a.indexes.length !== b.indexes.length) return false;
  const fields = new Set(a.indexes);
  return b.indexes.every((f) => fields.has(f));
}

/** A frozen name-and-version reference to `def`. */
export function templateRef(def: TemplateRef): TemplateRef {
  return Object.freeze({ name: def.name, version: def.version });
}

/** Template versions by name, then by version (ties such as 1.0 and 1.0.0 by their text, so that the order is total). */
export function compareTemplates(a: TemplateRef, b: TemplateRef): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return compareVersions(a.version, b.version) || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0);
}
