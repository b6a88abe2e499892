/**
 * The values a space holds. A value must survive a round trip through the
 * journal unchanged, or replay would rebuild a different state than the one
 * that was acknowledged: so NaN, undefined, functions, class instances and
 * cycles are refused up front rather than silently rewritten by JSON.stringify.
 */
import { BadRequestError } from '../errors.js';
import { show } from './identifiers.js';

/** A JSON value as JSON.parse returns it. Stored values are shared, never copied: nobody may mutate one. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Deepest nesting accepted in a value; deeper ones would risk a stack overflow in JSON.stringify. */
export const MaxValueDepth = 1000;

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

/**
 * Throws BadRequestError naming the first part of `value` (under the name
 * `where`) that is not JSON. Iterative, so a deep value cannot overflow the stack here.
 */
export function checkJson(value: unknown, where: string): asserts value is Json {
  const stack: [unknown, string, number][] = [[value, where, 0]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, path, depth] = item;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') continue;
    if (typeof v === 'number' && Number.isFinite(v)) continue;
    if (depth >= MaxValueDepth && typeof v === 'object') {
      throw new BadRequestError(`${where} is nested more than ${MaxValueDepth} levels deep; flatten it`);
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push([v[i], `${path}[${i}]`, depth + 1]);
    } else if (isPlainObject(v)) {
      for (const [k, child] of Object.entries(v)) stack.push([child, /^[A-Za-z_$][\w$]{0,63}$/.test(k) ? `${path}.${k}` : `${path}[${show(k)}]`, depth + 1]);
    } else {
      throw new BadRequestError(
        `${path.length > 200 ? `${path.slice(0, 200)}...` : path} is ${describe(v)}, which is not JSON: use null, booleans, finite numbers, strings, arrays and plain objects`,
      );
    }
  }
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
