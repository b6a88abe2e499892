/**
 * End to end through a real reverse proxy, as an installation runs it: HAProxy
 * health-checks `GET /primary` on two real daemons sharing a FileVault and
 * sends every request to the one that answers 200. Clients writing through it
 * keep going across a SIGKILL of the primary and across a switchover, and
 * every write acknowledged through the proxy is on the new primary with its
 * value, checked key by key.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { node, seedSpace, status } from '../helpers/cluster.js';
import { DaemonProcess, httpRequest, tempDir } from '../helpers/daemon-process.js';
import { Haproxy, haproxyAvailable } from '../helpers/haproxy.js';
import { waitFor } from '../helpers/wait-for.js';

/** One acknowledged write: what was written, which server HAProxy says answered, and when. */
interface Ack {
  value: unknown;
  server: string | null;
  sentAt: number;
  ackedAt: number;
}

/** The statuses a client may see while no node takes writes: 503 (no server UP, or a node that is not primary), 502 (a node died mid-answer). */
const TransientStatuses = new Set(['HTTP 502', 'HTTP 503']);

/**
 * Clients that PUT new objects through the proxy until stopped. Each remembers
 * every acknowledged write (200/201) and counts every failure by kind, then
 * goes on writing: a client of an installation retries, it does not give up.
 */
class Writers {
  readonly acks = new Map<string, Ack>();
  readonly failures = new Map<string, number>();
  /** The first answer of each unexpected kind, for the assertion message. */
  readonly samples = new Map<string, string>();
  private stopped = false;
  private readonly running: Promise<void>[];

  constructor(private readonly url: string, private readonly token: string, count: number, prefix: string) {
    const nonce = randomUUID();
    this.running = Array.from({ length: count }, (_, w) => this.write(`${prefix}${w}`, nonce));
  }

  private async write(writer: string, nonce: string): Promise<void> {
    const headers = { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' };
    for (let i = 0; !this.stopped; i++) {
      const key = `${writer}-${i}`;
      const value = { writer, i, nonce };
      const sentAt = Date.now();
      let failure: string;
      try {
        const res = await httpRequest(this.url, 'PUT', `/api/space/s/object/${key}`, headers, JSON.stringify(value));
        if (res.status === 200 || res.status === 201) {
          this.acks.set(key, { value, server: res.headers.get('x-haproxy-server'), sentAt, ackedAt: Date.now() });
          continue;
        }
        failure = `HTTP ${res.status}`;
        if (!this.samples.has(failure)) this.samples.set(failure, res.text);
      } catch (e) {
        failure = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      }
      this.failures.set(failure, (this.failures.get(failure) ?? 0) + 1);
      // Pacing, not waiting for a condition: a client does not spin while no node takes writes.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The acknowledged writes whose request was sent at or after `t`. */
  sentSince(t: number): Ack[] {
    return [...this.acks.values()].filter((a) => a.sentAt >= t);
  }

  errors(): number {
    return [...this.failures.values()].reduce((sum, n) => sum + n, 0);
  }

  /** Failures other than transient statuses and connection errors (an HTTP status nobody should see). */
  unexpected(): string[] {
    return [...this.failures.keys()].filter((f) => f.startsWith('HTTP ') && !TransientStatuses.has(f)).map((f) => `${f}: ${this.samples.get(f)}`);
  }

  describeFailures(): string {
    return [...this.failures].map(([kind, n]) => `${kind} ×${n}`).join(', ') || 'none';
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }
}

/** Every key of `written` is on `d` with exactly its value. */
async function expectAllOn(d: DaemonProcess, written: Map<string, unknown>): Promise<void> {
  const listed = await d.query('/api/space/s/object');
  expect(listed.status, listed.text).to.equal(200);
  const present = new Map((listed.body as { href: string; data: { key: string; data: unknown }[] }).data.map((o) => [o.key, o.data]));
  const wrong = [...written]
    .filter(([key, value]) => !isDeepStrictEqual(present.get(key), value))
    .map(([key, value]) => ({ key, acknowledged: value, found: present.get(key) ?? null }));
  expect(wrong, `acknowledged writes missing or different on the new primary (of ${written.size})`).to.deep.equal([]);
}

/**
 * HAProxy's request log summed up: `server status termination-state` → count,
 * and how many requests were retried or redispatched (e.g. `a 201 ---- ×1200`,
 * `<NOSRV> 503 SC-- ×80`).
 */
function proxyLogSummary(stderr: string): string {
  const tally = new Map<string, number>();
  let retried = 0;
  let redispatched = 0;
  // raw httplog: client [date] frontend backend/server Tq/Tw/Tc/Tr/Tt status bytes - - TERM conns/.../retries queues "request"
  const line = / \S+\/(\S+) \S+ (-?\d+) \d+ \S+ \S+ (\S{4}) \d+\/\d+\/\d+\/\d+\/(\+?)(\d+) \d+\/\d+ "PUT /;
  for (const l of stderr.split('\n')) {
    const m = line.exec(l);
    if (m === null) continue;
    const key = `${m[1]} ${m[2]} ${m[3]}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
    if (Number(m[5]) > 0) retried++;
    if (m[4] === '+') redispatched++;
  }
  const parts = [...tally].sort(([x], [y]) => x.localeCompare(y)).map(([k, n]) => `${k} ×${n}`);
  return `${parts.join(', ')}; retried ${retried}, redispatched ${redispatched}`;
}

describe('a real reverse proxy (haproxy health-checking /primary in front of two daemons)', function () {
  this.timeout(60_000);
  let root: string | null = null;
  let daemons: DaemonProcess[] = [];
  let proxy: Haproxy | null = null;
  let writers: Writers | null = null;

  before(async function () {
    if (!(await haproxyAvailable())) throw new Error('haproxy is not installed (looked on PATH and at /usr/sbin/haproxy): install the Debian package haproxy (apt-get install haproxy); CI installs it');
  });

  afterEach(async function () {
    await writers?.stop();
    writers = null;
    if (this.currentTest?.state === 'failed' && proxy !== null) console.log(`haproxy stderr (last lines):\n${proxy.stderr.split('\n').slice(-40).join('\n')}`);
    await proxy?.stop();
    proxy = null;
    for (const d of daemons) await d.cleanup();
    daemons = [];
    if (root !== null) await fs.rm(root, { recursive: true, force: true });
    root = null;
  });

  /** Primary a and secondary b with a seeded space, and haproxy in front of both routing to a. */
  async function installation(): Promise<{ primary: DaemonProcess; secondary: DaemonProcess; proxy: Haproxy; probe: Map<string, unknown> }> {
    root = await tempDir('cpd-e2e-');
    const primary = await node(root, 'a', 'primary');
    daemons.push(primary);
    const secondary = await node(root, 'b', 'secondary');
    daemons.push(secondary);
    await seedSpace(primary);
    await waitFor(async () => (await status(primary)).failover.standbys.some((s) => s.node === 'b'), { what: 'the secondary to answer heartbeats' });
    await fs.mkdir(path.join(root, 'haproxy'));
    const started = await Haproxy.start({ backends: [{ name: 'a', url: primary.url }, { name: 'b', url: secondary.url }], dir: path.join(root, 'haproxy'), httpLog: true });
    proxy = started;
    await waitFor(async () => isDeepStrictEqual(await started.serverStates(), { a: 'UP', b: 'DOWN' }), { what: 'haproxy to mark a UP and b DOWN' });
    // A write through the proxy lands on the primary.
    const probe = new Map<string, unknown>();
    const headers = { authorization: `Bearer ${primary.token}`, 'content-type': 'application/json' };
    await waitFor(async () => {
      const res = await httpRequest(started.url, 'PUT', '/api/space/s/object/probe', headers, JSON.stringify({ probe: true }));
      return res.status === 201 && res.headers.get('x-haproxy-server') === 'a';
    }, { what: 'a write through haproxy to reach the primary' });
    probe.set('probe', { probe: true });
    return { primary, secondary, proxy: started, probe };
  }

  it('keeps clients writing through haproxy across a SIGKILL of the primary, and every acknowledged write is on the new primary', async () => {
    const { primary, secondary, proxy: front, probe } = await installation();
    const w = (writers = new Writers(front.url, primary.token, 5, 'w'));
    await waitFor(() => w.acks.size >= 200, { what: '200 writes acknowledged through haproxy' });

    const killedAt = Date.now();
    await primary.kill('SIGKILL');
    const deadAt = Date.now();
    await waitFor(() => w.sentSince(deadAt).length >= 100, { what: '100 writes acknowledged through haproxy after the kill', timeoutMs: 20_000 });
    await w.stop();

    const acks = [...w.acks.values()];
    const before = acks.filter((a) => a.ackedAt < killedAt);
    const after = w.sentSince(deadAt);
    const onB = acks.filter((a) => a.server === 'b');
    const firstOnB = Math.min(...onB.map((a) => a.ackedAt)) - killedAt;
    const promoted = secondary.lines.find((l) => l.message === 'promoted to primary');
    console.log(
      `      SIGKILL through haproxy: ${before.length} acknowledged before the kill, ${after.length} sent after it (${acks.length} in all); ` +
        `${w.errors()} errors (${w.describeFailures()}); kill → promotion ${promoted === undefined ? '?' : Date.parse(String(promoted.timestamp)) - killedAt} ms, ` +
        `kill → first write acknowledged by b ${firstOnB} ms`,
    );
    console.log(`      haproxy log: ${proxyLogSummary(front.stderr)}`);

    expect(before.filter((a) => a.server !== 'a'), 'before the kill, only the primary acknowledges').to.deep.equal([]);
    expect(after.filter((a) => a.server !== 'b'), 'after the kill, only the new primary acknowledges').to.deep.equal([]);
    expect(w.unexpected(), 'clients see only 502/503 and connection errors during the failover').to.deep.equal([]);
    expect((await secondary.request('GET', '/primary', { token: null })).status).to.equal(200);
    expect(await front.serverStates(), 'haproxy sends traffic to b alone').to.deep.equal({ a: 'DOWN', b: 'UP' });
    expect((await status(secondary)).failover.role).to.equal('primary');
    await expectAllOn(secondary, new Map([...probe, ...[...w.acks].map(([key, a]) => [key, a.value] as const)]));
  });

  it('keeps clients writing through haproxy across a switchover, and every acknowledged write is on the new primary', async () => {
    const { primary, secondary, proxy: front, probe } = await installation();
    const w = (writers = new Writers(front.url, primary.token, 4, 'x'));
    await waitFor(() => w.acks.size >= 100, { what: '100 writes acknowledged through haproxy' });

    const askedAt = Date.now();
    const res = await primary.request('POST', '/api/admin/failover/switchover', { body: { candidate: 'b' } });
    expect(res.status, res.text).to.equal(200);
    expect((res.body as { data: { from: string; to: string } }).data).to.include({ from: 'a', to: 'b' });
    const switchedAt = Date.now();
    await waitFor(() => w.sentSince(switchedAt).filter((a) => a.server === 'b').length >= 100, { what: '100 writes acknowledged by b through haproxy after the switchover', timeoutMs: 20_000 });
    await w.stop();

    const acks = [...w.acks.values()];
    const after = w.sentSince(switchedAt);
    const firstOnB = Math.min(...acks.filter((a) => a.server === 'b').map((a) => a.ackedAt)) - askedAt;
    console.log(
      `      switchover through haproxy: ${acks.filter((a) => a.ackedAt < askedAt).length} acknowledged before it was asked, ${after.length} sent after it answered (${acks.length} in all); ` +
        `${w.errors()} errors (${w.describeFailures()}); switchover asked → first write acknowledged by b ${firstOnB} ms`,
    );
    console.log(`      haproxy log: ${proxyLogSummary(front.stderr)}`);

    expect(after.filter((a) => a.server !== 'b'), 'once the switchover has answered, only the new primary acknowledges').to.deep.equal([]);
    expect(w.unexpected(), 'clients see only 502/503 and connection errors during the switchover').to.deep.equal([]);
    expect((await secondary.request('GET', '/primary', { token: null })).status).to.equal(200);
    expect((await primary.request('GET', '/primary', { token: null })).status).to.equal(503);
    expect(await front.serverStates(), 'haproxy sends traffic to b alone').to.deep.equal({ a: 'DOWN', b: 'UP' });
    await expectAllOn(secondary, new Map([...probe, ...[...w.acks].map(([key, a]) => [key, a.value] as const)]));
    // The old primary, now following, has every acknowledged write too.
    await waitFor(async () => (await primary.request('GET', '/standby', { token: null })).status === 200, { what: 'the old primary to serve as a standby' });
    const last = [...w.acks.keys()].at(-1)!;
    await waitFor(async () => (await primary.request('GET', `/api/space/s/object/${last}`)).status === 200, { what: 'the old primary to follow the new one' });
  });
});
