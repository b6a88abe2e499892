/**
 * The values a space holds. A value must survive a round trip through the
 * journal unchanged, or replay would rebuild a different state than the one
 * that was acknowledged: so NaN, undefined, functions, class instances and
 * cycles are refused up front rather than silently rewritten by JSON.stringify.
 */
import { MaxValueDepth } from '../config/index.js';
import { BadRequestError } from '../errors.js';
import { show } from './identifiers.js';

/** A JSON value as JSON.parse returns it. Stored values are shared, never copied: nobody may mutate one. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Whether `value` is a plain object (not an array, not null, not a class instance). */
export function isPlainObject(value: unknown): value is { [k: string]: Json } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'object' && value !== null) return 'an object that is not a plain object';
  return `a ${typeof value}`;
}

/** An array or object still to look into (checkJson): its place is kept as its parent and its key there. */
interface Container {
  value: object;
  parent: Container | null;
  key: string | number;
  depth: number;
}

/**
 * Throws BadRequestError naming the first part of `value` (under the name
 * `where`) that is not JSON. Iterative, so a deep value cannot overflow the
 * stack here. Every commit's values pass through it, so it allocates only an
 * entry per array or object inside; a part's path is spelled only for the error.
 */
export function checkJson(value: unknown, where: string): asserts value is Json {
  const stack: Container[] = [];
  // The part at `key` of `parent` (the whole value when parent is undefined): accepted, queued to look into, or refused.
  const check = (v: unknown, parent: Container | undefined, key: string | number, depth: number): void => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number' && Number.isFinite(v)) return;
    if (depth >= MaxValueDepth && typeof v === 'object') {
      throw new BadRequestError(`${where} is nested more than ${MaxValueDepth} levels deep; flatten it`);
    }
    if (Array.isArray(v) || isPlainObject(v)) {
      stack.push({ value: v, parent: parent ?? null, key, depth });
      return;
    }
    const path = parent === undefined ? where : pathOf(where, parent, key);
    throw new BadRequestError(
      `${path.length > 200 ? `${path.slice(0, 200)}...` : path} is ${describe(v)}, which is not JSON: use null, booleans, finite numbers, strings, arrays and plain objects`,
    );
  };
  check(value, undefined, '', 0);
  for (let c = stack.pop(); c !== undefined; c = stack.pop()) {
    const v = c.value;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) check(v[i], c, i, c.depth + 1);
    } else {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) check(o[k], c, k, c.depth + 1);
    }
  }
}

/** The path of the part at `key` of `parent`, `where` naming the whole value: `where.a[2]["b c"]`. */
function pathOf(where: string, parent: Container, key: string | number): string {
  const steps: (string | number)[] = [key];
  for (let c: Container | null = parent; c.parent !== null; c = c.parent) steps.push(c.key);
  let path = where;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    path += typeof step === 'number' ? `[${step}]` : /^[A-Za-z_$][\w$]{0,63}$/.test(step) ? `.${step}` : `[${show(step)}]`;
  }
  return path;
}

/** Whether `value` is JSON by the rules of `checkJson`. */
export function isJson(value: unknown): value is Json {
  try {
    checkJson(value, 'value');
    return true;
  } catch {
    return false;
  }
}
