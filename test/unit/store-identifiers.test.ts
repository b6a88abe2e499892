import { expect } from 'chai';
import {
  compareVersions,
  isValidOp,
  validateFieldName,
  validateObjectKey,
  validateSpaceId,
  validateTemplateName,
  validateVersion,
} from '../../src/store/index.js';
import { isObjectKeyAt } from '../../src/store/identifiers.js';
import { refusal } from '../helpers/store-ops.js';


describe('store identifiers', () => {
  describe('space ids and template names', () => {
    it('accepts ids of letters, digits, dots, underscores and dashes', () => {
      for (const id of ['test', 'plm-test', 'A1', '9lives', 'a.b_c-d', 'x'.repeat(64)]) {
        expect(validateSpaceId(id)).to.equal(id);
        expect(validateTemplateName(id)).to.equal(id);
      }
    });

    it('refuses "..", "/", control chars, unicode, empty, too long, a bad first char and non-strings (400)', () => {
      for (const id of ['a..b', '..', 'a/b', '/', 'a\nb', 'a\u0000', 'tést', 'a\u202eb', '', 'x'.repeat(65), '.hidden', '-x', '_x', 'a b', 42, null, undefined, ['a']]) {
        refusal(() => validateSpaceId(id));
        refusal(() => validateTemplateName(id));
      }
    });

    it('says what was received, the rule and an example, safely escaped and cut short', () => {
      const message = refusal(() => validateSpaceId(`evil\n\u202e${'x'.repeat(500)}`));
      expect(message).to.include('space id "evil\\n\\u202e');
      expect(message).to.include('(506 characters)');
      expect(message).to.include('for example "plm-test"');
      expect(message).not.to.match(/[\n\u202e]/);
      expect(message.length).to.be.below(400);
      expect(refusal(() => validateTemplateName(7))).to.include('template name a number');
    });
  });

  describe('object keys', () => {
    it('accepts keys of the URL-safe alphabet', () => {
      for (const key of ['k1', 'part-0001', 'a.b', '.hidden', 'x~y:z@w_v', '-', 'k'.repeat(256)]) expect(validateObjectKey(key)).to.equal(key);
    });

    it('refuses "..", "/", ".", spaces, control chars, unicode, empty and too long keys (400)', () => {
      for (const key of ['..', 'a..b', '../etc', 'a/b', '.', 'a b', 'a\tb', 'a\u007f', 'ключ', '', 'k'.repeat(257), 'a?b', 'a%2fb', 5]) {
        expect(refusal(() => validateObjectKey(key))).to.include('object key').and.include('for example');
      }
    });

    it('checks a key in place inside a longer text exactly as validateObjectKey checks it alone', () => {
      const keys = ['k1', 'part-0001', 'a.b', '.hidden', 'x~y:z@w_v', '-', 'k'.repeat(256), '..', 'a..b', '../etc', 'a/b', '.', 'a b', 'ключ', '', 'k'.repeat(257), 'a?b', ':', '@', 'A', 'z', '0', '9', '[', '`', '{', '/'];
      for (const key of keys) {
        const valid = (() => {
          try {
            validateObjectKey(key);
            return true;
          } catch {
            return false;
          }
        })();
        const text = `{"key":"${key}","x":1}`;
        expect(isObjectKeyAt(text, 8, 8 + key.length), JSON.stringify(key)).to.equal(valid);
      }
    });
  });

  describe('versions', () => {
    it('accepts dotted versions starting with a digit, up to 32 characters', () => {
      for (const v of ['1', '1.0', '2.10.3', '1.0-beta.2', '1'.repeat(32)]) expect(validateVersion(v)).to.equal(v);
    });

    it('refuses versions not starting with a digit, with other characters, empty or too long (400)', () => {
      for (const v of ['v1', '.1', '1_0', '1/0', '1 0', '', '1'.repeat(33), 1]) {
        expect(refusal(() => validateVersion(v))).to.include('version').and.include('"1.0"');
      }
    });
  });

  describe('field names', () => {
    it('accepts identifiers of up to 64 characters', () => {
      for (const f of ['type', '_id', 'A9_b', 'f'.repeat(64)]) expect(validateFieldName(f)).to.equal(f);
    });

    it('refuses names starting with a digit, with other characters, empty or too long (400)', () => {
      for (const f of ['1st', 'a-b', 'a.b', '', 'f'.repeat(65), 'é', 'a b', null]) refusal(() => validateFieldName(f));
    });
  });

  describe('compareVersions', () => {
    it('compares dotted parts numerically', () => {
      expect(compareVersions('1.10', '1.9')).to.equal(1);
      expect(compareVersions('1.9', '1.10')).to.equal(-1);
      expect(compareVersions('2.0', '10.0')).to.equal(-1);
      expect(compareVersions('1.2.3', '1.2.3')).to.equal(0);
      expect(compareVersions('1.01', '1.1')).to.equal(0);
      expect(compareVersions('99999999999999999999.1', '99999999999999999998.2')).to.equal(1);
    });

    it('treats missing parts as zero', () => {
      expect(compareVersions('1.0', '1.0.0')).to.equal(0);
      expect(compareVersions('1', '1.0.1')).to.equal(-1);
      expect(compareVersions('1.0.1', '1')).to.equal(1);
    });

    it('compares non-numeric parts as strings', () => {
      expect(compareVersions('1.0-beta', '1.0-alpha')).to.equal(1);
      expect(compareVersions('1.a', '1.b')).to.equal(-1);
      expect(compareVersions('1.0-rc', '1.0-rc')).to.equal(0);
    });
  });

  describe('isValidOp', () => {
    it('accepts each kind of operation', () => {
      expect(isValidOp({ type: 'template.load', template: { name: 'plm', version: '1.0', indexes: ['type'] } })).to.equal(true);
      expect(isValidOp({ type: 'space.create', id: 'test', template: { name: 'plm', version: '1.0' } })).to.equal(true);
      expect(isValidOp({ type: 'space.upgrade', id: 'test', version: '1.1' })).to.equal(true);
      expect(isValidOp({ type: 'commit', space: 'test', ops: [{ op: 'put', key: 'k', value: { a: [1, null] } }, { op: 'delete', key: 'k' }] })).to.equal(true);
    });

    it('rejects junk without throwing', () => {
      const junk: unknown[] = [
        null,
        undefined,
        42,
        'commit',
        [],
        {},
        { type: 'drop' },
        { type: 'template.load' },
        { type: 'template.load', template: { name: 'plm', version: '1.0' } },
        { type: 'template.load', template: { name: 'plm', version: '1.0', indexes: [1] } },
        { type: 'space.create', id: 'test' },
        { type: 'space.create', id: 7, template: { name: 'plm', version: '1.0' } },
        { type: 'space.upgrade', id: 'test' },
        { type: 'commit', space: 'test' },
        { type: 'commit', space: 'test', ops: 'put' },
        { type: 'commit', space: 'test', ops: [null] },
        { type: 'commit', space: 'test', ops: [{ op: 'put', key: 'k' }] },
        { type: 'commit', space: 'test', ops: [{ op: 'upsert', key: 'k', value: 1 }] },
        { type: 'commit', space: 'test', ops: [{ op: 'delete', key: 5 }] },
        { type: 'commit', space: 'test', ops: [{ op: 'put', key: 'k', value: NaN }] },
      ];
      for (const value of junk) expect(isValidOp(value), JSON.stringify(value) ?? String(value)).to.equal(false);
    });

    it('rejects a cyclic value instead of looping', () => {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      expect(isValidOp({ type: 'commit', space: 'test', ops: [{ op: 'put', key: 'k', value: cyclic }] })).to.equal(false);
    });
  });
});
