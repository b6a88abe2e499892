/**
 * TLS on real daemons on loopback ports: the API over HTTPS with its hrefs on
 * https, the failover heartbeat over wss between nodes that verify the
 * primary's certificate against the installation's CA, a secondary that cannot
 * verify it staying an unconnected but harmless secondary, and PEM files that
 * cannot work refused at start-up with status 2. Every certificate is made
 * here, by certificate authorities the test makes.
 */
import { expect } from 'chai';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fastFailover, promotedTo, seedSpace, shared, status } from '../helpers/cluster.js';
import { DaemonProcess, httpRequest, tempDir, type LogLine, type TlsTrust } from '../helpers/daemon-process.js';
import { makeCa, makeServerCert, type Pem } from '../helpers/test-certificates.js';
import { waitFor } from '../helpers/wait-for.js';

/** The installation's CA, a stranger's CA, and certificates the installation's CA signed. */
interface Pki {
  ca: Pem;
  otherCa: Pem;
  /** For 127.0.0.1 and localhost, where every test node listens. */
  loopback: Pem;
  /** Names only primary.checkpointd.test: reached at 127.0.0.1, it verifies only with failover.tls.serverName. */
  named: Pem;
}

const NamedHost = 'primary.checkpointd.test';

/** Write every certificate and key to `<root>/certs/<name>.crt|.key`. */
async function writePki(root: string, pki: Pki): Promise<void> {
  const dir = path.join(root, 'certs');
  await fs.mkdir(dir, { recursive: true });
  for (const [name, pem] of Object.entries(pki) as [string, Pem][]) {
    await fs.writeFile(path.join(dir, `${name}.crt`), pem.cert);
    await fs.writeFile(path.join(dir, `${name}.key`), pem.key, { mode: 0o600 });
  }
}

interface NodeOptions {
  /** The certificate the node serves (a name in {@link Pki}). */
  cert?: keyof Pki;
  /** `api.publicUrl`, the URL the lease hands the secondaries. */
  publicUrl?: string;
  /** The CA it verifies the primary with (null: the system's). */
  ca?: keyof Pki | null;
  serverName?: string;
  /** How the test's own requests verify this node. */
  trust: TlsTrust;
}

/**
 * Node `name` of the TLS installation in `root`: its own folder, the shared
 * FileVault and tokens, short failover timings, and certificate paths relative
 * to its configuration file (`../certs/…`), as an operator would write them.
 */
async function tlsNode(root: string, name: string, role: 'primary' | 'secondary', options: NodeOptions): Promise<DaemonProcess> {
  await fs.mkdir(path.join(root, name), { recursive: true });
  const cert = options.cert ?? 'loopback';
  const ca = options.ca === undefined ? 'ca' : options.ca;
  const config = {
    ...shared(root),
    node: { name, role },
    api: { tls: { cert: `../certs/${cert}.crt`, key: `../certs/${cert}.key` }, ...(options.publicUrl === undefined ? {} : { publicUrl: options.publicUrl }) },
    failover: { ...fastFailover, tls: { ca: ca === null ? null : `../certs/${ca}.crt`, serverName: options.serverName ?? null } },
  };
  return DaemonProcess.start({ dir: path.join(root, name), config, tokenFile: path.join(root, 'a', 'data', 'admin.token'), tls: options.trust });
}

/** The warning a secondary logs when TLS fails its heartbeat connection. */
const tlsWarnings = (d: DaemonProcess): LogLine[] => d.lines.filter((l) => l.message === 'the heartbeat cannot connect over TLS; retrying');

/** The SHA-256 fingerprint of the certificate the server at `url` presents (verified with `ca`). */
async function servedFingerprint(url: string, ca: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ca }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** A TCP relay on a loopback port that counts the connections made through it (each a heartbeat attempt). */
class CountingRelay {
  connections = 0;
  target = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly server = net.createServer((client) => {
    this.connections += 1;
    const upstream = net.connect(this.target, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The error a request fails with, or null when it got an answer. */
async function requestError(run: () => Promise<unknown>): Promise<NodeJS.ErrnoException | null> {
  try {
    await run();
    return null;
  } catch (error) {
    return error as NodeJS.ErrnoException;
  }
}

describe('TLS (real daemons, certificates made by the test)', function () {
  this.timeout(90_000);
  let pki: Pki;
  let root: string;
  const nodes: DaemonProcess[] = [];
  const relays: CountingRelay[] = [];
  const trust = (): TlsTrust => ({ ca: pki.ca.cert });

  before(async function () {
    const ca = await makeCa('checkpointd test CA');
    pki = {
      ca,
      otherCa: await makeCa('a stranger CA'),
      loopback: await makeServerCert(ca, { dns: ['localhost'], ips: ['127.0.0.1'] }),
      named: await makeServerCert(ca, { dns: [NamedHost] }),
    };
  });

  beforeEach(async function () {
    root = await tempDir('cpd-tls-');
    await writePki(root, pki);
  });

  afterEach(async function () {
    for (const d of nodes.splice(0)) await d.kill('SIGKILL');
    for (const relay of relays.splice(0)) await relay.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('serves the API over HTTPS with the certificate configured, hrefs on https, and no answer to plain HTTP', async function () {
    const d = await tlsNode(root, 'a', 'primary', { trust: trust() });
    nodes.push(d);
    expect(d.url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await servedFingerprint(d.url, pki.ca.cert)).to.equal(new X509Certificate(pki.loopback.cert).fingerprint256);

    await seedSpace(d);
    const res = await d.request('POST', '/api/space/s/checkpoint', { body: { description: 'over TLS' } });
    expect(res.status, res.text).to.equal(201);
    const created = res.body as { href: string; links: { href: string }[] };
    expect(created.href).to.match(new RegExp(`^${d.url}/api/collection/checkpoint/\\d+$`));
    expect(res.headers.get('location')).to.equal(created.href);
    for (const link of created.links) expect(link.href.startsWith(`${d.url}/api/`), link.href).to.equal(true);

    // Verification is real: without the test's CA the same request fails on the certificate.
    const untrusted = await requestError(() => httpRequest(d.url, 'GET', '/health', {}));
    expect(untrusted?.code).to.equal('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    // Plain HTTP on the TLS port gets no HTTP answer at all.
    const plain = await requestError(() => httpRequest(d.url.replace(/^https:/, 'http:'), 'GET', '/health', {}));
    expect(plain, 'a plain-HTTP request must fail').to.be.instanceOf(Error);
  });

  it('takes hrefs from an https api.publicUrl while serving TLS', async function () {
    await fs.mkdir(path.join(root, 'a'), { recursive: true });
    const d = await DaemonProcess.start({
      dir: path.join(root, 'a'),
      config: { api: { publicUrl: 'https://checkpoints.example.test:8443/', tls: { cert: '../certs/loopback.crt', key: '../certs/loopback.key' } } },
      tls: trust(),
    });
    nodes.push(d);
    const res = await d.request('GET', '/api/admin/status');
    expect(res.status, res.text).to.equal(200);
    expect((res.body as { href: string }).href).to.equal('https://checkpoints.example.test:8443/api/admin/status');
  });

  it('carries the heartbeat over wss between nodes that trust the CA, and the secondary takes over and serves HTTPS when the primary dies', async function () {
    const a = await tlsNode(root, 'a', 'primary', { trust: trust() });
    nodes.push(a);
    const b = await tlsNode(root, 'b', 'secondary', { trust: trust() });
    nodes.push(b);
    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b connected to a over wss', timeoutMs: 10_000 });
    const connected = b.lines.find((l) => l.message === 'heartbeat connected');
    expect(String(connected?.url)).to.equal(`${a.url.replace(/^https:/, 'wss:')}/api/failover`);
    expect(tlsWarnings(b)).to.have.length(0);
    await seedSpace(a);
    const written = await a.request('PUT', '/api/space/s/object/k1', { body: { writer: 'w', n: 1 } });
    expect(written.status, written.text).to.be.oneOf([200, 201]);

    await a.kill('SIGKILL');
    await waitFor(() => promotedTo(b), { what: 'b to promote', timeoutMs: 15_000 });
    expect(b.url).to.match(/^https:\/\//);
    expect((await status(b)).failover.role).to.equal('primary');
    const read = await b.request('GET', '/api/space/s/object/k1');
    expect(read.status, read.text).to.equal(200);
    expect(read.text).to.include('"n":1');
  });

  it('keeps a secondary that cannot verify the primary unconnected, warning why, retrying, and never promoting while the primary lives', async function () {
    // The lease sends the secondaries through a relay that counts their attempts.
    const relay = new CountingRelay();
    const relayPort = await relay.listen();
    relays.push(relay);
    const a = await tlsNode(root, 'a', 'primary', { publicUrl: `https://127.0.0.1:${relayPort}`, trust: trust() });
    nodes.push(a);
    relay.target = Number(new URL(a.url).port);
    const stranger = await tlsNode(root, 'b', 'secondary', { ca: 'otherCa', trust: trust() });
    nodes.push(stranger);
    const systemOnly = await tlsNode(root, 'c', 'secondary', { ca: null, trust: trust() });
    nodes.push(systemOnly);

    for (const [d, fix] of [
      [stranger, /^failover\.tls\.ca does not vouch for the primary's certificate/],
      [systemOnly, /^the system's certificate authorities do not vouch .* set failover\.tls\.ca/],
    ] as const) {
      const [warning] = await waitFor(() => (tlsWarnings(d).length > 0 ? tlsWarnings(d) : null), { what: `${d.dir} to warn about the certificate` });
      expect(warning!.level).to.equal('warn');
      expect(warning!.code).to.equal('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      expect(warning!.reason).to.equal('unable to verify the first certificate');
      expect(String(warning!.fix)).to.match(fix);
      expect(warning!.url).to.equal(`wss://127.0.0.1:${relayPort}/api/failover`);
    }
    const attemptsBefore = relay.connections;

    // Long enough that silence plus a stale lease would have promoted them twice over; the lease stays fresh.
    const window = 2 * (fastFailover.heartbeatTimeoutMs + fastFailover.leaseTtlMs);
    await waitFor(async () => ((await status(stranger)) as unknown as { failover: { heartbeatSilentMs: number } }).failover.heartbeatSilentMs > window, {
      what: 'a silent window past the promotion timeouts',
      timeoutMs: 20_000,
    });
    for (const d of [stranger, systemOnly]) {
      expect(d.exit, 'still running').to.equal(null);
      expect(promotedTo(d)).to.equal(false);
      expect((await status(d)).failover.role).to.equal('secondary');
      // One line per cause, not one per retry.
      expect(tlsWarnings(d)).to.have.length(1);
      expect(d.lines.filter((l) => l.message === 'heartbeat connected')).to.have.length(0);
    }
    // Both kept trying with their backoff (100 ms doubling to 2 s) through the window, not once and never again.
    expect(relay.connections - attemptsBefore, 'attempts during the window').to.be.at.least(4);
    const primary = await status(a);
    expect(primary.failover.role).to.equal('primary');
    expect(primary.failover.standbys).to.deep.equal([]);
  });

  it('verifies the primary by failover.tls.serverName when its certificate does not name the host in its URL', async function () {
    const a = await tlsNode(root, 'a', 'primary', { cert: 'named', trust: { ca: pki.ca.cert, servername: NamedHost } });
    nodes.push(a);
    const byName = await tlsNode(root, 'b', 'secondary', { serverName: NamedHost, trust: trust() });
    nodes.push(byName);
    const byUrl = await tlsNode(root, 'c', 'secondary', { trust: trust() });
    nodes.push(byUrl);

    await waitFor(async () => (await status(a)).failover.standbys.some((s) => s.node === 'b'), { what: 'b connected by the server name' });
    const [warning] = await waitFor(() => (tlsWarnings(byUrl).length > 0 ? tlsWarnings(byUrl) : null), { what: 'c to warn about the host name' });
    expect(warning!.code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(String(warning!.fix)).to.include('failover.tls.serverName');
    expect(tlsWarnings(byName)).to.have.length(0);
    expect((await status(a)).failover.standbys.map((s) => s.node)).to.deep.equal(['b']);
  });

  it('serves a replaced certificate to new connections after SIGHUP, and keeps it when the next files are broken', async function () {
    const d = await tlsNode(root, 'a', 'primary', { trust: trust() });
    nodes.push(d);
    const before = await servedFingerprint(d.url, pki.ca.cert);
    const renewed = await makeServerCert(pki.ca, { dns: ['localhost'], ips: ['127.0.0.1'] });
    await fs.writeFile(path.join(root, 'certs', 'loopback.crt'), renewed.cert);
    await fs.writeFile(path.join(root, 'certs', 'loopback.key'), renewed.key);
    d.child.kill('SIGHUP');
    await waitFor(() => d.lines.some((l) => l.message === 'TLS certificate reloaded'), { what: 'the reload' });
    const after = await servedFingerprint(d.url, pki.ca.cert);
    expect(after).to.not.equal(before);
    expect(after).to.equal(new X509Certificate(renewed.cert).fingerprint256);

    // A key that does not fit: the reload says so and the renewed certificate stays.
    await fs.writeFile(path.join(root, 'certs', 'loopback.key'), pki.named.key);
    d.child.kill('SIGHUP');
    const refused = await waitFor(() => d.lines.find((l) => l.message === 'TLS certificate cannot be reloaded; serving the one loaded before'), { what: 'the refused reload' });
    expect(String(refused.error)).to.include('does not belong to the certificate');
    expect(await servedFingerprint(d.url, pki.ca.cert)).to.equal(after);
    expect((await d.request('GET', '/api/admin/status')).status).to.equal(200);
    expect(d.exit).to.equal(null);
  });

  describe('refuses PEM files that cannot work, with status 2 and one line naming the key and the file', function () {
    async function refusal(tlsConfig: { api?: unknown; failover?: unknown }, prepare?: (certs: string) => Promise<void>): Promise<string> {
      const dir = path.join(root, 'a');
      await fs.mkdir(dir, { recursive: true });
      if (prepare !== undefined) await prepare(path.join(root, 'certs'));
      const configFile = path.join(dir, 'config.json');
      await fs.writeFile(configFile, JSON.stringify({ node: { name: 'a' }, api: { port: 0 }, paths: { data: 'data', fileVault: 'FileVault' }, ...tlsConfig }));
      const d = DaemonProcess.spawn(dir, configFile);
      nodes.push(d);
      await waitFor(() => d.exit !== null, { what: 'the daemon to refuse its configuration', timeoutMs: 15_000 });
      expect(d.exit?.code, d.stderr).to.equal(2);
      expect(d.stdout, 'nothing started, nothing logged').to.equal('');
      expect(d.stderr.trim().split('\n')).to.have.length(1);
      return d.stderr;
    }
    const certs = (file: string): string => path.join(root, 'certs', file);
    const both = { cert: '../certs/loopback.crt', key: '../certs/loopback.key' };

    it('api.tls with a certificate but no key', async function () {
      expect(await refusal({ api: { port: 0, tls: { cert: both.cert } } })).to.include('"api.tls.key" is missing');
    });

    it('a certificate file that does not exist', async function () {
      expect(await refusal({ api: { port: 0, tls: { ...both, cert: '../certs/nope.crt' } } })).to.include(`"api.tls.cert" ${certs('nope.crt')} cannot be read (ENOENT`);
    });

    it('a certificate file that holds no PEM certificate', async function () {
      const stderr = await refusal({ api: { port: 0, tls: both } }, async () => fs.writeFile(certs('loopback.crt'), 'not a certificate\n'));
      expect(stderr).to.include(`"api.tls.cert" ${certs('loopback.crt')} holds no PEM certificate`);
    });

    it('a damaged PEM certificate', async function () {
      const stderr = await refusal({ api: { port: 0, tls: both } }, async () =>
        fs.writeFile(certs('loopback.crt'), pki.loopback.cert.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!')),
      );
      expect(stderr).to.match(new RegExp(`"api\\.tls\\.cert" ${certs('loopback.crt')} holds a certificate that cannot be parsed \\(certificate 1 of 1: ERR_OSSL_`));
    });

    it('a key file that is not a PEM private key', async function () {
      const stderr = await refusal({ api: { port: 0, tls: both } }, async () => fs.writeFile(certs('loopback.key'), pki.loopback.cert));
      expect(stderr).to.include(`"api.tls.key" ${certs('loopback.key')} is not a usable PEM private key`);
    });

    it('an encrypted private key', async function () {
      const encrypted = createPrivateKey(pki.loopback.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' });
      const stderr = await refusal({ api: { port: 0, tls: both } }, async () => fs.writeFile(certs('loopback.key'), encrypted));
      expect(stderr).to.include(`"api.tls.key" ${certs('loopback.key')} is encrypted; store the key unencrypted`);
    });

    it('a key that belongs to another certificate', async function () {
      const stderr = await refusal({ api: { port: 0, tls: { ...both, key: '../certs/named.key' } } });
      expect(stderr).to.include(`"api.tls.key" ${certs('named.key')} does not belong to the certificate in "api.tls.cert" ${certs('loopback.crt')}`);
    });

    it('a failover.tls.ca file that holds no PEM certificate', async function () {
      const stderr = await refusal({ failover: { tls: { ca: '../certs/loopback.key' } } });
      expect(stderr).to.include(`"failover.tls.ca" ${certs('loopback.key')} holds no PEM certificate`);
    });
  });
});
