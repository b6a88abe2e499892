/**
 * The HAProxy configuration of docs/OPERATIONS.md ("Load balancers"), run as
 * printed in front of two real daemons serving HTTPS, across a failover.
 *
 * The block fenced ```haproxy {test=haproxy} is taken from the document and
 * only these are changed (each must match exactly as often as the table says,
 * so a changed document fails here instead of being half-tested):
 * - the servers' addresses `node-a.example.internal:8470` and
 *   `node-b.example.internal:8470` become the daemons' `127.0.0.1:PORT`;
 * - `bind :443` becomes `bind 127.0.0.1:PORT` (a free port, loopback only);
 * - the paths `/etc/checkpointd/tls/ca.crt` (the installation's CA),
 *   `/etc/haproxy/checkpointd.pem` (the front end's certificate and key) and
 *   `/run/haproxy/checkpointd.sock` (the stats socket) become files in the
 *   test's folder.
 * Everything else stays, `ssl verify required ca-file … verifyhost
 * node-X.example.internal` included: the nodes' certificates, from a CA the
 * test makes, name node-a.example.internal / node-b.example.internal (and
 * 127.0.0.1, which the heartbeat connects to), so HAProxy checks the chain and
 * the name as it would in an installation.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { fastFailover, promotedTo, seedSpace, shared, status } from '../helpers/cluster.js';
import { DaemonProcess, httpRequest, tempDir, type TlsTrust } from '../helpers/daemon-process.js';
import { markedBlocks } from '../helpers/doc-blocks.js';
import { Haproxy, haproxyAvailable } from '../helpers/haproxy.js';
import { makeCa, makeServerCert } from '../helpers/test-certificates.js';
import { waitFor } from '../helpers/wait-for.js';

/** The one block of the documents marked for this test. */
function documentedConfig(): { where: string; text: string } {
  const blocks = markedBlocks().filter((b) => b.runner === 'haproxy');
  expect(blocks.map((b) => `${b.file}:${b.line}`), 'blocks fenced as haproxy {test=haproxy}').to.have.length(1);
  return { where: `${blocks[0]!.file}:${blocks[0]!.line}`, text: blocks[0]!.text };
}

/** One substitution: what the document says, what the test runs instead, and how many times it must occur. */
interface Substitution {
  from: string;
  to: string;
  times: number;
}

/** `text` with each substitution made; throws naming any that does not occur exactly `times` times. */
function substitute(text: string, subs: Substitution[]): string {
  let out = text;
  for (const s of subs) {
    const found = out.split(s.from).length - 1;
    if (found !== s.times) throw new Error(`the documented HAProxy configuration holds "${s.from}" ${found} times, not ${s.times}: update test/e2e/docs-haproxy.test.ts with the document`);
    out = out.split(s.from).join(s.to);
  }
  return out;
}

describe('the documented HAProxy configuration (docs/OPERATIONS.md, as printed) in front of two HTTPS nodes', function () {
  this.timeout(120_000);
  let root = '';
  const daemons: DaemonProcess[] = [];
  let proxy: Haproxy | null = null;

  before(async function () {
    if (!(await haproxyAvailable())) throw new Error('haproxy is not installed (looked on PATH and at /usr/sbin/haproxy): install the Debian package haproxy (apt-get install haproxy); CI installs it');
  });

  after(async function () {
    if (proxy !== null) await proxy.stop();
    for (const d of daemons) await d.cleanup();
    if (root !== '') await fs.rm(root, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && proxy !== null) console.log(`haproxy.cfg as run:\n${proxy.configFile}\nhaproxy stderr (last lines):\n${proxy.stderr.split('\n').slice(-40).join('\n')}`);
  });

  it('marks the primary UP and the standby DOWN over TLS, routes writes to the primary, and to the other node once it has taken over from a SIGKILLed primary', async function () {
    const documented = documentedConfig();
    root = await tempDir('cpd-docs-haproxy-');
    const certs = path.join(root, 'certs');
    await fs.mkdir(certs);
    const ca = await makeCa('checkpointd test CA');
    await fs.writeFile(path.join(certs, 'ca.crt'), ca.cert);
    for (const name of ['node-a', 'node-b']) {
      const pem = await makeServerCert(ca, { dns: [`${name}.example.internal`], ips: ['127.0.0.1'] });
      await fs.writeFile(path.join(certs, `${name}.crt`), pem.cert);
      await fs.writeFile(path.join(certs, `${name}.key`), pem.key, { mode: 0o600 });
    }
    const front = await makeServerCert(ca, { dns: ['checkpointd.example.internal'], ips: ['127.0.0.1'] });
    await fs.writeFile(path.join(certs, 'front.pem'), `${front.cert}\n${front.key}`, { mode: 0o600 });
    const trust: TlsTrust = { ca: ca.cert };

    // Two nodes of one installation serving HTTPS, as config/*.example.json set them up.
    const start = async (name: 'node-a' | 'node-b', role: 'primary' | 'secondary'): Promise<DaemonProcess> => {
      const dir = path.join(root, name);
      await fs.mkdir(dir);
      const base = shared(root);
      const config = {
        ...base,
        node: { name, role },
        api: { tls: { cert: path.join(certs, `${name}.crt`), key: path.join(certs, `${name}.key`) } },
        failover: { ...fastFailover, tls: { ca: path.join(certs, 'ca.crt') } },
      };
      const d = await DaemonProcess.start({ dir, config, tls: trust, tokenFile: path.join(root, 'node-a', 'data', 'admin.token') });
      daemons.push(d);
      return d;
    };
    const a = await start('node-a', 'primary');
    const b = await start('node-b', 'secondary');
    expect(a.url).to.match(/^https:\/\//);
    await seedSpace(a);
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'node-b'), { what: 'node-b to answer node-a\'s heartbeats over WSS' });

    const hostPort = (d: DaemonProcess): string => new URL(d.url).host;
    const port = await DaemonProcess.freePort();
    const statsSocket = path.join(root, 'haproxy.sock');
    const text = substitute(documented.text, [
      { from: 'node-a.example.internal:8470', to: hostPort(a), times: 1 },
      { from: 'node-b.example.internal:8470', to: hostPort(b), times: 1 },
      { from: 'bind :443 ', to: `bind 127.0.0.1:${port} `, times: 1 },
      { from: '/etc/checkpointd/tls/ca.crt', to: path.join(certs, 'ca.crt'), times: 2 },
      { from: '/etc/haproxy/checkpointd.pem', to: path.join(certs, 'front.pem'), times: 1 },
      { from: '/run/haproxy/checkpointd.sock', to: statsSocket, times: 1 },
    ]);
    expect(text, 'the servers are checked over TLS against the CA').to.match(/server node-a \S+ .*ssl verify required ca-file \S+ verifyhost node-a\.example\.internal/);
    await fs.mkdir(path.join(root, 'haproxy'));
    proxy = await Haproxy.startConfig({ dir: path.join(root, 'haproxy'), text, url: `https://127.0.0.1:${port}`, statsSocket });
    const p = proxy;
    await waitFor(async () => isDeepStrictEqual(await p.serverStates(), { 'node-a': 'UP', 'node-b': 'DOWN' }), { what: `haproxy (${documented.where}) to mark node-a UP and node-b DOWN`, timeoutMs: 15_000 });

    // Writes through the proxy's HTTPS front end land on node-a.
    const headers = { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' };
    const written = new Map<string, unknown>();
    const put = async (key: string): Promise<number> => {
      const value = { key, through: 'haproxy' };
      const res = await httpRequest(p.url, 'PUT', `/api/space/s/object/${key}`, headers, JSON.stringify(value), trust);
      if (res.status === 200 || res.status === 201) written.set(key, value);
      return res.status;
    };
    for (let i = 0; i < 5; i++) expect(await put(`before-${i}`)).to.equal(201);
    const onA = await a.request('GET', '/api/space/s/object/before-4');
    expect(onA.status, onA.text).to.equal(200);

    // SIGKILL the primary: node-b promotes, haproxy marks it UP and routes writes to it.
    await a.kill('SIGKILL');
    await waitFor(() => promotedTo(b), { what: 'node-b to promote', timeoutMs: 20_000 });
    await waitFor(async () => isDeepStrictEqual(await p.serverStates(), { 'node-a': 'DOWN', 'node-b': 'UP' }), { what: 'haproxy to mark node-b UP and node-a DOWN', timeoutMs: 15_000 });
    // A client retries a write refused meanwhile (503 while no node is UP); it must succeed through the proxy.
    await waitFor(async () => (await put('after')) === 201, { what: 'a write through haproxy to reach node-b', timeoutMs: 15_000, intervalMs: 100 });

    // Every write acknowledged through the proxy, before and after the failover, is on node-b.
    const listed = await b.query('/api/space/s/object');
    expect(listed.status, listed.text).to.equal(200);
    const present = new Map((listed.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, o.data]));
    for (const [key, value] of written) expect(present.get(key), key).to.deep.equal(value);
    expect(written.size).to.equal(6);
  });
});
