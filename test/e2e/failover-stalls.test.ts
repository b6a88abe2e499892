/**
 * Failover under a stalled FileVault, with real daemons: the primary runs with
 * the LD_PRELOAD fault shim (test/helpers/vault-faults.c), which holds every
 * write it makes under FileVault/ while the test says so and then performs it
 * at the offset it was issued with — a hard-mounted NFS client's stall and
 * late write. The secondary runs without it. Every acknowledged write is
 * checked by key and value; /primary is sampled every 50 ms on every node.
 * One test holds only the next journal write (stall-next) and kills the
 * primary with the second batch landed past it: a real crash with the first
 * of two batches in flight unwritten.
 */
import { expect } from 'chai';
import { promises as fs, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { node, samplePrimaries, seedSpace, shared, status, stopSamplers } from '../helpers/cluster.js';
import { DaemonProcess, QuietCheckpoints, tempDir, WaitingOutLease } from '../helpers/daemon-process.js';
import { skipWithoutShim, VaultFaults } from '../helpers/vault-faults.js';
import { waitFor } from '../helpers/wait-for.js';

/** Every key of `expected` reads back from `d` with its value. */
async function expectAll(d: DaemonProcess, expected: Map<string, unknown>): Promise<void> {
  for (const [key, value] of expected) {
    const res = await d.request('GET', `/api/space/s/object/${key}`);
    expect(res.status, `${key} on ${d.url}: ${res.text}`).to.equal(200);
    expect((res.body as { data: unknown }).data, key).to.deep.equal(value);
  }
}

/** Whether process `pid` holds a descriptor open on a file under `dir`, as /proc/PID/fd shows. */
function holdsOpenUnder(pid: number, dir: string): boolean {
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${dir}/`);
    } catch {
      return false; // closed since the listing
    }
  });
}

describe('failover under a stalled FileVault (LD_PRELOAD fault shim, real daemons)', function () {
  this.timeout(90_000);
  let root = '';
  let faults: VaultFaults | null = null;
  const daemons: DaemonProcess[] = [];

  before(async function () {
    await skipWithoutShim(this);
  });

  afterEach(async () => {
    await stopSamplers();
    await faults?.releaseWrites().catch(() => undefined);
    for (const d of daemons.splice(0)) await d.kill('SIGKILL');
    await faults?.close();
    faults = null;
    if (root !== '') await fs.rm(root, { recursive: true, force: true });
    root = '';
  });

  for (const newFile of ['empty', 'written'] as const) {
    it(`a stalled write of the old primary that lands after the promotion is void: nothing acknowledged is lost, nothing void is served, every node restarts (new epoch's file ${newFile})`, async () => {
      root = await tempDir('cpd-stall-');
      faults = await VaultFaults.create([path.join(root, 'FileVault') + '/']);
      const a = await node(root, 'a', 'primary', {}, { env: faults.env() });
      daemons.push(a);
      const b = await node(root, 'b', 'secondary');
      daemons.push(b);
      await seedSpace(a);
      await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b to answer heartbeats' });
      const acknowledged = new Map<string, unknown>();
      for (let i = 0; i < 5; i++) {
        const value = { writer: 'a', i };
        expect((await a.request('PUT', `/api/space/s/object/a${i}`, { body: value })).status).to.equal(201);
        acknowledged.set(`a${i}`, value);
      }
      // A checkpoint rolls the journal: the old epoch's newest file is empty when its next write stalls.
      expect((await a.request('POST', '/api/admin/checkpoint', { body: { description: 'roll' } })).status).to.equal(201);
      const sampler = samplePrimaries(() => daemons);

      await faults.stallWrites();
      const stalled = a.request('PUT', '/api/space/s/object/ghost', { body: { writer: 'a', stalled: true } });
      await faults.waitForStall();
      await waitFor(() => b.lines.some((l) => l.message === 'promoted to primary'), { what: 'b to promote', timeoutMs: 20_000 });
      if (newFile === 'written') {
        const value = { writer: 'b', first: true };
        expect((await b.request('PUT', '/api/space/s/object/b0', { body: value })).status).to.equal(201);
        acknowledged.set('b0', value);
      }
      // The stall ends: a's journal write (and its lease writes) land late.
      await faults.releaseWrites();
      const answer = await stalled;
      expect(answer.status, `the stalled commit is never acknowledged: ${answer.text}`).to.equal(503);
      await waitFor(async () => (await status(a)).failover.role !== 'primary', { what: 'a to be fenced' });
      const value = { writer: 'b', after: true };
      expect((await b.request('PUT', '/api/space/s/object/b1', { body: value })).status).to.equal(201);
      acknowledged.set('b1', value);

      await expectAll(b, acknowledged);
      expect((await b.request('GET', '/api/space/s/object/ghost')).status, 'the void record is not served').to.equal(404);
      const journal = await fs.readdir(path.join(root, 'FileVault', 'journal'));
      expect(journal.filter((n) => n.endsWith('-000000002.log')), 'epoch 2 writes its own file').to.have.length(1);

      // A node that starts now, from the vault alone, has b's history; so do a and b after restarts.
      const c = await node(root, 'c', 'secondary');
      daemons.push(c);
      await waitFor(async () => (await c.request('GET', '/standby', { token: null })).status === 200, { what: 'c to catch up' });
      await expectAll(c, acknowledged);
      expect((await c.request('GET', '/api/space/s/object/ghost')).status).to.equal(404);
      await a.kill('SIGKILL');
      const a2 = await node(root, 'a', 'primary', {}, { env: faults.env() });
      daemons.push(a2);
      expect((await status(a2)).failover.role, 'the old primary comes back as a follower').to.equal('secondary');
      await waitFor(async () => (await a2.request('GET', '/standby', { token: null })).status === 200, { what: 'a to catch up' });
      await expectAll(a2, acknowledged);
      await b.kill('SIGTERM');
      await waitFor(async () => daemons.some((d) => d !== b && d.exit === null && d.lines.some((l) => l.message === 'promoted to primary')), { what: 'a standby to take over from b' });
      const { samples, doubles } = await sampler.stop();
      expect(samples).to.be.greaterThan(10);
      expect(doubles, 'moments with two nodes answering /primary 200').to.equal(0);
    });
  }

  it('a standby never skips a record whose apply failed (a transient read error while applying a journaled restore): it retries, reports it, and promotes with the restore', async () => {
    root = await tempDir('cpd-apply-');
    faults = await VaultFaults.create([path.join(root, 'FileVault', 'checkpoint') + '/']);
    const a = await node(root, 'a', 'primary');
    daemons.push(a);
    const b = await node(root, 'b', 'secondary', {}, { env: faults.env() });
    daemons.push(b);
    await seedSpace(a);
    expect((await a.request('PUT', '/api/space/s/object/x', { body: { v: 'before' } })).status).to.equal(201);
    const made = await a.request('POST', '/api/admin/checkpoint', { body: { description: 'base' } });
    expect(made.status).to.equal(201);
    const id = (made.body as { data: { id: number } }).data.id;
    expect((await a.request('PUT', '/api/space/s/object/x', { body: { v: 'after' } })).status).to.equal(200);
    await waitFor(async () => (await b.request('GET', '/api/space/s/object/x')).status === 200 && ((await b.request('GET', '/api/space/s/object/x')).body as { data: { v: string } }).data.v === 'after', { what: 'b to follow' });
    await waitFor(async () => (await b.request('GET', '/standby', { token: null })).status === 200, { what: 'b caught up' });
    // b reads each new checkpoint end to end once (its pre-loader): let that be done before reads fail.
    await waitFor(async () => ((await b.request('GET', '/api/admin/status')).body as { data: { failover: { standby: { checkpoints: { verified: { id: number } | null } } } } }).data.failover.standby.checkpoints.verified?.id === id, { what: 'b to verify the checkpoint' });

    // b's next reads of checkpoint files fail (EIO): applying the journaled restore fails until they pass.
    await faults.failReads(1_000_000);
    expect((await a.request('POST', `/api/collection/checkpoint/${id}`)).status).to.equal(200);
    const failing = await waitFor(async () => {
      const view = (await b.request('GET', '/api/admin/status')).body as { data: { failover: { standby: { followError: { attempts: number } | null; appliedSeq: number } } } };
      return view.data.failover.standby.followError;
    }, { what: 'b to report the failing apply' }).catch((err: unknown) => {
      console.log(b.lines.filter((l) => l.level !== 'debug').map((l) => JSON.stringify(l)).join('\n'));
      throw err;
    });
    expect(failing.attempts).to.be.at.least(1);
    expect((await b.request('GET', '/standby', { token: null })).status, 'not caught up while an apply fails').to.equal(503);
    const metrics = await b.request('GET', '/metrics', { token: null });
    expect(metrics.text).to.match(/^checkpointd_standby_follow_failing_seconds [0-9.]+$/m);
    expect(metrics.text).to.not.match(/^checkpointd_standby_follow_failing_seconds 0$/m);
    expect(b.lines.some((l) => l.message === 'following the journal failed; this standby is not caught up until it succeeds (retrying with backoff)')).to.equal(true);
    expect(((await b.request('GET', '/api/space/s/object/x')).body as { data: unknown }).data, 'nothing after the failed record is applied either').to.deep.equal({ v: 'after' });
    await faults.failReads(0); // the fault clears
    await waitFor(() => b.lines.some((l) => l.message === 'following the journal again'), { what: 'b to apply the restore', timeoutMs: 30_000 });
    const x = await b.request('GET', '/api/space/s/object/x');
    expect((x.body as { data: unknown }).data, 'the restore was applied, not skipped').to.deep.equal({ v: 'before' });
    expect((await status(b)).failover.epoch).to.be.at.least(1);

    await a.kill('SIGKILL');
    await waitFor(() => b.lines.some((l) => l.message === 'promoted to primary'), { what: 'b to promote', timeoutMs: 20_000 });
    expect(((await b.request('GET', '/api/space/s/object/x')).body as { data: unknown }).data).to.deep.equal({ v: 'before' });
  });

  it('a crash with the first of two batches in flight unwritten (held by the shim) and the second landed past it: the restart cuts the hole and what follows as a torn tail, serves everything acknowledged before, and nothing of the two', async () => {
    root = await tempDir('cpd-two-batches-');
    const journal = path.join(root, 'FileVault', 'journal');
    faults = await VaultFaults.create([journal + '/']);
    const a = await node(root, 'a', 'primary', {}, { env: faults.env() });
    daemons.push(a);
    await seedSpace(a);
    const acknowledged = new Map<string, unknown>();
    for (let i = 0; i < 5; i++) {
      expect((await a.request('PUT', `/api/space/s/object/k${i}`, { body: { i } })).status).to.equal(201);
      acknowledged.set(`k${i}`, { i });
    }
    const file = async (): Promise<string> => path.join(journal, (await fs.readdir(journal)).filter((n) => n.endsWith('.log')).sort().at(-1)!);
    const before = (await fs.stat(await file())).size;
    // The next journal write (batch 1: x1) is held; the one after it (batch 2: x2) lands at its offset, past batch 1's.
    await faults.stallNextWrites(1);
    const first = a.request('PUT', '/api/space/s/object/x1', { body: { big: 'a'.repeat(2000) } }).then((r) => r.status, () => 0);
    await faults.waitForStall(1);
    const second = a.request('PUT', '/api/space/s/object/x2', { body: { big: 'b'.repeat(2000) } }).then((r) => r.status, () => 0);
    await waitFor(async () => (await fs.stat(await file())).size > before + 2000, { what: 'the second batch to land past the held first one', timeoutMs: 10_000 });
    const bytes = await fs.readFile(await file());
    expect(bytes.subarray(before, before + 64).every((b) => b === 0), 'a hole where the first batch belongs').to.equal(true);
    await a.kill('SIGKILL');
    expect(await first, 'x1 was never acknowledged').to.not.be.oneOf([200, 201]);
    expect(await second, 'x2 was never acknowledged (acknowledgements go in file order)').to.not.be.oneOf([200, 201]);

    await faults.releaseNextWrites();
    const a2 = await node(root, 'a', 'primary');
    daemons.push(a2);
    const recovery = ((await a2.request('GET', '/api/admin/status')).body as { data: { recovery: { tailCut: unknown; lastSeq: number } } }).data.recovery;
    expect(recovery.tailCut, 'the hole and the batch after it were cut as a torn tail').to.not.equal(null);
    for (const [key, value] of acknowledged) expect(((await a2.request('GET', `/api/space/s/object/${key}`)).body as { data: unknown }).data, key).to.deep.equal(value);
    expect((await a2.request('GET', '/api/space/s/object/x1')).status).to.equal(404);
    expect((await a2.request('GET', '/api/space/s/object/x2')).status).to.equal(404);
    expect((await a2.request('PUT', '/api/space/s/object/after', { body: { after: true } })).status).to.equal(201);
  });

  it('a standalone primary whose lease renewals stall past the lease is fenced, then claims a new epoch and serves again without a restart', async () => {
    root = await tempDir('cpd-alone-');
    faults = await VaultFaults.create([path.join(root, 'FileVault', 'failover') + '/']);
    const a = await node(root, 'a', 'primary', {}, { env: faults.env() });
    daemons.push(a);
    await seedSpace(a);
    expect((await a.request('PUT', '/api/space/s/object/k0', { body: { v: 0 } })).status).to.equal(201);
    await faults.stallWrites();
    await waitFor(async () => (await status(a)).failover.role === 'fenced', { what: 'a to be fenced', timeoutMs: 20_000 });
    expect((await a.request('PUT', '/api/space/s/object/k1', { body: { v: 1 } })).status).to.equal(503);
    await faults.releaseWrites();
    await waitFor(async () => (await a.request('GET', '/primary', { token: null })).status === 200, { what: 'a to serve again', timeoutMs: 30_000 });
    expect((await status(a)).failover.epoch).to.be.greaterThan(1);
    expect((await a.request('PUT', '/api/space/s/object/k2', { body: { v: 2 } })).status).to.equal(201);
    expect(((await a.request('GET', '/api/space/s/object/k0')).body as { data: unknown }).data).to.deep.equal({ v: 0 });
    expect((await a.request('GET', '/api/space/s/object/k1')).status, 'the refused write is not there').to.equal(404);
  });

  it('a standby whose journal was pruned while it slept loads one checkpoint, however many heartbeats arrive during the (slow) load', async () => {
    root = await tempDir('cpd-rebuild-');
    faults = await VaultFaults.create([path.join(root, 'FileVault', 'checkpoint') + '/']);
    const checkpoint = { events: { ...QuietCheckpoints.events, 'space-created': true }, coalesceMs: 0, retention: { keepLast: 1 } };
    await fs.mkdir(path.join(root, 'a'), { recursive: true });
    const a = await DaemonProcess.start({ dir: path.join(root, 'a'), config: { ...shared(root), node: { name: 'a', role: 'primary' }, checkpoint } });
    daemons.push(a);
    const b = await node(root, 'b', 'secondary', {}, { env: faults.env() });
    daemons.push(b);
    await seedSpace(a);
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b to answer heartbeats' });
    // Stopped while it reads no journal file: a descriptor it held open would still read the file pruned meanwhile
    // (Linux keeps an unlinked file's data for its open descriptors), and b would then catch up without a load.
    const journalDir = path.join(root, 'FileVault', 'journal');
    await waitFor(
      () => {
        b.child.kill('SIGSTOP');
        if (!holdsOpenUnder(b.child.pid!, journalDir)) return true;
        b.child.kill('SIGCONT');
        return false;
      },
      { what: 'b stopped outside a read of the journal', intervalMs: 7 },
    );
    try {
      const created = (): number => a.lines.filter((l) => l.message === 'checkpoint created').length;
      for (const space of ['t1', 't2']) {
        const before = created();
        expect((await a.request('PUT', `/api/space/s/object/${space}`, { body: { space } })).status).to.equal(201);
        expect((await a.request('POST', '/api/space', { body: { id: space, template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
        await waitFor(() => created() > before, { what: `the checkpoint for ${space}` });
      }
      await waitFor(async () => !(await fs.readdir(path.join(root, 'FileVault', 'journal'))).includes('journal-000000001-000000001.log'), { what: 'the journal to be pruned' });
      // Listing the checkpoints takes b 1.5 s from now: a load spans about 15 heartbeats.
      await faults.slowListing(1500);
    } finally {
      b.child.kill('SIGCONT');
    }
    expect((await a.request('PUT', '/api/space/s/object/after', { body: { late: true } })).status).to.equal(201);
    await waitFor(async () => (await b.request('GET', '/api/space/s/object/after')).status === 200, { what: 'b to catch up past the pruned journal', timeoutMs: 30_000 });
    await faults.slowListing(0);
    expect(b.lines.filter((l) => l.message === 'the journal this node needs was pruned before it read it; loading the newest checkpoint'), 'one load').to.have.length(1);
    expect(b.lines.filter((l) => l.message === 'state rebuilt from the checkpoint and the journal; following it')).to.have.length(1);
  });

  it('a restarting primary held up while it waits out its own old lease claims nothing once a secondary took over', async () => {
    root = await tempDir('cpd-restart-');
    const a = await node(root, 'a', 'primary');
    daemons.push(a);
    const b = await node(root, 'b', 'secondary');
    daemons.push(b);
    await seedSpace(a);
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b to answer heartbeats' });
    const acknowledged = new Map<string, unknown>([['a0', { writer: 'a' }]]);
    expect((await a.request('PUT', '/api/space/s/object/a0', { body: { writer: 'a' } })).status).to.equal(201);
    // b sleeps through a's crash and restart, so the lease still names a when a starts again.
    b.child.kill('SIGSTOP');
    let a2: DaemonProcess;
    try {
      await a.kill('SIGKILL');
      // Restarted, a must wait its own lease out like any candidate, not claim at once.
      a2 = await node(root, 'a', 'primary', {}, { waitForLease: false });
      daemons.push(a2);
      expect(a2.lines.some((l) => l.message === WaitingOutLease)).to.equal(true);
    } finally {
      b.child.kill('SIGCONT');
    }
    // Held up (SIGSTOP) while b takes over and acknowledges writes.
    a2.child.kill('SIGSTOP');
    try {
      await waitFor(() => b.lines.some((l) => l.message === 'promoted to primary'), { what: 'b to promote', timeoutMs: 20_000 });
      for (let i = 0; i < 5; i++) {
        const value = { writer: 'b', i };
        expect((await b.request('PUT', `/api/space/s/object/b${i}`, { body: value })).status).to.equal(201);
        acknowledged.set(`b${i}`, value);
      }
    } finally {
      a2.child.kill('SIGCONT');
    }
    await waitFor(async () => (await a2.request('GET', '/api/space/s/object/b4')).status === 200, { what: 'a to follow b' });
    expect(a2.lines.some((l) => l.message === 'epoch claimed'), 'a claimed no epoch').to.equal(false);
    expect((await status(a2)).failover.role).to.equal('secondary');
    expect((await a2.request('GET', '/primary', { token: null })).status).to.equal(503);
    await expectAll(b, acknowledged);
    await expectAll(a2, acknowledged);
  });
});
