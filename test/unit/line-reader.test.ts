import { expect } from 'chai';
import { forEachLine } from '../../src/checkpoint/line-reader.js';

/** The lines forEachLine gives for `bytes` cut into chunks at `cuts`, each line cut out of the range it was given as. */
async function linesOf(bytes: Buffer, cuts: number[]): Promise<string[]> {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  async function* source(): AsyncGenerator<Buffer> {
    yield* chunks;
  }
  const lines: string[] = [];
  await forEachLine(source(), (text, start, end) => {
    expect(start).to.be.at.least(0);
    expect(end).to.be.at.most(text.length);
    lines.push(text.slice(start, end));
  });
  return lines;
}

describe('checkpoint line reader', () => {
  const text = '{"key":"a","value":"plain"}\n{"key":"b","value":"é€😀 mixed"}\n\n{"key":"c","value":"ascii again"}\n{"key":"d","value":"€"}';
  const bytes = Buffer.from(text, 'utf8');
  const expected = text.split('\n');

  it('gives every line, the last one without its \\n, wherever the chunks are cut (inside a character too)', async () => {
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(await linesOf(bytes, [cut]), `one cut at byte ${cut}`).to.deep.equal(expected);
    }
    for (let a = 1; a < bytes.length; a += 3) {
      for (let b = a; b < bytes.length; b += 5) expect(await linesOf(bytes, [a, b]), `cuts at ${a}, ${b}`).to.deep.equal(expected);
    }
  });

  it('gives a text ending in \\n no empty last line, and an empty input no line', async () => {
    expect(await linesOf(Buffer.from('x\ny\n'), [1])).to.deep.equal(['x', 'y']);
    expect(await linesOf(Buffer.alloc(0), [])).to.deep.equal([]);
  });

  it('decodes chunks of one-byte pieces of a four-byte character', async () => {
    const emoji = Buffer.from('a😀b\n😀', 'utf8');
    const cuts = Array.from({ length: emoji.length - 1 }, (_, i) => i + 1);
    expect(await linesOf(emoji, cuts)).to.deep.equal(['a😀b', '😀']);
  });
});
