/**
 * Health checks don't flood the log: a load balancer probes /primary and
 * /standby several times a second on every node, and a 503 there is an
 * answer, not a failure. Real daemons on loopback (a primary and a standby):
 * their answers are logged at debug only (the daemons log at info here, so
 * none shows), and a change of an endpoint's answer once at info.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import { node, promotedTo, seedSpace } from '../helpers/cluster.js';
import { tempDir, type DaemonProcess, type LogLine } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

const Health = ['/primary', '/standby', '/readiness', '/health', '/liveness'];

/** Log lines about a health endpoint (request lines or changes). */
function healthLines(d: DaemonProcess): LogLine[] {
  return d.lines.filter((l) => Health.includes(String(l.path)));
}

describe('health checks in the log (real daemons on loopback)', function () {
  let root: string;
  let a: DaemonProcess;
  let b: DaemonProcess;

  before(async function () {
    root = await tempDir('cpd-health-log-');
    a = await node(root, 'a', 'primary');
    b = await node(root, 'b', 'secondary');
    await seedSpace(a);
    await waitFor(async () => (await b.request('GET', '/standby', { token: null })).status === 200, { what: 'the standby to be caught up' });
  });
  after(async function () {
    await a.cleanup();
    await b.cleanup();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('logs no line for 200 probes of the health endpoints on both nodes, 503s included, GET and HEAD', async function () {
    const answers = new Map<string, number>();
    for (let round = 0; round < 10; round++) {
      for (const [name, d] of [['a', a], ['b', b]] as const) {
        for (const p of Health) {
          for (const method of ['GET', 'HEAD']) answers.set(`${name} ${p}`, (await d.request(method, p, { token: null })).status);
        }
      }
    }
    // The probes did answer 503 where a load balancer sees one: the standby is not primary, the primary is no standby.
    expect(answers.get('b /primary')).to.equal(503);
    expect(answers.get('a /standby')).to.equal(503);
    expect(answers.get('a /primary')).to.equal(200);
    expect(answers.get('b /standby')).to.equal(200);
    // Only changes (the standby's /standby went from 503 to 200 while it caught up, say), each at info.
    for (const d of [a, b]) expect(healthLines(d).filter((l) => l.message !== 'health answer changed' || l.level !== 'info'), 'no probe logged').to.deep.equal([]);
    expect(healthLines(a).length + healthLines(b).length, 'at most one change per endpoint and node').to.be.at.most(4);
    expect([...a.lines, ...b.lines].filter((l) => l.level === 'error'), 'no error at all').to.deep.equal([]);
  });

  it('logs a change of a health answer once at info: the standby that takes over answers /primary 200 and /standby 503', async function () {
    await a.kill('SIGKILL');
    await waitFor(() => promotedTo(b), { what: 'the standby to promote', timeoutMs: 15_000 });
    await waitFor(async () => (await b.request('GET', '/primary', { token: null })).status === 200, { what: '/primary to answer 200 on b' });
    for (let round = 0; round < 10; round++) {
      for (const p of ['/primary', '/standby']) expect((await b.request('GET', p, { token: null })).status).to.equal(p === '/primary' ? 200 : 503);
    }
    const changes = healthLines(b);
    const primary = changes.filter((l) => l.path === '/primary');
    expect(primary.map((l) => [l.level, l.message, l.from, l.to]), 'one change of /primary, at info').to.deep.equal([['info', 'health answer changed', 503, 200]]);
    expect(primary[0]!.role).to.equal('primary');
    // /standby answered 200 before the failover, so its change (to 503) is logged once too; whatever
    // it answered during the promotion, it never logs a line per probe.
    const standby = changes.filter((l) => l.path === '/standby');
    expect(standby.length).to.be.within(1, 3);
    expect(standby.every((l) => l.level === 'info' && l.message === 'health answer changed')).to.equal(true);
    expect(standby.at(-1)!.to).to.equal(503);
    expect(changes.filter((l) => l.message !== 'health answer changed'), 'no probe logged').to.deep.equal([]);
  });
});
