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

async function pair(): Promise<Pair> {
  const root = await tempDir('cpd-failover-');
  const shared = {
    paths: { data: 'data', fileVault: path.join(root, 'FileVault') },
    auth: { tokensFile: path.join(root, 'shared', 'tokens.json') },
    failover: fastFailover,
    checkpoint: { events: { ...QuietCheckpoints.events, promotion: true }, coalesceMs: 0 },
  };
  await fs.mkdir(path.join(root, 'a'));
  await fs.mkdir(path.join(root, 'b'));
  const primary = await DaemonProcess.start({ dir: path.join(root, 'a'), config: { ...shared, node: { name: 'a', role: 'primary' } } });
  const secondary = await DaemonProcess.start({ dir: path.join(root, 'b'), config: { ...shared, node: { name: 'b', role: 'secondary' } }, tokenFile: path.join(root, 'a', 'data', 'admin.token') });
  return { root, primary, secondary };
}

async function status(d: DaemonProcess): Promise<{ failover: { role: string; epoch: number; standbys: { node: string; lag: number }[] } }> {
  const res = await d.request('GET', '/api/admin/status');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: { failover: { role: string; epoch: number; standbys: { node: string; lag: number }[] } } }).data;
}

describe('failover (real daemons sharing a FileVault)', function () {
  this.timeout(60_000);
  let p: Pair | null = null;
  afterEach(async () => {
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
});
