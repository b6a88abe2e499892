/**
 * The rules for every name a client can choose: space ids, template names,
 * versions, object keys and field names. Ids and keys end up in file paths and
 * URLs, so the rules keep them to a safe alphabet and refuse `..` outright.
 */
import { MaxIdLength, MaxKeyLength, MaxVersionLength } from '../config/index.js';
import { BadRequestError } from '../errors.js';

const IdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const VersionPattern = /^[0-9][0-9A-Za-z.-]*$/;
const FieldPattern = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const NumericPart = /^[0-9]+$/;
const ShownChars = 60;

/**
 * `value` as a person can read it in an error message: JSON-quoted, cut short,
 * and with everything outside printable ASCII escaped, so a hostile id cannot
 * forge log lines or reorder text with control or bidi characters.
 */
export function show(value: unknown): string {
  if (typeof value !== 'string') {
    if (value === undefined) return 'nothing';
    if (value === null) return 'null';
    if (Array.isArray(value)) return 'an array';
    return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
  }
  // Cutting may split a surrogate pair; the escaping below shows the half as \uXXXX, which is harmless.
  const cut = value.length > ShownChars;
  const quoted = JSON.stringify(cut ? value.slice(0, ShownChars) : value).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return cut ? `${quoted}... (${value.length} characters)` : quoted;
}

function checkId(what: string, value: unknown, example: string): string {
  const rule = `use 1-${MaxIdLength} characters of letters, digits, '.', '_' and '-', starting with a letter or digit, without '..' (for example "${example}")`;
  if (typeof value !== 'string' || value.length === 0 || value.length > MaxIdLength || !IdPattern.test(value) || value.includes('..')) {
    throw new BadRequestError(`${what} ${show(value)} is not valid: ${rule}`);
  }
  return value;
}

/** The space id, if it follows the id rules; BadRequestError otherwise. */
export function validateSpaceId(id: unknown): string {
  return checkId('space id', id, 'plm-test');
}

/** The template name, if it follows the id rules; BadRequestError otherwise. */
export function validateTemplateName(name: unknown): string {
  return checkId('template name', name, 'plm');
}

/**
 * Whether `text` from `start` to `end` is a valid object key (see
 * validateObjectKey), checked in place: a restore checks millions of keys
 * without cutting each out first.
 */
export function isObjectKeyAt(text: string, start: number, end: number): boolean {
  const length = end - start;
  if (length < 1 || length > MaxKeyLength) return false;
  let previous = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    const allowed =
      (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x3a) /* 0-9 and ':' */ ||
      c === 0x2e || c === 0x5f || c === 0x7e || c === 0x40 || c === 0x2d; // . _ ~ @ -
    if (!allowed || (c === 0x2e && previous === 0x2e)) return false;
    previous = c;
  }
  return !(length === 1 && previous === 0x2e);
}

/** The object key, if it is safe in a URL path segment and a file name; BadRequestError otherwise. */
export function validateObjectKey(key: unknown): string {
  if (typeof key !== 'string' || !isObjectKeyAt(key, 0, key.length)) {
    throw new BadRequestError(
      `object key ${show(key)} is not valid: use 1-${MaxKeyLength} characters of letters, digits and '.', '_', '~', ':', '@', '-', ` +
        `not '.' alone and without '..' (for example "part-0001")`,
    );
  }
  return key;
}

/** The template version, if it is a dotted version starting with a digit; BadRequestError otherwise. */
export function validateVersion(version: unknown): string {
  if (typeof version !== 'string' || version.length === 0 || version.length > MaxVersionLength || !VersionPattern.test(version)) {
    throw new BadRequestError(
      `version ${show(version)} is not valid: use 1-${MaxVersionLength} characters of digits, letters, '.' and '-', starting with a digit (for example "1.0")`,
    );
  }
  return version;
}

/** The field name (an index or a query parameter), if it is an identifier; BadRequestError otherwise. */
export function validateFieldName(name: unknown): string {
  if (typeof name !== 'string' || !FieldPattern.test(name)) {
    throw new BadRequestError(
      `field name ${show(name)} is not valid: use 1-64 letters, digits and '_', not starting with a digit (for example "type")`,
    );
  }
  return name;
}

function compareNumeric(a: string, b: string): number {
  // Without leading zeros, a longer digit string is a larger number; no BigInt, no precision loss.
  const x = a.replace(/^0+(?=.)/, '');
  const y = b.replace(/^0+(?=.)/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Dotted numeric comparison: `1.10` > `1.9`, `1.0` equals `1.0.0` (missing parts
 * count as 0), and a part that is not all digits compares as a string. Returns -1, 0 or 1.
 */
export function compareVersions(a: string, b: string): number {
  const left = a.split('.');
  const right = b.split('.');
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const x = left[i] ?? '0';
    const y = right[i] ?? '0';
    const order = NumericPart.test(x) && NumericPart.test(y) ? compareNumeric(x, y) : x < y ? -1 : x > y ? 1 : 0;
    if (order !== 0) return order;
  }
  return 0;
}
