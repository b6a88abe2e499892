/**
 * Exhaustive: a byte flipped at any offset of a checkpoint file is refused by
 * verification, stored and deflated. npm test flips every 16th offset
 * (test/unit/archive-hostile.test.ts); this flips them all (about 40 s).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectFlipsRefused } from '../helpers/archive-fixture.js';

describe('checkpoint archive: every single flipped byte', function () {
  this.timeout(300_000);
  let dir: string;
  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-every-byte-'));
  });
  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses every single flipped byte anywhere in the file (stored and deflated)', async function () {
    await expectFlipsRefused(dir, 1);
  });
});
