/**
 * Sizes as operators write them: `1048576`, `"64MiB"`, `"512 KiB"`, `"1GB"`.
 * Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal units (KB, MB,
 * GB, TB) powers of 1000, as in IEC 80000-13; a bare `K` or `M` is refused
 * because nobody agrees which of the two it means.
 */
import { ConfigError } from '../errors.js';
import { showValue } from './messages.js';

const unitBytes: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

const sizePattern = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i;

/**
 * The number of bytes `value` stands for: a non-negative integer, or a string
 * of a number and an optional unit (case-insensitive; fractions round down to
 * whole bytes). Throws a {@link ConfigError} naming `key` otherwise.
 */
export function parseSize(value: unknown, key: string): number {
  let bytes: number | undefined;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    const match = sizePattern.exec(value);
    if (match !== null) {
      const unit = unitBytes[(match[2] ?? 'b').toLowerCase()] ?? Number.NaN;
      bytes = Math.floor(Number(match[1]) * unit);
    }
  }
  if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw new ConfigError(
      `"${key}" must be a size in bytes: an integer or a string like "64MiB", "512 KiB" or "1GB", got ${showValue(value)}`,
    );
  }
  return bytes;
}

