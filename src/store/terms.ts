/**
 * What an indexed field holds of an object: the strings under which a value is
 * indexed. The in-memory space and the storage engine index by the same rules.
 */
import { isPlainObject, type Json } from './json.js';

const NoTerms: ReadonlySet<string> = new Set();

function term(v: Json | undefined): string | undefined {
  if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return String(v);
  return undefined;
}

/** The strings under which `value` is indexed for `field`: its scalar, or each scalar of its array. */
export function termsOf(value: Json | undefined, field: string): ReadonlySet<string> {
  if (!isPlainObject(value) || !Object.hasOwn(value, field)) return NoTerms;
  const v = value[field];
  if (Array.isArray(v)) {
    const terms = new Set<string>();
    for (const element of v) {
      const t = term(element);
      if (t !== undefined) terms.add(t);
    }
    return terms;
  }
  const t = term(v);
  return t === undefined ? NoTerms : new Set([t]);
}

/**
 * Whether stored `text` may hold `field` at its top level. Sound because
 * JSON.stringify writes a member as `"field":` with no space, and a field name
 * (an identifier) needs no escaping; it lets most texts go unparsed.
 */
export function mayHold(text: string, field: string): boolean {
  return text.includes(`"${field}":`);
}

/** The value stored as `text` (undefined = absent), parsed only if it may hold one of `fields`. */
export function parsedForIndex(text: string | undefined, fields: readonly string[]): Json | undefined {
  if (text === undefined || !fields.some((f) => mayHold(text, f))) return undefined;
  return JSON.parse(text) as Json;
}
