/**
 * Failover on real daemons on loopback ports sharing one FileVault (and one
 * tokens file, as an installation's nodes do): the primary is killed with
 * SIGKILL under continuous writes from several clients, the secondary
 * promotes once both the heartbeat and the lease have gone quiet, and every
 * write acknowledged before the kill is on the new primary, checked one by one.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DaemonProcess, QuietCheckpoints, tempDir } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

/** Short timings so a test fails over in about a second; the rules between them are the production ones. */
const fastFailover = { heartbeatMs: 100, heartbeatTimeoutMs: 500, leaseTtlMs: 1000, renewMs: 200, safetyMarginMs: 300 };

interface Pair {
  root: string;
  primary: DaemonProcess;
  secondary: DaemonProcess;
}

/** The configuration every node of a test installation shares. */
function shared(root: string): Record<string, unknown> {
  return {
    paths: { data: 'data', fileVault: path.join(root, 'FileVault') },
    auth: { tokensFile: path.join(root, 'shared', 'tokens.json') },
    failover: fastFailover,
    checkpoint: { events: { ...QuietCheckpoints.events, promotion: true }, coalesceMs: 0 },
  };
}

/** Start node `name` of the installation in `root` (its own folder, the shared vault and tokens). */
async function node(root: string, name: string, role: 'primary' | 'secondary'): Promise<DaemonProcess> {
  await fs.mkdir(path.join(root, name), { recursive: true });
  return DaemonProcess.start({ dir: path.join(root, name), config: { ...shared(root), node: { name, role } }, tokenFile: path.join(root, 'a', 'data', 'admin.token') });
}

async function pair(): Promise<Pair> {
  const root = await tempDir('cpd-failover-');
  const primary = await node(root, 'a', 'primary');
  const secondary = await node(root, 'b', 'secondary');
  return { root, primary, secondary };
}

const promotedTo = (d: DaemonProcess): boolean => d.lines.some((l) => l.message === 'promoted to primary');

async function seedSpace(d: DaemonProcess): Promise<void> {
  expect((await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['writer'] } })).status).to.equal(201);
  expect((await d.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
}

async function status(d: DaemonProcess): Promise<{ failover: { role: string; epoch: number; standbys: { node: string; lag: number }[] } }> {
  const res = await d.request('GET', '/api/admin/status');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: { failover: { role: string; epoch: number; standbys: { node: string; lag: number }[] } } }).data;
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

  for (let run = 1; run <= 3; run++) {
    it(`promotes the secondary after SIGKILL of the primary under writes, with every acknowledged write present (run ${run} of 3)`, async () => {
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
      await waitFor(async () => (await secondary.request('GET', '/primary', { token: null })).status === 200, { what: '/primary on the new primary' });

      const listed = await secondary.request('GET', '/api/space/s/object');
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
  }

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
});
