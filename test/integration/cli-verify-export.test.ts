import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeCheckpointArchive, type ManifestHeader, type SpaceSource } from '../../src/checkpoint/archive/index.js';
import { hasScript, runCliOnTerminal } from '../helpers/cli-process.js';
import { CliPath } from '../helpers/daemon-process.js';
import { BrokenFigure, frameTotal, progressFrames } from '../helpers/progress-frames.js';

const execFileP = promisify(execFile);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built command in `cwd` (no configuration there, no daemon anywhere; not under tsx). */
async function cli(args: string[], cwd: string): Promise<Ran> {
  try {
    const env = { ...process.env, NODE_OPTIONS: '' };
    const { stdout, stderr } = await execFileP(process.execPath, [CliPath, ...args], { cwd, env, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const header: ManifestHeader = { id: 12, scope: 'collection', description: 'before upgrade', time: '2024-11-24T10:00:00.1234567Z', trigger: 'manual', node: 'node-a', epoch: 3, seq: 4711 };

function objects(space: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => JSON.stringify({ key: `${space}-${i}`, value: { type: 'Part', n: i } }) + '\n');
}

describe('checkpointd verify and export', function () {
  this.timeout(60_000);
  let dir: string;
  let checkpoint: string;
  const expected = { test: objects('test', 500).join(''), other: objects('other', 3).join('') };

  beforeEach(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-cli-archive-'));
    checkpoint = path.join(dir, 'Checkpoint-000000012');
    const spaces: SpaceSource[] = [
      { id: 'test', template: { name: 'plm', version: '1.0' }, objects: 500, createdSeq: 1, updatedSeq: 4700, files: [{ path: 'space/test/store/objects.ndjson', chunks: () => objects('test', 500) }, { path: 'space/test/index/type.idx', chunks: () => ['Part test-0\n'] }] },
      { id: 'other', template: { name: 'plm', version: '1.1' }, objects: 3, createdSeq: 5, updatedSeq: 6, files: [{ path: 'space/other/store/objects.ndjson', chunks: () => objects('other', 3) }] },
    ];
    await writeCheckpointArchive(checkpoint, header, { path: 'collection/collection.json', chunks: () => ['{"templates":[]}\n'] }, spaces, { compression: { method: 'deflate', level: 6 } });
  });
  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Damage one byte of the `test` space's objects (stored in the clear with store; here: in the deflate stream). */
  async function damage(): Promise<void> {
    const bytes = await fs.readFile(checkpoint);
    const name = Buffer.from('space/test/store/objects.ndjson');
    // The name is in the (stored) manifest first, then in the entry's local header.
    const at = bytes.indexOf(name, bytes.indexOf(name) + 1) + name.length + 200;
    bytes[at] = bytes[at]! ^ 0x10;
    await fs.writeFile(checkpoint, bytes);
  }

  describe('verify', function () {
    it('accepts a good checkpoint: exit 0, one summary line, nothing on stderr when piped', async function () {
      const res = await cli(['verify', checkpoint], dir);
      expect(res.code).to.equal(0);
      expect(res.stderr).to.equal('');
      const out = res.stdout.trim().split('\n');
      expect(out).to.have.length(1);
      expect(out[0]).to.match(/^.*Checkpoint-000000012: ok: checkpoint 12, collection scope, 2 spaces, seq 4711, 5 entries verified, [\d.]+ KiB$/);
    });

    it('refuses a damaged checkpoint: exit 1 and one line naming the entry', async function () {
      await damage();
      const res = await cli(['verify', checkpoint], dir);
      expect(res.code).to.equal(1);
      expect(res.stdout).to.equal('');
      expect(res.stderr.trim().split('\n')).to.have.length(1);
      expect(res.stderr).to.match(new RegExp(`^checkpointd: ${checkpoint}: entry space/test/store/objects\\.ndjson: .*damaged`));
    });

    it('prints the VerifyResult with --json, good or bad', async function () {
      const good = await cli(['verify', checkpoint, '--json'], dir);
      expect(good.code).to.equal(0);
      const ok = JSON.parse(good.stdout) as { ok: boolean; manifest: { id: number; seq: number; spaces: { id: string }[] } };
      expect(ok.ok).to.equal(true);
      expect(ok.manifest.id).to.equal(12);
      expect(ok.manifest.seq).to.equal(4711);
      expect(ok.manifest.spaces.map((s) => s.id)).to.deep.equal(['test', 'other']);
      await damage();
      const bad = await cli(['verify', checkpoint, '--json'], dir);
      expect(bad.code).to.equal(1);
      const notOk = JSON.parse(bad.stdout) as { ok: boolean; problem: string; entry: string };
      expect(notOk).to.include({ ok: false, entry: 'space/test/store/objects.ndjson' });
      expect(notOk.problem).to.match(/damaged/);
    });

    it('refuses a missing file and a foreign file with exit 1', async function () {
      const missing = await cli(['verify', path.join(dir, 'nope')], dir);
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.match(/nope: no such file/);
      await fs.writeFile(path.join(dir, 'notes.txt'), 'not a checkpoint\n');
      const foreign = await cli(['verify', 'notes.txt'], dir);
      expect(foreign.code).to.equal(1);
      expect(foreign.stderr).to.equal('checkpointd: notes.txt: not a ZIP file, so not a checkpoint\n');
    });
  });

  describe('export', function () {
    it('writes DIR/<space>.ndjson with the stored lines and DIR/manifest.json', async function () {
      const out = path.join(dir, 'out');
      const res = await cli(['export', checkpoint, '--out', out], dir);
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stderr).to.equal('');
      expect((await fs.readdir(out)).sort()).to.deep.equal(['manifest.json', 'other.ndjson', 'test.ndjson']);
      expect(await fs.readFile(path.join(out, 'test.ndjson'), 'utf8')).to.equal(expected.test);
      expect(await fs.readFile(path.join(out, 'other.ndjson'), 'utf8')).to.equal(expected.other);
      const first = JSON.parse((await fs.readFile(path.join(out, 'test.ndjson'), 'utf8')).split('\n')[0]!) as unknown;
      expect(first).to.deep.equal({ key: 'test-0', value: { type: 'Part', n: 0 } });
      const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8')) as { id: number; seq: number; spaces: { id: string; objects: number }[] };
      expect(manifest).to.include({ id: 12, seq: 4711 });
      expect(manifest.spaces.map((s) => [s.id, s.objects])).to.deep.equal([['test', 500], ['other', 3]]);
    });

    it('prints what it wrote as JSON with --json', async function () {
      const out = path.join(dir, 'out');
      const res = await cli(['export', checkpoint, '--out', out, '--json'], dir);
      expect(res.code, res.stderr).to.equal(0);
      const result = JSON.parse(res.stdout) as { ok: boolean; spaces: { id: string; file: string; objects: number }[] };
      expect(result.ok).to.equal(true);
      expect(result.spaces.map((s) => [s.id, s.objects, s.file])).to.deep.equal([
        ['test', 500, path.join(out, 'test.ndjson')],
        ['other', 3, path.join(out, 'other.ndjson')],
      ]);
    });

    it('refuses a folder that is not empty, and writes into it with --force', async function () {
      const out = path.join(dir, 'out');
      await fs.mkdir(out);
      await fs.writeFile(path.join(out, 'keep.txt'), 'mine');
      const res = await cli(['export', checkpoint, '--out', out], dir);
      expect(res.code).to.equal(1);
      expect(res.stderr).to.match(/out is not empty; use --force/);
      expect(await fs.readdir(out)).to.deep.equal(['keep.txt']);
      const forced = await cli(['export', checkpoint, '--out', out, '--force'], dir);
      expect(forced.code, forced.stderr).to.equal(0);
      expect((await fs.readdir(out)).sort()).to.deep.equal(['keep.txt', 'manifest.json', 'other.ndjson', 'test.ndjson']);
      expect(await fs.readFile(path.join(out, 'keep.txt'), 'utf8')).to.equal('mine');
    });

    it('exports nothing from a damaged checkpoint: exit 1 naming the entry, the folder it created removed', async function () {
      await damage();
      const out = path.join(dir, 'new', 'out');
      const res = await cli(['export', checkpoint, '--out', out], dir);
      expect(res.code).to.equal(1);
      expect(res.stderr).to.match(/^checkpointd: .*Checkpoint-000000012: entry space\/test\/store\/objects\.ndjson: .*damaged/);
      await fs.access(path.join(dir, 'new')).then(
        () => expect.fail('the created folder is still there'),
        () => undefined,
      );
    });

    it('leaves an existing folder as it was when the checkpoint is damaged (--force)', async function () {
      await damage();
      const out = path.join(dir, 'out');
      await fs.mkdir(out);
      await fs.writeFile(path.join(out, 'test.ndjson'), 'previous export\n');
      const res = await cli(['export', checkpoint, '--out', out, '--force', '--json'], dir);
      expect(res.code).to.equal(1);
      expect(JSON.parse(res.stdout)).to.include({ ok: false, entry: 'space/test/store/objects.ndjson' });
      expect(await fs.readdir(out)).to.deep.equal(['test.ndjson']);
      expect(await fs.readFile(path.join(out, 'test.ndjson'), 'utf8')).to.equal('previous export\n');
    });
  });

  describe('on a terminal', function () {
    it('draws a bar for verify and for export whose figures are all finite and whose total never changes', async function () {
      if (!hasScript()) this.skip(); // util-linux `script` gives the command a pseudo-terminal; without it there is no TTY to test
      const verified = await runCliOnTerminal(['verify', checkpoint], { cwd: dir });
      expect(verified.code, verified.output).to.equal(0);
      const exported = await runCliOnTerminal(['export', checkpoint, '--out', path.join(dir, 'tty-out')], { cwd: dir });
      expect(exported.code, exported.output).to.equal(0);
      for (const [output, label] of [[verified.output, 'verify'], [exported.output, 'export']] as const) {
        const frames = progressFrames(output, label);
        expect(frames.length, output).to.be.greaterThan(0);
        for (const frame of frames) expect(frame).to.not.match(BrokenFigure);
        expect(new Set(frames.map(frameTotal)).size, frames.join('\n')).to.equal(1);
        expect(frames.at(-1)).to.match(/\] 100% /);
      }
    });
  });
});
