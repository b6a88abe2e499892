import { expect } from 'chai';
import { SortedMap, type LeafDecoder, type LeafEncoder } from '../../src/store/sorted-map.js';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sortedEntries(model: Map<string, number>): [string, number][] {
  return [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

describe('store sorted map', () => {
  it('matches a plain Map through random sets and deletes, keeping order and shape', () => {
    const next = random(42);
    const model = new Map<string, number>();
    let map = SortedMap.empty<number>();
    for (let i = 0; i < 30_000; i++) {
      const key = `k${Math.floor(next() * 3000)}`;
      if (next() < 0.4) {
        model.delete(key);
        map = map.delete(key);
      } else {
        model.set(key, i);
        map = map.set(key, i);
      }
      if (i % 5000 === 0) map.assertValid();
    }
    map.assertValid();
    expect(map.size).to.equal(model.size);
    expect([...map.entries()]).to.deep.equal(sortedEntries(model));
    for (const [key, value] of model) expect(map.get(key)).to.equal(value);
    expect(map.get('absent')).to.equal(undefined);
    expect(map.has('absent')).to.equal(false);
  });

  it('shrinks back to empty when every key is deleted', () => {
    let map = SortedMap.empty<number>();
    for (let i = 0; i < 5000; i++) map = map.set(String(i).padStart(5, '0'), i);
    for (let i = 0; i < 5000; i += 2) map = map.delete(String(i).padStart(5, '0'));
    map.assertValid();
    for (let i = 1; i < 5000; i += 2) map = map.delete(String(i).padStart(5, '0'));
    map.assertValid();
    expect(map.size).to.equal(0);
    expect([...map]).to.deep.equal([]);
  });

  it('leaves every older version unchanged', () => {
    const versions: SortedMap<number>[] = [SortedMap.empty()];
    for (let i = 0; i < 2000; i++) {
      const last = versions[versions.length - 1]!;
      versions.push(i % 3 === 2 ? last.delete(`k${i - 1}`) : last.set(`k${i}`, i));
    }
    // Rebuild the expected content of each version from scratch and compare.
    const model = new Map<string, number>();
    versions.forEach((version, v) => {
      if (v > 0) {
        const i = v - 1;
        if (i % 3 === 2) model.delete(`k${i - 1}`);
        else model.set(`k${i}`, i);
      }
      expect(version.size).to.equal(model.size);
      if (v % 250 === 0) expect([...version]).to.deep.equal(sortedEntries(model));
    });
  });

  it('returns the same map for a no-op set or delete', () => {
    const value = { a: 1 };
    const map = SortedMap.empty<object>().set('a', value);
    expect(map.set('a', value)).to.equal(map);
    expect(map.set('a', { a: 1 })).not.to.equal(map);
    expect(map.delete('b')).to.equal(map);
  });

  it('builds a valid tree from sorted entries and refuses unsorted ones', () => {
    for (const n of [0, 1, 64, 65, 4097, 20_000]) {
      const entries = Array.from({ length: n }, (_, i) => [`k${String(i).padStart(6, '0')}`, i] as const);
      const map = SortedMap.fromSorted(entries);
      map.assertValid();
      expect(map.size).to.equal(n);
      expect([...map.keys()]).to.deep.equal(entries.map(([k]) => k));
      const changed = map.delete('k000000').set('zzz', -1);
      changed.assertValid();
    }
    expect(() => SortedMap.fromSorted([['b', 1], ['a', 2]])).to.throw(Error, /ascending/);
    expect(() => SortedMap.fromSorted([['a', 1], ['a', 2]])).to.throw(Error, /ascending/);
  });

  it('builds from parallel key and value arrays, or keys sharing one value, and refuses unsorted keys or unequal lengths', () => {
    for (const n of [0, 1, 64, 65, 4097, 300_000]) {
      const keys = Array.from({ length: n }, (_, i) => `k${String(i).padStart(6, '0')}`);
      const map = SortedMap.fromSortedArrays(keys, keys.map((_, i) => i));
      const set = SortedMap.fromSortedKeys(keys, true);
      map.assertValid();
      set.assertValid();
      expect(map.size).to.equal(n);
      expect(set.size).to.equal(n);
      if (n > 0) {
        expect(map.get(keys[n - 1]!)).to.equal(n - 1);
        expect(set.get(keys[0]!)).to.equal(true);
      }
    }
    expect(() => SortedMap.fromSortedArrays(['a', 'b'], [1])).to.throw(Error, /2 keys but 1 values/);
    expect(() => SortedMap.fromSortedKeys(['b', 'a'], true)).to.throw(Error, /ascending/);
  });

  it('walks a deep tree in order: entries, keys and key blocks of at most 64', () => {
    // Built by bulk and then by single sets and deletes, so the walk meets both kinds of node shapes.
    const keys = Array.from({ length: 300_000 }, (_, i) => `k${String(i * 2).padStart(7, '0')}`);
    let map = SortedMap.fromSortedKeys(keys, 0);
    const model = new Map(keys.map((k) => [k, 0]));
    for (let i = 0; i < 20_000; i++) {
      const key = `k${String(((i * 7919) % 600_000) + (i % 2)).padStart(7, '0')}`;
      if (i % 3 === 0) {
        map = map.delete(key);
        model.delete(key);
      } else {
        map = map.set(key, i);
        model.set(key, i);
      }
    }
    map.assertValid();
    const expected = sortedEntries(model);
    expect([...map.entries()]).to.deep.equal(expected);
    expect([...map.keys()]).to.deep.equal(expected.map(([k]) => k));
    const blocks = [...map.encodedLeaves((keys) => keys.join(' '))].map((text) => text.split(' '));
    expect(blocks.flat()).to.deep.equal(expected.map(([k]) => k));
    expect(blocks.every((b) => b.length > 0 && b.length <= 64)).to.equal(true);
  });

  it('walks the entries after a key (present, absent, before the first, past the last) in a deep tree and a lone leaf', () => {
    const next = random(7);
    let map = SortedMap.fromSortedKeys(Array.from({ length: 20_000 }, (_, i) => `k${String(i * 3).padStart(6, '0')}`), 1);
    const model = new Map([...map.entries()]);
    for (let i = 0; i < 5000; i++) {
      const key = `k${String(Math.floor(next() * 60_000)).padStart(6, '0')}`;
      if (next() < 0.5) {
        map = map.delete(key);
        model.delete(key);
      } else {
        map = map.set(key, i);
        model.set(key, i);
      }
    }
    const expected = sortedEntries(model);
    const probes = ['', 'a', 'k', 'z', expected[0]![0], expected.at(-1)![0], ...Array.from({ length: 300 }, () => `k${String(Math.floor(next() * 60_001)).padStart(6, '0')}`)];
    for (const after of probes) {
      const want = expected.filter(([k]) => k > after);
      // The first 70 (a page spans leaves) and the count of all of them.
      const got = [];
      let count = 0;
      for (const entry of map.entriesAfter(after)) {
        if (got.length < 70) got.push(entry);
        count++;
      }
      expect(got, `after ${JSON.stringify(after)}`).to.deep.equal(want.slice(0, 70));
      expect(count, `after ${JSON.stringify(after)}`).to.equal(want.length);
    }
    const small = SortedMap.fromSorted<number>([['b', 1], ['d', 2]]);
    expect([...small.entriesAfter('a')]).to.deep.equal([['b', 1], ['d', 2]]);
    expect([...small.entriesAfter('b')]).to.deep.equal([['d', 2]]);
    expect([...small.entriesAfter('c')]).to.deep.equal([['d', 2]]);
    expect([...small.entriesAfter('d')]).to.deep.equal([]);
    expect([...SortedMap.empty<number>().entriesAfter('a')]).to.deep.equal([]);
  });

  describe('encodedLeaves', () => {
    const fill = (n: number) => SortedMap.fromSortedArrays(Array.from({ length: n }, (_, i) => `k${String(i).padStart(6, '0')}`), Array.from({ length: n }, (_, i) => i));
    function counting(): { encode: LeafEncoder<number>; calls: number } {
      const counter = { calls: 0, encode: (keys: readonly string[], values: number[]) => {
        counter.calls++;
        return keys.map((k, i) => `${k}=${values[i]};`).join('');
      } };
      return counter;
    }
    const text = (map: SortedMap<number>) => [...map.entries()].map(([k, v]) => `${k}=${v};`).join('');

    it('encodes each leaf once, and after a change only the leaves it replaced', () => {
      const map = fill(10_000);
      const counter = counting();
      expect([...map.encodedLeaves(counter.encode)].join('')).to.equal(text(map));
      const leaves = counter.calls;
      expect(leaves).to.be.within(10_000 / 64, 10_000 / 16);
      expect([...map.encodedLeaves(counter.encode)].join('')).to.equal(text(map));
      expect(counter.calls).to.equal(leaves);
      const changed = map.set('k000500', -1).delete('k009000').set('k004000x', 7);
      expect([...changed.encodedLeaves(counter.encode)].join('')).to.equal(text(changed));
      expect(counter.calls - leaves).to.be.within(3, 6);
      // The old version still has its own texts.
      expect([...map.encodedLeaves(counter.encode)].join('')).to.equal(text(map));
    });

    it('keeps one encoder\'s text per leaf: another encoder re-encodes', () => {
      const map = fill(200);
      const a = counting();
      const b = counting();
      [...map.encodedLeaves(a.encode)];
      expect([...map.encodedLeaves(b.encode)].join('')).to.equal(text(map));
      expect(b.calls).to.equal(a.calls);
      expect([...SortedMap.empty<number>().encodedLeaves(a.encode)]).to.deep.equal(['']);
    });

    it('with a decoder, keeps only the text of a leaf it encodes, read back on first use', () => {
      const map = fill(1000);
      const counter = counting();
      let decoded = 0;
      const decode: LeafDecoder<number> = (leafText) => {
        decoded++;
        const entries = leafText.split(';').slice(0, -1).map((e) => e.split('='));
        return { keys: entries.map(([k]) => k!), values: entries.map(([, v]) => Number(v)) };
      };
      const whole = text(map);
      expect([...map.encodedLeaves(counter.encode, decode)].join('')).to.equal(whole);
      expect(decoded).to.equal(0);
      expect(map.get('k000500')).to.equal(500);
      expect(decoded).to.equal(1);
      expect(map.get('k000501')).to.equal(501);
      expect(decoded).to.equal(1);
      const changed = map.set('k000700', -7).delete('k000010');
      expect(decoded).to.equal(3);
      changed.assertValid();
      const changedText = text(changed);
      const reads = decoded;
      expect([...changed.encodedLeaves(counter.encode, decode)].join('')).to.equal(changedText);
      // Encoding reads no leaf: unchanged ones hand out their text, changed ones encode what they hold.
      expect(decoded).to.equal(reads);
      expect([...map.entries()]).to.deep.equal(Array.from({ length: 1000 }, (_, i) => [`k${String(i).padStart(6, '0')}`, i]));
    });

    it('encodes only the leaves a predicate allows, handing out the others as their entries', () => {
      const map = fill(1000);
      const counter = counting();
      const evenFirst = (keys: readonly string[]) => Number(keys[0]!.slice(1)) % 2 === 0;
      const out = [...map.encodedLeavesWhere(counter.encode, evenFirst)];
      const texts = out.filter((o): o is string => typeof o === 'string');
      const others = out.filter((o) => typeof o !== 'string');
      expect(texts.length).to.be.greaterThan(0);
      expect(others.length).to.be.greaterThan(0);
      expect(counter.calls).to.equal(texts.length);
      const joined = out.map((o) => (typeof o === 'string' ? o : o.keys.map((k, i) => `${k}=${o.values[i]};`).join(''))).join('');
      expect(joined).to.equal(text(map));
      [...map.encodedLeavesWhere(counter.encode, evenFirst)];
      expect(counter.calls).to.equal(texts.length);
    });

    it('lets the encoder replace values by equal ones', () => {
      const map = SortedMap.fromSortedArrays(['a', 'b'], ['x'.repeat(20), 'y'.repeat(20)]);
      const texts = [...map.encodedLeaves((keys, values) => {
        const joined = values.join('');
        values[0] = joined.slice(0, 20);
        values[1] = joined.slice(20);
        return joined;
      })];
      expect(texts).to.deep.equal(['x'.repeat(20) + 'y'.repeat(20)]);
      expect([...map.entries()]).to.deep.equal([['a', 'x'.repeat(20)], ['b', 'y'.repeat(20)]]);
    });
  });

  describe('leaves given as text (a restore)', () => {
    /** Lines `key=value\n`, and a decoder of them that counts its calls. */
    const encode: LeafEncoder<number> = (keys, values) => keys.map((k, i) => `${k}=${values[i]}\n`).join('');
    let reads = 0;
    const decode = (text: string, count: number) => {
      reads++;
      const lines = text.split('\n').slice(0, count);
      return { keys: lines.map((l) => l.split('=')[0]!), values: lines.map((l) => Number(l.split('=')[1])) };
    };
    const keys = Array.from({ length: 1000 }, (_, i) => `k${String(i).padStart(4, '0')}`);
    function fromTexts(): SortedMap<number> {
      const texts = [];
      let from = 0;
      for (const size of SortedMap.leafSizes(keys.length)) {
        const part = keys.slice(from, from + size);
        texts.push({ text: encode(part, part.map((k) => Number(k.slice(1)))), count: size, first: part[0]! });
        from += size;
      }
      return SortedMap.fromTexts(texts, decode, encode);
    }

    it('cuts a map into leaves of 32 to 64 entries adding up to its size', () => {
      for (const size of [1, 63, 64, 65, 127, 128, 129, 1000, 4097]) {
        const sizes = SortedMap.leafSizes(size);
        expect(sizes.reduce((a, b) => a + b, 0)).to.equal(size);
        for (const s of sizes) expect(s).to.be.within(sizes.length === 1 ? 1 : 32, 64);
      }
      expect(SortedMap.leafSizes(0)).to.deep.equal([]);
    });

    it('reads no leaf to build the tree or to hand its texts out again, and one leaf per first use', () => {
      reads = 0;
      const map = fromTexts();
      map.assertValid();
      expect(reads).to.equal(SortedMap.leafSizes(keys.length).length); // assertValid reads every leaf
      reads = 0;
      const fresh = fromTexts();
      expect(fresh.size).to.equal(1000);
      expect([...fresh.encodedLeaves(encode)].join('')).to.equal(encode(keys, keys.map((k) => Number(k.slice(1)))));
      expect(reads).to.equal(0);
      expect(fresh.get('k0500')).to.equal(500);
      expect(fresh.get('k0501')).to.equal(501);
      expect(fresh.has('k9999')).to.equal(false);
      expect(reads).to.be.within(1, 2);
    });

    it('takes sets and deletes on leaves not yet read like any others', () => {
      const map = fromTexts().set('k0500', -1).delete('k0001').set('k1500', 1500);
      map.assertValid();
      expect(map.size).to.equal(1000);
      expect(map.get('k0500')).to.equal(-1);
      expect(map.has('k0001')).to.equal(false);
      expect([...map.keys()].at(-1)).to.equal('k1500');
    });

    it('makes a one-leaf map whose first key is read when needed, and refuses leaves of a size a tree cannot hold', () => {
      reads = 0;
      const one = SortedMap.fromText('a=1\nb=2\n', 2, undefined, decode, encode);
      expect(reads).to.equal(0);
      expect([...one.entries()]).to.deep.equal([['a', 1], ['b', 2]]);
      expect(one.set('c', 3).size).to.equal(3);
      expect(() => SortedMap.fromText('', 0, undefined, decode, encode)).to.throw(Error, /1 to 64/);
      expect(() => SortedMap.fromTexts([{ text: '', count: 65, first: 'a' }], decode, encode)).to.throw(Error, /65 entries/);
      expect(() => SortedMap.fromTexts([{ text: '', count: 40, first: 'a' }, { text: '', count: 10, first: 'b' }], decode, encode)).to.throw(Error, /10 entries/);
    });

    it('refuses a leaf that reads back other than it was made', () => {
      const map = SortedMap.fromTexts([{ text: 'a=1', count: 2, first: 'a' }], decode, encode);
      expect(() => map.get('a')).to.throw(Error, /holds 1 keys.*not the 2/);
    });
  });

  describe('texts of a whole map', () => {
    const encode: LeafEncoder<true> = (keys) => keys.join(',');

    it('keeps the text made for a tag until another tag asks, and a changed map starts afresh', () => {
      const map = SortedMap.fromSortedKeys(['a', 'b'], true as const);
      let made = 0;
      const line = (m: SortedMap<true>, tag: string) => {
        made++;
        return `${tag}:${m.singleLeafText(encode)!}`;
      };
      expect(map.memo('x', line)).to.equal('x:a,b');
      expect(map.memo('x', line)).to.equal('x:a,b');
      expect(made).to.equal(1);
      expect(map.memo('y', line)).to.equal('y:a,b');
      expect(made).to.equal(2);
      expect(map.set('c', true).memo('y', line)).to.equal('y:a,b,c');
      expect(map.memo('y', line)).to.equal('y:a,b');
      map.remember('z', 'as read');
      expect(map.memo('z', line)).to.equal('as read');
    });

    it('gives a one-leaf map\'s text without keeping it with the leaf, and none for a larger map', () => {
      let encoded = 0;
      const counting: LeafEncoder<true> = (keys) => {
        encoded++;
        return keys.join(',');
      };
      const map = SortedMap.fromSortedKeys(['a', 'b'], true as const);
      expect(map.singleLeafText(counting)).to.equal('a,b');
      expect(map.singleLeafText(counting)).to.equal('a,b');
      expect(encoded).to.equal(2);
      expect([...map.encodedLeaves(counting)]).to.deep.equal(['a,b']);
      expect(map.singleLeafText(counting)).to.equal('a,b');
      expect(encoded).to.equal(3); // the leaf now keeps what encodedLeaves made
      const big = SortedMap.fromSortedKeys(Array.from({ length: 65 }, (_, i) => `k${String(i).padStart(2, '0')}`), true as const);
      expect(big.singleLeafText(counting)).to.equal(undefined);
    });
  });
});
