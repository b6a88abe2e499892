import { expect } from 'chai';
import { BadRequestError, ConflictError, NotFoundError } from '../../src/errors.js';
import { isValidOp, StoreState, type Json, type StoreOp, type TemplateDef, type TxOp } from '../../src/store/index.js';
import { applyAll, commit, create, del, load, put } from '../helpers/store-ops.js';







/** A state with template plm 1.0 (indexes type, owner) and an empty space "test". */
function withSpace(): StoreState {
  return applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner']), create('test'));
}

function keys(result: { key: string }[]): string[] {
  return result.map((r) => r.key);
}

/** The error `fn` throws, for closer checks than `to.throw` gives. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error, none was thrown');
}

describe('store state', () => {
  describe('templates', () => {
    it('lists loaded templates by name and then by numeric version', () => {
      const state = applyAll(StoreState.empty(), load('plm', '1.10'), load('plm', '1.9', ['type']), load('cad', '2.0'), load('plm', '1.0'));
      expect(state.templates().map((t) => `${t.name} ${t.version}`)).to.deep.equal(['cad 2.0', 'plm 1.0', 'plm 1.9', 'plm 1.10']);
      expect(state.template('plm', '1.9')).to.deep.equal({ name: 'plm', version: '1.9', indexes: ['type'] });
      expect(state.template('plm', '3.0')).to.equal(undefined);
      expect(state.seq).to.equal(4);
    });

    it('treats loading an identical template again as a no-op returning the same state', () => {
      const state = applyAll(StoreState.empty(), load('plm', '1.0', ['type', 'owner']));
      expect(state.apply(load('plm', '1.0', ['type', 'owner']), 2)).to.equal(state);
      expect(state.apply(load('plm', '1.0', ['owner', 'type']), 2)).to.equal(state);
    });

    it('refuses to change the indexes of a loaded template version (409)', () => {
      const state = applyAll(StoreState.empty(), load('plm', '1.0', ['type']));
      const error = thrown(() => state.apply(load('plm', '1.0', ['type', 'owner']), 2));
      expect(error).to.be.instanceOf(ConflictError);
      expect(error.message).to.match(/never changes/).and.match(/new version/);
      expect(state.templates()).to.have.length(1);
    });

    it('refuses invalid, duplicate or too many index fields (400)', () => {
      const state = StoreState.empty();
      expect(() => state.apply(load('plm', '1.0', ['type', 'type']), 1)).to.throw(BadRequestError, /named twice/);
      expect(() => state.apply(load('plm', '1.0', ['1st']), 1)).to.throw(BadRequestError, /indexes\[0\]/);
      expect(() => state.apply(load('plm', '1.0', Array.from({ length: 33 }, (_, i) => `f${i}`)), 1)).to.throw(BadRequestError, /at most 32/);
      expect(() => state.apply(load('plm', 'v1'), 1)).to.throw(BadRequestError, /version/);
      expect(() => state.apply(load('../plm', '1.0'), 1)).to.throw(BadRequestError, /template name/);
    });

    it('keeps its own frozen copy of a loaded template', () => {
      const def: TemplateDef = { name: 'plm', version: '1.0', indexes: ['type'] };
      const state = StoreState.empty().apply({ type: 'template.load', template: def }, 1);
      def.indexes.push('owner');
      expect(state.template('plm', '1.0')?.indexes).to.deep.equal(['type']);
      expect(() => state.template('plm', '1.0')?.indexes.push('x')).to.throw(TypeError);
    });
  });

  describe('spaces', () => {
    it('creates a space from a loaded template and describes it', () => {
      const state = withSpace();
      expect(state.space('test')).to.deep.equal({ id: 'test', template: { name: 'plm', version: '1.0' }, objectCount: 0, createdSeq: 2, updatedSeq: 2 });
      expect(state.indexedFields('test')).to.deep.equal(['type', 'owner']);
      expect(state.space('other')).to.equal(undefined);
    });

    it('lists spaces by id', () => {
      const state = applyAll(withSpace(), create('b'), create('a'));
      expect(state.spaces().map((s) => s.id)).to.deep.equal(['a', 'b', 'test']);
    });

    it('refuses a space from a template that is not loaded (404), saying how to load one', () => {
      const error = thrown(() => withSpace().apply(create('x', 'plm', '2.0'), 3));
      expect(error).to.be.instanceOf(NotFoundError);
      expect(error.message).to.include('plm').and.include('2.0').and.include('POST /api/template');
    });

    it('refuses a second space with the same id (409)', () => {
      expect(() => withSpace().apply(create('test'), 3)).to.throw(ConflictError, /already exists/);
    });

    it('refuses an invalid space id (400)', () => {
      expect(() => withSpace().apply(create('a/b'), 3)).to.throw(BadRequestError, /space id/);
    });

    it('answers 404 for reads of an unknown space', () => {
      const state = withSpace();
      expect(() => state.getObject('nope', 'k')).to.throw(NotFoundError, /POST \/api\/space/);
      expect(() => state.query('nope', {})).to.throw(NotFoundError);
      expect(() => state.objects('nope')).to.throw(NotFoundError);
      expect(() => state.indexedFields('nope')).to.throw(NotFoundError);
      expect(() => state.apply(commit('nope', put('k', 1)), 3)).to.throw(NotFoundError);
    });
  });

  describe('template upgrades', () => {
    function upgradable(): StoreState {
      return applyAll(
        withSpace(),
        load('plm', '1.1', ['type', 'material']),
        load('plm', '0.9', ['type']),
        commit('test', put('a', { type: 'Part', owner: 'ann', material: 'steel' }), put('b', { type: 'Doc', owner: 'bob', material: 'paper' })),
      );
    }

    it('moves a space to a newer loaded version', () => {
      const before = upgradable();
      const after = before.apply({ type: 'space.upgrade', id: 'test', version: '1.1' }, before.seq + 1);
      expect(after.space('test')).to.include({ objectCount: 2, createdSeq: 2, updatedSeq: after.seq });
      expect(after.space('test')?.template).to.deep.equal({ name: 'plm', version: '1.1' });
      expect(before.space('test')?.template).to.deep.equal({ name: 'plm', version: '1.0' });
    });

    it('rebuilds indexes: a field only the new version indexes can be queried, a dropped one is refused', () => {
      const before = upgradable();
      const after = before.apply({ type: 'space.upgrade', id: 'test', version: '1.1' }, before.seq + 1);
      expect(after.indexedFields('test')).to.deep.equal(['type', 'material']);
      expect(keys(after.query('test', { material: 'steel' }))).to.deep.equal(['a']);
      expect(keys(after.query('test', { type: 'Doc' }))).to.deep.equal(['b']);
      expect(() => after.query('test', { owner: 'ann' })).to.throw(BadRequestError, /type, material/);
      // The old state keeps its own indexes.
      expect(keys(before.query('test', { owner: 'ann' }))).to.deep.equal(['a']);
      expect(() => before.query('test', { material: 'steel' })).to.throw(BadRequestError);
    });

    it('keeps indexes working for writes after an upgrade', () => {
      let state = upgradable();
      state = applyAll(state, { type: 'space.upgrade', id: 'test', version: '1.1' }, commit('test', put('a', { type: 'Doc', material: 'wood' })));
      expect(keys(state.query('test', { type: 'Doc' }))).to.deep.equal(['a', 'b']);
      expect(keys(state.query('test', { material: 'steel' }))).to.deep.equal([]);
      expect(keys(state.query('test', { material: 'wood' }))).to.deep.equal(['a']);
    });

    it('refuses the same or an older version (409), naming both versions', () => {
      const state = upgradable();
      for (const version of ['1.0', '0.9']) {
        const error = thrown(() => state.apply({ type: 'space.upgrade', id: 'test', version }, state.seq + 1));
        expect(error).to.be.instanceOf(ConflictError);
        expect(error.message).to.include('1.0').and.include(version).and.include('not newer');
      }
    });

    it('refuses a version that is not loaded (404)', () => {
      const state = upgradable();
      expect(() => state.apply({ type: 'space.upgrade', id: 'test', version: '2.0' }, state.seq + 1)).to.throw(NotFoundError, /2\.0.*not loaded/);
      expect(() => state.apply({ type: 'space.upgrade', id: 'nope', version: '1.1' }, state.seq + 1)).to.throw(NotFoundError, /nope/);
    });
  });

  describe('objects', () => {
    it('puts, gets and deletes objects, counting them', () => {
      let state = applyAll(withSpace(), commit('test', put('k1', { type: 'Part' }), put('k2', null)));
      expect(state.getObject('test', 'k1')).to.deep.equal({ type: 'Part' });
      expect(state.getObject('test', 'k2')).to.equal(null);
      expect(state.getObject('test', 'k3')).to.equal(undefined);
      expect(state.space('test')).to.include({ objectCount: 2, updatedSeq: 3 });
      state = applyAll(state, commit('test', del('k1')));
      expect(state.getObject('test', 'k1')).to.equal(undefined);
      expect(state.space('test')).to.include({ objectCount: 1, updatedSeq: 4, createdSeq: 2 });
    });

    it('hands out objects in key order', () => {
      const state = applyAll(withSpace(), commit('test', put('b', 2), put('a', 1), put('c', 3)));
      expect([...state.objects('test')]).to.deep.equal([['a', 1], ['b', 2], ['c', 3]]);
    });

    it('keeps a value as its JSON text: neither the given value nor a returned one is shared or changed', () => {
      const value = { type: 'Part', tags: ['x'] };
      const state = applyAll(withSpace(), commit('test', put('k', value)));
      const read = state.getObject('test', 'k') as { tags: string[] };
      expect(read).to.deep.equal(value);
      expect(read).to.not.equal(value);
      expect(Object.isFrozen(value)).to.equal(false);
      value.tags.push('changed by the caller');
      read.tags.push('changed by a reader');
      expect(state.getObject('test', 'k')).to.deep.equal({ type: 'Part', tags: ['x'] });
    });

    it('getObjectText returns the exact stored text: JSON.stringify of the value at apply time', () => {
      const value = { b: 1, a: [true, null, 'é\u2028"'], n: -0, big: 1e21, 2: 'integer keys first' };
      const state = applyAll(withSpace(), commit('test', put('k', value), put('s', 'just a string'), put('z', null)));
      expect(state.getObjectText('test', 'k')).to.equal(JSON.stringify(value));
      expect(state.getObjectText('test', 'k')).to.equal('{"2":"integer keys first","b":1,"a":[true,null,"é\u2028\\""],"n":0,"big":1e+21}');
      expect(state.getObjectText('test', 's')).to.equal('"just a string"');
      expect(state.getObjectText('test', 'z')).to.equal('null');
      expect(state.getObjectText('test', 'missing')).to.equal(undefined);
      expect(() => state.getObjectText('test', 'a/b')).to.throw(BadRequestError);
      expect(() => state.getObjectText('nope', 'k')).to.throw(NotFoundError);
    });

    it('objectTexts hands out the stored texts in key order, objects the same values parsed', () => {
      const state = applyAll(withSpace(), commit('test', put('b', { type: 'Doc' }), put('a', [1, 2]), put('c', 'x')));
      expect([...state.objectTexts('test')]).to.deep.equal([['a', '[1,2]'], ['b', '{"type":"Doc"}'], ['c', '"x"']]);
      expect([...state.objects('test')]).to.deep.equal([['a', [1, 2]], ['b', { type: 'Doc' }], ['c', 'x']]);
      expect(() => state.objectTexts('nope')).to.throw(NotFoundError);
    });

    it('a put of the same text again changes no index and keeps the count', () => {
      let state = applyAll(withSpace(), commit('test', put('a', { type: 'Part' })));
      state = applyAll(state, commit('test', put('a', { type: 'Part' })));
      expect(state.space('test')).to.include({ objectCount: 1, updatedSeq: 4 });
      expect(keys(state.query('test', { type: 'Part' }))).to.deep.equal(['a']);
    });

    it('refuses values that are not JSON (400)', () => {
      const state = withSpace();
      for (const value of [NaN, Infinity, undefined, new Date(), { a: () => 1 }, [1, undefined]]) {
        expect(() => state.apply(commit('test', put('k', value as Json)), 3)).to.throw(BadRequestError, /ops\[0\]/);
      }
    });

    it('refuses a bad key or a malformed op, naming its position (400)', () => {
      const state = withSpace();
      expect(() => state.apply(commit('test', put('a', 1), put('../x', 1)), 3)).to.throw(BadRequestError, /ops\[1\].*object key/);
      expect(() => state.apply(commit('test', put('a', 1), { op: 'move', key: 'a' } as unknown as TxOp), 3)).to.throw(BadRequestError, /ops\[1\]\.op/);
      expect(() => state.apply(commit('test', put('a', 1), put('b', 1), { op: 'put', key: 'c' } as unknown as TxOp), 3)).to.throw(BadRequestError, /ops\[2\]/);
      expect(() => state.apply(commit('test'), 3)).to.throw(BadRequestError, /1 to 10000/);
      const tooMany = Array.from({ length: 10_001 }, (_, i) => put(`k${i}`, i));
      expect(() => state.apply(commit('test', ...tooMany), 3)).to.throw(BadRequestError, /10001/);
    });

    it('refuses a read with an invalid key (400)', () => {
      expect(() => withSpace().getObject('test', 'a/b')).to.throw(BadRequestError);
    });
  });

  describe('queries', () => {
    function parts(): StoreState {
      return applyAll(
        withSpace(),
        commit(
          'test',
          put('p3', { type: 'Part', owner: 'ann' }),
          put('p1', { type: 'Part', owner: 'bob' }),
          put('d1', { type: 'Doc', owner: 'ann' }),
          put('n1', { type: 7, owner: true }),
          put('t1', { type: ['Part', 'Doc', 'Part', 3, null, { x: 1 }], owner: [false] }),
          put('x1', { type: { nested: 'Part' }, owner: null }),
          put('x2', ['type', 'Part']),
          put('x3', 'Part'),
        ),
      );
    }

    it('finds objects by an indexed string field, in key order', () => {
      expect(keys(parts().query('test', { type: 'Part' }))).to.deep.equal(['p1', 'p3', 't1']);
      expect(parts().query('test', { type: 'Doc' })).to.deep.equal([
        { key: 'd1', value: { type: 'Doc', owner: 'ann' } },
        { key: 't1', value: { type: ['Part', 'Doc', 'Part', 3, null, { x: 1 }], owner: [false] } },
      ]);
      expect(parts().query('test', { type: 'Nothing' })).to.deep.equal([]);
    });

    it('finds number, boolean and array element values by their string form', () => {
      const state = parts();
      expect(keys(state.query('test', { type: '7' }))).to.deep.equal(['n1']);
      expect(keys(state.query('test', { owner: 'true' }))).to.deep.equal(['n1']);
      expect(keys(state.query('test', { owner: 'false' }))).to.deep.equal(['t1']);
      expect(keys(state.query('test', { type: '3' }))).to.deep.equal(['t1']);
      expect(keys(state.query('test', { type: 'null' }))).to.deep.equal([]);
      expect(keys(state.query('test', { owner: 'null' }))).to.deep.equal([]);
    });

    it('combines several fields with AND', () => {
      const state = parts();
      expect(keys(state.query('test', { type: 'Part', owner: 'ann' }))).to.deep.equal(['p3']);
      expect(keys(state.query('test', { owner: 'ann', type: 'Doc' }))).to.deep.equal(['d1']);
      expect(keys(state.query('test', { owner: 'bob', type: 'Doc' }))).to.deep.equal([]);
    });

    it('returns every object for an empty filter', () => {
      expect(keys(parts().query('test', {}))).to.deep.equal(['d1', 'n1', 'p1', 'p3', 't1', 'x1', 'x2', 'x3']);
    });

    it('drops stale index entries when an object is replaced or deleted', () => {
      const state = applyAll(parts(), commit('test', put('p1', { type: 'Doc', owner: 'bob' }), put('t1', { type: 'Tool' }), del('p3')));
      expect(keys(state.query('test', { type: 'Part' }))).to.deep.equal([]);
      expect(keys(state.query('test', { type: 'Doc' }))).to.deep.equal(['d1', 'p1']);
      expect(keys(state.query('test', { owner: 'false' }))).to.deep.equal([]);
      expect(keys(state.query('test', { owner: 'ann' }))).to.deep.equal(['d1']);
      expect(keys(state.query('test', { type: 'Tool' }))).to.deep.equal(['t1']);
    });

    it('queryText returns the exact stored text of each match, in key order', () => {
      const state = parts();
      expect(state.queryText('test', { type: 'Doc' })).to.deep.equal([
        { key: 'd1', text: '{"type":"Doc","owner":"ann"}' },
        { key: 't1', text: '{"type":["Part","Doc","Part",3,null,{"x":1}],"owner":[false]}' },
      ]);
      expect(state.queryText('test', {}).map((r) => r.text)).to.include('"Part"').and.include('["type","Part"]');
      expect(() => state.queryText('test', { colour: 'red' })).to.throw(BadRequestError, /type, owner/);
    });

    it('indexEntries lists each indexed value ascending with its keys in order', () => {
      const listed = [...parts().indexEntries('test', 'type')].map(([value, keys]) => [value, [...keys]]);
      expect(listed).to.deep.equal([['3', ['t1']], ['7', ['n1']], ['Doc', ['d1', 't1']], ['Part', ['p1', 'p3', 't1']]]);
      expect(() => parts().indexEntries('test', 'colour')).to.throw(BadRequestError);
    });

    it('refuses a field that is not indexed (400), naming the indexed fields', () => {
      const error = thrown(() => parts().query('test', { colour: 'red' }));
      expect(error).to.be.instanceOf(BadRequestError);
      expect(error.message).to.include('"colour"').and.include('type, owner');
    });
  });

  describe('transactions', () => {
    it('changes nothing when the last op deletes a missing key (409)', () => {
      const before = applyAll(withSpace(), commit('test', put('keep', { type: 'Part' })));
      const error = thrown(() => before.apply(commit('test', put('new', { type: 'Part' }), del('keep'), del('missing')), before.seq + 1));
      expect(error).to.be.instanceOf(ConflictError);
      expect(error.message).to.include('ops[2]').and.include('missing');
      expect(before.seq).to.equal(3);
      expect(before.space('test')).to.include({ objectCount: 1, updatedSeq: 3 });
      expect(before.getObject('test', 'keep')).to.deep.equal({ type: 'Part' });
      expect(before.getObject('test', 'new')).to.equal(undefined);
      expect(keys(before.query('test', { type: 'Part' }))).to.deep.equal(['keep']);
    });

    it('lets later ops see earlier ones in the same transaction', () => {
      const state = applyAll(withSpace(), commit('test', put('a', 1), del('a'), put('a', { type: 'Doc' }), put('b', 2), del('b')));
      expect([...state.objects('test')]).to.deep.equal([['a', { type: 'Doc' }]]);
      expect(keys(state.query('test', { type: 'Doc' }))).to.deep.equal(['a']);
      expect(() => state.apply(commit('test', del('a'), del('a')), state.seq + 1)).to.throw(ConflictError, /ops\[1\]/);
    });
  });

  describe('snapshots', () => {
    it('a state taken before writes still reads the old objects, queries, counts and templates', () => {
      const snapshot = applyAll(withSpace(), commit('test', put('a', { type: 'Part', owner: 'ann' }), put('b', { type: 'Doc' })));
      let state = snapshot;
      for (let i = 0; i < 2000; i++) {
        state = state.apply(commit('test', put(`k${i}`, { type: 'Part', owner: `o${i % 7}` }), put('a', { type: `T${i}` })), state.seq + 1);
      }
      state = applyAll(state, commit('test', del('b')), load('plm', '2.0', ['owner']), create('other'), { type: 'space.upgrade', id: 'test', version: '2.0' });

      expect(state.space('test')).to.include({ objectCount: 2001 });
      expect(snapshot.seq).to.equal(3);
      expect(snapshot.space('test')).to.deep.equal({ id: 'test', template: { name: 'plm', version: '1.0' }, objectCount: 2, createdSeq: 2, updatedSeq: 3 });
      expect([...snapshot.objects('test')]).to.deep.equal([['a', { type: 'Part', owner: 'ann' }], ['b', { type: 'Doc' }]]);
      expect(keys(snapshot.query('test', { type: 'Part' }))).to.deep.equal(['a']);
      expect(keys(snapshot.query('test', { owner: 'o1' }))).to.deep.equal([]);
      expect(snapshot.templates().map((t) => t.version)).to.deep.equal(['1.0']);
      expect(snapshot.spaces().map((s) => s.id)).to.deep.equal(['test']);
    });

    it('shares structure: a put after 100k puts leaves the previous state as it was', () => {
      let state = withSpace();
      const batch: TxOp[] = [];
      for (let i = 0; i < 100_000; i++) {
        batch.push(put(`obj-${String(i).padStart(6, '0')}`, { type: i % 2 === 0 ? 'Part' : 'Doc' }));
        if (batch.length === 10_000) state = state.apply(commit('test', ...batch.splice(0)), state.seq + 1);
      }
      const previous = state;
      const next = state.apply(commit('test', put('extra', { type: 'Part' })), state.seq + 1);
      expect(previous.space('test')?.objectCount).to.equal(100_000);
      expect(next.space('test')?.objectCount).to.equal(100_001);
      expect(previous.getObject('test', 'extra')).to.equal(undefined);
      expect(previous.query('test', { type: 'Part' })).to.have.length(50_000);
      expect(next.query('test', { type: 'Part' })).to.have.length(50_001);
    });
  });

  describe('apply', () => {
    it('refuses a seq that does not move forward, with a plain Error', () => {
      const state = withSpace();
      expect(() => state.apply(create('x'), 2)).to.throw(Error, /seq 2/);
      expect(() => state.apply(create('x'), 1.5)).to.throw(Error);
      expect(state.apply(create('x'), 10).seq).to.equal(10);
    });

    it('accepts the shape of a restore op but leaves applying it to the Store (plain Error)', () => {
      const restore: StoreOp = { type: 'restore', checkpoint: 3, sha256: 'ab'.repeat(32), scope: 'space', spaces: ['test'] };
      expect(isValidOp(restore)).to.equal(true);
      expect(isValidOp({ ...restore, scope: 'collection', spaces: ['a', 'b'] })).to.equal(true);
      expect(isValidOp({ ...restore, sha256: 'AB'.repeat(32) })).to.equal(false);
      expect(isValidOp({ ...restore, checkpoint: 0 })).to.equal(false);
      expect(isValidOp({ ...restore, scope: 'all' })).to.equal(false);
      expect(isValidOp({ ...restore, spaces: ['a', 'b'] })).to.equal(false);
      expect(isValidOp({ ...restore, spaces: [1] })).to.equal(false);
      const error = thrown(() => withSpace().apply(restore, 3));
      expect(error.constructor).to.equal(Error);
      expect(error.message).to.match(/restore ops are applied by the Store with the checkpoint's content/);
    });

    it('refuses an op of unknown shape (400)', () => {
      expect(() => StoreState.empty().apply({ type: 'space.drop', id: 'x' } as unknown as StoreOp, 1)).to.throw(BadRequestError, /space\.drop/);
      expect(() => StoreState.empty().apply(null as unknown as StoreOp, 1)).to.throw(BadRequestError);
    });

    it('starts empty at seq 0', () => {
      const empty = StoreState.empty();
      expect(empty.seq).to.equal(0);
      expect(empty.templates()).to.deep.equal([]);
      expect(empty.spaces()).to.deep.equal([]);
    });
  });
});
