/**
 * The role state machine (FailoverManager), in process: two managers on real
 * stores sharing one temporary FileVault, each with a real HTTP server for the
 * heartbeat, with short timings. Every transition is driven through the
 * vault or the API a real node uses, and checked with the journal and the
 * fence it leaves: start as primary, follow, switchover (primary → secondary,
 * secondary → primary), fenced by a higher epoch's claim, rejoin as a
 * secondary, and a promotion after losing a claim.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FailoverConfig } from '../../src/config/index.js';
import { FencedError } from '../../src/errors.js';
import { claimEpoch, FailoverManager } from '../../src/failover/index.js';
import { listCountedJournalFiles } from '../../src/journal/index.js';
import { Store } from '../../src/store/index.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { commit, create, load, put } from '../helpers/store-ops.js';
import { waitFor } from '../helpers/wait-for.js';
import { tempEngine } from '../helpers/engine.js';

interface Node {
  name: string;
  manager: FailoverManager;
  store: Store;
  server: http.Server;
  lines: ReturnType<typeof captureLogger>['lines'];
}

describe('failover role state machine (in process, real stores and heartbeats)', function () {
  this.timeout(30_000);
  let root: string;
  const nodes: Node[] = [];

  beforeEach(async () => {
    root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-roles-')));
    await fs.mkdir(path.join(root, 'failover'), { recursive: true });
  });
  afterEach(async () => {
    for (const n of nodes.splice(0)) {
      n.manager.stop();
      await n.manager.release();
      await n.store.close().catch(() => undefined);
      n.server.closeAllConnections();
      await new Promise((resolve) => n.server.close(resolve));
    }
    await fs.rm(root, { recursive: true, force: true, maxRetries: 10 });
  });

  const config: FailoverConfig = {
    clusterTokenFile: '',
    heartbeatMs: 50,
    heartbeatTimeoutMs: 300,
    leaseTtlMs: 600,
    renewMs: 100,
    safetyMarginMs: 200,
    onRoleChange: null,
    tls: { ca: null, serverName: null },
    allowCachedVault: false,
  };

  async function start(name: string, role: 'primary' | 'secondary'): Promise<Node> {
    const { logger, lines } = captureLogger();
    const journalDir = path.join(root, 'journal');
    const open = (): Promise<Store> => Store.open({ journalDir, sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger, readOnly: true, engine: tempEngine(root) });
    const store = await open();
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const manager = new FailoverManager({
      node: name,
      configuredRole: role,
      config: { ...config, clusterTokenFile: path.join(root, 'cluster.token') },
      dir: path.join(root, 'failover'),
      store,
      server,
      url: () => url,
      logger,
      newestCheckpoint: () => null,
      onPrimary: async () => undefined,
      onNotPrimary: async () => undefined,
      rebuild: open,
    });
    await manager.start();
    const node = { name, manager, store, server, lines };
    nodes.push(node);
    return node;
  }

  async function roleOf(n: Node, role: string, what: string): Promise<void> {
    await waitFor(() => n.manager.role === role, { what: `${n.name} ${what} (role ${role}, now ${n.manager.role})`, timeoutMs: 15_000 });
  }

  it('walks every transition: primary at start, follower, switchover both ways, fenced by a higher claim, rejoined, promoted past a lost claim', async () => {
    const a = await start('a', 'primary');
    expect(a.manager.role, 'a new installation: a configured primary claims at once').to.equal('primary');
    expect(a.manager.epoch).to.equal(1);
    await a.store.commit(load('plm', '1.0'));
    await a.store.commit(create('s'));

    const b = await start('b', 'secondary');
    expect(b.manager.role).to.equal('secondary');
    await waitFor(() => a.manager.status().standbys.some((s) => s.node === 'b'), { what: 'b on the heartbeat' });

    // Switchover: a hands over to b (primary → secondary, secondary → primary at once).
    expect(await a.manager.switchover('b')).to.deep.equal({ from: 'a', to: 'b' });
    expect(a.manager.role).to.equal('secondary');
    await roleOf(b, 'primary', 'takes the released lease');
    expect(b.manager.epoch).to.equal(2);
    await b.store.commit(commit('s', put('k', { by: 'b' })));
    let refused: unknown;
    await a.store.commit(commit('s', put('x', { by: 'a' }))).catch((err: unknown) => (refused = err));
    expect((refused as Error).message).to.match(/not the primary/);

    // A higher epoch is claimed behind b's back: b is fenced at its next renewal, then rejoins as a secondary.
    expect(await claimEpoch(path.join(root, 'failover'), { epoch: 3, node: 'ghost', sealedSeq: 0, time: new Date().toISOString() })).to.equal(true);
    await roleOf(b, 'fenced', 'sees the higher claim');
    refused = null;
    await b.store.commit(commit('s', put('late', { by: 'b' }))).catch((err: unknown) => (refused = err));
    expect(refused).to.be.instanceOf(FencedError);
    await roleOf(b, 'secondary', 'rejoins once the vault answers');

    // Nobody renews now; the claimant of epoch 3 never took the lease: a promotes past it (epoch 4).
    await roleOf(a, 'primary', 'promotes past the lost claim');
    expect(a.manager.epoch).to.equal(4);
    expect(a.lines.some((l) => l.message === 'another node claimed the next epoch first; following it' && l.epoch === 3)).to.equal(true);
    expect((await a.store.commit(commit('s', put('after', { by: 'a' })))).seq).to.equal(4);
    await waitFor(async () => (await b.store.catchUp(), b.store.state.getObject('s', 'after') !== undefined), { what: 'b to follow a' });
    expect(b.store.state.getObject('s', 'k')).to.deep.equal({ by: 'b' });
    expect(b.store.state.getObject('s', 'late'), 'what b wrote while fenced is nowhere').to.equal(undefined);

    // Every epoch that served wrote a file of its own.
    const epochs = (await listCountedJournalFiles(path.join(root, 'journal'))).map((f) => f.epoch);
    expect(epochs).to.deep.equal([1, 2, 4]);
  });
});
