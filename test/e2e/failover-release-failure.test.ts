/**
 * A switchover whose lease release fails (the lease write gets EIO from the
 * LD_PRELOAD fault shim, test/helpers/vault-faults.c), after the journal was
 * handed over cleanly. The release stops the renewals before it writes, so
 * the standby takes over once the lease lapses and nothing acknowledged is
 * lost; and the old primary, whose journal hand-over went well, follows the
 * new primary as after a switchover that succeeded.
 *
 * Up to 6048771 it did not: FailoverManager.switchover let the release's
 * error escape after setting role 'secondary' and before follow(), so the
 * old primary had no lease watcher, no heartbeat client and no follow timer:
 * it never applied the new primary's commits (its reads stayed stale,
 * /standby answered 503 for good) and its status gave no reason until it was
 * restarted.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { node, promotedTo, samplePrimaries, seedSpace, status, stopSamplers } from '../helpers/cluster.js';
import { tempDir, type DaemonProcess } from '../helpers/daemon-process.js';
import { VaultFaults } from '../helpers/vault-faults.js';
import { waitFor } from '../helpers/wait-for.js';

describe('switchover whose lease release fails (real daemons, LD_PRELOAD fault shim)', function () {
  this.timeout(60_000);
  let root = '';
  let faults: VaultFaults | null = null;
  const daemons: DaemonProcess[] = [];

  before(async function () {
    const why = await VaultFaults.available();
    if (why !== null) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
  });

  afterEach(async () => {
    await stopSamplers();
    for (const d of daemons.splice(0)) await d.kill('SIGKILL');
    await faults?.close();
    faults = null;
    if (root !== '') await fs.rm(root, { recursive: true, force: true });
    root = '';
  });

  it('the old primary stops renewing and refuses writes, the standby takes over with every acknowledged write, and the old primary then follows it', async () => {
    root = await tempDir('cpd-release-');
    const failover = path.join(root, 'FileVault', 'failover');
    faults = await VaultFaults.create([`${failover}/`]);
    const a = await node(root, 'a', 'primary', {}, { env: faults.env() });
    daemons.push(a);
    const b = await node(root, 'b', 'secondary');
    daemons.push(b);
    await seedSpace(a);
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b to answer heartbeats' });
    const sampler = samplePrimaries(() => daemons);
    const acknowledged = new Map<string, unknown>();
    for (let i = 0; i < 3; i++) {
      expect((await a.request('PUT', `/api/space/s/object/k${i}`, { body: { i } })).status).to.equal(201);
      acknowledged.set(`k${i}`, { i });
    }

    // Every open under FileVault/failover fails: the release cannot read or write the lease.
    await faults.failOpens(1_000_000);
    const res = await a.request('POST', '/api/admin/failover/switchover', { body: { candidate: 'b' } });
    expect(res.status, res.text).to.equal(503);
    expect(res.text).to.include('could not release the lease');
    await faults.failOpens(0);
    expect((await a.request('PUT', '/api/space/s/object/refused', { body: { by: 'a' } })).status).to.equal(503);

    // Not renewing: b takes over once the lease lapses, with every acknowledged write.
    await waitFor(() => promotedTo(b), { what: 'b to take over', timeoutMs: 10_000 });
    for (const [key, value] of acknowledged) {
      const got = await b.request('GET', `/api/space/s/object/${key}`);
      expect(got.status, key).to.equal(200);
      expect((got.body as { data: unknown }).data).to.deep.equal(value);
    }
    expect((await b.request('PUT', '/api/space/s/object/after', { body: { by: 'b' } })).status).to.equal(201);
    const { doubles } = await sampler.stop();
    expect(doubles, 'moments with two nodes answering /primary 200').to.equal(0);

    // The journal was handed over cleanly: a follows the new primary (as after a switchover that succeeds).
    const view = ((await a.request('GET', '/api/admin/status')).body as { data: { failover: Record<string, unknown> } }).data.failover;
    await waitFor(async () => (await a.request('GET', '/api/space/s/object/after')).status === 200, {
      what: `a to follow b (a's failover status: ${JSON.stringify(view)})`,
      timeoutMs: 10_000,
    });
    await waitFor(async () => (await a.request('GET', '/standby', { token: null })).status === 200, { what: 'a to be a caught-up standby' });
  });
});
