/**
 * Secret scrubbing for log lines. Tokens, token hashes and Authorization
 * headers must never reach a log line, whatever a caller passes in: keys that
 * name a secret are dropped, and strings are scanned for token and hash shapes.
 */

/** Prefix of every API token checkpointd issues. */
export const TokenPrefix = 'cpd_';

const SecretKey = /^(authorization|token|tokens|hash|secret|password|cookie|bearer|clustertoken)$/i;
const SecretText = [
  /cpd_[A-Za-z0-9_-]{8,}/g,                 // API tokens
  /sha256:[0-9a-f]{16,}/gi,                 // stored token hashes
  /\bBearer\s+[^\s"',;]+/gi,                // Authorization header values
];
const Redacted = '[redacted]';

/** Replace every secret-looking substring of `text`. */
export function redactText(text: string): string {
  let out = text;
  for (const pattern of SecretText) out = out.replace(pattern, Redacted);
  return out;
}

/** A deep copy of `value` with secret keys removed and secret text replaced. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message), stack: value.stack === undefined ? undefined : redactText(value.stack) };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SecretKey.test(k) ? Redacted : redact(v, depth + 1);
  }
  return out;
}
