import { expect } from 'chai';
import type { Readable } from 'node:stream';
import { jsonWithArray } from '../../src/api/json-stream.js';

interface Item {
  key: string;
  value: unknown;
}

const itemJson = ({ key, value }: Item): string => `{"key":${JSON.stringify(key)},"data":${JSON.stringify(value)}}`;

function items(n: number): Item[] {
  return Array.from({ length: n }, (_, i) => ({ key: `k"${i}\u00e9`, value: { n: i, text: 'quote " and \\ and \n', list: [i, null, true] } }));
}

async function textOf(body: string | Readable): Promise<string> {
  if (typeof body === 'string') return body;
  let out = '';
  for await (const chunk of body) out += Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
  return out;
}

describe('api/json-stream', () => {
  for (const [n, slice] of [[0, 4], [1, 4], [4, 4], [5, 4], [14, 4], [2500, 1000]] as const) {
    it(`writes exactly what JSON.stringify writes (${n} items, slices of ${slice})`, async () => {
      const list = items(n);
      const expected = JSON.stringify({ href: '/api/space/s/object?a=b', data: list.map(({ key, value }) => ({ key, data: value })) });
      const body = jsonWithArray({ href: '/api/space/s/object?a=b' }, 'data', list, itemJson, slice);
      expect(typeof body === 'string').to.equal(n <= slice);
      const text = await textOf(body);
      expect(text).to.equal(expected);
      expect(JSON.parse(text)).to.have.property('data').with.length(n);
    });
  }

  it('writes an empty head as an object with the array alone', async () => {
    expect(await textOf(jsonWithArray({}, 'data', items(9), itemJson, 2))).to.equal(JSON.stringify({ data: items(9).map(({ key, value }) => ({ key, data: value })) }));
  });

  it('gives the event loop a turn between two slices', async () => {
    const body = jsonWithArray({ href: 'h' }, 'data', items(40), itemJson, 4);
    expect(typeof body).to.not.equal('string');
    let slicesBeforeTurn = -1;
    let slices = 0;
    const turn = new Promise<void>((resolve) => setImmediate(() => {
      slicesBeforeTurn = slices;
      resolve();
    }));
    for await (const chunk of body as Readable) if (String(chunk).includes('"key"')) slices += 1;
    await turn;
    expect(slices).to.equal(10);
    // The immediate queued before the first slice ran while slices were still to come.
    expect(slicesBeforeTurn).to.be.within(1, 9);
  });
});
