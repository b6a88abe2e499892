/** Splitting a checkpoint entry's bytes into lines, for the loader. */
import { isAscii } from 'node:buffer';
import { StringDecoder } from 'node:string_decoder';

/**
 * Whether `chunk` may end inside a UTF-8 sequence (a lead byte whose
 * continuation bytes are not all there): then the decoder holds its first
 * bytes. True when it cannot tell (a chunk of continuation bytes only), as
 * decoding through the decoder is always right.
 */
function endsMidCharacter(chunk: Buffer): boolean {
  for (let back = 1; back <= 3; back++) {
    if (back > chunk.length) return true;
    const byte = chunk[chunk.length - back] as number;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: its lead is further back
    const needs = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return needs > back;
  }
  return false; // three continuation bytes: the last character is complete
}

/**
 * Calls `line(text, start, end)` for each line of `data` (UTF-8,
 * `\n`-separated; a last line without `\n` counts), as a range of a decoded
 * chunk rather than a string of its own: a restore reads millions of lines,
 * and the values kept are slices of the chunk either way. A chunk of plain
 * ASCII (the usual case for JSON) is decoded by a copy, six times faster than
 * UTF-8 decoding.
 */
export async function forEachLine(data: AsyncIterable<Buffer>, line: (text: string, start: number, end: number) => void): Promise<void> {
  const decoder = new StringDecoder('utf8');
  let pending = false; // the decoder holds the first bytes of a character
  let rest = '';
  for await (const chunk of data) {
    let text: string;
    if (!pending && isAscii(chunk)) text = chunk.toString('latin1');
    else {
      text = decoder.write(chunk);
      pending = endsMidCharacter(chunk);
    }
    let start = 0;
    let end = text.indexOf('\n');
    if (rest !== '') {
      if (end === -1) {
        rest += text;
        continue;
      }
      const first = rest + text.slice(0, end);
      line(first, 0, first.length);
      rest = '';
      start = end + 1;
      end = text.indexOf('\n', start);
    }
    for (; end !== -1; end = text.indexOf('\n', start)) {
      line(text, start, end);
      start = end + 1;
    }
    rest = start < text.length ? text.slice(start) : '';
  }
  rest += decoder.end();
  if (rest !== '') line(rest, 0, rest.length);
}
