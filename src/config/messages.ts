/**
 * Pieces of configuration error messages. Every message is one line, so that
 * it reads whole in a terminal, a journald entry or a CI log.
 */

/** `value` as it would appear in the file, cut short to keep a message on one line. */
export function showValue(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** `"key" must be EXPECTED, got VALUE`. */
export function mustBe(key: string, expected: string, value: unknown): string {
  return `"${key}" must be ${expected}, got ${showValue(value)}`;
}

/**
 * The operating system's reason for a failed file operation, without the
 * syscall and path Node appends (the message names the path already):
 * `ENOENT: no such file or directory`.
 */
export function osReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { code, syscall } = error as NodeJS.ErrnoException;
  let reason = error.message;
  if (syscall !== undefined) {
    const cut = reason.indexOf(`, ${syscall}`);
    if (cut > 0) reason = reason.slice(0, cut);
  }
  if (code !== undefined && !reason.startsWith(code)) reason = `${code}: ${reason}`;
  return reason.split('\n')[0] ?? reason;
}
