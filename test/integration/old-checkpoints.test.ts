/**
 * Old checkpoints stay usable: checkpoint files made by earlier versions,
 * committed under test/fixtures (each folder's README says how they were
 * made), still verify, export and restore, whatever later versions change in
 * what a checkpoint holds:
 * - `format-1`: release 0.1.0 (manifest format 1, NDJSON store and index files);
 * - `space-file-format-1`: the first engine builds (manifest format 2, space
 *   files of format 1, whose objects table was WITHOUT ROWID), which a restore
 *   rewrites into the current space file format.
 * `expected.json` is what the daemon served when it made them.
 */
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli-process.js';
import { DaemonProcess } from '../helpers/daemon-process.js';

const FixturesRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');

interface Expected {
  templates: { name: string; version: string; indexes: string[] }[];
  spaces: Record<string, { template: { name: string; version: string }; objects: { key: string; data: unknown }[] }>;
}

/** The format each space file under the daemon's data folder has (the engine's files: `<data>/engine/spaces/*.sqlite`). */
function spaceFileFormats(dataDir: string): Promise<number[]> {
  return fs.readdir(path.join(dataDir, 'engine', 'spaces')).then((names) =>
    names
      .filter((n) => n.endsWith('.sqlite'))
      .map((n) => {
        const db = new Database(path.join(dataDir, 'engine', 'spaces', n), { readonly: true });
        try {
          return db.prepare('SELECT format FROM space').pluck().get() as number;
        } finally {
          db.close();
        }
      }),
  );
}

const Cases = [
  { folder: 'format-1', title: 'release 0.1.0 (manifest format 1, NDJSON files)', manifestFormat: 1 },
  { folder: 'space-file-format-1', title: 'the first engine builds (manifest format 2, space files of format 1)', manifestFormat: 2 },
];

for (const { folder, title, manifestFormat } of Cases) {
const Fixtures = path.join(FixturesRoot, folder);
const CollectionFile = path.join(Fixtures, 'collection.zip');
const SpaceFile = path.join(Fixtures, 'space-docs.zip');

describe(`checkpoints made by ${title}: committed fixtures`, function () {
  this.timeout(60_000);
  let expected: Expected;
  let d: DaemonProcess;
  const cli = (args: string[]): ReturnType<typeof runCli> => runCli(args, { env: { CHECKPOINTD_URL: d.url, CHECKPOINTD_TOKEN: d.token } });

  before(async function () {
    expected = JSON.parse(await fs.readFile(path.join(Fixtures, 'expected.json'), 'utf8')) as Expected;
    d = await DaemonProcess.start();
  });
  after(async function () {
    await d.cleanup();
  });

  it(`say they are format ${manifestFormat}, and verify (checkpointd verify)`, async function () {
    for (const file of [CollectionFile, SpaceFile]) {
      const r = await runCli(['verify', file, '--json']);
      expect(r.code, r.stderr).to.equal(0);
      const report = JSON.parse(r.stdout) as { ok: boolean; manifest: { format: number; scope: string } };
      expect(report.ok).to.equal(true);
      expect(report.manifest.format).to.equal(manifestFormat);
    }
  });

  it('export every space as NDJSON, object for object what the release served (checkpointd export)', async function () {
    const out = path.join(d.dir, 'export');
    const r = await runCli(['export', CollectionFile, '--out', out]);
    expect(r.code, r.stderr).to.equal(0);
    for (const [id, space] of Object.entries(expected.spaces)) {
      const text = await fs.readFile(path.join(out, `${id}.ndjson`), 'utf8');
      const lines = text === '' ? [] : text.trimEnd().split('\n').map((l) => JSON.parse(l) as { key: string; value: unknown });
      expect(lines, `space ${id}`).to.deep.equal(space.objects.map((o) => ({ key: o.key, value: o.data })));
    }
  });

  it('import into a new installation and restore: templates, spaces, objects and index queries as the release served them', async function () {
    const imported = await cli(['checkpoint', 'import', CollectionFile, '--json']);
    expect(imported.code, imported.stderr).to.equal(0);
    const id = (JSON.parse(imported.stdout) as { data: { id: number } }).data.id;
    const restore = await d.request('POST', `/api/collection/checkpoint/${id}`);
    expect(restore.status, restore.text).to.equal(200);
    const templates = ((await d.request('GET', '/api/template')).body as { data: { data: unknown }[] }).data.map((t) => t.data);
    expect(templates).to.deep.equal(expected.templates);
    for (const [sid, space] of Object.entries(expected.spaces)) {
      expect(((await d.request('GET', `/api/space/${sid}`)).body as { data: { template: unknown } }).data.template).to.deep.equal(space.template);
      expect(((await d.query(`/api/space/${sid}/object`)).body as { data: unknown[] }).data, `space ${sid}`).to.deep.equal(space.objects);
    }
    // That installation counted seqs past this one's (17 against 1 here): a restored space counts as changed by the restore.
    const info = ((await d.request('GET', '/api/space/parts')).body as { data: { createdSeq: number; updatedSeq: number } }).data;
    expect(info.updatedSeq).to.equal((restore.body as { restored: { seq: number } }).restored.seq);
    expect(info.createdSeq).to.be.at.most(info.updatedSeq);
    // Whatever the checkpoint held, the engine now keeps each space in the current space file format.
    expect(await spaceFileFormats(path.join(d.dir, 'data'))).to.deep.equal([2, 2, 2]);
    // A start after kill -9 replays the journaled restore from the imported file; a checkpoint made now verifies.
    await d.kill('SIGKILL');
    d = await DaemonProcess.start({ dir: d.dir });
    for (const [sid, space] of Object.entries(expected.spaces)) {
      expect(((await d.query(`/api/space/${sid}/object`)).body as { data: unknown[] }).data, `space ${sid} after a restart`).to.deep.equal(space.objects);
    }
    const made = await d.request('POST', '/api/admin/checkpoint');
    expect(made.status, made.text).to.equal(201);
    const file = path.join(d.dir, 'FileVault', 'checkpoint', `Checkpoint-${String((made.body as { data: { id: number } }).data.id).padStart(9, '0')}`);
    const verified = await runCli(['verify', file]);
    expect(verified.code, verified.stderr + verified.stdout).to.equal(0);
    // The index files are read too: each query answers what a scan of the expected objects finds.
    const parts = expected.spaces.parts!.objects as { key: string; data: { type: string; owner: string; tags?: string[] } }[];
    for (const [field, value] of [['type', 'Assembly'], ['owner', 'o3'], ['tags', 'm8'], ['tags', 't2']] as const) {
      const want = parts.filter((o) => (field === 'tags' ? (o.data.tags ?? []).includes(value) : o.data[field] === value)).map((o) => o.key);
      expect(want.length, `${field}=${value} matches something`).to.be.above(0);
      const got = ((await d.query(`/api/space/parts/object?${field}=${value}`)).body as { data: { key: string }[] }).data.map((o) => o.key);
      expect(got, `${field}=${value}`).to.deep.equal(want);
    }
  });

  it('restore one space from the space checkpoint, after it changed', async function () {
    const imported = await cli(['checkpoint', 'import', SpaceFile, '--json']);
    expect(imported.code, imported.stderr).to.equal(0);
    const id = (JSON.parse(imported.stdout) as { data: { id: number; scope: string } }).data.id;
    expect((await d.request('DELETE', '/api/space/docs/object/readme')).status).to.equal(200);
    expect((await d.request('PUT', '/api/space/docs/object/extra', { body: { x: 1 } })).status).to.equal(201);
    const restore = await d.request('POST', `/api/space/docs/checkpoint/${id}`);
    expect(restore.status, restore.text).to.equal(200);
    expect(((await d.query('/api/space/docs/object')).body as { data: unknown[] }).data).to.deep.equal(expected.spaces.docs!.objects);
  });
});
}
