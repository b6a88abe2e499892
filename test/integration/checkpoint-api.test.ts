import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CliPath, DaemonProcess } from '../helpers/daemon-process.js';

const run = promisify(execFile);
const TimePattern = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/;

interface Resource {
  href: string;
  data: { description: string; time: string; id: number; scope: string; spaces: string[]; size: number; sha256: string; seq: number; trigger: string };
  links: { rel: string; href: string; method: string }[];
}

async function seed(d: DaemonProcess, spaces: string[], objects = 20): Promise<void> {
  await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } });
  for (const id of spaces) {
    expect((await d.request('POST', '/api/space', { body: { id, template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
    for (let i = 0; i < objects; i++) await d.request('PUT', `/api/space/${id}/object/k${i}`, { body: { type: i % 2 === 0 ? 'Part' : 'Doc', i, space: id } });
  }
}

async function rawGet(d: DaemonProcess, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const url = new URL(d.url);
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: urlPath, headers: { authorization: `Bearer ${d.token}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
        resolve({ status: res.statusCode ?? 0, headers: h, body: Buffer.concat(chunks) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('checkpoint API (real daemon on loopback)', function () {
  this.timeout(60_000);
  let d: DaemonProcess;
  let member: string;

  before(async function () {
    d = await DaemonProcess.start({ config: { api: { publicUrl: 'https://fqdn' } } });
    await seed(d, ['test', 'other']);
    member = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'm', '--role', 'member'])).stdout.trim();
  });
  after(async function () {
    await d.cleanup();
  });

  describe('create, list, get (the vendor API\'s shapes)', function () {
    let created: Resource;

    it('creates a space checkpoint: 201, Location, the vendor API\'s resource with hrefs from api.publicUrl', async function () {
      const res = await d.request('POST', '/api/space/test/checkpoint', { body: { description: 'Checkpoint 1 description' } });
      expect(res.status, res.text).to.equal(201);
      created = res.body as Resource;
      const self = `https://fqdn/api/collection/checkpoint/${created.data.id}`;
      expect(res.headers.get('location')).to.equal(self);
      expect(created.href).to.equal(self);
      expect(created.data).to.include({ description: 'Checkpoint 1 description', scope: 'space', trigger: 'manual' });
      expect(created.data.spaces).to.deep.equal(['test']);
      expect(created.data.time).to.match(TimePattern);
      expect(created.data.sha256).to.match(/^[0-9a-f]{64}$/);
      expect(created.data.size).to.be.greaterThan(0);
      expect(created.links).to.deep.equal([
        { rel: 'restore', href: self, method: 'POST' },
        { rel: 'delete', href: self, method: 'DELETE' },
        { rel: 'download', href: `${self}/download`, method: 'GET' },
      ]);
      const file = path.join(d.dir, 'FileVault', 'checkpoint', `Checkpoint-${String(created.data.id).padStart(9, '0')}`);
      expect((await fs.stat(file)).size).to.equal(created.data.size);
    });

    it('lists the space\'s checkpoints and gets one by id, on both routes', async function () {
      const list = (await d.request('GET', '/api/space/test/checkpoint')).body as { href: string; data: Resource[] };
      expect(list.href).to.equal('https://fqdn/api/space/test/checkpoint');
      expect(list.data.map((r) => r.data.id)).to.include(created.data.id);
      expect((await d.request('GET', `/api/space/test/checkpoint/${created.data.id}`)).body).to.deep.equal(created);
      expect((await d.request('GET', `/api/collection/checkpoint/${created.data.id}`)).body).to.deep.equal(created);
      const other = (await d.request('GET', '/api/space/other/checkpoint')).body as { data: Resource[] };
      expect(other.data.map((r) => r.data.id)).to.not.include(created.data.id);
    });

    it('creates a collection checkpoint with every space (POST /api/admin/checkpoint) and lists all', async function () {
      const res = await d.request('POST', '/api/admin/checkpoint', { body: { description: 'all' } });
      expect(res.status).to.equal(201);
      const all = res.body as Resource;
      expect(all.data.scope).to.equal('collection');
      expect(all.data.spaces).to.deep.equal(['other', 'test']);
      const list = (await d.request('GET', '/api/collection/checkpoint')).body as { href: string; data: Resource[] };
      expect(list.href).to.equal('https://fqdn/api/collection/checkpoint');
      expect(list.data.map((r) => r.data.id)).to.deep.equal([created.data.id, all.data.id]);
      expect((await d.request('GET', `/api/space/other/checkpoint/${all.data.id}`)).status).to.equal(200);
    });

    it('answers 404 for an unknown space or checkpoint, or one that does not cover the space', async function () {
      expect((await d.request('GET', '/api/space/ghost/checkpoint')).status).to.equal(404);
      expect((await d.request('POST', '/api/space/ghost/checkpoint', { body: {} })).status).to.equal(404);
      expect((await d.request('GET', '/api/collection/checkpoint/999')).status).to.equal(404);
      expect((await d.request('GET', `/api/space/other/checkpoint/${created.data.id}`)).status).to.equal(404);
      expect((await d.request('GET', '/api/collection/checkpoint/abc')).status).to.equal(400);
    });

    it('lets only collection-admin tokens in (member 403, none 401)', async function () {
      for (const [method, p] of [['GET', '/api/collection/checkpoint'], ['POST', '/api/admin/checkpoint'], ['GET', `/api/space/test/checkpoint/${created.data.id}/download`], ['DELETE', `/api/collection/checkpoint/${created.data.id}`]] as const) {
        expect((await d.request(method, p, { token: member })).status, `${method} ${p}`).to.equal(403);
        expect((await d.request(method, p, { token: null })).status, `${method} ${p}`).to.equal(401);
      }
    });
  });

  describe('download', function () {
    let id: number;
    let sha256: string;
    let size: number;
    before(async function () {
      const r = (await d.request('POST', '/api/admin/checkpoint', { body: {} })).body as Resource;
      ({ id, sha256, size } = r.data);
    });

    it('streams application/zip with Content-Length, Content-Disposition, a strong ETag and Accept-Ranges; unzip -t accepts it', async function () {
      const res = await rawGet(d, `/api/collection/checkpoint/${id}/download`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('application/zip');
      expect(Number(res.headers.get('content-length'))).to.equal(size);
      expect(res.headers.get('content-disposition')).to.equal(`attachment; filename="Checkpoint-${String(id).padStart(9, '0')}"`);
      expect(res.headers.get('etag')).to.equal(`"${sha256}"`);
      expect(res.headers.get('accept-ranges')).to.equal('bytes');
      expect(createHash('sha256').update(res.body).digest('hex')).to.equal(sha256);
      const file = path.join(d.dir, 'downloaded.zip');
      await fs.writeFile(file, res.body);
      const { stdout } = await run('unzip', ['-t', file]);
      expect(stdout).to.match(/No errors detected/);
    });

    it('resumes a broken download with Range (206) and the pieces make the whole file', async function () {
      const cut = Math.floor(size / 3);
      const first = await rawGet(d, `/api/space/test/checkpoint/${id}/download`, { range: `bytes=0-${cut - 1}` });
      expect(first.status).to.equal(206);
      expect(first.headers.get('content-range')).to.equal(`bytes 0-${cut - 1}/${size}`);
      const rest = await rawGet(d, `/api/space/test/checkpoint/${id}/download`, { range: `bytes=${cut}-`, 'if-range': `"${sha256}"` });
      expect(rest.status).to.equal(206);
      expect(rest.headers.get('content-range')).to.equal(`bytes ${cut}-${size - 1}/${size}`);
      expect(createHash('sha256').update(Buffer.concat([first.body, rest.body])).digest('hex')).to.equal(sha256);
      const tail = await rawGet(d, `/api/collection/checkpoint/${id}/download`, { range: 'bytes=-10' });
      expect(tail.status).to.equal(206);
      expect(tail.body.length).to.equal(10);
    });

    it('answers 416 with Content-Range for a range it cannot serve, and 304 for a matching If-None-Match', async function () {
      for (const range of [`bytes=${size}-`, 'bytes=5-2', 'bytes=abc', 'bytes=-0']) {
        const res = await rawGet(d, `/api/collection/checkpoint/${id}/download`, { range });
        expect(res.status, range).to.equal(416);
        expect(res.headers.get('content-range')).to.equal(`bytes */${size}`);
      }
      expect((await rawGet(d, `/api/collection/checkpoint/${id}/download`, { 'if-none-match': `"${sha256}"` })).status).to.equal(304);
      const stale = await rawGet(d, `/api/collection/checkpoint/${id}/download`, { range: 'bytes=0-9', 'if-range': '"other"' });
      expect(stale.status).to.equal(200);
      expect(stale.body.length).to.equal(size);
    });

    /** curl's status line and headers (lower-case names) for a request with `args`; the body is discarded. */
    async function curl(urlPath: string, args: string[]): Promise<{ status: number; headers: Map<string, string>; text: string }> {
      const { stdout } = await run('curl', ['-sS', '-o', '/dev/null', '-D', '-', '-H', `Authorization: Bearer ${d.token}`, ...args, `${d.url}${urlPath}`]);
      const lines = stdout.split('\r\n').filter((l) => l !== '');
      const headers = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]));
      return { status: Number(lines[0]!.split(' ')[1]), headers, text: stdout };
    }

    it('answers HEAD with the real Content-Length, also with a Range (curl -I), on both download routes', async function () {
      for (const route of [`/api/collection/checkpoint/${id}/download`, `/api/space/test/checkpoint/${id}/download`]) {
        const head = await curl(route, ['-I']);
        expect(head.status, head.text).to.equal(200);
        expect(Number(head.headers.get('content-length')), route).to.equal(size);
        expect(head.headers.get('etag')).to.equal(`"${sha256}"`);
        const ranged = await curl(route, ['-I', '-H', 'Range: bytes=0-9']);
        expect(ranged.status, ranged.text).to.equal(206);
        expect(ranged.headers.get('content-length')).to.equal('10');
        expect(ranged.headers.get('content-range')).to.equal(`bytes 0-9/${size}`);
      }
    });

    it('tells wget --spider the real length', async function () {
      // wget writes its report on stderr; --spider sends HEAD.
      const { stderr } = await run('wget', ['--spider', '-S', '--header', `Authorization: Bearer ${d.token}`, `${d.url}/api/collection/checkpoint/${id}/download`]);
      expect(stderr).to.match(/HTTP\/1\.1 200/);
      expect(stderr).to.include(`Length: ${size} `);
    });

    it('compares If-None-Match weakly (a W/ tag of the file is 304) and If-Match strongly (412 unless it names the file)', async function () {
      const route = `/api/collection/checkpoint/${id}/download`;
      expect((await curl(route, ['-H', `If-None-Match: W/"${sha256}"`])).status).to.equal(304);
      expect((await curl(route, ['-H', `If-None-Match: "other", W/"${sha256}"`])).status).to.equal(304);
      expect((await curl(route, ['-H', 'If-None-Match: W/"other"'])).status).to.equal(200);
      expect((await curl(route, ['-H', `If-Match: "${sha256}"`])).status).to.equal(200);
      expect((await curl(route, ['-H', 'If-Match: *'])).status).to.equal(200);
      for (const tag of ['"other"', `W/"${sha256}"`]) {
        const refused = await rawGet(d, route, { 'if-match': tag });
        expect(refused.status, tag).to.equal(412);
        expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
        expect((JSON.parse(refused.body.toString('utf8')) as { detail: string }).detail).to.include(`"${sha256}"`);
      }
    });

    it('sends Last-Modified (the file mtime) and honours If-Modified-Since (curl -z), If-Unmodified-Since and If-Range by date', async function () {
      const route = `/api/collection/checkpoint/${id}/download`;
      const head = await curl(route, ['-I']);
      const lastModified = head.headers.get('last-modified')!;
      const stat = await fs.stat(path.join(d.dir, 'FileVault', 'checkpoint', `Checkpoint-${String(id).padStart(9, '0')}`));
      expect(Date.parse(lastModified)).to.equal(Math.floor(stat.mtimeMs / 1000) * 1000);
      expect((await curl(route, ['-z', lastModified])).status).to.equal(304);
      const earlier = new Date(Date.parse(lastModified) - 60_000).toUTCString();
      expect((await curl(route, ['-z', earlier])).status).to.equal(200);
      expect((await curl(route, ['-H', `If-Unmodified-Since: ${earlier}`])).status).to.equal(412);
      expect((await curl(route, ['-H', `If-Unmodified-Since: ${lastModified}`])).status).to.equal(200);
      expect((await curl(route, ['-H', 'Range: bytes=0-9', '-H', `If-Range: ${lastModified}`])).status).to.equal(206);
      expect((await curl(route, ['-H', 'Range: bytes=0-9', '-H', `If-Range: ${earlier}`])).status).to.equal(200);
    });
  });

  describe('ids and files', function () {
    it('never reuses an id, also after deleting the newest (204, then 404)', async function () {
      const a = ((await d.request('POST', '/api/admin/checkpoint', { body: {} })).body as Resource).data.id;
      expect((await d.request('DELETE', `/api/collection/checkpoint/${a}`)).status).to.equal(204);
      expect((await d.request('GET', `/api/collection/checkpoint/${a}`)).status).to.equal(404);
      await fs.access(path.join(d.dir, 'FileVault', 'checkpoint', `Checkpoint-${String(a).padStart(9, '0')}`)).then(() => expect.fail('file still there'), () => undefined);
      const b = ((await d.request('POST', '/api/admin/checkpoint', { body: {} })).body as Resource).data.id;
      expect(b).to.equal(a + 1);
    });

    it('never lists temp files; at start-up removes its own and stale ones, not one another node is writing now', async function () {
      const folder = path.join(d.dir, 'FileVault', 'checkpoint');
      // This node is "test" (test/helpers/daemon-process.ts); temp names end in @<node>.
      const own = path.join(folder, '.tmp-Checkpoint-000000077-1234-0badcafe@test');
      const stale = path.join(folder, '.tmp-Checkpoint-000000078-1234-0badcafe@node-b');
      const unowned = path.join(folder, '.tmp-Checkpoint-000000079-leftover');
      const writing = path.join(folder, '.tmp-Checkpoint-000000080-1234-0badcafe@node-b');
      for (const file of [own, stale, unowned, writing]) await fs.writeFile(file, 'half a checkpoint');
      // Not written for an hour: a node that died while writing it.
      const hourAgo = new Date(Date.now() - 3600_000);
      await fs.utimes(stale, hourAgo, hourAgo);
      await fs.utimes(unowned, hourAgo, hourAgo);
      const list = (await d.request('GET', '/api/collection/checkpoint')).body as { data: Resource[] };
      expect(list.data.map((r) => r.data.id)).to.not.include.members([77, 78, 79, 80]);
      d = await d.restart();
      for (const file of [own, stale, unowned]) await fs.access(file).then(() => expect.fail(`${path.basename(file)} survived start-up`), () => undefined);
      await fs.access(writing);
      await fs.rm(writing);
    });

    it('at start-up removes the temp files a crash left beside the installation id, the lease, the tokens file, the hash cache and the admin token, and only those in the tokens folder', async function () {
      const e = await DaemonProcess.start({ config: { auth: { tokensFile: 'etc/tokens.json' } } });
      let current = e;
      try {
        const etc = path.join(e.dir, 'etc');
        const leftovers = [
          path.join(e.dir, 'FileVault', '.tmp-installation.json-1234-0badcafe@test'),
          path.join(e.dir, 'FileVault', 'failover', '.tmp-lease.json-1234-0badcafe@test'),
          path.join(etc, '.tmp-tokens.json-1234-0badcafe@test'),
          path.join(e.dir, 'data', '.tmp-checkpoint-sha256.json-1234-0badcafe@test'),
          path.join(e.dir, 'data', '.tmp-admin.token-1234-0badcafe@test'),
        ];
        // Another program's temp file in the shared tokens folder, and another node's lease temp file written a moment ago.
        const foreign = path.join(etc, '.tmp-other.conf-1234-0badcafe@test');
        const othersLease = path.join(e.dir, 'FileVault', 'failover', '.tmp-lease.json-1234-0badcafe@node-b');
        for (const file of [...leftovers, foreign, othersLease]) await fs.writeFile(file, 'half written');
        const restarted = (current = await e.restart());
        for (const file of leftovers) await fs.access(file).then(() => expect.fail(`${path.relative(e.dir, file)} survived start-up`), () => undefined);
        await fs.access(foreign);
        await fs.access(othersLease);
        const logged = restarted.lines.filter((l) => l.message === 'removed temp files a crash left behind').flatMap((l) => l.files as string[]);
        expect(logged.sort()).to.deep.equal(leftovers.map((f) => path.basename(f)).sort());
        expect((await restarted.request('GET', '/api/collection/checkpoint')).status).to.equal(200);
      } finally {
        await current.cleanup();
      }
    });
  });

  describe('paced writes', function () {
    it('writes checkpoints at checkpoint.maxDiskRate when it is set, and says so in its log line; a file that verifies', async function () {
      const e = await DaemonProcess.start({ config: { checkpoint: { maxDiskRate: '1MiB' } } });
      try {
        await seed(e, ['s'], 50);
        const created = await e.request('POST', '/api/admin/checkpoint', { body: {} });
        expect(created.status).to.equal(201);
        const id = (created.body as Resource).data.id;
        const line = e.lines.find((l) => l.message === 'checkpoint created' && l.id === id);
        expect(line).to.deep.include({ maxDiskRate: 1024 * 1024 });
        const file = path.join(e.dir, 'FileVault', 'checkpoint', `Checkpoint-${String(id).padStart(9, '0')}`);
        const { stdout } = await run(process.execPath, [CliPath, 'verify', file]);
        expect(stdout).to.match(new RegExp(`: ok: checkpoint ${id}, collection scope, 1 spaces?, `));
      } finally {
        await e.cleanup();
      }
    });
  });

  describe('hash cache', function () {
    it('keeps known checkpoint hashes across a restart instead of re-reading the files, and re-reads a changed one', async function () {
      const e = await DaemonProcess.start({ config: { log: { level: 'debug' } } });
      try {
        await seed(e, ['s'], 5);
        const id = ((await e.request('POST', '/api/admin/checkpoint', { body: {} })).body as Resource).data.id;
        const restarted = await e.restart();
        const list = (await restarted.request('GET', '/api/collection/checkpoint')).body as { data: Resource[] };
        expect(list.data.map((r) => r.data.id)).to.deep.equal([id]);
        expect(restarted.lines.filter((l) => l.message === 'checkpoint file hashed')).to.deep.equal([]);
        const file = path.join(e.dir, 'FileVault', 'checkpoint', `Checkpoint-${String(id).padStart(9, '0')}`);
        const later = new Date(Date.now() + 5000);
        await fs.utimes(file, later, later);
        await restarted.request('GET', '/api/collection/checkpoint');
        expect(restarted.lines.filter((l) => l.message === 'checkpoint file hashed').map((l) => l.id)).to.deep.equal([id]);
        await restarted.cleanup();
      } finally {
        await e.cleanup();
      }
    });
  });

  describe('concurrency', function () {
    it('runs simultaneous creates one after the other, never interleaved, and a restore waits its turn', async function () {
      const before = d.lines.length;
      const creates = Array.from({ length: 4 }, () => d.request('POST', '/api/admin/checkpoint', { body: {} }));
      const first = (await creates[0]!).body as Resource;
      const restore = d.request('POST', `/api/space/test/checkpoint/${first.data.id}`);
      const results = await Promise.all([...creates, restore]);
      expect(results.map((r) => r.status)).to.deep.equal([201, 201, 201, 201, 200]);
      const events = d.lines.slice(before).filter((l) => /^(checkpoint started|checkpoint created|restore started|checkpoint restored)$/.test(l.message)).map((l) => l.message);
      // Each start is followed by its own end before the next start.
      for (let i = 0; i < events.length; i += 2) {
        expect(events[i]).to.match(/started$/);
        expect(events[i + 1]).to.match(/created|restored/);
      }
      expect(events).to.have.length(10);
    });
  });
});
