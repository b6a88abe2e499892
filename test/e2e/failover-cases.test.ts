/**
 * Failover cases decided in "Plausible cases decided" (2d2defc) and before,
 * each shown with real daemons and faults below our code: the LD_PRELOAD
 * shim (test/helpers/vault-faults.c) stalls writes, fails fsyncs and slows
 * listings of one node's FileVault paths; SIGSTOP/SIGCONT freeze a node at a
 * chosen moment; retention prunes the journal for real; sshfs gives a real
 * network file system.
 *
 * - (b) A checkpoint queued behind another asks the fence when its turn
 *   comes: on a node fenced while it waited it is refused (503) and nothing
 *   is published for it.
 * - (e) Reloading an identical template (a no-op) waits for the commit
 *   before it; a node fenced meanwhile does not acknowledge it (503, not 200).
 * - (f) A standby promoting over a journal gap that no checkpoint it loaded
 *   covers does not take over over the gap: that attempt is refused, it
 *   rebuilds from the newer checkpoint and takes over with every
 *   acknowledged write.
 * - (g) A switchover whose journal hand-over fails (fdatasync EIO) leaves the
 *   old primary fenced and not renewing; the standby takes over with every
 *   acknowledged write, never two primaries at once.
 * - (g') A switchover whose lease release fails after a clean hand-over: the
 *   old primary stops renewing, the standby takes over once the lease lapses,
 *   and the old primary follows it.
 * - (h) journal.sync "interval" on a network FileVault (sshfs) warns at start.
 *
 * Skipped, with the reason printed, where the shim cannot be built, or (h)
 * where sshd, sshfs or FUSE are missing.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readManifest, stageCheckpoint } from '../../src/checkpoint/index.js';
import { silentLogger } from '../../src/log/index.js';
import { Engine } from '../../src/store/index.js';
import { fastFailover, promotedTo, samplePrimaries, seedSpace, status, stopSamplers } from '../helpers/cluster.js';
import { DaemonProcess, QuietCheckpoints, tempDir, type Answer } from '../helpers/daemon-process.js';
import { SafeOptions, SshServer, sshfsAvailable, type SshfsMount } from '../helpers/sshfs.js';
import { skipWithoutShim, VaultFaults } from '../helpers/vault-faults.js';
import { waitFor } from '../helpers/wait-for.js';

/** What the daemon logs when journal.sync is interval on a network FileVault (src/cli/daemon.ts, checkMount). */
const IntervalOnNetworkWarning = 'journal.sync is "interval" on a network FileVault';

/** The problem's detail (problem+json), else the body as text. */
function detail(res: Answer): string {
  const body = res.body as { detail?: unknown } | undefined;
  return typeof body?.detail === 'string' ? body.detail : res.text;
}

/** PUT `value` at `key` in space s on `d`, expect it acknowledged, and remember it. */
async function putAcknowledged(d: DaemonProcess, acknowledged: Map<string, unknown>, key: string, value: unknown): Promise<void> {
  const res = await d.request('PUT', `/api/space/s/object/${key}`, { body: value });
  expect(res.status, `${key}: ${res.text}`).to.be.oneOf([200, 201]);
  acknowledged.set(key, value);
}

/** Every key of `expected` reads back from `d` with its value. */
async function expectAll(d: DaemonProcess, expected: Map<string, unknown>): Promise<void> {
  for (const [key, value] of expected) {
    const res = await d.request('GET', `/api/space/s/object/${key}`);
    expect(res.status, `acknowledged ${key} on ${d.url}: ${res.text}`).to.equal(200);
    expect((res.body as { data: unknown }).data, key).to.deep.equal(value);
  }
}

/** What these tests read of a node's status. */
interface FailoverView {
  role: string;
  fencedBecause: string | null;
  leaseRenewedAgoMs: number | null;
}

async function failoverOf(d: DaemonProcess): Promise<FailoverView> {
  return ((await d.request('GET', '/api/admin/status')).body as { data: { failover: FailoverView } }).data.failover;
}

async function seqOf(d: DaemonProcess): Promise<number> {
  return ((await d.request('GET', '/api/admin/status')).body as { data: { seq: number } }).data.seq;
}

/** The checkpoints in the catalogue, as `d` lists them. */
async function checkpoints(d: DaemonProcess): Promise<{ id: number; description: string; seq: number; trigger: string }[]> {
  const res = await d.request('GET', '/api/collection/checkpoint');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: { data: { id: number; description: string; seq: number; trigger: string } }[] }).data.map((e) => e.data);
}

describe('failover cases: queued checkpoint, no-op reload, journal gap, failed switchover (real daemons, LD_PRELOAD fault shim)', function () {
  this.timeout(60_000);
  let root = '';
  let faults: VaultFaults | null = null;
  const daemons: DaemonProcess[] = [];

  before(async function () {
    await skipWithoutShim(this);
  });

  afterEach(async function () {
    await stopSamplers();
    await faults?.clear().catch(() => undefined);
    if (this.currentTest?.state === 'failed') {
      for (const d of daemons) console.log(`      ${d.dir}:\n${d.lines.filter((l) => l.level !== 'debug').map((l) => `        ${JSON.stringify(l)}`).join('\n')}`);
    }
    for (const d of daemons.splice(0)) {
      if (d.exit === null) d.child.kill('SIGCONT');
      await d.kill('SIGKILL');
    }
    await faults?.close();
    faults = null;
    if (root !== '') await fs.rm(root, { recursive: true, force: true });
    root = '';
  });

  /** Node `name` of the installation in `root`: the shared FileVault and tokens, short failover timings, quiet checkpoints unless `checkpoint` says otherwise. */
  async function startNode(
    name: string,
    role: 'primary' | 'secondary',
    options: { failover?: Record<string, unknown>; journal?: Record<string, unknown>; checkpoint?: Record<string, unknown>; log?: Record<string, unknown>; env?: Record<string, string> } = {},
  ): Promise<DaemonProcess> {
    await fs.mkdir(path.join(root, name), { recursive: true });
    const config = {
      node: { name, role },
      paths: { data: 'data', fileVault: path.join(root, 'FileVault') },
      auth: { tokensFile: path.join(root, 'shared', 'tokens.json') },
      failover: { ...fastFailover, ...options.failover },
      checkpoint: options.checkpoint ?? { events: QuietCheckpoints.events, coalesceMs: 0 },
      ...(options.journal === undefined ? {} : { journal: options.journal }),
      ...(options.log === undefined ? {} : { log: options.log }),
    };
    const d = await DaemonProcess.start({ dir: path.join(root, name), config, tokenFile: path.join(root, 'a', 'data', 'admin.token'), ...(options.env === undefined ? {} : { env: options.env }) });
    daemons.push(d);
    return d;
  }

  /** A request that records, in `order`, when its answer came. */
  function tracked(order: string[], name: string, request: Promise<Answer>): Promise<Answer> {
    return request.finally(() => order.push(name));
  }

  it('(b) a checkpoint queued behind another asks the fence when its turn comes: on a node fenced while it waited it is refused (503) and nothing is published for it', async () => {
    root = await tempDir('cpd-cases-b-');
    const vault = path.join(root, 'FileVault');
    faults = await VaultFaults.create([`${vault}/`]);
    const a = await startNode('a', 'primary', { env: faults.env() });
    const b = await startNode('b', 'secondary');
    await seedSpace(a);
    const acknowledged = new Map<string, unknown>();
    for (let i = 0; i < 3; i++) await putAcknowledged(a, acknowledged, `k${i}`, { i });
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b to answer heartbeats' });
    const seqBefore = await seqOf(a);

    // The first checkpoint holds the checkpointer's lock, its writes to the checkpoint folder stalled.
    await faults.stallWrites(`${path.join(vault, 'checkpoint')}/`);
    const answered: string[] = [];
    const first = tracked(answered, 'first', a.request('POST', '/api/admin/checkpoint', { body: { description: 'first' } }));
    await waitFor(async () => (await faults!.stalledPaths()).some((p) => p.startsWith(`${path.join(vault, 'checkpoint')}/`)), { what: 'the first checkpoint to stall' });
    // The second passes the route's check (a is the primary now) and queues behind the first.
    const queued = tracked(answered, 'queued', a.request('POST', '/api/admin/checkpoint', { body: { description: 'queued' } }));
    expect((await a.request('GET', '/primary', { token: null })).status, 'a is still the primary with a valid lease').to.equal(200);

    // Now every write of a's under the FileVault stalls, its lease renewals too: a loses its lease, b takes over.
    await faults.stallWrites();
    await waitFor(async () => (await failoverOf(a)).role === 'fenced', { what: 'a to be fenced', timeoutMs: 15_000 });
    await waitFor(() => promotedTo(b), { what: 'b to promote', timeoutMs: 15_000 });
    // State after the fence: b acknowledges a write that no checkpoint of a's may hold.
    await putAcknowledged(b, acknowledged, 'post', { after: 'fence' });
    expect(answered, 'neither checkpoint has answered: the second waits in the queue, it was not refused at the door').to.deep.equal([]);

    await faults.releaseWrites();
    const [one, two] = await Promise.all([first, queued]);
    expect(answered, 'the queued checkpoint took its turn after the first').to.deep.equal(['first', 'queued']);
    expect(one.status, `the first took its state before the fence: ${one.text}`).to.equal(201);
    expect((one.body as { data: { seq: number } }).data.seq).to.equal(seqBefore);
    expect(two.status, `the queued checkpoint on the fenced node: ${two.text}`).to.equal(503);
    // Refused by the checkpointer when its turn came: a was fenced, or had already rejoined as a follower.
    expect(detail(two)).to.match(/^this node is (fenced|not the primary)\b.*; create checkpoints on the primary$/);

    const list = await checkpoints(b);
    expect(list.map((c) => c.description), 'nothing was published for the queued checkpoint').to.not.include('queued');
    expect(list.filter((c) => c.seq > seqBefore), 'no checkpoint holds state from after the fence').to.deep.equal([]);
    // a rejoined as a follower while its first checkpoint was stalled: its engine folder was rebuilt under the held
    // snapshot. The checkpoint holds the snapshot's files (hard-linked when it was taken), not the rebuilt ones.
    const firstEntry = list.find((c) => c.description === 'first')!;
    const file = path.join(vault, 'checkpoint', `Checkpoint-${String(firstEntry.id).padStart(9, '0')}`);
    const manifest = await readManifest(file);
    const engine = Engine.open({ dir: path.join(root, 'read-back'), cacheBytes: 8 << 20, logger: silentLogger() });
    try {
      const staged = await stageCheckpoint(file, manifest, engine, { collection: true });
      engine.install(staged.spaces, manifest.seq + 1, staged.collection!.templates);
      const keys = engine.page('s', {}, undefined, 1000).map((o) => o.key);
      expect(keys, 'the first checkpoint read back').to.include.members(['k0', 'k1', 'k2']).and.not.include('post');
    } finally {
      engine.close();
    }
    await expectAll(b, acknowledged);
  });

  it('(e) reloading an identical template on a node fenced while the reload waited for the commit before it is not acknowledged: 503, not 200', async () => {
    root = await tempDir('cpd-cases-e-');
    const vault = path.join(root, 'FileVault');
    faults = await VaultFaults.create([`${vault}/`]);
    const a = await startNode('a', 'primary', { env: faults.env() });
    await seedSpace(a);

    // A commit in flight: its journal write stalls.
    await faults.stallWrites(`${path.join(vault, 'journal')}/`);
    const write = a.request('PUT', '/api/space/s/object/k', { body: { v: 1 } });
    await faults.waitForStall();
    // The same template again (seedSpace loaded plm 1.0 indexing writer): a no-op that waits for the commit before it.
    const reload = a.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['writer'] } });
    expect((await a.request('GET', '/primary', { token: null })).status, 'a is still the primary with a valid lease').to.equal(200);

    // Every write under the FileVault stalls, the lease renewals too: a loses its lease while both wait.
    await faults.stallWrites();
    await waitFor(async () => (await failoverOf(a)).role === 'fenced', { what: 'a to be fenced', timeoutMs: 15_000 });
    await faults.releaseWrites();

    const [w, r] = await Promise.all([write, reload]);
    expect(w.status, w.text).to.equal(503);
    expect(detail(w)).to.include('written to the journal but not acknowledged');
    expect(r.status, `the no-op reload on the fenced node: ${r.text}`).to.equal(503);
    // Refused after its wait (not at the door, which would say "the commit was refused").
    expect(detail(r)).to.include('a no-op, not acknowledged');
  });

  it('(f) a standby that finds, while promoting, a journal gap no checkpoint it loaded covers does not take over over it: the attempt is refused, it rebuilds from the newer checkpoint, then takes over with every acknowledged write', async () => {
    root = await tempDir('cpd-cases-f-');
    const journal = path.join(root, 'FileVault', 'journal');
    faults = await VaultFaults.create([`${journal}/`]);
    // Every created space makes a collection checkpoint, and retention keeps one: the journal before it is pruned.
    const checkpoint = { events: { ...QuietCheckpoints.events, 'space-created': true }, coalesceMs: 0, retention: { keepLast: 1 } };
    const a = await startNode('a', 'primary', { checkpoint });
    const made = (): number => a.lines.filter((l) => l.message === 'checkpoint created').length;
    const pruned = (): number => a.lines.filter((l) => l.message === 'journal pruned').length;
    await seedSpace(a);
    await waitFor(() => made() === 1, { what: 'the checkpoint for space s' });
    // b hears no heartbeat (a cluster token of its own): the journal and the lease are all it knows of a.
    const b = await startNode('b', 'secondary', { failover: { clusterTokenFile: path.join(root, 'b', 'cluster.token') }, log: { level: 'debug' }, env: faults.env() });
    const acknowledged = new Map<string, unknown>();
    await putAcknowledged(a, acknowledged, 'k0', { i: 0 });
    await waitFor(async () => (await b.request('GET', '/api/space/s/object/k0')).status === 200, { what: 'b to follow k0' });

    // b sleeps while a writes k1 and checkpoints (space t1): the journal file b reads next is pruned.
    b.child.kill('SIGSTOP');
    try {
      await putAcknowledged(a, acknowledged, 'k1', { i: 1 });
      expect((await a.request('POST', '/api/space', { body: { id: 't1', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
      await waitFor(() => made() === 2 && pruned() === 2, { what: 'the checkpoint for t1 and the journal pruned behind it' });
    } finally {
      b.child.kill('SIGCONT');
    }
    // Woken, b finds the gap and rebuilds from that checkpoint; each listing of the journal folder takes it 1 s.
    // The background check of older journal files (olderThan) scans too: not the rebuild's read.
    const scanned = (): number => b.lines.filter((l) => l.message === 'journal scanned' && l.olderThan === undefined).length;
    const scannedBefore = scanned();
    await faults.slowListing(1000);
    await waitFor(() => scanned() > scannedBefore, { what: "b's rebuild to read the journal", timeoutMs: 20_000, intervalMs: 5 });
    // Frozen before it lists the journal again: what it just read is about to go.
    b.child.kill('SIGSTOP');
    try {
      await putAcknowledged(a, acknowledged, 'k2', { i: 2 });
      await putAcknowledged(a, acknowledged, 'k3', { i: 3 });
      expect((await a.request('POST', '/api/space', { body: { id: 't2', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
      // k2 and k3 now live only in that checkpoint: the journal file holding them is pruned.
      await waitFor(() => made() === 3 && pruned() === 3, { what: 'the checkpoint for t2 and the journal pruned behind it' });
      // A clean stop releases the lease: b may take over at once.
      await a.kill('SIGTERM');
      expect(a.exit, a.stderr).to.deep.equal({ code: 0, signal: null });
    } finally {
      b.child.kill('SIGCONT');
    }
    await waitFor(() => b.lines.some((l) => l.message === 'the primary is gone; promoting'), { what: 'b to start promoting', timeoutMs: 10_000, intervalMs: 5 });
    await faults.slowListing(0);
    await waitFor(() => promotedTo(b), { what: 'b to promote', timeoutMs: 30_000 });

    const messages = b.lines.map((l) => l.message);
    const promoting = messages.indexOf('the primary is gone; promoting');
    const gap = messages.indexOf('no checkpoint reaches the journal that is left; this node cannot follow');
    expect(gap, 'b found the gap after its rebuild while the promotion waited on that rebuild').to.be.greaterThan(promoting);
    // Nothing acknowledged is lost: b took over from the newer checkpoint, not over the gap.
    await expectAll(b, acknowledged);
    for (const space of ['t1', 't2']) expect((await b.request('GET', `/api/space/${space}`)).status, space).to.equal(200);
    const refused = b.lines.find((l) => l.message === 'promotion failed; still following');
    expect(refused?.error, 'the promotion over the gap was refused').to.match(/no checkpoint reaches the journal that is left/);
    expect(messages.indexOf('promotion failed; still following'), 'refused before any epoch was claimed').to.be.lessThan(messages.indexOf('epoch claimed'));
    await putAcknowledged(b, acknowledged, 'after', { by: 'b' });
  });

  it('(g) a switchover whose journal hand-over fails (fdatasync EIO) leaves the old primary fenced and not renewing; the standby takes over with every acknowledged write, one primary at a time', async () => {
    root = await tempDir('cpd-cases-g-');
    const journal = path.join(root, 'FileVault', 'journal');
    faults = await VaultFaults.create([`${journal}/`]);
    // interval: commits are acknowledged before the fdatasync, so the hand-over has records to sync.
    const a = await startNode('a', 'primary', { journal: { sync: 'interval', syncIntervalMs: 60_000 }, env: faults.env() });
    const b = await startNode('b', 'secondary');
    await seedSpace(a);
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b to answer heartbeats' });
    const sampler = samplePrimaries(() => daemons);
    const acknowledged = new Map<string, unknown>();
    for (let i = 0; i < 5; i++) await putAcknowledged(a, acknowledged, `k${i}`, { i });

    await faults.failSyncs(1_000_000);
    const res = await a.request('POST', '/api/admin/failover/switchover', { body: { candidate: 'b' } });
    expect(res.status, res.text).to.equal(503);
    expect(detail(res)).to.match(/fdatasync .* failed/);
    const view = await failoverOf(a);
    expect(view.role).to.equal('fenced');
    expect(view.fencedBecause).to.match(/^switchover failed while handing the journal over/);
    expect((await a.request('PUT', '/api/space/s/object/refused', { body: { by: 'a' } })).status).to.equal(503);
    expect((await a.request('GET', '/primary', { token: null })).status).to.equal(503);

    // a renews no more: b sees the lease unchanged for leaseTtlMs (and no heartbeat) and takes over.
    await waitFor(() => promotedTo(b), { what: 'b to take over once the lease lapses', timeoutMs: 10_000 });
    const lease = JSON.parse(await fs.readFile(path.join(root, 'FileVault', 'failover', 'lease.json'), 'utf8')) as { holder: string; epoch: number };
    expect(lease.holder).to.equal('b');
    expect((await failoverOf(a)).leaseRenewedAgoMs, 'a has not renewed since').to.be.greaterThan(fastFailover.leaseTtlMs);
    await expectAll(b, acknowledged);
    await putAcknowledged(b, acknowledged, 'after', { by: 'b' });
    expect((await a.request('GET', '/primary', { token: null })).status).to.equal(503);
    expect((await b.request('GET', '/primary', { token: null })).status).to.equal(200);
    const { samples, doubles } = await sampler.stop();
    expect(samples).to.be.greaterThan(5);
    expect(doubles, 'moments with two nodes answering /primary 200').to.equal(0);
  });

  it("(g') a switchover whose lease release fails (EIO on every open under FileVault/failover) after a clean journal hand-over: the old primary stops renewing and refuses writes, the standby takes over with every acknowledged write, and the old primary follows it", async () => {
    root = await tempDir('cpd-release-');
    faults = await VaultFaults.create([`${path.join(root, 'FileVault', 'failover')}/`]);
    const a = await startNode('a', 'primary', { env: faults.env() });
    const b = await startNode('b', 'secondary');
    await seedSpace(a);
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b to answer heartbeats' });
    const sampler = samplePrimaries(() => daemons);
    const acknowledged = new Map<string, unknown>();
    for (let i = 0; i < 3; i++) await putAcknowledged(a, acknowledged, `k${i}`, { i });

    // Every open under FileVault/failover fails: the release can neither read nor write the lease.
    await faults.failOpens(1_000_000);
    const res = await a.request('POST', '/api/admin/failover/switchover', { body: { candidate: 'b' } });
    expect(res.status, res.text).to.equal(503);
    expect(res.text).to.include('could not release the lease');
    await faults.failOpens(0);
    expect((await a.request('PUT', '/api/space/s/object/refused', { body: { by: 'a' } })).status).to.equal(503);

    // Not renewing: b takes over once the lease lapses, with every acknowledged write.
    await waitFor(() => promotedTo(b), { what: 'b to take over', timeoutMs: 10_000 });
    await expectAll(b, acknowledged);
    await putAcknowledged(b, acknowledged, 'after', { by: 'b' });
    const { doubles } = await sampler.stop();
    expect(doubles, 'moments with two nodes answering /primary 200').to.equal(0);

    // The journal was handed over cleanly: a follows the new primary, as after a switchover that succeeds.
    // (Up to 6048771 it did not: the release's error escaped before follow(), leaving a neither serving nor following.)
    await waitFor(async () => (await a.request('GET', '/api/space/s/object/after')).status === 200, { what: 'a to follow b', timeoutMs: 10_000 });
    await waitFor(async () => (await a.request('GET', '/standby', { token: null })).status === 200, { what: 'a to be a caught-up standby' });
  });
});

describe('failover cases: journal.sync "interval" on a network FileVault (sshfs from a private sshd)', function () {
  this.timeout(60_000);
  let server: SshServer | null = null;
  let mount: SshfsMount | null = null;
  let root = '';
  const daemons: DaemonProcess[] = [];

  before(async function () {
    const why = await sshfsAvailable();
    if (why !== null) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    server = await SshServer.start();
  });
  after(async () => {
    await server?.stop();
    server = null;
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.kill('SIGKILL');
    await mount?.unmount();
    mount = null;
    if (root !== '') await fs.rm(root, { recursive: true, force: true });
    root = '';
  });

  it('(h) warns at start when journal.sync is "interval" and the FileVault is on sshfs; not on a local disk, nor with journal.sync "commit"', async () => {
    root = await tempDir('cpd-cases-h-');
    const served = path.join(root, 'served');
    const mnt = path.join(root, 'mnt');
    for (const dir of [served, mnt]) await fs.mkdir(dir, { recursive: true });
    mount = await server!.mount(served, mnt, SafeOptions);
    const warnings = (d: DaemonProcess): Record<string, unknown>[] => d.lines.filter((l) => l.level === 'warn' && l.message.startsWith(IntervalOnNetworkWarning));
    const start = async (name: string, fileVault: string, sync: 'interval' | 'commit'): Promise<DaemonProcess> => {
      const d = await DaemonProcess.start({ dir: path.join(root, name), config: { node: { name }, paths: { data: 'data', fileVault }, journal: { sync } }, startTimeoutMs: 30_000 });
      daemons.push(d);
      return d;
    };
    await fs.mkdir(path.join(root, 'net'));
    const net = await start('net', path.join(mnt, 'FileVault'), 'interval');
    const [warning] = warnings(net);
    expect(warning, 'the interval warning on sshfs').to.not.equal(undefined);
    expect(warning!.fsType).to.equal('fuse.sshfs');
    expect(warning!.fileVault).to.equal(path.join(mnt, 'FileVault'));
    await net.kill('SIGTERM');

    await fs.mkdir(path.join(root, 'net-commit'));
    const commit = await start('net-commit', path.join(mnt, 'FileVault'), 'commit');
    expect(warnings(commit), 'journal.sync "commit" on sshfs').to.deep.equal([]);
    await commit.kill('SIGTERM');

    await fs.mkdir(path.join(root, 'local'));
    const local = await start('local', path.join(root, 'local', 'FileVault'), 'interval');
    expect(warnings(local), 'journal.sync "interval" on a local disk').to.deep.equal([]);
    expect(local.lines.some((l) => l.message === 'listening')).to.equal(true);
  });
});
