/**
 * Durations as operators write them: `"7d"`, `"12h"`, `"1d12h"`, `"90m"`,
 * `"30s"`, `"2w"`, or a number of milliseconds.
 */
import { ConfigError } from '../errors.js';
import { showValue } from './messages.js';

const unitMs: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const durationPattern = /^(?:\d+(?:ms|s|m|h|d|w))+$/;
const partPattern = /(\d+)(ms|s|m|h|d|w)/g;

/** Milliseconds `value` stands for; throws a {@link ConfigError} naming `key` otherwise. */
export function parseDuration(value: unknown, key: string): number {
  let ms: number | undefined;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string' && durationPattern.test(value.trim())) {
    ms = 0;
    for (const [, amount, unit] of value.trim().matchAll(partPattern)) ms += Number(amount) * (unitMs[unit!] ?? Number.NaN);
  }
  if (ms === undefined || !Number.isSafeInteger(ms) || ms < 0) {
    throw new ConfigError(`"${key}" must be a duration: milliseconds, or a string like "7d", "12h", "1d12h", "90m" or "30s", got ${showValue(value)}`);
  }
  return ms;
}
