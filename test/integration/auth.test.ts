/**
 * Authentication, proved on a real daemon (and, for the lookup's structure, on
 * the real TokenStore): tokens are stored only as their SHA-256; a lookup
 * compares fixed-length digests with crypto.timingSafeEqual against every
 * entry; a refused attempt is logged without the token and counted in
 * `checkpointd_auth_failures_total` by reason; a token revoked by removing its
 * entry stops working without a restart; a token in the query string counts
 * for nothing; and the failover WebSocket refuses a peer without the cluster
 * token at the upgrade (401, closed), before any frame.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import crypto, { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { TokenStore } from '../../src/api/token-store.js';
import { HeartbeatServer } from '../../src/failover/index.js';
import { silentLogger } from '../../src/log/index.js';
import { childEnv, CliPath, DaemonProcess, rawExchange, tempDir, type Answer } from '../helpers/daemon-process.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

/** Every form a token could be written in: as is, without its prefix, its secret's bytes in hex and base64, the whole token in base64 and hex. */
function forms(token: string): string[] {
  const secret = token.slice(token.indexOf('_') + 1);
  const bytes = Buffer.from(secret, 'base64url');
  return [token, secret, bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url'), Buffer.from(token).toString('base64'), Buffer.from(token).toString('hex')];
}

/** What a log must never hold of a token: the token, its secret part, and the secret's first 12 characters. */
function traces(token: string): string[] {
  const secret = token.slice(token.indexOf('_') + 1);
  return [token, secret, secret.slice(0, 12)];
}

/** The token with the character at `at` of its secret changed (still a well-formed token of the same length). */
function flip(token: string, at: 'first' | 'last'): string {
  const i = at === 'first' ? token.indexOf('_') + 1 : token.length - 1;
  return token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
}

/** Run `body` with crypto.timingSafeEqual replaced by a spy that records the byte lengths it compares. */
async function spyingTimingSafeEqual(body: (calls: [number, number][]) => Promise<void>): Promise<void> {
  const calls: [number, number][] = [];
  const original = crypto.timingSafeEqual;
  crypto.timingSafeEqual = (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView): boolean => {
    calls.push([a.byteLength, b.byteLength]);
    return original(a, b);
  };
  syncBuiltinESMExports(); // named imports of node:crypto (the code under test) now see the spy
  try {
    await body(calls);
  } finally {
    crypto.timingSafeEqual = original;
    syncBuiltinESMExports();
  }
}

/** A masked WebSocket text frame (what a client would send right after its upgrade). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

function upgrade(target: string, authorization?: string): string {
  return [
    `GET ${target} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ...(authorization === undefined ? [] : [`Authorization: ${authorization}`]),
  ].join('\r\n') + '\r\n\r\n';
}

describe('authentication', function () {
  this.timeout(30_000);
  let d: DaemonProcess;
  let member: string;
  let clusterToken: string;
  let port: number;

  before(async function () {
    d = await DaemonProcess.start();
    port = Number(new URL(d.url).port);
    member = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'm', '--role', 'member'], { env: childEnv() })).stdout.trim();
    clusterToken = (await fs.readFile(path.join(d.dir, 'FileVault', 'failover', 'cluster.token'), 'utf8')).trim();
  });
  after(async function () {
    await d.cleanup();
  });

  const failures = async (): Promise<Record<string, number>> => {
    const text = (await d.request('GET', '/metrics', { token: null })).text;
    const e = parsePrometheusText(text);
    const out: Record<string, number> = {};
    for (const reason of ['missing_token', 'malformed_header', 'invalid_token', 'insufficient_role', 'cluster_token']) out[reason] = sampleValue(e, 'checkpointd_auth_failures_total', { reason }) ?? 0;
    return out;
  };

  describe('at rest', function () {
    it('keeps only the SHA-256 of each token: the tokens file holds no token in any other form, and no daemon file but admin.token holds one', async function () {
      const file = await fs.readFile(path.join(d.dir, 'data', 'tokens.json'), 'utf8');
      const stored = (JSON.parse(file) as { tokens: { name: string; hash: string }[] }).tokens;
      expect(stored.map((t) => t.name)).to.have.members(['admin', 'm']);
      for (const token of [d.token, member]) {
        for (const form of forms(token)) expect(file, `tokens.json holds the token as ${form.slice(0, 6)}…`).to.not.include(form);
        expect(stored.map((t) => t.hash)).to.include(`sha256:${createHash('sha256').update(token).digest('hex')}`);
      }
      expect((await fs.stat(path.join(d.dir, 'data', 'tokens.json'))).mode & 0o777).to.equal(0o600);
      // Nothing else the daemon keeps (journal, checkpoints, lease, caches) holds a token either.
      await d.request('POST', '/api/admin/checkpoint', { body: { description: `made with ${member.slice(0, 6)}` } });
      const walk = async (dir: string): Promise<string[]> =>
        (await Promise.all((await fs.readdir(dir, { withFileTypes: true })).map(async (e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)])))).flat();
      for (const f of [...(await walk(path.join(d.dir, 'data'))), ...(await walk(path.join(d.dir, 'FileVault')))]) {
        if (path.basename(f) === 'admin.token') continue;
        let bytes: string;
        try {
          bytes = (await fs.readFile(f)).toString('latin1');
        } catch (err) {
          // A temporary file renamed into place meanwhile (the lease's, every renewal): what it became is read too.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT' && path.basename(f).startsWith('.tmp-')) continue;
          throw err;
        }
        for (const token of [d.token, member]) for (const form of forms(token)) expect(bytes, `${path.relative(d.dir, f)} holds a token`).to.not.include(form);
      }
    });

    it('compares fixed-length digests with crypto.timingSafeEqual against every entry, whatever the presented token looks like', async function () {
      const dir = await tempDir('cpd-auth-');
      const store = await TokenStore.open(path.join(dir, 'tokens.json'));
      const tokens = [await store.create('a', 'member'), await store.create('b', 'collection-admin'), await store.create('c', 'member')];
      try {
        await spyingTimingSafeEqual(async (calls) => {
          const presented = [tokens[1]!, flip(tokens[1]!, 'first'), flip(tokens[1]!, 'last'), 'cpd_', 'cpd_x', `${tokens[0]!}x`, `cpd_${'A'.repeat(600)}`];
          for (const token of presented) {
            calls.length = 0;
            const found = await store.verify(token);
            expect(found?.name, token.slice(0, 12)).to.equal(token === tokens[1] ? 'b' : undefined);
            // One comparison per stored entry, each of two 32-byte digests: never a short cut on a mismatch or on the length.
            expect(calls, token.slice(0, 12)).to.deep.equal([[32, 32], [32, 32], [32, 32]]);
          }
        });
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });

    it('compares the cluster token on the WebSocket the same way: SHA-256 digests through crypto.timingSafeEqual, whatever its length', async function () {
      const server = http.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const hub = new HeartbeatServer({ server, token: () => 'cpdc_the-cluster-token', heartbeatMs: 60_000, logger: silentLogger(), beat: () => null });
      const serverPort = (server.address() as net.AddressInfo).port;
      try {
        await spyingTimingSafeEqual(async (calls) => {
          for (const presented of ['cpdc_the-cluster-tokeX', 'Xpdc_the-cluster-token', 'c', 'x'.repeat(5000)]) {
            calls.length = 0;
            const res = await rawExchange(serverPort, Buffer.from(upgrade('/api/failover', `Bearer ${presented}`)));
            expect(res.text.slice(0, 12), presented.slice(0, 12)).to.equal('HTTP/1.1 401');
            expect(calls, presented.slice(0, 12)).to.deep.equal([[32, 32]]);
          }
        });
      } finally {
        hub.close();
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });

  describe('refused attempts', function () {
    it('refuses a token differing in its first or its last character the same way: 401, the same challenge and detail, counted as invalid_token', async function () {
      const before = await failures();
      const answers: Answer[] = [];
      for (const token of [flip(d.token, 'first'), flip(d.token, 'last')]) answers.push(await d.request('GET', '/api/admin/status', { token }));
      for (const a of answers) expect(a.status, a.text).to.equal(401);
      expect(answers[0]!.headers.get('www-authenticate')).to.equal(answers[1]!.headers.get('www-authenticate'));
      expect((answers[0]!.body as { detail: string }).detail).to.equal((answers[1]!.body as { detail: string }).detail);
      const after = await failures();
      expect(after.invalid_token).to.equal(before.invalid_token! + 2);
    });

    it('logs each refusal (route and status, never the token) and counts it by reason', async function () {
      const wrong = flip(d.token, 'last');
      const cases: { what: string; reason: string; send: () => Promise<number>; secret?: string }[] = [
        { what: 'no token', reason: 'missing_token', send: async () => (await d.request('GET', '/api/space', { token: null })).status },
        { what: 'another scheme', reason: 'malformed_header', send: async () => (await d.request('GET', '/api/space', { token: null, headers: { authorization: `Basic ${Buffer.from(`u:${d.token}`).toString('base64')}` } })).status, secret: d.token },
        { what: 'the token without "Bearer"', reason: 'malformed_header', send: async () => (await d.request('GET', '/api/space', { token: null, headers: { authorization: d.token } })).status, secret: d.token },
        { what: 'a wrong token', reason: 'invalid_token', send: async () => (await d.request('GET', '/api/space', { token: wrong })).status, secret: wrong },
        { what: 'a member token on an admin route', reason: 'insufficient_role', send: async () => (await d.request('GET', '/api/admin/status', { token: member })).status, secret: member },
      ];
      for (const c of cases) {
        const before = await failures();
        const logged = d.lines.filter((l) => l.message === 'request refused').length;
        const status = await c.send();
        expect(status, c.what).to.equal(c.reason === 'insufficient_role' ? 403 : 401);
        await waitFor(() => d.lines.filter((l) => l.message === 'request refused').length > logged, { what: `the log line for ${c.what}` });
        const line = d.lines.filter((l) => l.message === 'request refused').at(-1)!;
        expect(line, c.what).to.include({ level: 'warn', status });
        expect(String(line.path)).to.match(/^\/api\//);
        const after = await failures();
        for (const [reason, n] of Object.entries(after)) expect(n, `${c.what}: ${reason}`).to.equal(before[reason]! + (reason === c.reason ? 1 : 0));
      }
      for (const token of [d.token, member, wrong]) for (const t of traces(token)) expect(d.stdout + d.stderr, `the log holds ${t.slice(0, 6)}…`).to.not.include(t);
    });

    it('does not accept a token in the query string (401 missing_token), and does not log it', async function () {
      const before = await failures();
      for (const query of [`token=${d.token}`, `access_token=${d.token}`, `authorization=Bearer%20${d.token}`]) {
        const res = await d.request('GET', `/api/admin/status?${query}`, { token: null });
        expect(res.status, query).to.equal(401);
        expect(res.text).to.not.include(d.token);
      }
      const ws = await rawExchange(port, Buffer.from(upgrade(`/api/failover?token=${clusterToken}`)));
      expect(ws.text).to.match(/^HTTP\/1\.1 401 /);
      const after = await failures();
      expect(after.missing_token).to.equal(before.missing_token! + 3);
      expect(after.cluster_token).to.equal(before.cluster_token! + 1);
      for (const t of [...traces(d.token), ...traces(clusterToken)]) expect(d.stdout + d.stderr).to.not.include(t);
    });

    it('stops accepting a token within seconds of its entry being removed from the tokens file, without a restart or a reload', async function () {
      const gone = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'gone', '--role', 'member'], { env: childEnv() })).stdout.trim();
      // A new token counts within TokenRecheckMs (1 s) of a failed lookup; earlier tests failed some just now.
      await waitFor(async () => (await d.request('GET', '/api/space', { token: gone })).status === 200, { what: 'the new token to be accepted', timeoutMs: 5000, intervalMs: 100 });
      const file = path.join(d.dir, 'data', 'tokens.json');
      const content = JSON.parse(await fs.readFile(file, 'utf8')) as { tokens: { name: string }[] };
      content.tokens = content.tokens.filter((t) => t.name !== 'gone');
      await fs.writeFile(`${file}.new`, JSON.stringify(content, null, 2), { mode: 0o600 });
      await fs.rename(`${file}.new`, file);
      // Only the revoked token is used meanwhile: no other refusal makes the daemon look at the file.
      await waitFor(async () => (await d.request('GET', '/api/space', { token: gone })).status === 401, { what: 'the revoked token to be refused', timeoutMs: 5000, intervalMs: 100 });
      expect((await d.request('GET', '/api/space', { token: member })).status).to.equal(200);
      expect((await d.request('GET', '/api/space')).status).to.equal(200);
    });
  });

  describe('the failover WebSocket', function () {
    for (const [what, authorization] of [['no Authorization', undefined], ['a wrong cluster token', 'Bearer cpdc_not-the-cluster-token'], ['the admin API token', 'Bearer ADMIN'], ['the cluster token under another scheme', 'Basic CLUSTER']] as const) {
      it(`refuses a peer with ${what} at the upgrade: 401, closed, and not one frame sent (raw socket)`, async function () {
        const before = await failures();
        const auth = authorization?.replace('ADMIN', d.token).replace('CLUSTER', clusterToken);
        // A frame pipelined right behind the upgrade request: the server must not read it as a message.
        const res = await rawExchange(port, Buffer.concat([Buffer.from(upgrade('/api/failover', auth)), clientFrame('{"type":"ack","node":"x","epoch":1,"seq":1}')]));
        expect(res.closed, 'the server closed the connection').to.equal(true);
        expect(res.text).to.match(/^HTTP\/1\.1 401 Unauthorized\r\n/);
        const end = res.text.indexOf('\r\n\r\n');
        expect(end).to.be.greaterThan(0);
        expect(res.text.slice(0, end)).to.match(/\r\nContent-Length: 0(\r\n|$)/i);
        expect(res.text.slice(end + 4), 'bytes after the 401 head').to.equal('');
        expect((await failures()).cluster_token).to.equal(before.cluster_token! + 1);
        await waitFor(() => d.lines.some((l) => l.message === 'refused a failover connection: wrong or missing cluster token'), { what: 'the refusal in the log' });
        if (auth !== undefined) for (const t of traces(auth.split(' ')[1]!)) expect(d.stdout + d.stderr).to.not.include(t);
      });
    }

    it('gives a ws client an unexpected-response 401 and never a message or an open', async function () {
      const events: string[] = [];
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`${d.url.replace(/^http/, 'ws')}/api/failover`, { headers: { authorization: 'Bearer cpdc_wrong' } });
        ws.on('open', () => events.push('open'));
        ws.on('message', () => events.push('message'));
        ws.on('error', () => undefined);
        ws.on('unexpected-response', (_req, res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
      });
      expect(status).to.equal(401);
      expect(events).to.deep.equal([]);
    });

    it('accepts the right cluster token (so the refusals above are about the token)', async function () {
      const first = await new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(`${d.url.replace(/^http/, 'ws')}/api/failover`, { headers: { authorization: `Bearer ${clusterToken}` } });
        ws.on('message', (data: Buffer) => {
          resolve(data.toString('utf8'));
          ws.terminate();
        });
        ws.on('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
        ws.on('error', reject);
      });
      expect((JSON.parse(first) as { type: string }).type).to.equal('heartbeat');
    });
  });
});
