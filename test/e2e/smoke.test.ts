/**
 * The end-to-end smoke: the product's promise in one pass, on whatever Node
 * runs the test (`.ci/run` runs it on Node 22 and 24 besides the Node the
 * suite uses). Real daemons on loopback sharing a temporary FileVault: a
 * primary and a standby, concurrent writes, a checkpoint, SIGKILL of the
 * primary, the standby's promotion with every acknowledged write (checked by
 * key and value), more writes on the new primary, and a restore of the
 * checkpoint that brings back exactly what it held.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import { node, promotedTo, seedSpace } from '../helpers/cluster.js';
import { tempDir, type DaemonProcess } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

describe(`end-to-end smoke on Node ${process.version}`, function () {
  this.timeout(120_000);
  let root: string;
  let a: DaemonProcess;
  let b: DaemonProcess;

  before(async function () {
    root = await tempDir('cpd-smoke-');
    a = await node(root, 'a', 'primary');
    await seedSpace(a);
    b = await node(root, 'b', 'secondary');
    await waitFor(async () => (await b.request('GET', '/standby', { token: null })).status === 200, { what: 'the standby to catch up' });
  });
  after(async function () {
    await a?.cleanup();
    await b?.cleanup();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('writes, checkpoints, loses the primary to SIGKILL, promotes the standby with every acknowledged write, and restores the checkpoint', async function () {
    // Writes from 4 clients; each acknowledged one is remembered with its value.
    const acknowledged = new Map<string, unknown>();
    const write = async (d: DaemonProcess, key: string, value: unknown): Promise<void> => {
      const res = await d.request('PUT', `/api/space/s/object/${key}`, { body: value });
      expect(res.status, res.text).to.be.oneOf([200, 201]);
      acknowledged.set(key, value);
    };
    await Promise.all([0, 1, 2, 3].map(async (w) => {
      for (let i = 0; i < 25; i++) await write(a, `w${w}-${i}`, { writer: String(w), i, text: `value ${w}/${i}` });
    }));
    const checkpoint = await a.request('POST', '/api/admin/checkpoint', { body: { description: 'smoke' } });
    expect(checkpoint.status, checkpoint.text).to.equal(201);
    const atCheckpoint = new Map(acknowledged);
    const { id } = (checkpoint.body as { data: { id: number } }).data;
    for (let i = 0; i < 20; i++) await write(a, `after-${i}`, { writer: 'after', i });

    await a.kill('SIGKILL');
    await waitFor(() => promotedTo(b), { what: 'the standby to promote', timeoutMs: 30_000 });
    await waitFor(async () => (await b.request('GET', '/primary', { token: null })).status === 200, { what: 'the new primary to answer /primary 200' });
    for (const [key, value] of acknowledged) {
      const res = await b.request('GET', `/api/space/s/object/${key}`);
      expect(res.status, key).to.equal(200);
      expect((res.body as { data: unknown }).data, key).to.deep.equal(value);
    }
    await write(b, 'on-b', { writer: 'b' });

    const restored = await b.request('POST', `/api/collection/checkpoint/${id}`);
    expect(restored.status, restored.text).to.equal(200);
    const all = (await b.query('/api/space/s/object')).body as { data: { key: string; data: unknown }[] };
    expect(new Map(all.data.map((o) => [o.key, o.data]))).to.deep.equal(atCheckpoint);
  });
});
