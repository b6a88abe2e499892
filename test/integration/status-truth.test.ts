/**
 * `checkpointd status` tells the truth (issue "an operator's first week",
 * point 4), on real daemons on loopback sharing one FileVault: the primary
 * shows the lease it holds; a secondary shows the epoch it follows even when
 * that epoch has written no record yet, and its journal as read from the
 * FileVault (never "last durable ?"); with promotion paused and the primary
 * dead, a standby never says "caught up, lag 0"; and `status --cluster` lists
 * the nodes the one asked knows of, one row each.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { node, seedSpace, shared } from '../helpers/cluster.js';
import { runCli } from '../helpers/cli-process.js';
import { DaemonProcess, QuietCheckpoints, tempDir } from '../helpers/daemon-process.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait-for.js';

interface Member {
  node: string;
  url: string | null;
  role: string;
  epoch: number | null;
  state: string;
  lag: number | null;
  lastHeartbeatAgoMs: number | null;
  newestCheckpoint: number | null;
  self: boolean;
}

interface Status {
  seq: number;
  journal: { writing: boolean; lastDurableSeq: number };
  failover: {
    role: string;
    epoch: number;
    lease: { holder: string; url: string; epoch: number } | null;
    leaseRenewedAgoMs: number | null;
    heartbeatSilentMs: number | null;
    standby: { caughtUp: boolean; lag: number | null; primarySilent: boolean } | null;
    members: Member[];
  };
}

async function status(d: DaemonProcess): Promise<Status> {
  const res = await d.request('GET', '/api/admin/status');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: Status }).data;
}

async function cli(d: DaemonProcess, args: string[]): Promise<string> {
  const r = await runCli(args, { env: { CHECKPOINTD_URL: d.url, CHECKPOINTD_TOKEN: d.token } });
  expect(r.code, r.stderr).to.equal(0);
  return r.stdout;
}

async function epochMetric(d: DaemonProcess): Promise<number | undefined> {
  return sampleValue(parsePrometheusText((await d.request('GET', '/metrics', { token: null })).text), 'checkpointd_epoch');
}

describe('status tells the truth (real daemons on loopback)', function () {
  let root: string;
  let a: DaemonProcess;
  let b: DaemonProcess;

  before(async function () {
    root = await tempDir('cpd-status-');
    a = await node(root, 'a', 'primary');
    await seedSpace(a);
    expect((await a.request('POST', '/api/admin/checkpoint')).status).to.equal(201);
    // No promotion checkpoint on b: its epoch then writes nothing until a commit, which is the case to show.
    await fs.mkdir(path.join(root, 'b'), { recursive: true });
    b = await DaemonProcess.start({
      dir: path.join(root, 'b'),
      config: { ...shared(root), node: { name: 'b', role: 'secondary' }, checkpoint: QuietCheckpoints },
      tokenFile: path.join(root, 'a', 'data', 'admin.token'),
    });
    await waitFor(async () => (await status(b)).failover.standby?.caughtUp === true && (await status(a)).failover.members.some((m) => m.node === 'b' && m.lag === 0), { what: 'b to follow a, caught up' });
  });
  after(async function () {
    await a.cleanup();
    await b.cleanup();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('the primary shows the lease it holds, renewed lately, in the JSON and in the CLI', async function () {
    const s = await status(a);
    expect(s.failover.lease).to.include({ holder: 'a', url: a.url, epoch: s.failover.epoch });
    expect(s.failover.leaseRenewedAgoMs).to.be.a('number');
    expect(s.journal.writing).to.equal(true);
    const text = await cli(a, ['status']);
    expect(text).to.match(new RegExp(`lease held by a at ${a.url.replace(/[.]/g, '\\.')} \\(epoch ${s.failover.epoch}, renewed [0-9.]+ m?s ago\\)`));
  });

  it('a secondary shows its journal as read from the FileVault, never "last durable ?"', async function () {
    const s = await status(b);
    expect(s.journal.writing).to.equal(false);
    expect(s.journal.lastDurableSeq).to.equal(s.seq);
    const text = await cli(b, ['status']);
    expect(text).to.include(`${s.seq} (applied from the FileVault's journal, durable there)`);
    expect(text).to.not.include('?');
  });

  it('the primary\'s cluster view: itself and its standby, with URL, epoch, state, lag and newest checkpoint', async function () {
    const members = (await status(a)).failover.members;
    const epoch = (await status(a)).failover.epoch;
    expect(members.map((m) => m.node)).to.deep.equal(['a', 'b']);
    expect(members[0]).to.include({ node: 'a', url: a.url, role: 'primary', epoch, state: 'running', lag: 0, self: true });
    expect(members[1]).to.include({ node: 'b', url: b.url, role: 'secondary', epoch, state: 'streaming', lag: 0, self: false });
    expect(members[1]!.lastHeartbeatAgoMs).to.be.a('number');
    expect(members[0]!.newestCheckpoint).to.be.a('number');
    const text = await cli(a, ['status', '--cluster']);
    const lines = text.trim().split('\n');
    expect(lines[0]).to.match(/^NODE\s+URL\s+ROLE\s+EPOCH\s+STATE\s+LAG\s+HEARTBEAT\s+CHECKPOINT$/);
    expect(lines[1]).to.match(new RegExp(`^a \\*\\s+${a.url.replace(/[.]/g, '\\.')}\\s+primary\\s+${epoch}\\s+running\\s+0\\s+${members[0]!.newestCheckpoint}$`));
    expect(lines[2]).to.match(new RegExp(`^b\\s+${b.url.replace(/[.]/g, '\\.')}\\s+secondary\\s+${epoch}\\s+streaming\\s+0\\s+[0-9.]+ m?s ago\\s+`));
  });

  it('after a switchover with no write since, the old primary (now following) shows the new epoch in status and checkpointd_epoch', async function () {
    const before = (await status(a)).failover.epoch;
    const handed = await runCli(['switchover', '--candidate', 'b'], { env: { CHECKPOINTD_URL: a.url, CHECKPOINTD_TOKEN: a.token } });
    expect(handed.code, handed.stderr).to.equal(0);
    await waitFor(async () => (await status(b)).failover.role === 'primary' && (await status(a)).failover.role === 'secondary', { what: 'b to take over and a to follow' });
    const epoch = (await status(b)).failover.epoch;
    expect(epoch).to.be.above(before);
    // No write since: the journal's newest record is of the old epoch, and a follows the new one.
    // Once a has read the new lease (it polls it every few hundred ms) and caught up.
    await waitFor(async () => {
      const now = (await status(a)).failover;
      return now.standby?.caughtUp === true && now.lease?.holder === 'b';
    }, { what: "a to catch up and read b's lease" });
    expect((await status(a)).failover.epoch).to.equal(epoch);
    expect(await epochMetric(a)).to.equal(epoch);
    expect(await cli(a, ['status'])).to.include(`epoch ${epoch},`);
  });

  it("a secondary's cluster view: the primary from the lease and its heartbeats, and itself", async function () {
    await waitFor(async () => (await status(a)).failover.members.length === 2, { what: 'a to know the primary' });
    const members = (await status(a)).failover.members;
    expect(members[0]).to.include({ node: 'b', url: b.url, role: 'primary', state: 'running', self: false });
    expect(members[1]).to.include({ node: 'a', url: a.url, role: 'secondary', self: true });
    const text = await cli(a, ['status', '--cluster']);
    expect(text).to.match(/^b\s+\S+\s+primary\s/m);
    expect(text).to.match(/^a \*\s+\S+\s+secondary\s/m);
    expect(text).to.include('ask the primary for every standby');
  });

  it('with promotion paused and the primary dead, a standby says the primary is silent and its lag unknown, not "caught up, lag 0"', async function () {
    expect((await runCli(['pause'], { env: { CHECKPOINTD_URL: b.url, CHECKPOINTD_TOKEN: b.token } })).code).to.equal(0);
    await waitFor(async () => ((await a.request('GET', '/api/admin/status')).body as { data: { failover: { paused: boolean } } }).data.failover.paused, { what: 'a to read the pause mark' });
    await b.kill('SIGKILL');
    const s = await waitFor(async () => {
      const now = await status(a);
      return now.failover.standby?.primarySilent === true ? now : null;
    }, { what: 'a to count the primary silent' });
    expect(s.failover.standby!.lag).to.equal(null);
    expect(s.failover.role).to.equal('secondary');
    const text = await cli(a, ['status']);
    expect(text).to.match(/the primary is SILENT \(no heartbeat for [0-9.]+ m?s\): lag unknown/);
    expect(text).to.not.match(/caught up, lag 0/);
    expect(text).to.include('automatic promotion PAUSED');
    const cluster = (await status(a)).failover.members.find((m) => m.node === 'b');
    expect(cluster).to.include({ role: 'primary', state: 'silent' });
  });
});
