/**
 * `/metrics` on real daemons on loopback ports: scraped without a token and
 * parsed strictly (test/helpers/prometheus-text.ts), with each figure checked
 * against what the node did: a manual checkpoint, one that fails because the
 * checkpoint folder is gone, a restore, refused tokens, HTTP requests by route
 * template, and on a primary + secondary pair the lag, the heartbeat round
 * trip, and the failover after SIGKILL of the primary.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { node, promotedTo, seedSpace } from '../helpers/cluster.js';
import { CliPath, DaemonProcess, tempDir } from '../helpers/daemon-process.js';
import { RepoRoot } from '../helpers/doc-blocks.js';
import { parsePrometheusText, sampleValue, type Exposition } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

/** GET /metrics without a token; it must answer 200 and parse. */
async function scrape(d: DaemonProcess): Promise<Exposition> {
  const res = await d.request('GET', '/metrics', { token: null });
  expect(res.status, res.text).to.equal(200);
  return parsePrometheusText(res.text);
}

/** A counter or histogram count that has not appeared yet is 0. */
const count = (e: Exposition, name: string, labels: Record<string, string> = {}): number => sampleValue(e, name, labels) ?? 0;

interface CheckpointData {
  id: number;
  size: number;
  time: string;
}

/** The metrics table of docs/METRICS.md ("What is measured"): name → type, wildcard rows (`checkpointd_process_*`) left out. */
function metricsTable(): Record<string, string> {
  const text = readFileSync(path.join(RepoRoot, 'docs', 'METRICS.md'), 'utf8');
  const section = text.slice(text.indexOf('\n## What is measured'), text.indexOf('\n## ', text.indexOf('\n## What is measured') + 1));
  const table: Record<string, string> = {};
  for (const m of section.matchAll(/^\| `(checkpointd_[a-z_]+)` \| (gauge|counter|histogram|summary) \|/gm)) table[m[1]!] = m[2]!;
  return table;
}

/** Every metric docs/METRICS.md documents, with its type, and three of prom-client's process metrics it names. */
const Documented: Record<string, string> = {
  ...metricsTable(),
  checkpointd_process_cpu_seconds_total: 'counter',
  checkpointd_process_resident_memory_bytes: 'gauge',
  checkpointd_nodejs_eventloop_lag_seconds: 'gauge',
};

describe('docs/METRICS.md', function () {
  it('documents the metrics this test checks: the table reads, with a type for each', function () {
    const table = metricsTable();
    expect(Object.keys(table).length, 'metrics in the table').to.be.at.least(27);
    for (const name of ['checkpointd_role', 'checkpointd_epoch', 'checkpointd_checkpoint_duration_seconds', 'checkpointd_auth_failures_total', 'checkpointd_heartbeat_interval_seconds']) expect(table, name).to.have.property(name);
  });
});

describe('Prometheus text parser (test helper)', function () {
  it('reads HELP, TYPE, labels with escaped values, NaN and ±Inf', function () {
    const e = parsePrometheusText('# HELP a_total Things \\\\ done\\n.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n",y="2",} 3 1700000000000\n\nb NaN\nc -Inf\n');
    expect(e.families.get('a_total')).to.include({ help: 'Things \\ done\n.', type: 'counter' });
    expect(sampleValue(e, 'a_total')).to.equal(3);
    expect(e.samples[0]!.labels).to.deep.equal({ x: 'q"\\\n', y: '2' });
    expect(sampleValue(e, 'b')).to.be.NaN;
    expect(sampleValue(e, 'c')).to.equal(-Infinity);
  });

  for (const [what, text] of [
    ['a sample without a value', 'a{x="1"}\n'],
    ['an unquoted label value', 'a{x=1} 1\n'],
    ['an unterminated label value', 'a{x="1} 1\n'],
    ['a bad escape', 'a{x="\\t"} 1\n'],
    ['a value that is no number', 'a 1,5\n'],
    ['junk after the value', 'a 1 2 3\n'],
    ['a bad metric name', '1a 1\n'],
    ['a duplicate series', 'a{x="1"} 1\na{x="1"} 2\n'],
    ['a TYPE after the samples', 'a 1\n# TYPE a gauge\n'],
    ['an unknown TYPE', '# TYPE a meter\na 1\n'],
    ['a family split in two', 'a 1\nb 1\na{x="2"} 1\n'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ['a histogram whose count disagrees', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n'],
    ['a bad escape in HELP', '# HELP a x\\ty\na 1\n'],
    ['no final newline', 'a 1'],
  ] as const) {
    it(`rejects ${what}`, function () {
      expect(() => parsePrometheusText(text)).to.throw();
    });
  }
});

describe('/metrics (real daemons on loopback)', function () {
  this.timeout(60_000);

  describe('a standalone primary', function () {
    let d: DaemonProcess;
    let checkpointDir: string;

    before(async function () {
      d = await DaemonProcess.start();
      checkpointDir = path.join(d.dir, 'FileVault', 'checkpoint');
      expect((await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } })).status).to.equal(201);
      expect((await d.request('POST', '/api/space', { body: { id: 's1', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
      expect((await d.request('PUT', '/api/space/s1/object/k1', { body: { type: 'Part' } })).status).to.equal(201);
    });
    after(async function () {
      await d.cleanup();
    });

    it('answers without a token: 200, the Prometheus text content type, every documented metric with its HELP and TYPE', async function () {
      const res = await d.request('GET', '/metrics', { token: null });
      expect(res.status, res.text).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('text/plain; version=0.0.4; charset=utf-8');
      const e = parsePrometheusText(res.text);
      for (const [name, type] of Object.entries(Documented)) {
        const family = e.families.get(name);
        expect(family, name).to.not.equal(undefined);
        expect(family!.type, name).to.equal(type);
        expect(family!.help, name).to.be.a('string').and.not.equal('');
      }
      expect([...e.families.keys()].filter((n) => !n.startsWith('checkpointd_')), 'every metric has the checkpointd_ prefix').to.deep.equal([]);
      const head = await d.request('HEAD', '/metrics', { token: null });
      expect(head.status).to.equal(200);
      expect(head.text).to.equal('');
    });

    it('reports its build: checkpointd_build_info 1 with the package version and the Node.js version it runs on', async function () {
      const { version } = JSON.parse(await fs.readFile(path.join(path.dirname(CliPath), '..', '..', 'package.json'), 'utf8')) as { version: string };
      const e = await scrape(d);
      expect(e.samples.filter((s) => s.name === 'checkpointd_build_info').map((s) => [s.labels, s.value])).to.deep.equal([[{ version, node_version: process.version }, 1]]);
    });

    it('reports the role (primary 1, the others 0), an epoch of at least 1, a lease age and the journal seq', async function () {
      const e = await scrape(d);
      expect(sampleValue(e, 'checkpointd_role', { role: 'primary' })).to.equal(1);
      expect(sampleValue(e, 'checkpointd_role', { role: 'secondary' })).to.equal(0);
      expect(sampleValue(e, 'checkpointd_role', { role: 'fenced' })).to.equal(0);
      expect(sampleValue(e, 'checkpointd_epoch')).to.be.at.least(1);
      expect(sampleValue(e, 'checkpointd_lease_age_seconds')).to.be.a('number').and.at.least(0);
      expect(sampleValue(e, 'checkpointd_journal_seq')).to.equal(3);
      // Renewals every renewMs (300 ms here), each one counted with its interval.
      await waitFor(async () => count(await scrape(d), 'checkpointd_lease_renewal_interval_seconds_count') >= 2, { what: 'two lease renewals in the histogram' });
      const renewals = await scrape(d);
      const total = count(renewals, 'checkpointd_lease_renewal_interval_seconds_count');
      expect(count(renewals, 'checkpointd_lease_renewal_interval_seconds_bucket', { le: '0.1' }), 'none shorter than renewMs').to.equal(0);
      expect(count(renewals, 'checkpointd_lease_renewal_interval_seconds_sum') / total, 'renewals come every renewMs, not faster').to.be.at.least(0.29);
      expect(sampleValue(e, 'checkpointd_vault_readable')).to.equal(1);
      expect(sampleValue(e, 'checkpointd_promotion_paused')).to.equal(0);
    });

    it('counts a manual checkpoint: one more in the duration histogram, the newest size as the API reports it, a last-success time at its time', async function () {
      const before = await scrape(d);
      const labels = { scope: 'collection', trigger: 'manual' };
      const res = await d.request('POST', '/api/admin/checkpoint', { body: { description: 'metrics' } });
      expect(res.status, res.text).to.equal(201);
      const created = (res.body as { data: CheckpointData }).data;
      const after = await scrape(d);
      expect(count(after, 'checkpointd_checkpoint_duration_seconds_count', labels)).to.equal(count(before, 'checkpointd_checkpoint_duration_seconds_count', labels) + 1);
      expect(count(after, 'checkpointd_checkpoint_duration_seconds_bucket', { ...labels, le: '+Inf' })).to.equal(count(after, 'checkpointd_checkpoint_duration_seconds_count', labels));
      expect(sampleValue(after, 'checkpointd_checkpoint_newest_size_bytes')).to.equal(created.size);
      expect(count(after, 'checkpointd_checkpoints', { scope: 'collection' })).to.equal(count(before, 'checkpointd_checkpoints', { scope: 'collection' }) + 1);
      // Finished (file written) at or after the manifest's start time, and not long after it.
      const finished = sampleValue(after, 'checkpointd_checkpoint_last_success_timestamp_seconds')!;
      const startedAt = Date.parse(created.time) / 1000;
      expect(finished).to.be.at.least(startedAt - 1).and.at.most(startedAt + 60);
    });

    it('reports the journal bytes since the newest checkpoint: 0 right after one, more after a commit', async function () {
      expect((await d.request('POST', '/api/admin/checkpoint')).status).to.equal(201);
      expect(sampleValue(await scrape(d), 'checkpointd_journal_since_checkpoint_bytes')).to.equal(0);
      expect((await d.request('PUT', '/api/space/s1/object/k2', { body: { type: 'Doc', text: 'x'.repeat(500) } })).status).to.equal(201);
      expect(sampleValue(await scrape(d), 'checkpointd_journal_since_checkpoint_bytes')).to.be.above(500);
    });

    it('counts a restore', async function () {
      const created = await d.request('POST', '/api/admin/checkpoint');
      expect(created.status, created.text).to.equal(201);
      const { id } = (created.body as { data: CheckpointData }).data;
      const before = count(await scrape(d), 'checkpointd_restores_total', { scope: 'collection' });
      const res = await d.request('POST', `/api/collection/checkpoint/${id}`);
      expect(res.status, res.text).to.equal(200);
      expect(count(await scrape(d), 'checkpointd_restores_total', { scope: 'collection' })).to.equal(before + 1);
    });

    it('labels HTTP requests with the route template and the status, never the URL', async function () {
      const before = await scrape(d);
      const route = '/api/space/:id/object/:key';
      expect((await d.request('GET', '/api/space/s1/object/k1')).status).to.equal(200);
      expect((await d.request('GET', '/api/space/s1/object/no-such-key')).status).to.equal(404);
      expect((await d.request('GET', '/no/such/route-xyz')).status).to.equal(404);
      const res = await d.request('GET', '/metrics', { token: null });
      const after = parsePrometheusText(res.text);
      const ok = { method: 'GET', route, status: '200' };
      const missing = { method: 'GET', route, status: '404' };
      const unmatched = { method: 'GET', route: 'unmatched', status: '404' };
      for (const labels of [ok, missing, unmatched]) {
        expect(count(after, 'checkpointd_http_requests_total', labels), JSON.stringify(labels)).to.equal(count(before, 'checkpointd_http_requests_total', labels) + 1);
      }
      expect(count(after, 'checkpointd_http_request_duration_seconds_count', { method: 'GET', route })).to.be.at.least(2);
      expect(res.text).to.not.include('no-such-key');
      expect(res.text).to.not.include('route-xyz');
    });

    it('counts refused requests by reason (missing, malformed, unknown token; wrong role; wrong cluster token), never showing a token', async function () {
      const member = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'm', '--role', 'member'])).stdout.trim();
      const before = await scrape(d);
      const wrong = 'cpd_not-a-real-token-4711';
      expect((await d.request('GET', '/api/admin/status', { token: null })).status).to.equal(401);
      expect((await d.request('GET', '/api/admin/status', { headers: { authorization: 'Basic eDp5' }, token: null })).status).to.equal(401);
      expect((await d.request('GET', '/api/admin/status', { token: wrong })).status).to.equal(401);
      expect((await d.request('GET', '/api/admin/status', { token: member })).status).to.equal(403);
      const refused = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${d.url.replace(/^http/, 'ws')}/api/failover`, { headers: { authorization: `Bearer ${wrong}` } });
        ws.on('unexpected-response', (_req, r) => {
          resolve(r.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => reject(new Error('the heartbeat endpoint accepted a wrong cluster token')));
        ws.on('error', () => undefined);
      });
      expect(refused).to.equal(401);
      const res = await d.request('GET', '/metrics', { token: null });
      const after = parsePrometheusText(res.text);
      for (const reason of ['missing_token', 'malformed_header', 'invalid_token', 'insufficient_role', 'cluster_token']) {
        expect(count(after, 'checkpointd_auth_failures_total', { reason }), reason).to.equal(count(before, 'checkpointd_auth_failures_total', { reason }) + 1);
      }
      expect(res.text).to.not.include(wrong);
      expect(res.text).to.not.include(member);
    });

    it('counts checkpoint files that cannot be read', async function () {
      const junk = path.join(checkpointDir, 'Checkpoint-000000090');
      await fs.writeFile(junk, 'not a zip');
      try {
        expect(sampleValue(await scrape(d), 'checkpointd_checkpoints_unusable', { problem: 'unreadable' })).to.equal(1);
      } finally {
        await fs.rm(junk);
      }
      expect(sampleValue(await scrape(d), 'checkpointd_checkpoints_unusable', { problem: 'unreadable' })).to.equal(0);
    });

    describe('while the checkpoint folder is gone (a file in its place)', function () {
      let newestSize: number;

      before(async function () {
        const created = await d.request('POST', '/api/admin/checkpoint');
        expect(created.status, created.text).to.equal(201);
        newestSize = (created.body as { data: CheckpointData }).data.size;
        expect(sampleValue(await scrape(d), 'checkpointd_checkpoint_newest_size_bytes')).to.equal(newestSize);
        await fs.rename(checkpointDir, `${checkpointDir}.away`);
        await fs.writeFile(checkpointDir, 'not a folder');
      });
      after(async function () {
        await fs.rm(checkpointDir, { force: true });
        await fs.rename(`${checkpointDir}.away`, checkpointDir);
      });

      it('still answers 200, says vault_readable 0, and keeps the last checkpoint figures it read', async function () {
        const e = await scrape(d);
        expect(sampleValue(e, 'checkpointd_vault_readable')).to.equal(0);
        expect(sampleValue(e, 'checkpointd_checkpoint_newest_size_bytes')).to.equal(newestSize);
        expect(sampleValue(e, 'checkpointd_role', { role: 'primary' })).to.equal(1);
      });

      it('counts the checkpoint that fails', async function () {
        const labels = { scope: 'collection', trigger: 'manual' };
        const before = await scrape(d);
        const res = await d.request('POST', '/api/admin/checkpoint');
        expect(res.status, res.text).to.be.at.least(500);
        const after = await scrape(d);
        expect(count(after, 'checkpointd_checkpoint_failures_total', labels)).to.equal(count(before, 'checkpointd_checkpoint_failures_total', labels) + 1);
        expect(count(after, 'checkpointd_checkpoint_duration_seconds_count', labels)).to.equal(count(before, 'checkpointd_checkpoint_duration_seconds_count', labels));
      });
    });

    it('does not count a refused checkpoint (no such space) as a failure', async function () {
      const labels = { scope: 'space', trigger: 'manual' };
      const before = count(await scrape(d), 'checkpointd_checkpoint_failures_total', labels);
      expect((await d.request('POST', '/api/space/nope/checkpoint')).status).to.equal(404);
      expect(count(await scrape(d), 'checkpointd_checkpoint_failures_total', labels)).to.equal(before);
      expect(sampleValue(await scrape(d), 'checkpointd_vault_readable'), 'the folder is back').to.equal(1);
    });
  });

  describe('a primary and a secondary', function () {
    let root: string;
    let a: DaemonProcess;
    let b: DaemonProcess;

    before(async function () {
      root = await tempDir('cpd-metrics-');
      a = await node(root, 'a', 'primary');
      b = await node(root, 'b', 'secondary');
      await seedSpace(a);
      expect((await a.request('PUT', '/api/space/s/object/k1', { body: { writer: 'a' } })).status).to.equal(201);
    });
    after(async function () {
      await a.cleanup();
      await b.cleanup();
      await fs.rm(root, { recursive: true, force: true });
    });

    it('the primary reports the secondary by node name: its lag, a heartbeat round trip, one standby', async function () {
      const e = await waitFor(async () => {
        const s = await scrape(a);
        return sampleValue(s, 'checkpointd_heartbeat_round_trip_seconds', { node: 'b' }) !== undefined && sampleValue(s, 'checkpointd_standby_lag_records', { node: 'b' }) === 0 ? s : null;
      }, { what: 'the primary to time a heartbeat answered by b, caught up' });
      expect(sampleValue(e, 'checkpointd_heartbeat_round_trip_seconds', { node: 'b' })).to.be.at.least(0);
      expect(sampleValue(e, 'checkpointd_standbys')).to.equal(1);
      expect(sampleValue(e, 'checkpointd_role', { role: 'primary' })).to.equal(1);
    });

    it('the secondary reports role secondary, its own lag, the heartbeat and the lease ages', async function () {
      const e = await waitFor(async () => {
        const s = await scrape(b);
        return sampleValue(s, 'checkpointd_standby_lag_records', { node: 'b' }) !== undefined ? s : null;
      }, { what: 'the secondary to report its lag' });
      expect(sampleValue(e, 'checkpointd_role', { role: 'secondary' })).to.equal(1);
      expect(sampleValue(e, 'checkpointd_role', { role: 'primary' })).to.equal(0);
      expect(sampleValue(e, 'checkpointd_standby_lag_records', { node: 'b' })).to.be.at.least(0);
      expect(sampleValue(e, 'checkpointd_heartbeat_age_seconds')).to.be.at.least(0);
      expect(sampleValue(e, 'checkpointd_lease_age_seconds')).to.be.at.least(0);
      expect(sampleValue(e, 'checkpointd_standbys'), 'only a primary counts standbys').to.equal(undefined);
      expect(sampleValue(e, 'checkpointd_failovers_total')).to.equal(0);
      expect(sampleValue(e, 'checkpointd_epoch')).to.equal(sampleValue(await scrape(a), 'checkpointd_epoch'));
    });

    it('the secondary times the heartbeats it receives (heartbeatMs apart); the primary receives none', async function () {
      // Measured over a window of at least 30 intervals, two scrapes apart. The intervals received in the window run
      // from the last beat before the first scrape (heartbeat_age_seconds before it) to the last before the second, so
      // they add up to no more than that; on average they are heartbeatMs (100 ms here), less only by how long this
      // busy machine kept the secondary from reading its socket at the window's start (the beats it then reads in a
      // burst count as near 0): a 1.5 s stall still leaves 50 ms.
      const startedAt = performance.now();
      const first = await scrape(b);
      const before = { count: count(first, 'checkpointd_heartbeat_interval_seconds_count'), sum: count(first, 'checkpointd_heartbeat_interval_seconds_sum') };
      const sinceLastBeat = sampleValue(first, 'checkpointd_heartbeat_age_seconds')!;
      const e = await waitFor(
        async () => {
          const s = await scrape(b);
          return count(s, 'checkpointd_heartbeat_interval_seconds_count') >= before.count + 30 ? s : null;
        },
        { what: '30 more heartbeat intervals on the secondary', timeoutMs: 30_000 },
      );
      const elapsedSeconds = (performance.now() - startedAt) / 1000;
      const total = count(e, 'checkpointd_heartbeat_interval_seconds_count');
      const intervals = total - before.count;
      const seconds = count(e, 'checkpointd_heartbeat_interval_seconds_sum') - before.sum;
      expect(seconds, 'the intervals are in seconds and fit in the window').to.be.at.most(elapsedSeconds + sinceLastBeat);
      expect(seconds / intervals, 'heartbeats come every heartbeatMs, not faster').to.be.at.least(0.05);
      expect(count(e, 'checkpointd_heartbeat_interval_seconds_bucket', { le: '+Inf' })).to.equal(total);
      expect(count(await scrape(a), 'checkpointd_heartbeat_interval_seconds_count')).to.equal(0);
    });

    it('after SIGKILL of the primary the secondary promotes: failovers_total 1, role primary, a higher epoch', async function () {
      const epochBefore = sampleValue(await scrape(b), 'checkpointd_epoch')!;
      await a.kill('SIGKILL');
      await waitFor(() => promotedTo(b), { what: 'the secondary to promote', timeoutMs: 15_000 });
      const e = await waitFor(async () => {
        const s = await scrape(b);
        return sampleValue(s, 'checkpointd_role', { role: 'primary' }) === 1 ? s : null;
      }, { what: 'the new primary to report its role' });
      expect(sampleValue(e, 'checkpointd_failovers_total')).to.equal(1);
      expect(sampleValue(e, 'checkpointd_role', { role: 'secondary' })).to.equal(0);
      expect(sampleValue(e, 'checkpointd_epoch')).to.be.above(epochBefore);
    });
  });
});
