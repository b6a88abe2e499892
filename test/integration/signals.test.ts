/**
 * Signals on a real daemon: SIGHUP reloads the configuration file (log level,
 * tokens) without a restart and refuses a file that no longer loads; SIGTERM
 * stops cleanly under load. Covered elsewhere and not repeated here: the
 * clean-shutdown checkpoint (auto-checkpoint.test.ts, "makes a checkpoint on
 * a clean shutdown") and the secondary taking over at once after a SIGTERM of
 * the primary (failover.test.ts, "hands over at once with a clean SIGTERM of
 * the primary").
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { CliPath, DaemonProcess, httpRequest, QuietCheckpoints, type LogLine } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

/** Rewrite the daemon's configuration file through `change`. */
async function editConfig(d: DaemonProcess, change: (config: Record<string, Record<string, unknown>>) => void): Promise<void> {
  const config = JSON.parse(await fs.readFile(d.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
  change(config);
  await fs.writeFile(d.configFile, JSON.stringify(config, null, 2));
}

/** Send SIGHUP and wait for the reload's outcome line (the n-th reload of this daemon); return it. */
async function hup(d: DaemonProcess, outcome: (l: LogLine) => boolean): Promise<LogLine> {
  const before = d.lines.filter(outcome).length;
  d.child.kill('SIGHUP');
  const lines = await waitFor(() => (d.lines.filter(outcome).length > before ? d.lines.filter(outcome) : null), { what: 'the reload to finish' });
  return lines.at(-1)!;
}
const reloaded = (l: LogLine): boolean => l.message === 'reloaded';
const refused = (l: LogLine): boolean => l.message.startsWith('configuration reload refused');

async function seedSpace(d: DaemonProcess): Promise<void> {
  expect((await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: [] } })).status).to.equal(201);
  expect((await d.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
}

describe('signals', function () {
  let d: DaemonProcess | undefined;

  afterEach(async () => {
    await d?.cleanup();
    d = undefined;
  });

  describe('SIGHUP', function () {
    it('applies a new log.level from the configuration file without a restart', async () => {
      d = await DaemonProcess.start({ config: { log: { level: 'info' } } });
      expect((await d.request('GET', '/api/space')).status).to.equal(200);
      expect(d.lines.filter((l) => l.level === 'debug')).to.deep.equal([]);

      await editConfig(d, (c) => (c.log = { level: 'debug' }));
      const line = await hup(d, reloaded);
      expect(line.logLevel).to.equal('info→debug');
      const from = d.lines.indexOf(line);
      expect((await d.request('GET', '/api/space')).status).to.equal(200);
      await waitFor(() => d!.lines.slice(from).some((l) => l.level === 'debug'), { what: 'a debug line after the reload' });

      await editConfig(d, (c) => (c.log = { level: 'warn' }));
      expect((await hup(d, reloaded)).logLevel).to.equal('debug→warn');
      const quiet = d.lines.length;
      expect((await d.request('GET', '/api/space')).status).to.equal(200);
      expect((await d.request('GET', '/api/space', { token: 'cpd_wrong-token-for-a-warning' })).status).to.equal(401);
      await waitFor(() => d!.lines.slice(quiet).some((l) => l.message === 'request refused'), { what: 'the warning for the 401' });
      expect(d.lines.slice(quiet).filter((l) => l.level === 'debug' || l.level === 'info')).to.deep.equal([]);
      expect(d.exit).to.equal(null);
    });

    it('loads a token added by `checkpointd token create` and drops one removed from the tokens file by hand', async () => {
      d = await DaemonProcess.start();
      const member = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'm', '--role', 'member'])).stdout.trim();
      expect((await hup(d, reloaded)).tokens).to.equal(2);
      expect((await d.request('GET', '/api/space', { token: member })).status).to.equal(200);

      const tokensFile = path.join(d.dir, 'data', 'tokens.json');
      const file = JSON.parse(await fs.readFile(tokensFile, 'utf8')) as { tokens: { name: string }[] };
      file.tokens = file.tokens.filter((t) => t.name !== 'm');
      await fs.writeFile(tokensFile, JSON.stringify(file, null, 2), { mode: 0o600 });
      // SIGHUP re-reads at once (without it the daemon notices the changed file within about a second).
      expect((await hup(d, reloaded)).tokens).to.equal(1);
      expect((await d.request('GET', '/api/space', { token: member })).status).to.equal(401);
      expect((await d.request('GET', '/api/space')).status, 'the admin token stays').to.equal(200);
    });

    it('refuses a configuration file that no longer loads, and keeps serving with the settings it had', async () => {
      d = await DaemonProcess.start({ config: { log: { level: 'info' } } });
      const original = await fs.readFile(d.configFile, 'utf8');

      await fs.writeFile(d.configFile, original.replace('"level": "info"', '"level": "debug"').slice(0, -10));
      const broken = await hup(d, refused);
      expect(broken.level).to.equal('error');
      expect(String(broken.error)).to.include('not valid JSON');

      await fs.writeFile(d.configFile, original.replace('"level": "info"', '"level": "loud"'));
      const invalid = await hup(d, refused);
      expect(String(invalid.error)).to.include('log.level');

      expect(d.lines.some(reloaded)).to.equal(false);
      const from = d.lines.length;
      expect((await d.request('GET', '/api/space')).status).to.equal(200);
      expect((await d.request('GET', '/health', { token: null })).status).to.equal(200);
      expect(d.lines.slice(from).filter((l) => l.level === 'debug'), 'still at level info').to.deep.equal([]);
      expect(d.exit).to.equal(null);
    });

    it('names the changed settings that need a restart, and applies none of them', async () => {
      d = await DaemonProcess.start();
      const other = await DaemonProcess.freePort();
      await editConfig(d, (c) => {
        c.api!.port = other;
        c.journal = { groupCommitMs: 5 };
        c.log = { level: 'debug' };
      });
      const line = await hup(d, reloaded);
      const warning = d.lines.find((l) => l.message === 'configuration changes that need a restart were not applied')!;
      expect(warning.level).to.equal('warn');
      expect(warning.settings).to.deep.equal(['api.port', 'journal.groupCommitMs']);
      expect(line.logLevel, 'what can change does').to.equal('info→debug');
      expect((await d.request('GET', '/health', { token: null })).status, 'still on its first port').to.equal(200);
      expect(await httpRequest(`http://127.0.0.1:${other}`, 'GET', '/health', {}).then(() => 'answered', (err: NodeJS.ErrnoException) => err.code)).to.equal('ECONNREFUSED');
    });
  });

  describe('SIGHUP and checkpoint.maxDiskRate', function () {
    it('paces the checkpoints started after a reload at the new checkpoint.maxDiskRate, and needs no restart for it', async () => {
      d = await DaemonProcess.start();
      await seedSpace(d);
      const created = async (): Promise<LogLine> => {
        const id = ((await d!.request('POST', '/api/admin/checkpoint', { body: {} })).body as { data: { id: number } }).data.id;
        return d!.lines.find((l) => l.message === 'checkpoint created' && l.id === id)!;
      };
      expect((await created()).maxDiskRate).to.equal(null);
      await editConfig(d, (c) => (c.checkpoint = { ...c.checkpoint, maxDiskRate: '2MiB' }));
      expect((await hup(d, reloaded)).maxDiskRate).to.equal(2 * 1024 * 1024);
      expect((await created()).maxDiskRate).to.equal(2 * 1024 * 1024);
      await editConfig(d, (c) => (c.checkpoint = { ...c.checkpoint, maxDiskRate: null }));
      expect((await hup(d, reloaded)).maxDiskRate).to.equal(null);
      expect((await created()).maxDiskRate).to.equal(null);
      expect(d.lines.filter((l) => l.message === 'configuration changes that need a restart were not applied')).to.deep.equal([]);
    });
  });

  describe('SIGTERM', function () {
    it('while writers commit: answers or refuses every request, exits 0 with the lease released, and every acknowledged commit survives a restart', async () => {
      d = await DaemonProcess.start({ config: { checkpoint: { events: { ...QuietCheckpoints.events, 'clean-shutdown': true } } } });
      await seedSpace(d);
      const daemon = d;
      const acknowledged = new Map<string, { value: unknown; seq: number }>();
      const unexpected: string[] = [];
      let refusedCount = 0;
      // Each writer commits until the daemon refuses it: 503 while it shuts down, or a closed connection.
      const writers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; ; i++) {
          const key = `w${w}-${i}`;
          const value = { writer: w, i };
          const res = await daemon.request('PUT', `/api/space/s/object/${key}`, { body: value }).catch((err: NodeJS.ErrnoException) => err);
          if (res instanceof Error) {
            if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(res.code ?? '') || res.message === 'socket hang up') return refusedCount++;
            unexpected.push(`${key}: ${res.message}`);
            return;
          }
          if (res.status === 201) acknowledged.set(key, { value, seq: (res.body as { seq: number }).seq });
          else if (res.status === 503) return refusedCount++;
          else {
            unexpected.push(`${key}: ${res.status} ${res.text}`);
            return;
          }
        }
      });
      await waitFor(() => acknowledged.size >= 200, { what: 'some acknowledged commits' });
      daemon.child.kill('SIGTERM');
      // A request that starts once the shutdown has begun is refused, never half-done.
      await waitFor(() => daemon.lines.some((l) => l.message === 'shutting down'), { what: 'the shutdown to begin' });
      const late = await new Promise<string>((resolve) => {
        const socket = net.connect(Number(new URL(daemon.url).port), '127.0.0.1');
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        socket.on('connect', () => {
          socket.end(`PUT /api/space/s/object/late HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${daemon.token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
          let text = '';
          socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
          socket.on('close', () => resolve(text.split('\r\n')[0] || 'closed without an answer'));
        });
      });
      expect(late).to.be.oneOf(['HTTP/1.1 503 Service Unavailable', 'ECONNREFUSED', 'ECONNRESET', 'closed without an answer']);
      await daemon.waitExit();
      await Promise.all(writers);
      expect(daemon.exit).to.deep.equal({ code: 0, signal: null });
      expect(unexpected).to.deep.equal([]);
      expect(refusedCount).to.equal(8);
      const lease = JSON.parse(await fs.readFile(path.join(daemon.dir, 'FileVault', 'failover', 'lease.json'), 'utf8')) as { released: boolean };
      expect(lease.released).to.equal(true);

      d = await DaemonProcess.start({ dir: daemon.dir });
      const listed = (await d.query('/api/space/s/object')).body as { data: { key: string; data: unknown }[] };
      const present = new Map(listed.data.map((o) => [o.key, JSON.stringify(o.data)]));
      expect([...acknowledged].filter(([key, { value }]) => present.get(key) !== JSON.stringify(value)).map(([key]) => key)).to.deep.equal([]);
      // The clean-shutdown checkpoint was made after the last acknowledged commit.
      const newest = ((await d.request('GET', '/api/collection/checkpoint')).body as { data: { data: { trigger: string; seq: number } }[] }).data.map((c) => c.data);
      expect(newest.map((c) => c.trigger)).to.deep.equal(['event:clean-shutdown']);
      expect(newest[0]!.seq).to.be.at.least(Math.max(...[...acknowledged.values()].map((a) => a.seq)));
    });

    it('finishes a commit that is in flight when SIGTERM arrives (201), and it survives a restart', async () => {
      d = await DaemonProcess.start();
      await seedSpace(d);
      const daemon = d;
      // Expect: 100-continue: the "100 Continue" says the daemon has read the headers and is waiting for the body.
      const socket = net.connect(Number(new URL(daemon.url).port), '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      const body = JSON.stringify({ inFlight: true });
      socket.write(`PUT /api/space/s/object/in-flight HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${daemon.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
      await waitFor(() => answer.startsWith('HTTP/1.1 100 Continue'), { what: '100 Continue' });
      daemon.child.kill('SIGTERM');
      await waitFor(() => daemon.lines.some((l) => l.message === 'shutting down'), { what: 'the shutdown to begin' });
      socket.write(body);
      await waitFor(() => /HTTP\/1\.1 201 /.test(answer) || daemon.exit !== null, { what: 'the answer to the commit' });
      expect(answer).to.match(/HTTP\/1\.1 201 /);
      await closed;
      await daemon.waitExit();
      expect(daemon.exit).to.deep.equal({ code: 0, signal: null });
      expect(daemon.lines.some((l) => l.message.startsWith('requests still in flight')), 'the answered keep-alive connection closed at once').to.equal(false);

      d = await DaemonProcess.start({ dir: daemon.dir });
      expect(((await d.request('GET', '/api/space/s/object/in-flight')).body as { data: unknown }).data).to.deep.equal({ inFlight: true });
    });

    it('cuts a request that never finishes after the grace period, and still exits 0 with the lease released', async function () {
      this.timeout(40_000);
      d = await DaemonProcess.start();
      const daemon = d;
      // Headers and half a body, then silence. The daemon answers 401 (no token) before reading the body, and the
      // connection stays busy waiting for the rest: closing the server alone would wait for it.
      const socket = net.connect(Number(new URL(daemon.url).port), '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
      socket.on('error', () => {});
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.write('PUT /api/space/s/object/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
      await waitFor(() => answer.startsWith('HTTP/1.1 401'), { what: 'the 401 before the body' });

      await daemon.kill('SIGTERM');
      await closed;
      expect(daemon.exit).to.deep.equal({ code: 0, signal: null });
      expect(daemon.lines.some((l) => l.message === 'requests still in flight after the grace period; closing their connections')).to.equal(true);
      expect(daemon.lines.some((l) => l.message === 'lease released')).to.equal(true);
      expect(daemon.lines.some((l) => l.message === 'shutdown took too long; exiting anyway')).to.equal(false);
    });
  });
});
