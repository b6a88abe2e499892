import { expect } from 'chai';
import { ConfigError } from '../../src/errors.js';
import { parseSize } from '../../src/config/index.js';

describe('parseSize', () => {
  it('takes a non-negative integer as a number of bytes', () => {
    expect(parseSize(0, 'k')).to.equal(0);
    expect(parseSize(123, 'k')).to.equal(123);
    expect(parseSize('4096', 'k')).to.equal(4096);
  });

  it('reads KiB, MiB, GiB and TiB as powers of 1024', () => {
    expect(parseSize('512 KiB', 'k')).to.equal(512 * 1024);
    expect(parseSize('64MiB', 'k')).to.equal(64 * 1024 ** 2);
    expect(parseSize('1GiB', 'k')).to.equal(1024 ** 3);
    expect(parseSize('2TiB', 'k')).to.equal(2 * 1024 ** 4);
  });

  it('reads KB, MB, GB and TB as powers of 1000, and B as bytes', () => {
    expect(parseSize('10B', 'k')).to.equal(10);
    expect(parseSize('1KB', 'k')).to.equal(1000);
    expect(parseSize('5 MB', 'k')).to.equal(5_000_000);
    expect(parseSize('1GB', 'k')).to.equal(1_000_000_000);
    expect(parseSize('3TB', 'k')).to.equal(3e12);
  });

  it('ignores the case of the unit and the space around the number', () => {
    expect(parseSize('64mib', 'k')).to.equal(64 * 1024 ** 2);
    expect(parseSize(' 1 gb ', 'k')).to.equal(1e9);
  });

  it('rounds a fractional size down to whole bytes', () => {
    expect(parseSize('1.5KiB', 'k')).to.equal(1536);
    expect(parseSize('0.3KiB', 'k')).to.equal(307);
  });

  it('refuses what is not a size, naming the key and the value', () => {
    for (const value of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '', 'abc', '64M', '64 XB', '-1KB', '1e3', '1 KiB B', null, true, {}, [1]]) {
      const call = (): number => parseSize(value, 'checkpoint.journalThreshold');
      expect(call, JSON.stringify(value)).to.throw(ConfigError, /^"checkpoint\.journalThreshold" must be a size in bytes: /);
    }
    expect(() => parseSize('64M', 'api.bodyLimitBytes')).to.throw(
      ConfigError,
      '"api.bodyLimitBytes" must be a size in bytes: an integer or a string like "64MiB", "512 KiB" or "1GB", got "64M"',
    );
  });

  it('refuses a size beyond the largest exact integer', () => {
    expect(() => parseSize('99999999 TiB', 'k')).to.throw(ConfigError, /^"k" must be a size in bytes/);
  });
});
