/**
 * Where a configuration file stops being JSON, as a line and column an
 * operator can go to. V8's `JSON.parse` names the offset for some mistakes but
 * for others ("Unexpected token") quotes a multi-line snippet instead, so the
 * offset comes from a small scanner of the JSON grammar (RFC 8259) that stops
 * at the first character that cannot continue a valid document.
 */

/** One line: V8's reason, the offset, and its line and column (1-based). */
export function describeJsonError(text: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const stated = /at position (\d+)/.exec(message);
  const position = stated?.[1] !== undefined ? Number(stated[1]) : firstErrorOffset(text);
  const reason = cleanReason(message);
  if (position === undefined) return reason;
  const { line, column } = lineColumn(text, position);
  return `${reason} at position ${position}, line ${line} column ${column}`;
}

/** V8's message without the offset and without any quoted snippet of the file. */
function cleanReason(message: string): string {
  const token = /^(Unexpected token '[\s\S]*?'), (?:\.\.\.)?"[\s\S]*" is not valid JSON$/.exec(message);
  if (token?.[1] !== undefined) return token[1].replace(/\s/g, (c) => JSON.stringify(c).slice(1, -1));
  if (/ is not valid JSON$/.test(message)) return 'Unexpected input';
  const reason = message.replace(/ (?:in JSON )?at position \d+.*$/s, '');
  return (reason.split('\n')[0] ?? reason).slice(0, 120);
}

/** 1-based line and column of `offset` in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

/** Unwinds the scanner from wherever it found the first mistake. */
class Stop extends Error {
  constructor(readonly offset: number) {
    super(`invalid JSON at ${offset}`);
  }
}

/** Offset of the first character that makes `text` invalid JSON, or undefined if it is valid. */
export function firstErrorOffset(text: string): number | undefined {
  let i = 0;
  const fail = (): never => {
    throw new Stop(i);
  };
  const skipSpace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const expect = (char: string): void => {
    if (text.charAt(i) !== char) fail();
    i++;
  };
  const digits = (): void => {
    if (!/[0-9]/.test(text.charAt(i))) fail();
    while (/[0-9]/.test(text.charAt(i))) i++;
  };
  const string = (): void => {
    expect('"');
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charAt(i);
      if (c === '"') {
        i++;
        return;
      }
      if (c < ' ') fail();
      if (c === '\\') {
        i++;
        const escaped = text.charAt(i);
        if (escaped === 'u') {
          for (let k = 0; k < 4; k++) {
            i++;
            if (!/[0-9a-fA-F]/.test(text.charAt(i))) fail();
          }
        } else if (!'"\\/bfnrt'.includes(escaped) || escaped === '') {
          fail();
        }
      }
      i++;
    }
  };
  const number = (): void => {
    if (text.charAt(i) === '-') i++;
    if (text.charAt(i) === '0') i++;
    else digits();
    if (text.charAt(i) === '.') {
      i++;
      digits();
    }
    if (text.charAt(i) === 'e' || text.charAt(i) === 'E') {
      i++;
      if (text.charAt(i) === '+' || text.charAt(i) === '-') i++;
      digits();
    }
  };
  const literal = (word: string): void => {
    for (const char of word) expect(char);
  };
  const value = (): void => {
    skipSpace();
    const c = text.charAt(i);
    if (c === '{') {
      i++;
      skipSpace();
      if (text.charAt(i) === '}') {
        i++;
        return;
      }
      for (;;) {
        skipSpace();
        string();
        skipSpace();
        expect(':');
        value();
        skipSpace();
        if (text.charAt(i) === '}') {
          i++;
          return;
        }
        expect(',');
      }
    } else if (c === '[') {
      i++;
      skipSpace();
      if (text.charAt(i) === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        skipSpace();
        if (text.charAt(i) === ']') {
          i++;
          return;
        }
        expect(',');
      }
    } else if (c === '"') {
      string();
    } else if (c === 't') {
      literal('true');
    } else if (c === 'f') {
      literal('false');
    } else if (c === 'n') {
      literal('null');
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      number();
    } else {
      fail();
    }
  };
  try {
    value();
    skipSpace();
    if (i < text.length) fail();
    return undefined;
  } catch (stop) {
    if (stop instanceof Stop) return stop.offset;
    return undefined; // nested too deep for the stack: no position rather than a wrong one
  }
}
