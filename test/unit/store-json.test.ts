import { expect } from 'chai';
import { MaxValueDepth } from '../../src/config/index.js';
import { checkJson } from '../../src/store/json.js';
import { refusal } from '../helpers/store-ops.js';

const check = (value: unknown) => () => checkJson(value, 'ops[0].value');

describe('stored values (checkJson)', function () {
  it('accepts JSON of every kind, nested', function () {
    expect(check({ a: 1, b: [1, 'x', null, true, { c: -0.5, 'd e': [] }], f: {} })).to.not.throw();
    expect(check(Object.assign(Object.create(null) as object, { a: 1 }))).to.not.throw();
  });

  it('names the part that is not JSON by its path: keys as .name or ["quoted"], indexes in brackets', function () {
    expect(refusal(check(NaN))).to.match(/^ops\[0\]\.value is NaN, which is not JSON/);
    expect(refusal(check({ a: 1, b: [1, 2, { 'c d': undefined }] }))).to.match(/^ops\[0\]\.value\.b\[2\]\["c d"\] is undefined, which is not JSON/);
    expect(refusal(check({ a: { x: new Date() } }))).to.match(/^ops\[0\]\.value\.a\.x is an object that is not a plain object/);
    expect(refusal(check([1, [2, [3, () => 1]]]))).to.match(/^ops\[0\]\.value\[1\]\[1\]\[1\] is a function/);
    expect(refusal(check({ ok: [1], bad: { deeper: [Infinity] } }))).to.match(/^ops\[0\]\.value\.bad\.deeper\[0\] is Infinity/);
  });

  it(`refuses a value nested deeper than ${MaxValueDepth} levels, and takes one just within`, function () {
    const nest = (levels: number): unknown => {
      let v: unknown = 1;
      for (let i = 0; i < levels; i++) v = [v];
      return v;
    };
    expect(check(nest(MaxValueDepth))).to.not.throw();
    expect(refusal(check(nest(MaxValueDepth + 1)))).to.match(/nested more than 1000 levels deep/);
  });
});
