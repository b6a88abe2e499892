/**
 * The storage engine's folder fills up under commits (a 3 MiB tmpfs under the
 * engine, the journal on the real disk): the node must stop taking commits and
 * stop answering reads from an engine that misses acknowledged commits, and a
 * store reopened on a fresh engine must hold every acknowledged commit (the
 * journal is the source of truth).
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { UnavailableError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/index.js';
import { Engine, Store, type StoreOptions } from '../../src/store/index.js';
import { waitFor } from '../helpers/wait-for.js';

const execFileP = promisify(execFile);

describe('store: an engine folder that fills up', function () {
  this.timeout(60_000);
  let dir: string;
  let mount: string;
  let mounted = false;
  const opened: { close(): unknown }[] = [];

  beforeEach(async function () {
    dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-full-')));
    mount = path.join(dir, 'tiny');
    await fs.mkdir(mount);
    try {
      await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mount]);
      mounted = true;
    } catch {
      this.skip(); // Not root, or no mount here.
    }
  });
  afterEach(async function () {
    for (const e of opened.splice(0).reverse()) await e.close();
    // The engine's WAL folding thread closes its connections once its fold under way ends: until then the mount is busy.
    if (mounted) await waitFor(() => execFileP('umount', [mount]).then(() => true, () => false), { what: `${mount} to unmount`, timeoutMs: 20_000 });
    mounted = false;
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 10 });
  });

  it('refuses commits and reads once a step fails (503), and a fresh engine replays every acknowledged commit', async function () {
    const options = (engine: Engine): StoreOptions => ({ journalDir: path.join(dir, 'journal'), sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger: silentLogger(), engine });
    const small = Engine.open({ dir: path.join(mount, 'engine'), cacheBytes: 1 << 20, logger: silentLogger() });
    opened.push(small);
    const store = await Store.open(options(small));
    opened.push(store);
    await store.commit({ type: 'template.load', template: { name: 'plm', version: '1.0', indexes: ['type'] } });
    await store.commit({ type: 'space.create', id: 's', template: { name: 'plm', version: '1.0' } });
    const acknowledged = new Map<string, string>();
    let refusal: unknown = null;
    // 16 KiB values, 8 at a time: the tmpfs fills within a few hundred; reading after each round makes every step run.
    for (let round = 0; round < 1000 && refusal === null; round++) {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, async (_, w) => {
          const key = `k${round}-${w}`;
          const blob = randomBytes(8192).toString('hex');
          await store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key, value: { type: 'Part', blob } }] });
          acknowledged.set(key, blob);
        }),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed !== undefined) refusal = failed.reason;
      else refusal = await Promise.resolve().then(() => store.state.getObject('s', `k${round}-0`)).then(() => null, (err: unknown) => err);
    }
    expect(refusal, 'the engine folder filled up').to.be.instanceOf(UnavailableError);
    expect((refusal as UnavailableError).status).to.equal(503);
    expect((refusal as Error).message).to.match(/data folder stopped taking changes/);
    expect(store.writable).to.equal(false);
    expect(store.refusal).to.match(/data folder stopped taking changes/);
    // No read from an engine that misses acknowledged commits.
    expect(() => store.state.getObject('s', 'k0-0')).to.throw(UnavailableError, /stopped taking changes/);
    const late = await store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: 'late', value: 1 }] }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(late).to.be.instanceOf(UnavailableError);

    const fresh = Engine.open({ dir: path.join(dir, 'engine'), cacheBytes: 8 << 20, logger: silentLogger() });
    opened.push(fresh);
    const reopened = await Store.open(options(fresh));
    opened.push(reopened);
    expect(acknowledged.size).to.be.greaterThan(8);
    for (const [key, blob] of acknowledged) expect((reopened.state.getObject('s', key) as { blob: string } | undefined)?.blob, key).to.equal(blob);
    expect(reopened.state.getObject('s', 'late')).to.equal(undefined);
  });
});
