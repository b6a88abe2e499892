import { expect } from 'chai';
import { BadRequestError, ConflictError, NotFoundError } from '../../src/errors.js';
import {
  collectionArchiveFile,
  parseCollectionFile,
  SpaceBuilder,
  spaceArchiveFiles,
  StoreState,
  type ArchiveFileSource,
  type SpaceData,
  type SpaceMeta,
  type TemplateDef,
  type TxOp,
} from '../../src/store/index.js';
import { applyAll, commit, create, del, load, put, refusal } from '../helpers/store-ops.js';







function textOf(file: ArchiveFileSource): string {
  return [...file.chunks()].join('');
}

/** The lines of an ndjson text, without the empty tail after the last `\n`. */
function linesOf(text: string): string[] {
  if (text === '') return [];
  expect(text.endsWith('\n')).to.equal(true);
  return text.slice(0, -1).split('\n');
}

/** Every file of a collection checkpoint of `state`, by path, in writing order. */
function archive(state: StoreState): Map<string, string> {
  const files = [collectionArchiveFile(state), ...state.spaces().flatMap((s) => spaceArchiveFiles(state, s.id))];
  return new Map(files.map((f) => [f.path, textOf(f)]));
}

function metaOf(state: StoreState, id: string): SpaceMeta {
  const info = state.space(id)!;
  return { id, template: info.template, objects: info.objectCount, createdSeq: info.createdSeq, updatedSeq: info.updatedSeq };
}

/** One space rebuilt from archive texts, the way the ZIP layer does it: every index file announced, then its lines. */
function rebuildSpace(files: Map<string, string>, meta: SpaceMeta, template: TemplateDef): SpaceData {
  const builder = new SpaceBuilder(meta, template);
  for (const line of linesOf(files.get(`space/${meta.id}/store/objects.ndjson`)!)) builder.storeLine(line);
  for (const field of template.indexes) {
    const text = files.get(`space/${meta.id}/index/${field}.ndjson`);
    if (text === undefined) continue;
    builder.indexFile(field);
    for (const line of linesOf(text)) builder.indexLine(field, line);
  }
  return builder.build();
}

/** A whole state read back from a collection checkpoint's files. */
function rebuild(files: Map<string, string>, seq: number): StoreState {
  const collection = parseCollectionFile(files.get('collection/collection.json')!);
  const spaces = collection.spaces.map((meta) => {
    const template = collection.templates.find((t) => t.name === meta.template.name && t.version === meta.template.version)!;
    return rebuildSpace(files, meta, template);
  });
  return StoreState.fromCollection(collection, spaces, seq);
}

function indexesOf(state: StoreState, id: string): [string, [string, string[]][]][] {
  return state.indexedFields(id).map((field) => [field, [...state.indexEntries(id, field)].map(([value, keys]) => [value, [...keys]])]);
}

/** Checks that `copy` reads exactly as `original`: templates, spaces, objects (text and parsed), indexes and queries. */
function expectSameState(copy: StoreState, original: StoreState): void {
  expect(copy.seq).to.equal(original.seq);
  expect(copy.templates()).to.deep.equal(original.templates());
  expect(copy.spaces()).to.deep.equal(original.spaces());
  for (const { id } of original.spaces()) {
    expect([...copy.objectTexts(id)]).to.deep.equal([...original.objectTexts(id)]);
    expect([...copy.objects(id)]).to.deep.equal([...original.objects(id)]);
    expect(copy.indexedFields(id)).to.deep.equal(original.indexedFields(id));
    const indexes = indexesOf(original, id);
    expect(indexesOf(copy, id)).to.deep.equal(indexes);
    for (const [field, entries] of indexes) {
      for (const [value] of entries) expect(copy.queryText(id, { [field]: value })).to.deep.equal(original.queryText(id, { [field]: value }));
    }
    expect(copy.query(id, {})).to.deep.equal(original.query(id, {}));
  }
}

/** Several spaces and templates; indexed string, number, boolean and array values; replacements and deletes. */
function richState(): StoreState {
  return applyAll(
    StoreState.empty(),
    load('plm', '1.0', ['type', 'owner']),
    load('plm', '1.1', ['type', 'tags', 'flag']),
    load('cad', '2.0'),
    load('plm', '1.10', ['type']),
    create('parts'),
    create('docs', 'plm', '1.0'),
    create('empty', 'cad', '2.0'),
    commit(
      'parts',
      put('p1', { type: 'Part', owner: 'ann', tags: ['steel', 'm8'], flag: true, n: 1.5 }),
      put('p2', { type: 'Part', owner: 'bob', tags: ['steel'], flag: false }),
      put('p3', { type: 7, owner: true, tags: [1, true, null, { x: 1 }, 'm8', 'm8'] }),
      put('p4', { type: 'Doc', owner: 'ann' }),
      put('odd:key@1~x', { type: 'quote " back \\ nl \n tab \t é 😀 \u2028', owner: ['ann', 'cy'] }),
      put('lone', { type: '\ud800', owner: '' }),
      put('scalar', 42),
      put('list', ['type', 'Part']),
      put('gone', { type: 'Part' }),
    ),
    commit('parts', put('p2', { type: 'Tool', owner: 'bob', tags: ['wood'] }), del('gone'), put('p4', { type: 'Doc', owner: 'dan', flag: true })),
    commit('docs', put('d1', { type: 'Doc', owner: 'ann' }), put('d2', null), put('d3', 'text')),
    { type: 'space.upgrade', id: 'parts', version: '1.1' },
    commit('parts', put('p5', { type: ['Part', 'Doc'], tags: ['new'], flag: false }), del('p3')),
    commit('docs', del('d2')),
  );
}

describe('store checkpoint files', () => {
  describe('round trip', () => {
    it('rebuilds every space, object, index, count, template and space info from the files it writes', () => {
      const original = richState();
      const copy = rebuild(archive(original), original.seq);
      expectSameState(copy, original);
      expect(copy.query('parts', { tags: 'm8' }).map((r) => r.key)).to.deep.equal(['p1']);
      expect(copy.query('parts', { flag: 'true' }).map((r) => r.key)).to.deep.equal(['p1', 'p4']);
      expect(copy.query('parts', { type: 'Part', flag: 'false' }).map((r) => r.key)).to.deep.equal(['p5']);
      expect(copy.query('parts', { type: '\ud800' }).map((r) => r.key)).to.deep.equal(['lone']);
      expect(copy.getObject('parts', 'odd:key@1~x')).to.deep.equal(original.getObject('parts', 'odd:key@1~x'));
    });

    it('writes files that a rebuilt state writes again byte for byte', () => {
      const files = archive(richState());
      expect(archive(rebuild(files, richState().seq))).to.deep.equal(files);
    });

    it('a rebuilt state goes on taking writes, keeping its indexes right', () => {
      const original = richState();
      const ops = [commit('parts', put('p1', { type: 'Doc', tags: [] }), del('p4'), put('p9', { type: 'Part', flag: true })), commit('docs', put('d1', { owner: 'zed' }))];
      const expected = applyAll(original, ...ops);
      const copy = applyAll(rebuild(archive(original), original.seq), ...ops);
      expectSameState(copy, expected);
    });

    it('round-trips a big space of 60k objects', function () {
      this.timeout(120_000);
      let state = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner']), create('big'));
      const batch: TxOp[] = [];
      for (let i = 0; i < 60_000; i++) {
        batch.push(put(`obj-${String(i).padStart(7, '0')}`, { type: ['Part', 'Doc', 'Tool'][i % 3]!, owner: `o${i % 1000}`, n: i, name: `object number ${i}` }));
        if (batch.length === 10_000) state = state.apply(commit('big', ...batch.splice(0)), state.seq + 1);
      }
      const files = archive(state);
      const copy = rebuild(files, state.seq);
      expect(copy.spaces()).to.deep.equal(state.spaces());
      expect(archive(copy)).to.deep.equal(files);
      expect(copy.query('big', { type: 'Doc' })).to.have.length(20_000);
      expect(copy.query('big', { owner: 'o7', type: 'Tool' }).map((r) => r.key)).to.deep.equal(state.query('big', { owner: 'o7', type: 'Tool' }).map((r) => r.key));
      expect(copy.getObject('big', 'obj-0012345')).to.deep.equal({ type: 'Part', owner: 'o345', n: 12345, name: 'object number 12345' });
    });
  });

  describe('formats', () => {
    function small(): StoreState {
      return applyAll(
        StoreState.empty(),
        load('plm', '1.0', ['type', 'owner', 'colour']),
        load('cad', '2.0'),
        create('s1'),
        commit('s1', put('b', { type: 'Part', owner: 'ann' }), put('a', { type: ['Part', 7, false], n: 'x"y' }), put('c', 'plain')),
      );
    }

    it('writes collection.json with the templates and spaces as listed', () => {
      expect(textOf(collectionArchiveFile(small()))).to.equal(
        '{"format":1,"templates":[{"name":"cad","version":"2.0","indexes":[]},{"name":"plm","version":"1.0","indexes":["type","owner","colour"]}],' +
          '"spaces":[{"id":"s1","template":{"name":"plm","version":"1.0"},"objects":3,"createdSeq":3,"updatedSeq":4}]}',
      );
      expect(collectionArchiveFile(small()).path).to.equal('collection/collection.json');
    });

    it('writes the store file first, then one index file per indexed field by name, an empty one as 0 bytes', () => {
      const files = spaceArchiveFiles(small(), 's1');
      expect(files.map((f) => f.path)).to.deep.equal([
        'space/s1/store/objects.ndjson',
        'space/s1/index/colour.ndjson',
        'space/s1/index/owner.ndjson',
        'space/s1/index/type.ndjson',
      ]);
      expect(textOf(files[0]!)).to.equal('{"key":"a","value":{"type":["Part",7,false],"n":"x\\"y"}}\n{"key":"b","value":{"type":"Part","owner":"ann"}}\n{"key":"c","value":"plain"}\n');
      expect([...files[1]!.chunks()]).to.deep.equal([]);
      expect(textOf(files[2]!)).to.equal('{"value":"ann","keys":["b"]}\n');
      expect(textOf(files[3]!)).to.equal('{"value":"7","keys":["a"]}\n{"value":"Part","keys":["a","b"]}\n{"value":"false","keys":["a"]}\n');
    });

    it('escapes indexed values as JSON strings', () => {
      const state = applyAll(StoreState.empty(), load('t', '1', ['v']), create('s', 't', '1'), commit('s', put('k', { v: 'a"b\\c\nd\u0001\ud800' })));
      expect(textOf(spaceArchiveFiles(state, 's')[1]!)).to.equal('{"value":"a\\"b\\\\c\\nd\\u0001\\ud800","keys":["k"]}\n');
    });

    it('refuses to write the files of an unknown space (404)', () => {
      expect(() => spaceArchiveFiles(small(), 'nope')).to.throw(NotFoundError);
    });
  });

  describe('chunks', () => {
    function bulky(): StoreState {
      let state = applyAll(StoreState.empty(), load('plm', '1.0', ['type']), create('s'));
      for (let b = 0; b < 4; b++) {
        const ops = Array.from({ length: 5000 }, (_, i) => put(`k${String(b * 5000 + i).padStart(6, '0')}`, { type: 'Part', pad: 'x'.repeat(40), i }));
        state = state.apply(commit('s', ...ops), state.seq + 1);
      }
      return state;
    }

    it('chunks() gives identical text each time it is called, the object file in whole lines', () => {
      const state = bulky();
      for (const file of spaceArchiveFiles(state, 's')) {
        const first = [...file.chunks()];
        const second = [...file.chunks()];
        expect(second).to.deep.equal(first);
        expect(first.length).to.be.greaterThan(file.path.endsWith('objects.ndjson') ? 10 : 2);
        if (file.path.endsWith('objects.ndjson')) for (const piece of first) expect(piece.endsWith('\n')).to.equal(true);
      }
    });

    it('after a commit the text is the same as a fresh encoding of the new state', () => {
      const state = bulky();
      archive(state);
      const later = state.apply(commit('s', put('k000001', { type: 'Doc' }), del('k000002'), put('k0000015', { type: 'Part' })), state.seq + 1);
      const fresh = rebuild(archive(later), later.seq);
      expect(archive(later)).to.deep.equal(archive(fresh));
      expectSameState(fresh, later);
    });

    it('a snapshot writes the same text after later writes to the state it came from', () => {
      const snapshot = bulky();
      const before = archive(snapshot);
      applyAll(snapshot, commit('s', put('k000001', { type: 'Doc' }), del('k000002')), load('plm', '2.0'), create('t'));
      expect(archive(snapshot)).to.deep.equal(before);
    });

    it('encodes round after round of random changes as a fresh state would, from states built by commits and by a restore', () => {
      // `owner` makes many short posting lists (an index leaf kept as one text), `type` a few long ones (kept a leaf
      // of keys at a time); the objects' leaves keep only their text once written and are read back when changed.
      let seed = 7;
      const rand = (n: number): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed % n;
      };
      const value = () => ({ type: `t${rand(3)}`, owner: `o${String(rand(300)).padStart(3, '0')}`, n: rand(1000), s: 'q"\\\n'.slice(0, rand(5)) });
      const start = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner']), create('s'));
      const keys = Array.from({ length: 3000 }, (_, i) => `k${String(i).padStart(5, '0')}`);
      let state = start.apply(commit('s', ...keys.map((k) => put(k, value()))), start.seq + 1);
      let restored = rebuild(archive(state), state.seq);
      const rounds: TxOp[][] = [];
      for (let round = 0; round < 6; round++) {
        const ops: TxOp[] = [];
        const touched = new Set<string>();
        for (let i = 0; i < 40 + rand(200); i++) {
          const key = rand(4) === 0 ? `k${String(rand(4000)).padStart(5, '0')}x` : (keys[rand(keys.length)] as string);
          if (touched.has(key)) continue;
          touched.add(key);
          ops.push(rand(5) === 0 && state.getObjectText('s', key) !== undefined ? del(key) : put(key, value()));
        }
        rounds.push(ops);
        state = state.apply(commit('s', ...ops), state.seq + 1);
        restored = restored.apply(commit('s', ...ops), restored.seq + 1);
        // The reference: the same objects put at once into a state never written before (its space files only:
        // collection.json holds seqs, which differ).
        const fresh = start.apply(commit('s', ...[...state.objects('s')].map(([k, v]) => put(k, v))), start.seq + 1);
        const expected = [...archive(fresh)].filter(([path]) => path.startsWith('space/'));
        expect(expected.length).to.equal(3);
        const written = archive(state);
        expect([...written].filter(([path]) => path.startsWith('space/'))).to.deep.equal(expected, `round ${round}, a state built by commits`);
        expect([...archive(restored)].filter(([path]) => path.startsWith('space/'))).to.deep.equal(expected, `round ${round}, a restored state`);
        expectSameState(rebuild(written, state.seq), state);
        expectSameState(restored, state);
      }
      expect(rounds.flat().length).to.be.greaterThan(300);
    });

    it('cuts a long posting list between keys, so the index file still reads back', () => {
      const state = bulky();
      const chunks = [...spaceArchiveFiles(state, 's')[1]!.chunks()];
      expect(chunks.length).to.be.greaterThan(1);
      expect(chunks[0]!.startsWith('{"value":"Part","keys":["k000000","k000001"')).to.equal(true);
      expectSameState(rebuild(archive(state), state.seq), state);
    });
  });

  describe('restoring into a state', () => {
    function twoSpaces(): StoreState {
      return applyAll(
        StoreState.empty(),
        load('plm', '1.0', ['type']),
        create('a'),
        create('b'),
        commit('a', put('a1', { type: 'Part' }), put('a2', { type: 'Doc' })),
        commit('b', put('b1', { type: 'Part' })),
      );
    }

    it('withRestoredSpaces replaces one space and leaves the others, at the new seq', () => {
      const saved = twoSpaces();
      const files = archive(saved);
      const data = rebuildSpace(files, metaOf(saved, 'a'), saved.template('plm', '1.0')!);
      expect(data.id).to.equal('a');
      expect(data.objectCount).to.equal(2);
      const later = applyAll(saved, commit('a', put('a3', { type: 'Part' }), del('a1')), commit('b', put('b2', { type: 'Doc' })));
      const restored = later.withRestoredSpaces([data], later.seq + 1);
      expect(restored.seq).to.equal(later.seq + 1);
      expect(restored.space('a')).to.deep.equal({ ...saved.space('a'), updatedSeq: later.seq + 1 });
      expect([...restored.objectTexts('a')]).to.deep.equal([...saved.objectTexts('a')]);
      expect(restored.query('a', { type: 'Part' }).map((r) => r.key)).to.deep.equal(['a1']);
      expect(restored.space('b')).to.deep.equal(later.space('b'));
      expect([...restored.objectTexts('b')]).to.deep.equal([...later.objectTexts('b')]);
      // The state it came from is untouched.
      expect(later.getObject('a', 'a3')).to.deep.equal({ type: 'Part' });
    });

    it('withRestoredSpaces creates a space that does not exist', () => {
      const saved = twoSpaces();
      const data = rebuildSpace(archive(saved), metaOf(saved, 'b'), saved.template('plm', '1.0')!);
      const target = applyAll(StoreState.empty(), load('plm', '1.0', ['type']));
      const restored = target.withRestoredSpaces([data], 5);
      expect(restored.spaces().map((s) => s.id)).to.deep.equal(['b']);
      expect(restored.query('b', { type: 'Part' }).map((r) => r.key)).to.deep.equal(['b1']);
    });

    it('withRestoredSpaces refuses a template that is not loaded (404), one loaded with other indexes (409), a repeated space and a seq that does not move forward', () => {
      const saved = twoSpaces();
      const data = rebuildSpace(archive(saved), metaOf(saved, 'a'), saved.template('plm', '1.0')!);
      expect(() => StoreState.empty().withRestoredSpaces([data], 1)).to.throw(NotFoundError, /plm version 1\.0 is not loaded/);
      const other = applyAll(StoreState.empty(), load('plm', '1.0', ['owner']));
      expect(() => other.withRestoredSpaces([data], 2)).to.throw(ConflictError, /indexes \[owner\]/);
      expect(() => saved.withRestoredSpaces([data, data], saved.seq + 1)).to.throw(BadRequestError, /twice/);
      expect(() => saved.withRestoredSpaces([data], saved.seq)).to.throw(Error, /seq/);
    });

    it('fromCollection refuses a listed space without data, and data for a space not listed', () => {
      const saved = twoSpaces();
      const files = archive(saved);
      const collection = parseCollectionFile(files.get('collection/collection.json')!);
      const template = saved.template('plm', '1.0')!;
      const a = rebuildSpace(files, metaOf(saved, 'a'), template);
      const b = rebuildSpace(files, metaOf(saved, 'b'), template);
      expect(() => StoreState.fromCollection(collection, [a], saved.seq)).to.throw(BadRequestError, /"b".*no rebuilt data/);
      expect(() => StoreState.fromCollection({ ...collection, spaces: collection.spaces.slice(0, 1) }, [a, b], saved.seq)).to.throw(BadRequestError, /"b".*does not list/);
      expect(() => StoreState.fromCollection(collection, [a, b], 2)).to.throw(BadRequestError, /after the checkpoint's seq/);
      const whole = StoreState.fromCollection(collection, [b, a], 99);
      expect(whole.seq).to.equal(99);
      expect(whole.spaces()).to.deep.equal(saved.spaces());
    });
  });

  describe('parseCollectionFile', () => {
    const good = { format: 1, templates: [{ name: 'plm', version: '1.0', indexes: ['type'] }], spaces: [{ id: 's', template: { name: 'plm', version: '1.0' }, objects: 2, createdSeq: 2, updatedSeq: 3 }] };

    function parseWith(change: (data: Record<string, unknown>) => void): () => unknown {
      const data = structuredClone(good) as unknown as Record<string, unknown>;
      change(data);
      return () => parseCollectionFile(JSON.stringify(data));
    }

    it('reads a valid file', () => {
      expect(parseCollectionFile(JSON.stringify(good))).to.deep.equal({ templates: good.templates, spaces: good.spaces });
    });

    it('refuses a file that is wrong, naming what is wrong (400)', () => {
      expect(() => parseCollectionFile('{"format":1,')).to.throw(BadRequestError, /collection\.json is not JSON/);
      expect(parseWith((d) => (d.format = 2))).to.throw(BadRequestError, /format 2/);
      expect(parseWith((d) => (d.extra = 1))).to.throw(BadRequestError, /unknown member "extra"/);
      expect(parseWith((d) => delete d.spaces)).to.throw(BadRequestError, /lacks "spaces"/);
      expect(parseWith((d) => ((d.templates as TemplateDef[])[0]!.version = 'v1'))).to.throw(BadRequestError, /templates\[0\].*version "v1"/);
      expect(parseWith((d) => ((d.templates as TemplateDef[])[0]!.indexes = ['1st']))).to.throw(BadRequestError, /templates\[0\]/);
      expect(parseWith((d) => (d.templates as unknown[]).push(good.templates[0]))).to.throw(BadRequestError, /plm 1\.0 is listed twice/);
      expect(parseWith((d) => ((d.spaces as SpaceMeta[])[0]!.id = '../x'))).to.throw(BadRequestError, /spaces\[0\]\.id.*space id/);
      expect(parseWith((d) => ((d.spaces as SpaceMeta[])[0]!.template.version = '2.0'))).to.throw(BadRequestError, /spaces\[0\].*2\.0, which the file does not list/);
      expect(parseWith((d) => ((d.spaces as SpaceMeta[])[0]!.objects = -1))).to.throw(BadRequestError, /spaces\[0\]\.objects.*-1/);
      expect(parseWith((d) => ((d.spaces as SpaceMeta[])[0]!.updatedSeq = 1))).to.throw(BadRequestError, /before createdSeq/);
      expect(parseWith((d) => (d.spaces as unknown[]).push(good.spaces[0]))).to.throw(BadRequestError, /spaces\[1\].*"s" is listed twice/);
    });
  });

  describe('SpaceBuilder', () => {
    const template: TemplateDef = { name: 'plm', version: '1.0', indexes: ['type', 'owner'] };
    const meta: SpaceMeta = { id: 's', template: { name: 'plm', version: '1.0' }, objects: 3, createdSeq: 1, updatedSeq: 5 };

    function builder(objects = 3): SpaceBuilder {
      return new SpaceBuilder({ ...meta, objects }, template);
    }

    /** A builder given three good objects and both index files. */
    function filled(): SpaceBuilder {
      const b = builder();
      b.storeLine('{"key":"a","value":{"type":"Part"}}');
      b.storeLine('{"key":"b","value":{"type":"Doc","owner":"ann"}}');
      b.storeLine('{"key":"c","value":3}');
      b.indexLine('type', '{"value":"Doc","keys":["b"]}');
      b.indexLine('type', '{"value":"Part","keys":["a"]}');
      b.indexFile('owner');
      b.indexLine('owner', '{"value":"ann","keys":["b"]}');
      return b;
    }


    it('keeps each value as the exact text the file holds, without parsing or re-encoding it', () => {
      const b = builder(2);
      b.storeLine('{"key":"a","value":{ "type" : "Part", "x": [1, 2.50] }}');
      b.storeLine('{"key":"b","value":"}"}');
      b.indexFile('type');
      b.indexLine('owner', '{"value":"a\\"b\\u00e9","keys":["a","b"]}');
      b.indexLine('type', '{"value":"Part","keys":["a"]}');
      const state = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner'])).withRestoredSpaces([b.build()], 9);
      expect(state.getObjectText('s', 'a')).to.equal('{ "type" : "Part", "x": [1, 2.50] }');
      expect(state.getObject('s', 'a')).to.deep.equal({ type: 'Part', x: [1, 2.5] });
      expect(state.getObjectText('s', 'b')).to.equal('"}"');
      expect(state.query('s', { owner: 'a"bé' }).map((r) => r.key)).to.deep.equal(['a', 'b']);
      expect(state.space('s')).to.deep.equal({ id: 's', template: { name: 'plm', version: '1.0' }, objectCount: 2, createdSeq: 1, updatedSeq: 9 });
    });

    it('refuses a store line that is not {"key":"…","value":…}, naming the line', () => {
      for (const line of ['', '{"key":1,"value":1}', '{"value":1,"key":"x"}', '{"key":"x"}', '{"key":"x","value":}', '{"key":"x","value":1', '{"key":"x","val":1}', '{"key":"x","value":?}']) {
        const b = builder();
        b.storeLine('{"key":"a","value":1}');
        expect(refusal(() => b.storeLine(line))).to.match(/^space\/s\/store\/objects\.ndjson line 2: /);
      }
    });

    it('refuses a bad key, naming the line', () => {
      const b = builder();
      expect(refusal(() => b.storeLine('{"key":"../x","value":1}'))).to.match(/objects\.ndjson line 1: object key "\.\.\/x" is not valid/);
    });

    it('refuses keys out of order, naming the line', () => {
      const b = builder();
      b.storeLine('{"key":"b","value":1}');
      expect(refusal(() => b.storeLine('{"key":"a","value":1}'))).to.match(/line 2: key "a" comes after "b"/);
    });

    it('refuses a key that is there twice, naming the line', () => {
      const b = builder();
      b.storeLine('{"key":"a","value":1}');
      b.storeLine('{"key":"b","value":1}');
      expect(refusal(() => b.storeLine('{"key":"b","value":2}'))).to.match(/line 3: key "b" is there twice/);
    });

    it('refuses an object count other than the space is said to hold, fewer or more', () => {
      const fewer = builder(4);
      for (const k of ['a', 'b', 'c']) fewer.storeLine(`{"key":"${k}","value":1}`);
      fewer.indexFile('type');
      fewer.indexFile('owner');
      expect(refusal(() => fewer.build())).to.match(/objects\.ndjson holds 3 objects, but space "s" is said to hold 4/);
      const more = builder(1);
      more.storeLine('{"key":"a","value":1}');
      expect(refusal(() => more.storeLine('{"key":"b","value":1}'))).to.match(/line 2: more objects than the 1/);
    });

    it('refuses an index file of a field the template does not index, naming the field', () => {
      expect(refusal(() => builder().indexLine('colour', '{"value":"red","keys":["a"]}'))).to.match(/field "colour".*does not index.*type, owner/);
      expect(refusal(() => builder().indexFile('colour'))).to.match(/field "colour"/);
    });

    it('takes an index naming a key the object file lacks as written (the SHA-256 check vouches for both files), and queries skip that key', () => {
      const b = filled();
      b.indexLine('owner', '{"value":"bob","keys":["a","zz"]}');
      const state = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner'])).withRestoredSpaces([b.build()], 9);
      expect(state.query('s', { owner: 'bob' })).to.deep.equal([{ key: 'a', value: { type: 'Part' } }]);
      expect([...state.indexEntries('s', 'owner')].map(([v, keys]) => [v, [...keys]])).to.deep.equal([['ann', ['b']], ['bob', ['a', 'zz']]]);
    });

    it('reads lines given as ranges of chunks cut anywhere into the same space as lines given one by one, and writes the same files again', () => {
      let state = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner']), create('s', 'plm', '1.0'));
      const ops: TxOp[] = [];
      for (let i = 0; i < 300; i++) ops.push(put(`k${String(i).padStart(4, '0')}`, { type: i % 3 === 0 ? 'Tool' : 'Part', owner: `o${i % 40}`, n: 'é€' }));
      state = state.apply(commit('s', ...ops), state.seq + 1);
      const files = archive(state);
      const meta = metaOf(state, 's');
      const template: TemplateDef = { name: 'plm', version: '1.0', indexes: ['type', 'owner'] };
      const byLine = rebuildSpace(files, meta, template);
      // The same texts as ranges of chunks of about 1,000 characters: a line cut by a chunk's end comes as a string of its own.
      const chunked = new SpaceBuilder(meta, template);
      const feed = (text: string, line: (text: string, start: number, end: number) => void) => {
        let rest = '';
        for (let at = 0; at < text.length; at += 997) {
          const chunk = text.slice(at, at + 997);
          let start = 0;
          let end = chunk.indexOf('\n');
          if (rest !== '' && end >= 0) {
            const first = rest + chunk.slice(0, end);
            line(first, 0, first.length);
            rest = '';
            start = end + 1;
            end = chunk.indexOf('\n', start);
          } else if (rest !== '') {
            rest += chunk;
            continue;
          }
          for (; end >= 0; end = chunk.indexOf('\n', start)) {
            line(chunk, start, end);
            start = end + 1;
          }
          rest = chunk.slice(start);
        }
        if (rest !== '') line(rest, 0, rest.length);
      };
      feed(files.get('space/s/store/objects.ndjson')!, (t, a, z) => chunked.storeLine(t, a, z));
      for (const field of ['owner', 'type']) {
        chunked.indexFile(field);
        feed(files.get(`space/s/index/${field}.ndjson`)!, (t, a, z) => chunked.indexLine(field, t, a, z));
      }
      const base = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner']));
      const fromLines = base.withRestoredSpaces([byLine], state.seq);
      const fromChunks = base.withRestoredSpaces([chunked.build()], state.seq);
      for (const copy of [fromLines, fromChunks]) {
        expect([...copy.objectTexts('s')]).to.deep.equal([...state.objectTexts('s')]);
        expect(indexesOf(copy, 's')).to.deep.equal(indexesOf(state, 's'));
        for (const file of spaceArchiveFiles(copy, 's')) expect(textOf(file), file.path).to.equal(files.get(file.path));
      }
      // A Tool line of 100 keys is more than one leaf of its posting list.
      expect([...[...fromChunks.indexEntries('s', 'type')][1]![1]]).to.have.length(100);
    });

    it('writes an index line again as it was read, and anew once its posting list changes', () => {
      const b = filled();
      const state = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner'])).withRestoredSpaces([b.build()], 9);
      expect(textOf(spaceArchiveFiles(state, 's')[1]!)).to.equal('{"value":"ann","keys":["b"]}\n');
      const later = applyAll(state, commit('s', put('c', { owner: 'ann' }), put('d', { owner: 'a\\b' })));
      expect(textOf(spaceArchiveFiles(later, 's')[1]!)).to.equal('{"value":"a\\\\b","keys":["d"]}\n{"value":"ann","keys":["b","c"]}\n');
      // A value written with an escape is read back and written as JSON.stringify writes it.
      const escaped = builder(1);
      escaped.storeLine('{"key":"a","value":1}');
      escaped.indexFile('type');
      escaped.indexLine('owner', '{"value":"\\u0061nn","keys":["a"]}');
      const fromEscaped = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner'])).withRestoredSpaces([escaped.build()], 9);
      expect(textOf(spaceArchiveFiles(fromEscaped, 's')[1]!)).to.equal('{"value":"ann","keys":["a"]}\n');
    });

    it('writes the line of a posting list that grew past one leaf and shrank back to 64 keys or fewer (two leaves still)', () => {
      const keys = Array.from({ length: 70 }, (_, i) => `k${String(i).padStart(2, '0')}`);
      let state = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner']), create('s', 'plm', '1.0'), commit('s', ...keys.map((k) => put(k, { owner: 'x' }))));
      const before = textOf(spaceArchiveFiles(state, 's')[1]!);
      state = applyAll(state, commit('s', ...keys.slice(0, 10).map((k) => del(k))));
      const line = textOf(spaceArchiveFiles(state, 's')[1]!);
      expect(line).to.equal(`{"value":"x","keys":["${keys.slice(10).join('","')}"]}\n`);
      expect(before).to.equal(`{"value":"x","keys":["${keys.join('","')}"]}\n`);
    });

    it('refuses an index value holding a control character', () => {
      expect(refusal(() => filled().indexLine('type', '{"value":"a\tb","keys":["c"]}'))).to.match(/type\.ndjson line 3: the value holds a control character/);
    });

    it('refuses index keys that are empty, hold a backslash or a stray quote, naming the file and line', () => {
      const cases: [string, RegExp][] = [
        ['{"value":"Z","keys":["a",""]}', /type\.ndjson line 3: keys\[1\] is not a key/],
        ['{"value":"Z","keys":["a","b\\c"]}', /line 3: a key holds a backslash/],
        ['{"value":"Z","keys":["a"b"]}', /line 3: keys\[0\] is not a key/],
      ];
      for (const [line, message] of cases) {
        const b = filled();
        expect(refusal(() => b.indexLine('type', line))).to.match(message);
      }
    });

    it('reads dense and sparse index lines alike, before or after the object file', () => {
      const keys = Array.from({ length: 200 }, (_, i) => `k${String(i).padStart(3, '0')}`);
      const make = () => new SpaceBuilder({ id: 's', template: { name: 'plm', version: '1.0' }, objects: keys.length, createdSeq: 1, updatedSeq: 1 }, { name: 'plm', version: '1.0', indexes: ['type', 'owner'] });
      const typeLines = [`{"value":"Part","keys":["${keys.filter((_, i) => i % 3 !== 0).join('","')}"]}`, `{"value":"Tool","keys":["${keys.filter((_, i) => i % 3 === 0).join('","')}"]}`];
      const ownerLines = keys.map((k, i) => `{"value":"o${String(i).padStart(3, '0')}","keys":["${k}"]}`);
      const results = [true, false].map((storeFirst) => {
        const b = make();
        const store = () => keys.forEach((k, i) => b.storeLine(`{"key":"${k}","value":{"i":${i}}}`));
        if (storeFirst) store();
        typeLines.forEach((l) => b.indexLine('type', l));
        ownerLines.forEach((l) => b.indexLine('owner', l));
        if (!storeFirst) store();
        const space = b.build();
        return [...space.space.indexEntries('type')].map(([v, ks]) => [v, [...ks]]).concat([...space.space.indexEntries('owner')].map(([v, ks]) => [v, [...ks]]));
      });
      expect(results[0]).to.deep.equal(results[1]);
      expect(results[0]![0]).to.deep.equal(['Part', keys.filter((_, i) => i % 3 !== 0)]);
      expect(results[0]).to.have.length(2 + keys.length);
    });

    it('refuses a missing index file, naming the field', () => {
      const b = builder();
      for (const k of ['a', 'b', 'c']) b.storeLine(`{"key":"${k}","value":1}`);
      b.indexFile('type');
      expect(refusal(() => b.build())).to.match(/space\/s\/index\/owner\.ndjson is missing.*indexes "owner"/);
    });

    it('refuses index lines out of order, repeated, malformed or with keys out of order, naming the file and line', () => {
      const cases: [string, RegExp][] = [
        ['{"value":"Part","keys":["c"]}', /type\.ndjson line 3: value "Part" is there twice/],
        ['{"value":"Abc","keys":["c"]}', /line 3: value "Abc" comes after "Part"/],
        ['{"value":"Z","keys":[]}', /line 3: .*non-empty/],
        ['{"value":"Z","keys":["c","a"]}', /line 3: keys\[1\] "a" is not after "c"/],
        ['{"value":"Z","keys":["c","c"]}', /line 3: keys\[1\]/],
        ['{"value":"Z"}', /line 3: /],
        ['{"value":"Z","keys":["c"]', /line 3: does not end/],
        ['{"value":7,"keys":["c"]}', /line 3: does not start/],
        ['{"value":"\\x","keys":["c"]}', /line 3: the value is not a JSON string/],
      ];
      for (const [line, message] of cases) {
        const b = filled();
        expect(refusal(() => b.indexLine('type', line))).to.match(message);
      }
    });

    it('refuses an index file given twice, and a template other than the one the space follows', () => {
      expect(refusal(() => filled().indexFile('owner'))).to.match(/owner\.ndjson is given twice/);
      expect(refusal(() => new SpaceBuilder(meta, { ...template, version: '1.1' }))).to.match(/follows template plm 1\.0.*rebuilt with template plm 1\.1/);
      expect(refusal(() => new SpaceBuilder({ ...meta, id: 'a/b' }, template))).to.match(/space id/);
    });

    it('builds once', () => {
      const b = filled();
      b.build();
      expect(() => b.build()).to.throw(Error, /already/);
      expect(() => b.storeLine('{"key":"d","value":1}')).to.throw(Error, /already/);
    });
  });
});
