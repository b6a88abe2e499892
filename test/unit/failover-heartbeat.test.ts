/**
 * The heartbeat WebSocket on a real HTTP server on a loopback port: beats
 * reach a secondary, its answers become the standby's lag, a wrong cluster
 * token is refused and logged, and a secondary reconnects after the
 * connection drops.
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeartbeatClient, HeartbeatServer, type Handover, type Heartbeat } from '../../src/failover/heartbeat.js';
import { silentLogger } from '../../src/log/index.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { waitFor } from '../helpers/wait-for.js';

describe('failover heartbeat (WebSocket on loopback)', function () {
  this.timeout(10_000);
  let server: http.Server;
  let url: string;
  let hub: HeartbeatServer;
  let seq: number;
  const clients: HeartbeatClient[] = [];
  let log: ReturnType<typeof captureLogger>;

  beforeEach(async () => {
    log = captureLogger();
    seq = 10;
    server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    hub = new HeartbeatServer({ server, token: () => 'cluster-secret', heartbeatMs: 50, logger: log.logger, beat: () => ({ type: 'heartbeat', node: 'a', epoch: 3, seq, checkpoint: 7 }) });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    hub.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const client = (token: string, applied: () => number): { c: HeartbeatClient; beats: Heartbeat[] } => {
    const beats: Heartbeat[] = [];
    const c = new HeartbeatClient({ node: 'b', token: () => token, logger: silentLogger(), onBeat: async (beat) => {
      beats.push(beat);
      return { seq: applied(), epoch: beat.epoch };
    } });
    clients.push(c);
    c.target(url);
    return { c, beats };
  };

  it('sends beats with epoch, seq and the newest checkpoint, and reports each standby\'s lag from its answers', async () => {
    let applied = 4;
    const { c, beats } = client('cluster-secret', () => applied);
    await waitFor(() => beats.length >= 3, { what: 'three beats' });
    expect(beats[0]).to.deep.include({ type: 'heartbeat', node: 'a', epoch: 3, seq: 10, checkpoint: 7 });
    expect(beats[0]!.sent, 'the send time the answer echoes').to.be.a('number');
    expect(c.silentForMs()).to.be.below(1000);
    await waitFor(() => hub.standbyInfo()[0]?.appliedSeq === 4, { what: 'the first answer' });
    expect(hub.standbyInfo()[0]).to.include({ node: 'b', appliedSeq: 4, lag: 6 });
    expect(hub.standbyInfo()[0]!.roundTripMs, 'timed from the echoed send time').to.be.a('number').and.at.least(0);
    applied = 10;
    await waitFor(() => hub.standbyInfo()[0]?.lag === 0, { what: 'the standby to catch up' });
    seq = 12;
    await waitFor(() => beats.at(-1)!.seq === 12 && hub.standbyInfo()[0]?.lag === 2, { what: 'the new seq to show as lag' });
  });

  it('refuses a wrong cluster token (401) and logs it, and beats stop reaching that client', async () => {
    const { c, beats } = client('not-the-secret', () => 0);
    await waitFor(() => log.lines.some((l) => l.message === 'refused a failover connection: wrong or missing cluster token'), { what: 'the refusal to be logged' });
    expect(beats).to.deep.equal([]);
    expect(hub.standbyInfo()).to.deep.equal([]);
    expect(c.silentForMs()).to.be.above(0);
  });

  it('tells the named successor, and only it, at once that the lease was released', async () => {
    const got: Record<string, Handover[]> = { b: [], c: [] };
    for (const node of ['b', 'c']) {
      const c = new HeartbeatClient({ node, token: () => 'cluster-secret', logger: silentLogger(), onBeat: async (beat) => ({ seq: beat.seq, epoch: beat.epoch }), onHandover: (m) => got[node]!.push(m) });
      clients.push(c);
      c.target(url);
    }
    await waitFor(() => hub.standbyInfo().filter((s) => s.node !== 'unknown').length === 2, { what: 'both standbys to answer' });
    hub.handover('a', 'c');
    await waitFor(() => got.c!.length === 1, { what: 'the handover to reach c' });
    expect(got.c![0]).to.deep.equal({ type: 'handover', node: 'a', to: 'c' });
    hub.handover('a', 'b');
    await waitFor(() => got.b!.length === 1, { what: 'the handover to reach b' });
    expect(got.c, 'c got only its own').to.have.length(1);
  });

  it('reconnects after the connection drops', async () => {
    const { beats } = client('cluster-secret', () => 0);
    await waitFor(() => beats.length >= 1, { what: 'a first beat' });
    server.closeAllConnections();
    hub.close();
    const before = beats.length;
    hub = new HeartbeatServer({ server, token: () => 'cluster-secret', heartbeatMs: 50, logger: silentLogger(), beat: () => ({ type: 'heartbeat', node: 'a', epoch: 4, seq, checkpoint: null }) });
    await waitFor(() => beats.length > before && beats.at(-1)!.epoch === 4, { what: 'beats from the restarted server' });
  });
});
