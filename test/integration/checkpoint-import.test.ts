/**
 * Copying a checkpoint to another installation never replaces one: `checkpointd
 * checkpoint import FILE` (POST /api/admin/checkpoint/import) verifies the file
 * and publishes it under a fresh id; a file copied over a listed checkpoint is
 * reported as changed and never restored. Two real daemons on loopback, each
 * with its own FileVault (two installations whose checkpoint ids collide).
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.js';
import { DaemonProcess } from '../helpers/daemon-process.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';

interface Resource {
  href: string;
  data: { id: number; scope: string; sha256: string; size: number; seq: number };
  imported?: { originalId: number; installation: string | null; otherInstallation: boolean };
}

const fileOf = (d: DaemonProcess, id: number): string => path.join(d.dir, 'FileVault', 'checkpoint', `Checkpoint-${String(id).padStart(9, '0')}`);

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(file)).digest('hex');
}

async function seed(d: DaemonProcess, marker: string): Promise<void> {
  expect((await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } })).status).to.be.oneOf([200, 201]);
  expect((await d.request('POST', '/api/space', { body: { id: 'test', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
  for (let i = 0; i < 5; i++) expect((await d.request('PUT', `/api/space/test/object/k${i}`, { body: { type: 'Part', marker, i } })).status).to.equal(201);
}

async function ids(d: DaemonProcess): Promise<number[]> {
  return ((await d.request('GET', '/api/collection/checkpoint')).body as { data: Resource[] }).data.map((r) => r.data.id);
}

describe('checkpoint import (two installations on loopback)', function () {
  let source: DaemonProcess;
  let target: DaemonProcess;
  let work: string;
  const cli = (args: string[]): ReturnType<typeof runCli> => runCli(['checkpoint', ...args], { env: { CHECKPOINTD_URL: target.url, CHECKPOINTD_TOKEN: target.token } });

  before(async function () {
    source = await DaemonProcess.start();
    // A body limit far below a checkpoint's size: it is for JSON, and an import streams past it.
    target = await DaemonProcess.start({ config: { api: { bodyLimitBytes: 1024 } } });
    work = path.join(target.dir, 'copies');
    await fs.mkdir(work);
    await seed(source, 'source');
    await seed(target, 'target');
    // Ids 1 and 2 in both installations.
    for (const d of [source, target]) for (let i = 0; i < 2; i++) expect((await d.request('POST', '/api/admin/checkpoint')).status).to.equal(201);
    expect(await ids(source)).to.deep.equal([1, 2]);
    expect(await ids(target)).to.deep.equal([1, 2]);
  });
  after(async function () {
    await source.cleanup();
    await target.cleanup();
  });

  it("imports another installation's checkpoint 2 under a fresh id (3), leaving the target's own checkpoint 2 as it was", async function () {
    const copy = path.join(work, 'Checkpoint-000000002');
    await fs.copyFile(fileOf(source, 2), copy);
    const ownBefore = await sha256(fileOf(target, 2));
    expect((await fs.stat(copy)).size, 'the file is larger than api.bodyLimitBytes').to.be.above(1024);
    const r = await cli(['import', copy]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^imported .*Checkpoint-000000002 \(id 2 in installation \S+\) as checkpoint 3 \(collection scope, 1 space, seq \d+, /);
    expect(await ids(target)).to.deep.equal([1, 2, 3]);
    expect(await sha256(fileOf(target, 2)), "the target's own checkpoint 2").to.equal(ownBefore);
    expect(await sha256(fileOf(target, 3))).to.equal(await sha256(copy));
    const got = (await target.request('GET', '/api/collection/checkpoint/3')).body as Resource;
    expect(got.data.sha256).to.equal(await sha256(copy));
    // No temp file left behind.
    expect((await fs.readdir(path.join(target.dir, 'FileVault', 'checkpoint'))).filter((n) => n.startsWith('.tmp'))).to.deep.equal([]);
  });

  it('answers 201 with the checkpoint resource, its Location, and where it came from (--json)', async function () {
    const r = await cli(['import', fileOf(source, 1), '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const answer = JSON.parse(r.stdout) as Resource;
    expect(answer.data.id).to.equal(4);
    expect(answer.href).to.equal(`${target.url}/api/collection/checkpoint/4`);
    expect(answer.imported).to.deep.include({ originalId: 1, otherInstallation: true });
    expect(answer.imported!.installation).to.be.a('string');
  });

  it('restores the imported checkpoint: the source installation\'s objects are served', async function () {
    const res = await target.request('POST', '/api/collection/checkpoint/3');
    expect(res.status, res.text).to.equal(200);
    const obj = await target.request('GET', '/api/space/test/object/k1');
    expect(obj.body).to.deep.include({ data: { type: 'Part', marker: 'source', i: 1 } });
  });

  for (const [what, make] of [
    ['a file with one byte flipped in its middle', async (file: string) => {
      const bytes = await fs.readFile(fileOf(source, 2));
      bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
      await fs.writeFile(file, bytes);
    }],
    ['a truncated file', async (file: string) => fs.writeFile(file, (await fs.readFile(fileOf(source, 2))).subarray(0, 300))],
    ['a file that is not a ZIP', async (file: string) => fs.writeFile(file, 'not a checkpoint at all\n')],
  ] as const) {
    it(`refuses ${what} (422, exit 2) and publishes nothing`, async function () {
      const file = path.join(work, 'bad');
      await make(file);
      const before = await ids(target);
      const r = await cli(['import', file]);
      expect(r.code, r.stdout).to.equal(2);
      expect(r.stderr).to.match(/^checkpointd: the file is not a checkpoint that verifies \(.+\); nothing was imported\n$/);
      expect(await ids(target)).to.deep.equal(before);
      expect((await fs.readdir(path.join(target.dir, 'FileVault', 'checkpoint'))).filter((n) => n.startsWith('.tmp'))).to.deep.equal([]);
    });
  }

  it('refuses an empty body (400), a JSON body (400) and another content type (415), naming what to send', async function () {
    const empty = await target.request('POST', '/api/admin/checkpoint/import', { raw: '', headers: { 'content-type': 'application/zip' } });
    expect(empty.status).to.equal(400);
    expect((empty.body as { detail: string }).detail).to.include('empty');
    const json = await target.request('POST', '/api/admin/checkpoint/import', { body: { file: 'x' } });
    expect(json.status).to.equal(400);
    expect((json.body as { detail: string }).detail).to.include('Content-Type: application/zip');
    const text = await target.request('POST', '/api/admin/checkpoint/import', { raw: 'x', headers: { 'content-type': 'text/plain' } });
    expect(text.status).to.equal(415);
    const missing = await cli(['import', path.join(work, 'no-such-file')]);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.include('cannot read');
  });

  it('reports a checkpoint file copied over a listed one as changed (status, metric) and refuses to restore it (409)', async function () {
    // What the runbook's old copy step did: the other installation's checkpoint 1 over this one's.
    await fs.copyFile(fileOf(source, 1), fileOf(target, 1));
    const status = (await target.request('GET', '/api/admin/status')).body as { data: { checkpoints: { unreadable: { id: number; problem: string }[] } } };
    const changed = status.data.checkpoints.unreadable.find((u) => u.id === 1);
    expect(changed?.problem).to.match(/changed under the same id/);
    expect(changed?.problem).to.include('checkpointd checkpoint import');
    const metrics = parsePrometheusText((await target.request('GET', '/metrics', { token: null })).text);
    expect(sampleValue(metrics, 'checkpointd_checkpoints_unusable', { problem: 'changed' })).to.equal(1);
    const restore = await target.request('POST', '/api/collection/checkpoint/1');
    expect(restore.status).to.equal(409);
    expect((restore.body as { detail: string }).detail).to.match(/checkpoint 1 is not restored: its file changed under the same id/);
    expect(target.lines.some((l) => l.level === 'error' && l.message === 'a checkpoint file changed under the same id; it will not be restored')).to.equal(true);
    const r = await runCli(['status'], { env: { CHECKPOINTD_URL: target.url, CHECKPOINTD_TOKEN: target.token } });
    expect(r.stdout).to.match(/UNUSABLE 1: its file changed under the same id/);
  });
});
