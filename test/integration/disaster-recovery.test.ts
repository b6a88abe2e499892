import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DaemonProcess, tempDir } from '../helpers/daemon-process.js';
import { fastFailover } from '../helpers/cluster.js';
import { skipWithoutShim, VaultFaults } from '../helpers/vault-faults.js';
import { waitFor } from '../helpers/wait-for.js';

// The runbook's worst case: every node's host is gone with its data folder; only the FileVault is left.
describe('disaster recovery with only the FileVault left', function () {
  this.timeout(60_000);
  let root: string | undefined;
  const daemons: DaemonProcess[] = [];
  after(async () => {
    for (const d of daemons) await d.kill('SIGKILL');
    if (root !== undefined) await fs.rm(root, { recursive: true, force: true });
  });

  it('starts a new node on an empty data folder with every acknowledged write, the tokens, and a new epoch', async () => {
    root = await tempDir('cpd-dr-');
    const vault = path.join(root, 'FileVault');
    // Tokens on the shared storage, as the example configurations keep them.
    const shared = { paths: { data: 'data', fileVault: vault }, auth: { tokensFile: path.join(vault, 'auth', 'tokens.json') }, failover: fastFailover };
    await fs.mkdir(path.join(root, 'old-host'));
    await fs.mkdir(path.join(root, 'new-host'));
    const old = await DaemonProcess.start({ dir: path.join(root, 'old-host'), config: { ...shared, node: { name: 'old-host', role: 'primary' } } });
    daemons.push(old);
    expect((await old.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } })).status).to.equal(201);
    expect((await old.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
    const acked = new Map<string, unknown>();
    const put = async (i: number): Promise<void> => {
      const value = { type: i % 2 === 0 ? 'Part' : 'Doc', i };
      const res = await old.request('PUT', `/api/space/s/object/k${i}`, { body: value });
      expect(res.status).to.equal(201);
      acked.set(`k${i}`, value);
    };
    for (let i = 0; i < 150; i++) await put(i);
    expect((await old.request('POST', '/api/admin/checkpoint', { body: { description: 'nightly' } })).status).to.equal(201);
    for (let i = 150; i < 300; i++) await put(i); // only in the journal
    const before = (await old.request('GET', '/api/admin/status')).body as { data: { failover: { epoch: number } } };
    await old.kill('SIGKILL');
    const kept = path.join(root, 'admin.token'); // the operator's copy of the token, kept off the host
    await fs.writeFile(kept, old.token);
    await fs.rm(path.join(root, 'old-host'), { recursive: true, force: true }); // the host is gone

    const fresh = await DaemonProcess.start({ dir: path.join(root, 'new-host'), config: { ...shared, node: { name: 'new-host', role: 'primary' } }, tokenFile: kept }).catch((err: unknown) => {
      throw new Error(`a new node on the FileVault alone did not start: ${(err as Error).message}`);
    });
    daemons.push(fresh);
    expect(fresh.lines.some((l) => typeof l.file === 'string' && l.file.endsWith('admin.token')), 'it made a new admin token instead of using the shared tokens file').to.equal(false);
    // The old lease is still fresh on the vault: the new node follows until it expires, then takes over.
    await waitFor(async () => (await fresh.request('GET', '/primary')).status === 200, { what: 'the new node to take over', timeoutMs: 15_000 });
    const res = await fresh.query('/api/space/s/object', { token: old.token });
    expect(res.status, 'the old admin token (shared tokens file) works on the new node').to.equal(200);
    const present = new Map((res.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, o.data]));
    const lost = [...acked].filter(([k, v]) => JSON.stringify(present.get(k)) !== JSON.stringify(v)).map(([k]) => k);
    expect(lost, 'acknowledged writes missing on the new node').to.deep.equal([]);
    const query = await fresh.query('/api/space/s/object?type=Doc', { token: old.token });
    expect((query.body as { data: unknown[] }).data).to.have.length(150);
    const after = (await fresh.request('GET', '/api/admin/status', { token: old.token })).body as { data: { failover: { epoch: number }; recovery: { startCheckpointSeq: number | null } } };
    expect(after.data.failover.epoch).to.be.above(before.data.failover.epoch);
    expect(after.data.recovery.startCheckpointSeq, 'it started from the checkpoint, not the whole journal').to.be.a('number');
    expect((await fresh.request('PUT', '/api/space/s/object/after', { body: { type: 'Part' }, token: old.token })).status).to.equal(201);
  });

  it('makes the checkpoint it loads durable before the engine names it, and a data folder that cannot stops the start without blaming the checkpoint', async function () {
    await skipWithoutShim(this);
    const dir = await tempDir('cpd-dr-sync-');
    const old = await DaemonProcess.start({ dir, config: { node: { name: 'old-host', role: 'primary' }, failover: fastFailover } });
    daemons.push(old);
    expect((await old.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } })).status).to.equal(201);
    expect((await old.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
    for (let i = 0; i < 50; i++) expect((await old.request('PUT', `/api/space/s/object/k${i}`, { body: { type: 'Part', i } })).status).to.equal(201);
    const made = await old.request('POST', '/api/admin/checkpoint', { body: { description: 'before the host is lost' } });
    expect(made.status).to.equal(201);
    await old.kill('SIGKILL');
    await fs.rm(path.join(dir, 'data'), { recursive: true, force: true }); // a new host: its tokens go with it

    // The staged copy of the checkpoint's space file cannot be made durable (its fdatasync fails with EIO).
    const faults = await VaultFaults.create(['.staged-']);
    await faults.failSyncs(1);
    const failing = DaemonProcess.spawn(dir, path.join(dir, 'config.json'), faults.env());
    daemons.push(failing);
    await waitFor(() => failing.exit !== null || failing.lines.some((l) => l.message === 'listening'), { what: 'the start to stop or serve', timeoutMs: 30_000 });
    expect(failing.exit, 'the start stops with exit code 1').to.deep.equal({ code: 1, signal: null });
    const said = `${failing.stderr}\n${failing.stdout}`;
    expect(said).to.match(/cannot write \S*\/engine\/spaces\/s\.staged-\S+\.sqlite/);
    expect(said).to.match(/check the disk/);
    expect(failing.lines.some((l) => l.message === 'start-up checkpoint skipped; trying the next older one with a longer journal replay'), 'the checkpoint is not taken for damaged').to.equal(false);
    expect(failing.lines.some((l) => l.message === 'listening')).to.equal(false);
    await faults.close();

    // With a working disk the same folder starts from that checkpoint.
    const fresh = await DaemonProcess.start({ dir, config: { node: { name: 'old-host', role: 'primary' }, failover: fastFailover } });
    daemons.push(fresh);
    const loaded = fresh.lines.find((l) => l.message === 'start-up checkpoint loaded');
    expect(loaded?.id).to.equal((made.body as { data: { id: number } }).data.id);
    const res = await fresh.query('/api/space/s/object');
    expect(res.status, res.text).to.equal(200);
    expect((res.body as { data: unknown[] }).data).to.have.length(50);
  });
});
