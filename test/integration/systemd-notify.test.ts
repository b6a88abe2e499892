/**
 * The sd_notify messages a real daemon sends when run as a systemd
 * `Type=notify` service. The test plays systemd's part: it binds a unix
 * datagram socket, hands its path to the daemon in NOTIFY_SOCKET, and reads
 * what arrives.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { DaemonProcess, httpRequest, tempDir } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

interface UnixDgramSocket {
  on(event: 'error', listener: (err: Error) => void): void;
  bind(path: string): void;
  close(): void;
}
// unix-dgram is CommonJS and ships no types: the part used here.
const unixDgram = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram', listener: (buf: Buffer) => void): UnixDgramSocket };

/** One datagram: its KEY=value lines, and when it arrived on this process's monotonic clock (µs). */
interface Notification {
  fields: Map<string, string>;
  atUsec: bigint;
}

/** systemd's end of NOTIFY_SOCKET. */
class NotifySocket {
  readonly received: Notification[] = [];
  private readonly socket: UnixDgramSocket;

  constructor(readonly path: string, onMessage: (n: Notification) => void = () => {}) {
    this.socket = unixDgram.createSocket('unix_dgram', (buf) => {
      const fields = new Map(buf.toString('utf8').split('\n').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]));
      const n = { fields, atUsec: process.hrtime.bigint() / 1000n };
      this.received.push(n);
      onMessage(n);
    });
    this.socket.on('error', (err) => {
      throw err;
    });
    this.socket.bind(path);
  }

  /** The messages that carry `key` (with `value`, if given). */
  with(key: string, value?: string): Notification[] {
    return this.received.filter((n) => n.fields.has(key) && (value === undefined || n.fields.get(key) === value));
  }

  close(): void {
    this.socket.close();
  }
}

describe('systemd notifications (NOTIFY_SOCKET)', function () {
  let dir: string;
  let notify: NotifySocket | undefined;
  let d: DaemonProcess | undefined;

  beforeEach(async () => {
    dir = await tempDir('cpd-notify-');
  });

  afterEach(async () => {
    await d?.cleanup();
    d = undefined;
    notify?.close();
    notify = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function start(env: Record<string, string>, onMessage?: (n: Notification) => void, port = 0): Promise<DaemonProcess> {
    notify = new NotifySocket(path.join(dir, 'notify.sock'), onMessage);
    await fs.mkdir(path.join(dir, 'node'));
    d = await DaemonProcess.start({ dir: path.join(dir, 'node'), config: { api: { port } }, env: { NOTIFY_SOCKET: notify.path, ...env } });
    return d;
  }

  it('sends READY=1 with a STATUS= line only once it answers /health, then WATCHDOG=1 every WATCHDOG_USEC/2', async () => {
    const port = await DaemonProcess.freePort();
    // The moment READY=1 arrives, ask /health: a daemon that said READY too early would not answer yet.
    let healthAtReady: Promise<number> | undefined;
    await start({ WATCHDOG_USEC: '200000' }, (n) => {
      if (n.fields.get('READY') === '1' && healthAtReady === undefined) {
        healthAtReady = httpRequest(`http://127.0.0.1:${port}`, 'GET', '/health', {}).then((r) => r.status, (err: Error) => { throw new Error(`/health failed right after READY=1: ${err.message}`); });
      }
    }, port);
    const [ready] = await waitFor(() => (notify!.with('READY', '1').length > 0 ? notify!.with('READY', '1') : null), { what: 'READY=1' });
    expect(await healthAtReady).to.equal(200);
    expect(ready!.fields.get('STATUS')).to.equal(`primary, epoch 1, serving on http://127.0.0.1:${port}`);
    await waitFor(() => notify!.with('WATCHDOG', '1').length >= 3, { what: 'three watchdog pings' });
    expect(notify!.received.indexOf(notify!.with('WATCHDOG', '1')[0]!)).to.be.above(notify!.received.indexOf(ready!));
  });

  it('sends RELOADING=1 with MONOTONIC_USEC and then READY=1 around a SIGHUP reload, also when it refuses the file', async () => {
    await start({});
    await waitFor(() => notify!.with('READY', '1').length === 1, { what: 'READY=1' });

    const before = process.hrtime.bigint() / 1000n;
    d!.child.kill('SIGHUP');
    await waitFor(() => notify!.with('READY', '1').length === 2, { what: 'READY=1 after the reload' });
    const reloading = notify!.with('RELOADING', '1');
    expect(reloading).to.have.length(1);
    // CLOCK_MONOTONIC, the clock systemd compares with: the same clock this process reads.
    const monotonic = BigInt(reloading[0]!.fields.get('MONOTONIC_USEC')!);
    expect(monotonic >= before && monotonic <= reloading[0]!.atUsec, `MONOTONIC_USEC ${monotonic} between ${before} and ${reloading[0]!.atUsec}`).to.equal(true);
    expect(notify!.received.indexOf(reloading[0]!)).to.be.below(notify!.received.indexOf(notify!.with('READY', '1')[1]!));
    expect(d!.lines.some((l) => l.message === 'reloaded')).to.equal(true);

    await fs.writeFile(d!.configFile, '{ "log": { "level": ');
    d!.child.kill('SIGHUP');
    await waitFor(() => notify!.with('READY', '1').length === 3, { what: 'READY=1 after the refused reload' });
    expect(notify!.with('RELOADING', '1')).to.have.length(2);
    expect(d!.lines.some((l) => l.message.startsWith('configuration reload refused'))).to.equal(true);
    expect(d!.exit).to.equal(null);
  });

  it('sends STOPPING=1 at SIGTERM, no watchdog ping after it, and exits 0', async () => {
    const daemon = await start({ WATCHDOG_USEC: '200000' });
    await waitFor(() => notify!.with('WATCHDOG', '1').length >= 1, { what: 'a watchdog ping' });
    // A request that never finishes keeps the shutdown going (up to the in-flight grace period) while we watch.
    const socket = net.connect(Number(new URL(daemon.url).port), '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.on('error', () => {});
    socket.write('PUT /api/space/s/object/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
    await waitFor(() => answer.startsWith('HTTP/1.1 401'), { what: 'the 401 before the body' });
    daemon.child.kill('SIGTERM');
    await waitFor(() => notify!.with('STOPPING', '1').length === 1, { what: 'STOPPING=1' });
    // Nothing happening is the point: five ping intervals of a shutdown that is still under way.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(daemon.exit, 'still shutting down').to.equal(null);
    socket.destroy();
    await daemon.waitExit();
    expect(daemon.exit).to.deep.equal({ code: 0, signal: null });
    expect(notify!.with('STOPPING', '1')).to.have.length(1);
    expect(notify!.received.at(-1)).to.equal(notify!.with('STOPPING', '1')[0]);
  });

  it('sends no WATCHDOG=1 when WATCHDOG_PID names another process', async () => {
    await start({ WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) });
    await waitFor(() => notify!.with('READY', '1').length === 1, { what: 'READY=1' });
    // Nothing happening is the point: ten ping intervals without a ping.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(notify!.with('WATCHDOG')).to.deep.equal([]);
  });

  it('without unix-dgram logs one warning saying what to do, and serves anyway', async () => {
    // A loader hook that makes the optional module fail to load, as on a machine where it was never built.
    const hook = path.join(dir, 'no-unix-dgram.mjs');
    const resolve = `export async function resolve(specifier, context, next) { if (specifier === 'unix-dgram') throw new Error('unix-dgram is not installed (test)'); return next(specifier, context); }`;
    await fs.writeFile(hook, `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(resolve)}));\n`);
    await start({ WATCHDOG_USEC: '200000', NODE_OPTIONS: `--import=${hook}` });
    const warnings = d!.lines.filter((l) => l.level === 'warn' && l.message.includes('unix-dgram'));
    expect(warnings).to.have.length(1);
    expect(warnings[0]!.message).to.include('NOTIFY_SOCKET').and.include('npm install --include=optional');
    expect((await d!.request('GET', '/health', { token: null })).status).to.equal(200);
    expect(notify!.received).to.deep.equal([]);
  });
});
