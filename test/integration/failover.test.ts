/**
 * Failover on real daemons on loopback ports sharing one FileVault (and one
 * tokens file, as an installation's nodes do): the primary is killed with
 * SIGKILL under continuous writes from several clients, the secondary
 * promotes once both the heartbeat and the lease have gone quiet, and every
 * write acknowledged before the kill is on the new primary, checked one by one.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fastFailover, node, promotedTo, seedSpace, shared, status } from '../helpers/cluster.js';
import { CuttableProxy } from '../helpers/cuttable-proxy.js';
import { DaemonProcess, QuietCheckpoints, tempDir } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

interface Pair {
  root: string;
  primary: DaemonProcess;
  secondary: DaemonProcess;
}

async function pair(): Promise<Pair> {
  const root = await tempDir('cpd-failover-');
  const primary = await node(root, 'a', 'primary');
  const secondary = await node(root, 'b', 'secondary');
  return { root, primary, secondary };
}

interface FailoverView {
  role: string;
  paused: boolean;
  heartbeatSilentMs: number | null;
  leaseUnchangedMs: number | null;
}

/** Node `name` reaching the shared FileVault through a symlink of its own (`view`), which a test can break for it alone. */
async function nodeWithOwnVaultLink(root: string, name: string, role: 'primary' | 'secondary'): Promise<{ daemon: DaemonProcess; view: string }> {
  const vault = path.join(root, 'FileVault');
  await fs.mkdir(vault, { recursive: true });
  const view = path.join(root, `${name}-vault`);
  await fs.symlink(vault, view);
  await fs.mkdir(path.join(root, name), { recursive: true });
  const config = { ...shared(root), node: { name, role }, paths: { data: 'data', fileVault: view } };
  return { daemon: await DaemonProcess.start({ dir: path.join(root, name), config, tokenFile: path.join(root, 'a', 'data', 'admin.token') }), view };
}

/** A request on a connection of its own, and when that connection was made (the kernel accepts it while the process is stopped). */
function rawRequest(url: string, method: string, target: string, body?: unknown, token?: string): { connected: Promise<void>; answer: Promise<{ status: number; body: Record<string, unknown> }> } {
  const u = new URL(target, url);
  let connected!: () => void;
  const connectedP = new Promise<void>((resolve) => (connected = resolve));
  const answer = new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method, agent: false, headers: text === undefined ? {} : { 'content-type': 'application/json', authorization: `Bearer ${token ?? ''}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }));
    });
    req.on('socket', (socket) => socket.once('connect', connected));
    req.on('error', reject);
    req.end(text);
  });
  return { connected: connectedP, answer };
}

async function secondaryStatus(d: DaemonProcess): Promise<FailoverView> {
  const res = await d.request('GET', '/api/admin/status');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: { failover: FailoverView } }).data.failover;
}

describe('failover (real daemons sharing a FileVault)', function () {
  this.timeout(60_000);
  let p: Pair | null = null;
  const extra: DaemonProcess[] = [];
  afterEach(async () => {
    for (const d of extra.splice(0)) await d.kill('SIGKILL');
    if (p === null) return;
    await p.primary.cleanup();
    await p.secondary.cleanup();
    await fs.rm(p.root, { recursive: true, force: true });
    p = null;
  });

  it('promotes the secondary after SIGKILL of the primary under writes, with every acknowledged write present (the failover soak repeats it)', async () => {
    p = await pair();
    const { primary, secondary } = p;
    expect((await primary.request('GET', '/primary', { token: null })).status).to.equal(200);
    expect((await secondary.request('GET', '/primary', { token: null })).status).to.equal(503);
    expect((await secondary.request('GET', '/standby', { token: null })).status).to.equal(200);
    for (const body of [{ name: 'plm', version: '1.0', indexes: ['writer'] }]) expect((await primary.request('POST', '/api/template', { body })).status).to.equal(201);
    expect((await primary.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
    await waitFor(async () => (await status(primary)).failover.standbys.some((s) => s.node === 'b'), { what: 'the secondary to answer heartbeats' });

    // Several clients write until the primary dies; each remembers what was acknowledged.
    const acknowledged = new Map<string, unknown>();
    let stop = false;
    const writers = Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        const value = { writer: `w${w}`, i, run };
        try {
          const res = await primary.request('PUT', `/api/space/s/object/${key}`, { body: value });
          if (res.status === 200 || res.status === 201) acknowledged.set(key, value);
        } catch {
          return; // the primary is gone
        }
      }
    });
    await waitFor(() => acknowledged.size >= 150, { what: 'some acknowledged writes' });
    await primary.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);

    await waitFor(() => secondary.lines.some((l) => l.message === 'promoted to primary'), { what: 'the secondary to promote', timeoutMs: 15_000 });
    const promoted = secondary.lines.find((l) => l.message === 'the primary is gone; promoting')!;
    expect(promoted.heartbeatSilentMs).to.be.at.least(fastFailover.heartbeatTimeoutMs);
    expect(promoted.leaseUnchangedMs).to.be.at.least(fastFailover.leaseTtlMs);
    // Warm standby: it had followed the journal all along, so taking over replayed (almost) nothing.
    const tookOver = secondary.lines.find((l) => l.message === 'promoted to primary')!;
    expect(tookOver.replayed, 'journal records replayed at promotion').to.be.a('number').and.below(acknowledged.size / 10);
    await waitFor(async () => (await secondary.request('GET', '/primary', { token: null })).status === 200, { what: '/primary on the new primary' });

    const listed = await secondary.query('/api/space/s/object');
    expect(listed.status, listed.text).to.equal(200);
    const present = new Map((listed.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, o.data]));
    const missing = [...acknowledged.keys()].filter((k) => JSON.stringify(present.get(k)) !== JSON.stringify(acknowledged.get(k)));
    expect(missing, `acknowledged writes missing on the new primary (of ${acknowledged.size})`).to.deep.equal([]);

    // The same client token writes on the new primary, in the new epoch.
    const after = await secondary.request('PUT', '/api/space/s/object/after-failover', { body: { writer: 'late' } });
    expect(after.status, after.text).to.equal(201);
    const s = await status(secondary);
    expect(s.failover.role).to.equal('primary');
    expect(s.failover.epoch).to.equal(2);
    // Promotion is a system event: the new primary makes a collection checkpoint, named for it.
    await waitFor(async () => {
      const list = (await secondary.request('GET', '/api/collection/checkpoint')).body as { data: { data: { trigger: string; seq: number } }[] };
      return list.data.some((c) => c.data.trigger === 'event:promotion');
    }, { what: 'the promotion checkpoint' });
  });

  it('brings an old primary back as a follower: it sees the higher epoch, never serves a write, and follows the new primary', async () => {
    p = await pair();
    const { root, primary, secondary } = p;
    await seedSpace(primary);
    await primary.kill('SIGKILL');
    await waitFor(() => promotedTo(secondary), { what: 'the secondary to promote', timeoutMs: 15_000 });
    expect((await secondary.request('PUT', '/api/space/s/object/k1', { body: { writer: 'b' } })).status).to.equal(201);

    // The old primary starts again with its old configuration (role primary).
    const back = await node(root, 'a', 'primary');
    extra.push(back);
    expect(back.lines.some((l) => l.message === 'configured as primary, but the lease is held by another node; following it (this node takes over if that one is gone)')).to.equal(true);
    expect((await back.request('GET', '/primary', { token: null })).status).to.equal(503);
    const refused = await back.request('PUT', '/api/space/s/object/k2', { body: { writer: 'a' } });
    expect(refused.status).to.equal(503);
    expect((await secondary.request('GET', '/api/space/s/object/k2')).status, 'the refused write is nowhere').to.equal(404);
    expect((await secondary.request('PUT', '/api/space/s/object/k3', { body: { writer: 'b', late: true } })).status).to.equal(201);
    await waitFor(async () => (await back.request('GET', '/api/space/s/object/k3')).status === 200, { what: 'the old primary to follow the new one' });
    await waitFor(async () => (await status(secondary)).failover.standbys.some((s) => s.node === 'a' && s.lag === 0), { what: 'the new primary to see the old one as a caught-up standby' });
    expect((await back.request('GET', '/standby', { token: null })).status).to.equal(200);
  });

  it('with two secondaries, exactly one promotes (one epoch claim) and the other follows it', async () => {
    p = await pair();
    const { root, primary, secondary } = p;
    const third = await node(root, 'c', 'secondary');
    extra.push(third);
    await seedSpace(primary);
    await waitFor(async () => (await status(primary)).failover.standbys.length === 2, { what: 'both secondaries to answer heartbeats' });
    await primary.kill('SIGKILL');
    await waitFor(() => promotedTo(secondary) || promotedTo(third), { what: 'a promotion', timeoutMs: 15_000 });
    const [winner, loser] = promotedTo(secondary) ? [secondary, third] : [third, secondary];
    expect((await winner.request('PUT', '/api/space/s/object/after', { body: { writer: 'winner' } })).status).to.equal(201);
    await waitFor(async () => (await loser.request('GET', '/api/space/s/object/after')).status === 200, { what: 'the other secondary to follow the new primary' });
    const dump = (d: DaemonProcess): string => d.lines.filter((l) => /epoch|promot|claim|lease|follow|journal/.test(String(l.message))).map((l) => JSON.stringify(l)).join('\n');
    expect(promotedTo(loser), `winner:\n${dump(winner)}\nloser:\n${dump(loser)}`).to.equal(false);
    expect((await loser.request('GET', '/primary', { token: null })).status, `winner:\n${dump(winner)}\nloser:\n${dump(loser)}`).to.equal(503);
    const epochs = (await fs.readdir(path.join(root, 'FileVault', 'failover'))).filter((n) => n.startsWith('epoch-')).sort();
    expect(epochs).to.deep.equal(['epoch-000000001', 'epoch-000000002']);
  });

  it('does not promote when only the heartbeat path is cut while the primary still renews its lease (network partition)', async () => {
    const root = await tempDir('cpd-failover-');
    const primaryPort = await DaemonProcess.freePort();
    const proxy = await CuttableProxy.start(primaryPort);
    try {
      // The lease names the proxy as the primary's address, so the secondary's heartbeat goes through it.
      await fs.mkdir(path.join(root, 'a'));
      const primary = await DaemonProcess.start({ dir: path.join(root, 'a'), config: { ...shared(root), node: { name: 'a', role: 'primary' }, api: { port: primaryPort, publicUrl: `http://127.0.0.1:${proxy.port}` } } });
      const secondary = await node(root, 'b', 'secondary');
      p = { root, primary, secondary };
      await seedSpace(primary);
      await waitFor(async () => (await status(primary)).failover.standbys.some((s) => s.node === 'b'), { what: 'heartbeats through the proxy' });
      proxy.partition();
      // Well past heartbeatTimeoutMs and leaseTtlMs: the heartbeat is silent, the lease keeps moving.
      const cutAt = Date.now();
      let writes = 0;
      await waitFor(async () => {
        const res = await primary.request('PUT', `/api/space/s/object/p${writes}`, { body: { writer: 'a' } });
        expect(res.status, 'the primary keeps serving').to.equal(201);
        writes++;
        const s = await secondaryStatus(secondary);
        expect(s.role).to.equal('secondary');
        return Date.now() - cutAt > 3 * fastFailover.leaseTtlMs && s.heartbeatSilentMs! > 2 * fastFailover.heartbeatTimeoutMs && s.leaseUnchangedMs! < fastFailover.leaseTtlMs;
      }, { what: 'three lease TTLs of partition without a promotion', timeoutMs: 20_000, intervalMs: 100 });
      expect(promotedTo(secondary)).to.equal(false);
      expect((await secondary.request('GET', '/primary', { token: null })).status).to.equal(503);
      proxy.heal();
      await waitFor(async () => (await secondaryStatus(secondary)).heartbeatSilentMs! < fastFailover.heartbeatTimeoutMs, { what: 'heartbeats again after the partition heals' });
      await waitFor(async () => (await secondary.request('GET', `/api/space/s/object/p${writes - 1}`)).status === 200, { what: 'the secondary to have followed the writes made during the partition' });
    } finally {
      await proxy.close();
    }
  });

  it('fences a primary that loses the FileVault before the secondary promotes; it acknowledges nothing after, and rejoins as a secondary when the vault returns', async () => {
    const root = await tempDir('cpd-failover-');
    // The primary reaches the shared vault through a link of its own, which the test breaks: the vault is gone for it alone.
    const { daemon: primary, view } = await nodeWithOwnVaultLink(root, 'a', 'primary');
    const secondary = await node(root, 'b', 'secondary');
    p = { root, primary, secondary };
    await seedSpace(primary);
    await waitFor(async () => (await status(primary)).failover.standbys.some((s) => s.node === 'b'), { what: 'the secondary to answer heartbeats' });

    const acknowledged = new Map<string, number>();
    let refusedAfterFence = 0;
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        // When the request was sent: an acknowledgement is sent after it, and never after the fence.
        const sent = Date.now();
        const res = await primary.request('PUT', `/api/space/s/object/v${i}`, { body: { writer: 'a', i } });
        if (res.status === 201) acknowledged.set(`v${i}`, sent);
        else if (primary.lines.some((l) => l.message.startsWith('lease lost'))) refusedAfterFence++;
      }
    })();
    await waitFor(() => acknowledged.size >= 20, { what: 'writes before the vault goes' });
    await fs.rename(view, `${view}.gone`);
    await waitFor(() => promotedTo(secondary), { what: 'the secondary to promote', timeoutMs: 15_000 });
    stop = true;
    await writer;

    const fenced = primary.lines.find((l) => l.message.startsWith('lease lost'));
    const claimed = secondary.lines.find((l) => l.message === 'epoch claimed');
    expect(fenced, 'the old primary fenced itself').to.not.equal(undefined);
    expect(Date.parse(String(fenced!.timestamp)), 'fenced before the secondary claimed the epoch').to.be.below(Date.parse(String(claimed!.timestamp)));
    expect((await primary.request('GET', '/primary', { token: null })).status).to.equal(503);
    expect((await primary.request('GET', '/readiness', { token: null })).status, 'a fenced primary is not ready').to.equal(503);
    expect((await primary.request('GET', '/liveness', { token: null })).status).to.equal(200);
    expect((await primary.request('PUT', '/api/space/s/object/late', { body: { writer: 'a' } })).status).to.equal(503);
    expect(refusedAfterFence, 'writes were refused once fenced').to.be.above(0);
    const lastAckedSent = Math.max(...acknowledged.values());
    expect(lastAckedSent, 'no request sent after the fence was acknowledged').to.be.at.most(Date.parse(String(fenced!.timestamp)) + 1);
    // Everything it acknowledged is on the new primary.
    const listed = (await secondary.query('/api/space/s/object')).body as { data: { key: string }[] };
    const present = new Set(listed.data.map((o) => o.key));
    expect([...acknowledged.keys()].filter((k) => !present.has(k))).to.deep.equal([]);

    // The vault comes back: the old primary sees the higher epoch, rejoins as a secondary without a restart, and follows.
    await fs.rename(`${view}.gone`, view);
    await waitFor(() => primary.lines.some((l) => l.message === 'rejoined as a secondary after losing the lease'), { what: 'the old primary to rejoin', timeoutMs: 10_000 });
    expect((await secondary.request('PUT', '/api/space/s/object/after-rejoin', { body: { writer: 'b' } })).status).to.equal(201);
    await waitFor(async () => (await primary.request('GET', '/api/space/s/object/after-rejoin')).status === 200, { what: 'the old primary to follow the new one' });
    expect((await primary.request('PUT', '/api/space/s/object/never', { body: { writer: 'a' } })).status).to.equal(503);
    expect((await primary.request('GET', '/standby', { token: null })).status).to.equal(200);
    expect((await primary.request('GET', '/primary', { token: null })).status).to.equal(503);
    await waitFor(async () => (await status(secondary)).failover.standbys.some((s) => s.node === 'a'), { what: 'the new primary to see the old one as a standby' });
    expect(promotedTo(primary), 'never primary again while the new one lives').to.equal(false);
  });

  it('answers /standby and /readiness from how far a standby has followed, and verifies each new checkpoint as it appears, naming a damaged one', async () => {
    const root = await tempDir('cpd-failover-');
    // The secondary reaches the shared vault through a link of its own, which the test breaks and mends.
    const primary = await node(root, 'a', 'primary');
    const { daemon: secondary, view } = await nodeWithOwnVaultLink(root, 'b', 'secondary');
    p = { root, primary, secondary };
    await seedSpace(primary);
    await waitFor(async () => (await status(primary)).failover.standbys.some((s) => s.node === 'b'), { what: 'the secondary to answer heartbeats' });
    const health = async (d: DaemonProcess): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const route of ['/primary', '/standby', '/readiness', '/health', '/liveness']) out[route] = (await d.request('GET', route, { token: null })).status;
      return out;
    };
    expect(await health(primary)).to.deep.equal({ '/primary': 200, '/standby': 503, '/readiness': 200, '/health': 200, '/liveness': 200 });
    await waitFor(async () => (await health(secondary))['/standby'] === 200, { what: 'the secondary to be caught up' });
    expect(await health(secondary)).to.deep.equal({ '/primary': 503, '/standby': 200, '/readiness': 200, '/health': 200, '/liveness': 200 });

    // A new checkpoint (with enough objects that most of its bytes are data): the standby reads it end to end as it appears.
    for (let i = 0; i < 200; i++) expect((await primary.request('PUT', `/api/space/s/object/k${i}`, { body: { writer: 'a', i, pad: 'x'.repeat(100) } })).status).to.equal(201);
    const made = await primary.request('POST', '/api/admin/checkpoint', { body: { description: 'base' } });
    expect(made.status, made.text).to.equal(201);
    const id = (made.body as { data: { id: number } }).data.id;
    type Standby = { appliedSeq: number; lag: number | null; caughtUp: boolean; checkpoints: { verified: { id: number } | null; damaged: { id: number; problem: string }[] } };
    const standby = async (): Promise<Standby> => ((await status(secondary)) as unknown as { failover: { standby: Standby } }).failover.standby;
    await waitFor(async () => (await standby()).checkpoints.verified?.id === id, { what: 'the standby to verify the new checkpoint' });
    // A damaged newer one appears (a copy with a flipped byte, published as the next id): named, and the base stays.
    const dir = path.join(root, 'FileVault', 'checkpoint');
    const bytes = await fs.readFile(path.join(dir, `Checkpoint-${String(id).padStart(9, '0')}`));
    bytes[Math.floor(bytes.length * 0.5)]! ^= 0x55;
    await fs.writeFile(path.join(dir, 'planted.tmp'), bytes);
    await fs.rename(path.join(dir, 'planted.tmp'), path.join(dir, `Checkpoint-${String(id + 1).padStart(9, '0')}`));
    await waitFor(async () => (await standby()).checkpoints.damaged.some((d) => d.id === id + 1), { what: 'the standby to report the damaged checkpoint' });
    expect((await standby()).checkpoints.verified?.id).to.equal(id);
    expect(secondary.lines.some((l) => l.message.startsWith('a new checkpoint does not verify') && l.id === id + 1), 'read to the end, it failed its checksums').to.equal(true);

    // The standby loses the FileVault: it cannot follow, so it is not a standby to count on (nor promotes: heartbeats go on).
    await fs.rename(view, `${view}.gone`);
    await waitFor(async () => (await health(secondary))['/standby'] === 503, { what: '/standby to answer 503 on a standby that cannot read the journal' });
    expect(await health(secondary)).to.deep.equal({ '/primary': 503, '/standby': 503, '/readiness': 503, '/health': 200, '/liveness': 200 });
    expect((await standby()).caughtUp).to.equal(false);
    const blind = (await secondary.request('GET', '/api/admin/status')).body as { data: { checkpoints: { error: string | null } } };
    expect(blind.data.checkpoints.error, 'status answers, and says the vault cannot be read').to.match(/cannot read the checkpoint folder/);
    for (let i = 0; i < 5; i++) expect((await primary.request('PUT', `/api/space/s/object/blind-${i}`, { body: { i } })).status).to.equal(201);
    await fs.rename(`${view}.gone`, view);
    await waitFor(async () => (await health(secondary))['/standby'] === 200, { what: '/standby to answer 200 again once the vault is back' });
    expect((await secondary.request('GET', '/api/space/s/object/blind-4')).status, 'caught up means it has the writes made meanwhile').to.equal(200);
    expect(promotedTo(secondary)).to.equal(false);
    expect(await health(primary)).to.deep.equal({ '/primary': 200, '/standby': 503, '/readiness': 200, '/health': 200, '/liveness': 200 });

    await primary.kill('SIGKILL');
    await waitFor(() => promotedTo(secondary), { what: 'the promotion', timeoutMs: 15_000 });
    await waitFor(async () => (await health(secondary))['/primary'] === 200, { what: '/primary on the new primary' });
    expect(await health(secondary)).to.deep.equal({ '/primary': 200, '/standby': 503, '/readiness': 200, '/health': 200, '/liveness': 200 });
  });

  it('pauses automatic promotion for the installation and resumes it; runs failover.onRoleChange with the role and epoch', async () => {
    const root = await tempDir('cpd-failover-');
    const hook = path.join(root, 'on-role-change.sh');
    // The daemon runs in its node's folder: each node appends to its own roles.txt.
    await fs.writeFile(hook, '#!/bin/sh\necho "$1 $2 $CHECKPOINTD_ROLE" >> roles.txt\n', { mode: 0o755 });
    const primary = await node(root, 'a', 'primary', { onRoleChange: hook });
    const secondary = await node(root, 'b', 'secondary', { onRoleChange: hook });
    p = { root, primary, secondary };
    const roles = async (name: string): Promise<string[]> => (await fs.readFile(path.join(root, name, 'roles.txt'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
    await waitFor(async () => (await roles('a')).length === 1 && (await roles('b')).length === 1, { what: 'the hook to run on both nodes' });
    expect(await roles('a')).to.deep.equal(['primary 1 primary']);
    expect(await roles('b')).to.deep.equal(['secondary 1 secondary']);

    const paused = await primary.request('POST', '/api/admin/failover/pause');
    expect(paused.status, paused.text).to.equal(200);
    expect((paused.body as { data: { paused: boolean } }).data.paused).to.equal(true);
    expect((await primary.request('POST', '/api/admin/failover/pause', { token: null })).status).to.equal(401);
    await waitFor(async () => (await secondaryStatus(secondary)).paused, { what: 'the secondary to see the pause' });
    await primary.kill('SIGKILL');
    // Both channels go well past their limits, and the paused secondary stays a secondary.
    await waitFor(async () => {
      const s = await secondaryStatus(secondary);
      expect(s.role).to.equal('secondary');
      return s.heartbeatSilentMs! > 2 * fastFailover.heartbeatTimeoutMs && s.leaseUnchangedMs! > 2 * fastFailover.leaseTtlMs;
    }, { what: 'both channels silent past twice their limits', timeoutMs: 15_000 });
    expect(promotedTo(secondary)).to.equal(false);
    const resumed = await secondary.request('POST', '/api/admin/failover/resume');
    expect(resumed.status, resumed.text).to.equal(200);
    await waitFor(() => promotedTo(secondary), { what: 'the promotion once resumed' });
    await waitFor(async () => (await roles('b')).length === 2, { what: 'the hook after the promotion' });
    expect(await roles('b')).to.deep.equal(['secondary 1 secondary', 'primary 2 primary']);
  });

  for (const how of ['POST /api/admin/failover/switchover', 'a clean SIGTERM of the primary'] as const) {
    it(`hands over at once with ${how}, without waiting for the lease TTL, and loses no acknowledged write`, async () => {
      // Timeouts far longer than the waits below: only a hand-over can make the new primary serve in time.
      const slow = { heartbeatTimeoutMs: 20_000, leaseTtlMs: 30_000, renewMs: 200, safetyMarginMs: 300 };
      const root = await tempDir('cpd-failover-');
      const primary = await node(root, 'a', 'primary', slow);
      const secondary = await node(root, 'b', 'secondary', slow);
      p = { root, primary, secondary };
      await seedSpace(primary);
      await waitFor(async () => (await status(primary)).failover.standbys.some((s) => s.node === 'b'), { what: 'the secondary to answer heartbeats' });

      const acknowledged = new Map<string, unknown>();
      let stop = false;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const value = { writer: `w${w}`, i };
          const res = await primary.request('PUT', `/api/space/s/object/w${w}-${i}`, { body: value }).catch(() => null);
          if (res === null) return;
          if (res.status === 201) acknowledged.set(`w${w}-${i}`, value);
          else if (res.status !== 503) throw new Error(`unexpected ${res.status}: ${res.text}`);
        }
      });
      await waitFor(() => acknowledged.size >= 50, { what: 'some acknowledged writes' });
      if (how === 'a clean SIGTERM of the primary') {
        await primary.kill('SIGTERM');
        expect(primary.exit).to.deep.equal({ code: 0, signal: null });
      } else {
        const res = await primary.request('POST', '/api/admin/failover/switchover', { body: { candidate: 'b' } });
        expect(res.status, res.text).to.equal(200);
        expect((res.body as { data: { from: string; to: string } }).data).to.include({ from: 'a', to: 'b' });
      }
      await waitFor(() => promotedTo(secondary), { what: 'the hand-over', timeoutMs: 8000 });
      stop = true;
      await Promise.all(writers);
      expect(secondary.lines.find((l) => l.message === 'the primary is gone; promoting')!.released).to.equal(true);
      if (how === 'POST /api/admin/failover/switchover') {
        // Told over the heartbeat connection, not left to the next lease poll (the line may land just after the promotion's).
        await waitFor(() => secondary.lines.some((l) => l.message === 'the primary says it released the lease; reading it now'), { what: 'the hand-over message over the heartbeat connection', timeoutMs: 2000 });
      }
      await waitFor(async () => (await secondary.request('GET', '/primary', { token: null })).status === 200, { what: '/primary on the new primary', timeoutMs: 8000 });
      const listed = (await secondary.query('/api/space/s/object')).body as { data: { key: string; data: unknown }[] };
      const present = new Map(listed.data.map((o) => [o.key, o.data]));
      expect([...acknowledged.keys()].filter((k) => JSON.stringify(present.get(k)) !== JSON.stringify(acknowledged.get(k)))).to.deep.equal([]);
      if (how === 'POST /api/admin/failover/switchover') {
        // The old primary follows the new one and refuses writes.
        expect((await primary.request('GET', '/primary', { token: null })).status).to.equal(503);
        expect((await primary.request('PUT', '/api/space/s/object/late', { body: { writer: 'a' } })).status).to.equal(503);
        expect((await secondary.request('PUT', '/api/space/s/object/after', { body: { writer: 'b' } })).status).to.equal(201);
        await waitFor(async () => (await primary.request('GET', '/api/space/s/object/after')).status === 200, { what: 'the old primary to follow' });
      }
    });
  }

  it('starts a standby from the previous checkpoint plus the journal when the newest is damaged, and it promotes with every write', async () => {
    const root = await tempDir('cpd-failover-');
    const checkpoint = { events: { ...QuietCheckpoints.events, 'space-created': true }, coalesceMs: 0, retention: { keepLast: 2 } };
    await fs.mkdir(path.join(root, 'a'));
    const primary = await DaemonProcess.start({ dir: path.join(root, 'a'), config: { ...shared(root), node: { name: 'a', role: 'primary' }, checkpoint } });
    await seedSpace(primary);
    const written = new Map<string, unknown>();
    const list = async (): Promise<{ id: number; trigger: string }[]> =>
      ((await primary.request('GET', '/api/collection/checkpoint')).body as { data: { data: { id: number; trigger: string } }[] }).data.map((c) => c.data);
    const created = (): number => primary.lines.filter((l) => l.message === 'checkpoint created').length;
    await waitFor(() => created() === 1, { what: 'the checkpoint for space s' });
    for (const [n, space] of ['t1', 't2', 't3'].entries()) {
      for (let i = 0; i < 10; i++) {
        const value = { writer: 'a', space, i };
        expect((await primary.request('PUT', `/api/space/s/object/${space}-${i}`, { body: value })).status).to.equal(201);
        written.set(`${space}-${i}`, value);
      }
      expect((await primary.request('POST', '/api/space', { body: { id: space, template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
      await waitFor(() => created() === n + 2, { what: `the checkpoint for ${space}` });
    }
    // s, t1, t2, t3 made four; keepLast 2 pruned two of them.
    await waitFor(() => primary.lines.filter((l) => l.message === 'checkpoint pruned').length === 2, { what: 'retention to prune the oldest two' });
    expect((await list()).length).to.equal(2);
    for (let i = 0; i < 10; i++) {
      expect((await primary.request('PUT', `/api/space/s/object/late-${i}`, { body: { i } })).status).to.equal(201);
      written.set(`late-${i}`, { i });
    }
    const journal = (await fs.readdir(path.join(root, 'FileVault', 'journal'))).sort();
    expect(journal[0], 'the journal before the retained checkpoints was pruned').to.not.equal('journal-000000001.log');
    const ids = (await list()).map((c) => c.id).sort((x, y) => x - y);
    const newest = ids.at(-1)!;
    // Damage the newest checkpoint in the middle of its data.
    const file = path.join(root, 'FileVault', 'checkpoint', `Checkpoint-${String(newest).padStart(9, '0')}`);
    const bytes = await fs.readFile(file);
    bytes[Math.floor(bytes.length * 0.6)]! ^= 0xff;
    await fs.writeFile(file, bytes);

    const secondary = await node(root, 'b', 'secondary');
    p = { root, primary, secondary };
    const skipped = secondary.lines.find((l) => l.message === 'start-up checkpoint skipped; trying the next older one with a longer journal replay');
    expect(skipped?.id, 'the damaged newest checkpoint was skipped').to.equal(newest);
    const loaded = secondary.lines.find((l) => l.message === 'start-up checkpoint loaded');
    expect(loaded?.id, 'the previous one was loaded').to.equal(ids.at(-2));
    await primary.kill('SIGKILL');
    await waitFor(() => promotedTo(secondary), { what: 'the promotion', timeoutMs: 15_000 });
    const listed = (await secondary.query('/api/space/s/object')).body as { data: { key: string; data: unknown }[] };
    const present = new Map(listed.data.map((o) => [o.key, o.data]));
    expect([...written.keys()].filter((k) => JSON.stringify(present.get(k)) !== JSON.stringify(written.get(k)))).to.deep.equal([]);
    expect(((await secondary.request('GET', '/api/space')).body as { data: unknown[] }).data).to.have.length(4);
  });

  it('never answers for an instant after a pause (SIGSTOP) in which the secondary took over: health checks and writes that waited through it, and new ones, are refused', async () => {
    p = await pair();
    const { primary, secondary } = p;
    await seedSpace(primary);
    const before = await rawRequest(primary.url, 'GET', '/primary').answer;
    expect(before.status).to.equal(200);
    expect(Date.parse(String(before.body.at)), 'a 200 names the instant it holds for').to.be.at.most(Date.now());
    const pausedAt = Date.now();
    primary.child.kill('SIGSTOP');
    let waited: ReturnType<typeof rawRequest>[] = [];
    let wokeAt = 0;
    try {
      await waitFor(() => promotedTo(secondary), { what: 'the secondary to take over from the paused primary', timeoutMs: 15_000 });
      // Sent while the primary sleeps: the kernel accepts the connections, the requests wait for it to wake.
      waited = [
        rawRequest(primary.url, 'GET', '/primary'),
        rawRequest(primary.url, 'GET', '/readiness'),
        rawRequest(primary.url, 'PUT', '/api/space/s/object/during-pause', { from: 'a' }, primary.token),
      ];
      await Promise.all(waited.map((w) => w.connected));
    } finally {
      wokeAt = Date.now();
      primary.child.kill('SIGCONT');
    }
    const [health, readiness, write] = await Promise.all(waited.map((w) => w.answer));
    expect(health!.status, JSON.stringify(health!.body)).to.equal(503);
    expect(Date.parse(String(health!.body.at)), 'the answer holds for an instant after waking').to.be.at.least(wokeAt);
    expect(readiness!.status).to.equal(503);
    expect(write!.status, JSON.stringify(write!.body)).to.equal(503);
    expect((await rawRequest(primary.url, 'GET', '/primary').answer).status, 'a request sent after waking').to.equal(503);
    const successor = await rawRequest(secondary.url, 'GET', '/primary').answer;
    expect(successor.status).to.equal(200);
    // The successor claimed its epoch after the paused primary's lease had run out, so after every 200 the paused one gave.
    const claimed = secondary.lines.find((l) => l.message === 'epoch claimed');
    expect(Date.parse(String(claimed?.timestamp))).to.be.above(Math.max(Date.parse(String(before.body.at)), pausedAt));
    expect((await secondary.request('GET', '/api/space/s/object/during-pause')).status, 'the refused write is nowhere').to.equal(404);
    await waitFor(() => primary.lines.some((l) => l.message === 'rejoined as a secondary after losing the lease'), { what: 'the paused primary to rejoin as a secondary' });
  });

  it('does not promote a secondary that was paused (SIGSTOP) past every timeout, with its heartbeat cut, while the primary lived; it catches up from a checkpoint past the pruned journal', async () => {
    const root = await tempDir('cpd-failover-');
    const checkpoint = { events: { ...QuietCheckpoints.events, 'space-created': true }, coalesceMs: 0, retention: { keepLast: 1 } };
    const primaryPort = await DaemonProcess.freePort();
    const proxy = await CuttableProxy.start(primaryPort);
    try {
      await fs.mkdir(path.join(root, 'a'));
      const primary = await DaemonProcess.start({
        dir: path.join(root, 'a'),
        config: { ...shared(root), node: { name: 'a', role: 'primary' }, checkpoint, api: { port: primaryPort, publicUrl: `http://127.0.0.1:${proxy.port}` } },
      });
      const secondary = await node(root, 'b', 'secondary');
      p = { root, primary, secondary };
      await seedSpace(primary);
      await waitFor(async () => (await status(primary)).failover.standbys.some((s) => s.node === 'b'), { what: 'the secondary to answer heartbeats' });
      // Its heartbeat path is cut, then it sleeps: on waking, only the lease can tell it the primary lives.
      proxy.partition();
      secondary.child.kill('SIGSTOP');
      try {
        // While it sleeps: writes, new spaces (checkpoints) and retention prune the journal it has not read.
        const created = (): number => primary.lines.filter((l) => l.message === 'checkpoint created').length;
        for (const space of ['t1', 't2', 't3']) {
          const before = created();
          for (let i = 0; i < 5; i++) expect((await primary.request('PUT', `/api/space/s/object/${space}-${i}`, { body: { space, i } })).status).to.equal(201);
          expect((await primary.request('POST', '/api/space', { body: { id: space, template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
          await waitFor(() => created() > before, { what: `the checkpoint for ${space}` });
        }
        await waitFor(async () => !(await fs.readdir(path.join(root, 'FileVault', 'journal'))).includes('journal-000000001-000000001.log'), { what: 'the journal to be pruned' });
        // Past every timeout on the sleeper's own clock.
        const sleepUntil = Date.now() + 2 * fastFailover.leaseTtlMs + fastFailover.heartbeatTimeoutMs;
        await waitFor(() => Date.now() > sleepUntil, { what: 'the timeouts to pass', intervalMs: 50 });
      } finally {
        secondary.child.kill('SIGCONT');
      }
      expect((await primary.request('PUT', '/api/space/s/object/after-sleep', { body: { late: true } })).status).to.equal(201);
      await waitFor(async () => (await secondary.request('GET', '/api/space/s/object/after-sleep')).status === 200, { what: 'the secondary to catch up past the pruned journal' });
      expect(secondary.lines.filter((l) => l.message === 'the journal this node needs was pruned before it read it; loading the newest checkpoint')).to.have.length(1);
      // Still partitioned and awake for a while: the lease it reads keeps it a secondary.
      await waitFor(async () => (await secondaryStatus(secondary)).heartbeatSilentMs! > fastFailover.heartbeatTimeoutMs + fastFailover.leaseTtlMs, { what: 'a while awake without heartbeats' });
      expect(promotedTo(secondary), 'a paused secondary never promotes over a living primary').to.equal(false);
      expect(secondary.lines.some((l) => l.message === 'epoch claimed')).to.equal(false);
      expect((await primary.request('GET', '/primary', { token: null })).status).to.equal(200);
      expect(((await secondary.request('GET', '/api/space')).body as { data: unknown[] }).data).to.have.length(4);
    } finally {
      await proxy.close();
    }
  });
});
