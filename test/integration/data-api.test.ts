import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CliPath, DaemonProcess, rawExchange } from '../helpers/daemon-process.js';

const run = promisify(execFile);

describe('data API (real daemon on loopback)', function () {
  let d: DaemonProcess;
  let member: string;

  before(async function () {
    d = await DaemonProcess.start({ config: { api: { bodyLimitBytes: 4096 } } });
    member = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'alice', '--role', 'member'])).stdout.trim();
  });
  after(async function () {
    await d.cleanup();
  });

  describe('templates and spaces', function () {
    it('loads a template (201, Location) and lists it', async function () {
      const res = await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } });
      expect(res.status).to.equal(201);
      expect(res.headers.get('location')).to.equal(`${d.url}/api/template/plm/1.0`);
      expect(res.body).to.deep.equal({ href: `${d.url}/api/template/plm/1.0`, data: { name: 'plm', version: '1.0', indexes: ['type'] } });
      const list = await d.request('GET', '/api/template');
      expect(list.status).to.equal(200);
      expect((list.body as { data: unknown[] }).data).to.have.length(1);
    });

    it('reloading an identical template is a no-op (200); different indexes conflict (409)', async function () {
      const same = await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } });
      expect(same.status).to.equal(200);
      const different = await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['other'] } });
      expect(different.status).to.equal(409);
      expect(different.headers.get('content-type')).to.match(/^application\/problem\+json/);
    });

    it('creates a space from a template (201) and reads it back', async function () {
      const res = await d.request('POST', '/api/space', { body: { id: 'test', template: { name: 'plm', version: '1.0' } } });
      expect(res.status).to.equal(201);
      expect(res.headers.get('location')).to.equal(`${d.url}/api/space/test`);
      const space = await d.request('GET', '/api/space/test');
      expect(space.status).to.equal(200);
      expect((space.body as { data: { template: unknown } }).data.template).to.deep.equal({ name: 'plm', version: '1.0' });
      const list = await d.request('GET', '/api/space');
      expect((list.body as { data: { data: { id: string } }[] }).data.map((s) => s.data.id)).to.deep.equal(['test']);
    });

    it('refuses a space whose template is not loaded (404) and a duplicate id (409)', async function () {
      expect((await d.request('POST', '/api/space', { body: { id: 'x', template: { name: 'nope', version: '1.0' } } })).status).to.equal(404);
      expect((await d.request('POST', '/api/space', { body: { id: 'test', template: { name: 'plm', version: '1.0' } } })).status).to.equal(409);
    });

    it('upgrades a space to a newer loaded version and refuses an older one (409)', async function () {
      await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.1', indexes: ['type', 'owner'] } });
      await d.request('POST', '/api/space', { body: { id: 'upg', template: { name: 'plm', version: '1.0' } } });
      const up = await d.request('PUT', '/api/space/upg/template', { body: { version: '1.1' } });
      expect(up.status).to.equal(200);
      expect((up.body as { data: { template: unknown } }).data.template).to.deep.equal({ name: 'plm', version: '1.1' });
      const down = await d.request('PUT', '/api/space/upg/template', { body: { version: '1.0' } });
      expect(down.status).to.equal(409);
      expect((down.body as { detail: string }).detail).to.include('1.0').and.include('1.1');
      expect((await d.request('PUT', '/api/space/upg/template', { body: { version: '9.9' } })).status).to.equal(404);
    });
  });

  describe('objects, queries and transactions', function () {
    it('puts an object (201 then 200) with its seq, and reads it back', async function () {
      const first = await d.request('PUT', '/api/space/test/object/k1', { body: { type: 'Part', name: 'bolt' } });
      expect(first.status).to.equal(201);
      const { key, seq } = first.body as { key: string; seq: number };
      expect(key).to.equal('k1');
      expect(seq).to.be.a('number').greaterThan(0);
      const second = await d.request('PUT', '/api/space/test/object/k1', { body: { type: 'Part', name: 'nut' } });
      expect(second.status).to.equal(200);
      expect((second.body as { seq: number }).seq).to.equal(seq + 1);
      const got = await d.request('GET', '/api/space/test/object/k1');
      expect(got.body).to.deep.equal({ href: `${d.url}/api/space/test/object/k1`, data: { type: 'Part', name: 'nut' } });
    });

    it('stores any JSON value, not only objects', async function () {
      for (const [k, v] of [['s', 'text'], ['n', 42], ['a', [1, 2]], ['z', null]] as const) {
        expect((await d.request('PUT', `/api/space/test/object/${k}`, { body: v })).status).to.equal(201);
        expect(((await d.request('GET', `/api/space/test/object/${k}`)).body as { data: unknown }).data).to.deep.equal(v);
      }
    });

    it('queries by an indexed field', async function () {
      await d.request('PUT', '/api/space/test/object/k2', { body: { type: 'Doc' } });
      await d.request('PUT', '/api/space/test/object/k3', { body: { type: 'Part' } });
      const res = await d.request('GET', '/api/space/test/object?type=Part');
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal({
        href: `${d.url}/api/space/test/object?type=Part`,
        data: [{ key: 'k1', data: { type: 'Part', name: 'nut' } }, { key: 'k3', data: { type: 'Part' } }],
      });
    });

    it('answers a query of thousands of objects a page at a time, each page streamed a slice at a time, with the same JSON (every key once, in order, with its value)', async function () {
      const ops = Array.from({ length: 2500 }, (_, i) => ({ op: 'put', key: `big-${String(i).padStart(5, '0')}`, value: { type: 'Bulk', n: i, text: `é "${i}"` } }));
      // In transactions of 40: this daemon's body limit is 4 KiB.
      for (let at = 0; at < ops.length; at += 40) expect((await d.request('POST', '/api/space/test/transaction', { body: { ops: ops.slice(at, at + 40) } })).status).to.equal(200);
      const all = ops.map(({ key, value }) => ({ key, data: value }));
      const first = await d.request('GET', '/api/space/test/object?type=Bulk');
      expect(first.status).to.equal(200);
      expect(first.headers.get('content-type')).to.match(/^application\/json/);
      // The default page is 1,000 objects; `next` (and a Link header) continues after its last key.
      const page1 = first.body as { href: string; next?: string; data: unknown[] };
      expect(page1.href).to.equal(`${d.url}/api/space/test/object?type=Bulk`);
      expect(page1.data).to.deep.equal(all.slice(0, 1000));
      expect(page1.next).to.be.a('string').and.match(new RegExp(`^${d.url}/api/space/test/object\\?type=Bulk&cursor=[A-Za-z0-9_-]+$`));
      expect(first.headers.get('link')).to.equal(`<${page1.next}>; rel="next"`);
      // Pages of 700 concatenate to the whole answer; the last has no next. A page over 1,000 objects is streamed: chunked, no Content-Length.
      const got: unknown[] = [];
      let url: string | undefined = `/api/space/test/object?type=Bulk&limit=700`;
      let pages = 0;
      while (url !== undefined) {
        const res = await d.request('GET', url.replace(d.url, ''));
        expect(res.status, res.text).to.equal(200);
        const body = res.body as { next?: string; data: unknown[] };
        got.push(...body.data);
        url = body.next;
        if (url !== undefined) expect(url).to.include('limit=700');
        else expect(res.headers.get('link')).to.equal(null);
        pages++;
      }
      expect(pages).to.equal(4);
      expect(got).to.deep.equal(all);
      const big = await d.request('GET', '/api/space/test/object?type=Bulk&limit=2500');
      expect(big.headers.get('content-length')).to.equal(null);
      expect(big.body).to.deep.equal({ href: `${d.url}/api/space/test/object?type=Bulk&limit=2500`, data: all });
      for (let at = 0; at < ops.length; at += 40) {
        expect((await d.request('POST', '/api/space/test/transaction', { body: { ops: ops.slice(at, at + 40).map(({ key }) => ({ op: 'delete', key })) } })).status).to.equal(200);
      }
    });

    it('pages by key while writes go on: a key committed after the cursor shows on a later page, a deleted one does not, none twice; also with no filter', async function () {
      const put = async (key: string, type: string) => expect((await d.request('PUT', `/api/space/test/object/${key}`, { body: { type } })).status).to.be.oneOf([200, 201]);
      for (const key of ['p-a', 'p-c', 'p-e', 'p-g']) await put(key, 'Paged');
      const one = await d.request('GET', '/api/space/test/object?type=Paged&limit=2');
      const page1 = one.body as { next: string; data: { key: string }[] };
      expect(page1.data.map((o) => o.key)).to.deep.equal(['p-a', 'p-c']);
      await put('p-b', 'Paged'); // before the cursor: not on a later page
      await put('p-d', 'Paged'); // after it: on the next
      expect((await d.request('DELETE', '/api/space/test/object/p-e')).status).to.equal(200);
      const two = await d.request('GET', page1.next.replace(d.url, ''));
      const page2 = two.body as { next?: string; data: { key: string }[] };
      expect(page2.data.map((o) => o.key)).to.deep.equal(['p-d', 'p-g']);
      expect(page2.next, 'a next page may be empty: it is known only by looking').to.equal(undefined);
      // No filter: every object of the space, by key, a page at a time.
      const keys: string[] = [];
      let url: string | undefined = '/api/space/test/object?limit=3';
      while (url !== undefined) {
        const body = (await d.request('GET', url.replace(d.url, ''))).body as { next?: string; data: { key: string }[] };
        keys.push(...body.data.map((o) => o.key));
        url = body.next;
      }
      expect(keys).to.deep.equal([...keys].sort()).and.include.members(['p-a', 'p-b', 'p-c', 'p-d', 'p-g']);
      expect(new Set(keys).size).to.equal(keys.length);
      for (const key of ['p-a', 'p-b', 'p-c', 'p-d', 'p-g']) expect((await d.request('DELETE', `/api/space/test/object/${key}`)).status).to.equal(200);
    });

    it('refuses a limit out of range or not a whole number, and a cursor it did not give out (400 problem+json naming what to do), changing nothing', async function () {
      for (const limit of ['0', '10001', '-1', '1.5', 'ten', '', '1e3']) {
        const res = await d.request('GET', `/api/space/test/object?type=Part&limit=${encodeURIComponent(limit)}`);
        expect(res.status, `limit=${limit}`).to.equal(400);
        expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
        expect((res.body as { detail: string }).detail).to.include('whole number from 1 to 10000');
      }
      const forged = Buffer.from(JSON.stringify({ after: '../etc' })).toString('base64url');
      for (const cursor of ['', 'not a cursor', '%%%', forged, Buffer.from('[1]').toString('base64url')]) {
        const res = await d.request('GET', `/api/space/test/object?type=Part&cursor=${encodeURIComponent(cursor)}`);
        expect(res.status, `cursor=${cursor}`).to.equal(400);
        expect((res.body as { detail: string }).detail).to.include('is not one this API gave out');
      }
      expect((await d.request('GET', '/api/space/test/object?type=Part&limit=1&limit=2')).status).to.equal(400);
    });

    it('refuses a query on a field the template does not index (400, naming the indexed ones)', async function () {
      const res = await d.request('GET', '/api/space/test/object?name=bolt');
      expect(res.status).to.equal(400);
      expect((res.body as { detail: string }).detail).to.include('type');
    });

    it('deletes an object (then 404)', async function () {
      expect((await d.request('DELETE', '/api/space/test/object/k2')).status).to.equal(200);
      expect((await d.request('GET', '/api/space/test/object/k2')).status).to.equal(404);
      expect((await d.request('DELETE', '/api/space/test/object/k2')).status).to.equal(404);
    });

    it('applies a transaction all together and returns its seq', async function () {
      const res = await d.request('POST', '/api/space/test/transaction', { body: { ops: [{ op: 'put', key: 't1', value: { type: 'Part' } }, { op: 'put', key: 't2', value: 2 }, { op: 'delete', key: 'k3' }] } });
      expect(res.status).to.equal(200);
      expect((res.body as { seq: number }).seq).to.be.a('number');
      expect((await d.request('GET', '/api/space/test/object/t1')).status).to.equal(200);
      expect((await d.request('GET', '/api/space/test/object/k3')).status).to.equal(404);
    });

    it('applies nothing of a transaction that fails on its last op', async function () {
      const res = await d.request('POST', '/api/space/test/transaction', { body: { ops: [{ op: 'put', key: 'n1', value: 1 }, { op: 'delete', key: 'missing' }] } });
      expect(res.status).to.equal(409);
      expect((await d.request('GET', '/api/space/test/object/n1')).status).to.equal(404);
    });
  });

  describe('authentication and roles', function () {
    it('answers 401 with WWW-Authenticate without a token, or with a bad one', async function () {
      for (const token of [null, 'cpd_wrong-token-value', 'garbage']) {
        const res = await d.request('GET', '/api/space', { token });
        expect(res.status).to.equal(401);
        expect(res.headers.get('www-authenticate')).to.match(/^Bearer realm="checkpointd"/);
        expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
      }
    });

    it('checks the token before it reads the body: no token and a malformed body is still 401', async function () {
      const res = await d.request('POST', '/api/space', { raw: '{"id":', token: null });
      expect(res.status).to.equal(401);
      expect((await d.request('POST', '/api/space', { raw: '{"id":', token: member })).status).to.equal(403);
    });

    it('lets a member read and write data but not create spaces or templates (403)', async function () {
      expect((await d.request('PUT', '/api/space/test/object/m1', { body: { type: 'Part' }, token: member })).status).to.equal(201);
      expect((await d.request('GET', '/api/space/test/object/m1', { token: member })).status).to.equal(200);
      expect((await d.request('POST', '/api/space', { body: { id: 'm', template: { name: 'plm', version: '1.0' } }, token: member })).status).to.equal(403);
      expect((await d.request('POST', '/api/template', { body: { name: 'x', version: '1' }, token: member })).status).to.equal(403);
      expect((await d.request('GET', '/api/admin/status', { token: member })).status).to.equal(403);
    });
  });

  describe('bad input', function () {
    const badIds = ['..', '%2E%2E', 'a..b', '.hidden', 'x'.repeat(65), 'sp%20ace', 'tab%09', 'nul%00', 'a%2Fb', '%C3%A9t%C3%A9'];
    for (const id of badIds) {
      it(`refuses the space id segment ${JSON.stringify(id).slice(0, 30)} (400)`, async function () {
        const res = await d.request('GET', `/api/space/${id}`);
        expect(res.status, res.text).to.equal(400);
        expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
        expect((res.body as { detail: string }).detail).to.be.a('string').and.not.equal('');
      });
    }
    for (const key of ['..', '%2E%2E', '.', '%2E', 'a..b', 'a%2Fb', 'k%0A', 'x'.repeat(257), 'sp%20c']) {
      it(`refuses the object key segment ${JSON.stringify(key).slice(0, 30)} (400) and writes nothing`, async function () {
        const before = ((await d.request('GET', '/api/admin/status')).body as { data: { seq: number } }).data.seq;
        const res = await d.request('PUT', `/api/space/test/object/${key}`, { body: 1 });
        expect(res.status, res.text).to.equal(400);
        const after = ((await d.request('GET', '/api/admin/status')).body as { data: { seq: number } }).data.seq;
        expect(after).to.equal(before);
      });
    }
    it('refuses malformed JSON (400)', async function () {
      const res = await d.request('PUT', '/api/space/test/object/j', { raw: '{"a":' });
      expect(res.status).to.equal(400);
      expect((res.body as { detail: string }).detail).to.include('JSON');
    });
    for (const connection of ['keep-alive', 'close']) {
      it(`answers a request whose Content-Length is short of its body before the bytes left over, never the other way round (Connection: ${connection})`, async function () {
        // The server reads 14 of the 16 bytes (a valid number) and commits them; the 2 left are a malformed next request.
        const key = `short-${connection}`;
        const request = `PUT /api/space/test/object/${key} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${d.token}\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: ${connection}\r\n\r\n9007199254740992`;
        const { text, closed } = await rawExchange(Number(new URL(d.url).port), Buffer.from(request));
        expect(closed, text).to.equal(true);
        expect(text, 'the write is answered first, and as made').to.match(/^HTTP\/1\.1 201 /);
        const stored = await d.request('GET', `/api/space/test/object/${key}`);
        expect((stored.body as { data: unknown }).data).to.equal(90071992547409);
        const after = text.indexOf('HTTP/1.1 4', 1);
        if (connection === 'close') expect(after, 'nothing follows the answer the client asked to be the last').to.equal(-1);
        else {
          expect(after, text).to.be.greaterThan(0);
          const next = text.slice(after);
          expect(next).to.match(/^HTTP\/1\.1 400 /);
          expect(next).to.match(/content-type: application\/problem\+json/i);
          expect(JSON.parse(next.slice(next.indexOf('\r\n\r\n') + 4))).to.include({ status: 400 });
        }
      });
    }
    it('answers a malformed chunk in a request body with a problem+json 400 and closes, storing nothing (not left waiting for a body that cannot end)', async function () {
      const request = `PUT /api/space/test/object/chunky HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${d.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{"\r\nzz\r\n`;
      const { text, closed } = await rawExchange(Number(new URL(d.url).port), Buffer.from(request));
      expect(closed, 'closed by the server within 5 s').to.equal(true);
      expect(text).to.match(/^HTTP\/1\.1 400 /);
      expect(text).to.match(/content-type: application\/problem\+json/i);
      expect((await d.request('GET', '/api/space/test/object/chunky')).status).to.equal(404);
    });
    it('refuses a body that is not JSON by its Content-Type (415), storing nothing', async function () {
      const res = await d.request('PUT', '/api/space/test/object/plain', { raw: 'hello', headers: { 'content-type': 'text/plain' } });
      expect(res.status).to.equal(415);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect((await d.request('GET', '/api/space/test/object/plain')).status).to.equal(404);
    });
    it('refuses a __proto__ key, saying so (400)', async function () {
      const res = await d.request('PUT', '/api/space/test/object/proto', { raw: '{"__proto__":{"admin":true}}' });
      expect(res.status).to.equal(400);
      expect((res.body as { detail: string }).detail).to.include('__proto__');
    });
    it('refuses values nested deeper than the limit (400)', async function () {
      const res = await d.request('PUT', '/api/space/test/object/deep', { raw: '['.repeat(1500) + ']'.repeat(1500) });
      expect(res.status).to.equal(400);
      expect((res.body as { detail: string }).detail).to.include('nested');
    });
    it('answers a bad percent-encoding with problem+json (400)', async function () {
      const res = await d.request('GET', '/api/space/%E0%A4%A/object');
      expect(res.status).to.equal(400);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    });
    it('refuses a body over api.bodyLimitBytes (413)', async function () {
      const res = await d.request('PUT', '/api/space/test/object/big', { body: { blob: 'x'.repeat(5000) } });
      expect(res.status).to.equal(413);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    });
    it('refuses wrong types and unknown properties in bodies (400)', async function () {
      expect((await d.request('POST', '/api/space', { body: { id: 5, template: { name: 'plm', version: '1.0' } } })).status).to.equal(400);
      expect((await d.request('POST', '/api/template', { body: { name: 'plm', version: 1 } })).status).to.equal(400);
      const extra = await d.request('POST', '/api/space', { body: { id: 'y', template: { name: 'plm', version: '1.0' }, colour: 'red' } });
      expect(extra.status).to.equal(400);
      expect((extra.body as { detail: string }).detail).to.include('colour');
      expect((await d.request('POST', '/api/space/test/transaction', { body: { ops: [{ op: 'frob', key: 'a' }] } })).status).to.equal(400);
    });
    it('answers 404 problem+json for an unknown route and an unknown space', async function () {
      const route = await d.request('GET', '/api/nope');
      expect(route.status).to.equal(404);
      expect(route.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect((await d.request('GET', '/api/space/ghost/object/k')).status).to.equal(404);
      expect((await d.request('PUT', '/api/space/ghost/object/k', { body: 1 })).status).to.equal(404);
    });
  });

  describe('health', function () {
    for (const p of ['/health', '/liveness', '/readiness', '/primary']) {
      it(`answers 200 on GET and HEAD ${p} without a token`, async function () {
        expect((await d.request('GET', p, { token: null })).status).to.equal(200);
        expect((await d.request('HEAD', p, { token: null })).status).to.equal(200);
      });
    }
    it('answers 503 on /standby on a primary', async function () {
      expect((await d.request('GET', '/standby', { token: null })).status).to.equal(503);
    });
  });
});
