import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VaultFaults } from '../helpers/vault-faults.js';
import { waitFor } from '../helpers/wait-for.js';

/** A `node -e SCRIPT ARGS…` child (ARGS are process.argv[1…] in the script), with its output collected. */
class NodeScript {
  stdout = '';
  stderr = '';
  code: number | null | undefined = undefined;
  private readonly child: ChildProcess;

  constructor(script: string, args: string[], env: Record<string, string>) {
    const { NODE_OPTIONS: _loader, ...base } = process.env; // a plain node, not tsx
    this.child = spawn(process.execPath, ['-e', script, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.child.on('exit', (code) => (this.code = code));
  }

  /** The exit code, waited for with a bound. */
  async exit(timeoutMs = 15_000): Promise<number | null> {
    await waitFor(() => this.code !== undefined, { what: `the child to exit (stdout: ${this.stdout}, stderr: ${this.stderr})`, timeoutMs });
    return this.code!;
  }

  /** The last stdout line, parsed, once the child has exited 0. */
  async result(): Promise<unknown> {
    const code = await this.exit();
    expect(code, this.stderr).to.equal(0);
    return JSON.parse(this.stdout.trim().split('\n').pop()!);
  }

  /** Kill it if it is still running. */
  stop(): void {
    if (this.code === undefined) this.child.kill('SIGKILL');
  }
}

describe('vault faults (LD_PRELOAD shim)', function () {
  this.timeout(60_000);

  let root: string;
  let journalDir: string;
  let journalFile: string;
  let otherFile: string;
  let faults: VaultFaults;
  const children: NodeScript[] = [];

  function run(script: string, args: string[], env: Record<string, string> = faults.env()): NodeScript {
    const child = new NodeScript(script, args, env);
    children.push(child);
    return child;
  }

  before(async function () {
    const reason = await VaultFaults.available();
    if (reason !== null) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
  });

  beforeEach(async () => {
    root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-vault-faults-')));
    journalDir = path.join(root, 'FileVault', 'journal');
    journalFile = path.join(journalDir, 'j.log');
    otherFile = path.join(root, 'other', 'o.log');
    await fs.mkdir(journalDir, { recursive: true });
    await fs.mkdir(path.dirname(otherFile));
    await fs.writeFile(journalFile, '0123456789');
    await fs.writeFile(otherFile, '');
    faults = await VaultFaults.create(['/FileVault/journal/']);
  });

  afterEach(async () => {
    for (const child of children.splice(0)) child.stop();
    await faults?.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('holds a matching write while stall-writes exists and lands it late, at its own offset; other files write meanwhile', async () => {
    await faults.stallWrites();
    const child = run(`
      const fs = require('node:fs/promises');
      (async () => {
        const fh = await fs.open(process.argv[1], 'r+');
        const late = fh.write('LATE', 20).then(() => console.log('journal written'));
        await fs.writeFile(process.argv[2], 'free');
        console.log('other written');
        await late;
        await fh.close();
      })();`, [journalFile, otherFile]);

    expect(await faults.waitForStall()).to.deep.equal([journalFile]);
    await waitFor(() => child.stdout.includes('other written'), { what: 'the write to the non-matching file' });
    expect(await fs.readFile(otherFile, 'utf8')).to.equal('free');
    expect((await fs.stat(journalFile)).size).to.equal(10);
    expect(child.stdout).not.to.include('journal written');

    await faults.releaseWrites();
    expect(await child.exit(), child.stderr).to.equal(0);
    expect(child.stdout).to.include('journal written');
    expect(await fs.readFile(journalFile)).to.deep.equal(Buffer.concat([Buffer.from('0123456789'), Buffer.alloc(10), Buffer.from('LATE')]));
    expect(await faults.stalledCount()).to.equal(1);
  });

  it('stalls only the paths that also contain the narrower substring stall-writes holds', async () => {
    const narrowFile = path.join(journalDir, 'narrow.log');
    await faults.stallWrites('narrow.log');
    const child = run(`
      const fs = require('node:fs/promises');
      (async () => {
        const narrow = fs.writeFile(process.argv[2], 'held').then(() => console.log('narrow written'));
        await fs.writeFile(process.argv[1], 'wide');
        console.log('wide written');
        await narrow;
      })();`, [journalFile, narrowFile]);

    expect(await faults.waitForStall()).to.deep.equal([narrowFile]);
    await waitFor(() => child.stdout.includes('wide written'), { what: 'the write to the matching file outside the narrower substring' });
    expect(await fs.readFile(journalFile, 'utf8')).to.equal('wide');
    expect(child.stdout).not.to.include('narrow written');

    await faults.releaseWrites();
    expect(await child.exit(), child.stderr).to.equal(0);
    expect(await fs.readFile(narrowFile, 'utf8')).to.equal('held');
  });

  it('fails exactly N matching reads with EIO, then reads succeed; other files read untouched', async () => {
    await fs.writeFile(otherFile, 'free');
    await faults.failReads(2);
    const child = run(`
      const fs = require('node:fs');
      (async () => {
        const results = [];
        const attempt = async (read) => { try { results.push(await read()); } catch (e) { results.push(e.code); } };
        const other = await fs.promises.open(process.argv[2]);
        await attempt(async () => (await other.read(Buffer.alloc(4), 0, 4, 0)).buffer.toString());
        const fh = await fs.promises.open(process.argv[1]);
        const fd = fs.openSync(process.argv[1]);
        await attempt(async () => (await fh.read(Buffer.alloc(4), 0, 4, 0)).buffer.toString());
        await attempt(async () => { const b = Buffer.alloc(4); fs.readSync(fd, b, 0, 4, 0); return b.toString(); });
        await attempt(async () => (await fh.read(Buffer.alloc(4), 0, 4, 0)).buffer.toString());
        await attempt(async () => { const b = Buffer.alloc(4); fs.readSync(fd, b, 0, 4, 0); return b.toString(); });
        console.log(JSON.stringify(results));
      })();`, [journalFile, otherFile]);

    expect(await child.result()).to.deep.equal(['free', 'EIO', 'EIO', '0123', '0123']);
    expect((await fs.readFile(path.join(faults.dir, 'fail-reads'), 'utf8')).trim()).to.equal('0');
  });

  it('counts fail-reads down exactly when the thread pool reads from several threads at once', async () => {
    await faults.failReads(7);
    const child = run(`
      const fs = require('node:fs');
      (async () => {
        const fh = await fs.promises.open(process.argv[1]);
        const settled = await Promise.allSettled(Array.from({ length: 20 }, () => fh.read(Buffer.alloc(4), 0, 4, 0)));
        console.log(JSON.stringify(settled.map((s) => (s.status === 'fulfilled' ? 'ok' : s.reason.code)).sort()));
      })();`, [journalFile]);

    expect(await child.result()).to.deep.equal([...Array<string>(7).fill('EIO'), ...Array<string>(13).fill('ok')]);
    expect((await fs.readFile(path.join(faults.dir, 'fail-reads'), 'utf8')).trim()).to.equal('0');
  });

  it('fails exactly N matching opens with EIO, then opens succeed', async () => {
    await faults.failOpens(1);
    const child = run(`
      const fs = require('node:fs');
      const results = [];
      for (const file of [process.argv[2], process.argv[1], process.argv[1]]) {
        try { fs.closeSync(fs.openSync(file)); results.push('ok'); } catch (e) { results.push(e.code); }
      }
      console.log(JSON.stringify(results));`, [journalFile, otherFile]);

    expect(await child.result()).to.deep.equal(['ok', 'EIO', 'ok']);
  });

  it('delays fs.readdir and fs.opendir of a matching folder by at least slow-listing ms', async () => {
    const ms = 300;
    await faults.slowListing(ms);
    const child = run(`
      const fs = require('node:fs');
      const { performance } = require('node:perf_hooks');
      (async () => {
        const timed = async (list) => { const start = performance.now(); const names = await list(); return { ms: performance.now() - start, names }; };
        const readdir = await timed(() => fs.promises.readdir(process.argv[1]));
        const readdirSync = await timed(async () => fs.readdirSync(process.argv[1]));
        const opendir = await timed(async () => { const names = []; for await (const e of await fs.promises.opendir(process.argv[1])) names.push(e.name); return names; });
        console.log(JSON.stringify({ readdir, readdirSync, opendir }));
      })();`, [journalDir]);

    const result = (await child.result()) as Record<string, { ms: number; names: string[] }>;
    for (const [how, { ms: took, names }] of Object.entries(result)) {
      expect(took, how).to.be.at.least(ms);
      expect(names, how).to.deep.equal(['j.log']);
    }
  });

  it('changes nothing when CPD_FAULT_DIR is unset, even with every control file present', async () => {
    await Promise.all([faults.stallWrites(), faults.failReads(5), faults.failOpens(5), faults.slowListing(600_000)]);
    const { CPD_FAULT_DIR: _dir, ...env } = faults.env();
    expect(env.LD_PRELOAD).to.be.a('string');
    const child = run(`
      const fs = require('node:fs');
      (async () => {
        const fh = await fs.promises.open(process.argv[1], 'r+');
        await fh.write('ABCD', 0);
        await fh.sync();
        const read = (await fh.read(Buffer.alloc(4), 0, 4, 0)).buffer.toString();
        await fh.close();
        const names = await fs.promises.readdir(process.argv[2]);
        console.log(JSON.stringify({ read, names }));
      })();`, [journalFile, journalDir], env);

    expect(await child.result()).to.deep.equal({ read: 'ABCD', names: ['j.log'] });
    expect(await fs.readFile(journalFile, 'utf8')).to.equal('ABCD456789');
    expect(await faults.stalledCount()).to.equal(0);
    expect((await fs.readFile(path.join(faults.dir, 'fail-reads'), 'utf8')).trim()).to.equal('5');
    expect((await fs.readFile(path.join(faults.dir, 'fail-opens'), 'utf8')).trim()).to.equal('5');
  });
});
