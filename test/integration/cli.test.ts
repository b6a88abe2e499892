import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runCli } from '../helpers/cli-process.js';
import { CliPath, DaemonProcess, tempDir } from '../helpers/daemon-process.js';

const execFileP = promisify(execFile);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Ran> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CliPath, ...args], { env: { ...process.env, ...env }, cwd, timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('checkpointd command', function () {
  let dir: string;
  beforeEach(async function () {
    dir = await tempDir('cpd-cli-');
  });
  afterEach(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function config(body: string): Promise<string> {
    const file = path.join(dir, 'config.json');
    await fs.writeFile(file, body);
    return file;
  }

  it('runs node with a 64 MiB young generation when started as a command (its first line), as npm start does', async function () {
    // A larger young generation halved the collections a checkpoint of a gigabyte pays for (bench/README.md).
    const probe = path.join(dir, 'probe.cjs');
    await fs.writeFile(probe, 'process.stderr.write(JSON.stringify(process.execArgv) + "\\n");\n');
    const { stdout, stderr } = await execFileP(CliPath, ['--help'], { env: { ...process.env, NODE_OPTIONS: `--require=${probe}` }, timeout: 15_000 });
    expect(stdout).to.include('Usage: checkpointd');
    expect(JSON.parse(stderr.trim().split('\n')[0]!)).to.include('--max-semi-space-size=64');
    const pkg = JSON.parse(await fs.readFile(path.join(path.dirname(CliPath), '..', '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).to.match(/^node --max-semi-space-size=64 dist\/cli\/main\.js run /);
    expect(pkg.scripts.bench).to.include('--max-semi-space-size=64');
  });

  describe('run refuses a bad configuration with status 2 and one message', function () {
    const cases: [string, string, RegExp][] = [
      ['an unknown key', '{"api":{"prot":1}}', /"api\.prot"/],
      ['a wrong type', '{"api":{"port":"abc"}}', /"api\.port".*integer/],
      ['a bad enum', '{"journal":{"sync":"always"}}', /"journal\.sync".*commit.*interval/],
      ['unreadable JSON', '{"api":{"port":1,}}', /not valid JSON.*line 1/],
    ];
    for (const [what, body, pattern] of cases) {
      it(`refuses ${what}`, async function () {
        const res = await cli(['run', '--config', await config(body)]);
        expect(res.code).to.equal(2);
        expect(res.stderr).to.match(pattern);
        expect(res.stderr.trim().split('\n')).to.have.length(1);
        expect(res.stdout).to.equal('');
      });
    }
    it('refuses a data folder that cannot be created', async function () {
      await fs.writeFile(path.join(dir, 'file'), 'x');
      const res = await cli(['run', '--config', await config('{"paths":{"data":"file/data"}}')]);
      expect(res.code).to.equal(2);
      expect(res.stderr).to.match(/"paths\.data".*ENOTDIR/);
    });
    it('refuses a missing configuration file', async function () {
      const res = await cli(['run', '--config', path.join(dir, 'nope.json')]);
      expect(res.code).to.equal(2);
      expect(res.stderr).to.match(/ENOENT/);
    });
    it('refuses a bad CHECKPOINTD_PORT', async function () {
      const res = await cli(['run', '--config', await config('{}')], { CHECKPOINTD_PORT: '99999' });
      expect(res.code).to.equal(2);
      expect(res.stderr).to.include('CHECKPOINTD_PORT');
    });
    it('refuses an unknown subcommand or option with status 2', async function () {
      expect((await cli(['frobnicate'])).code).to.equal(2);
      expect((await cli(['run', '--nope'])).code).to.equal(2);
    });
    it('prints help with status 0', async function () {
      const res = await cli(['--help']);
      expect(res.code).to.equal(0);
      expect(res.stdout).to.include('run').and.include('token');
    });
  });

  describe('an installed command: version and configuration file', function () {
    const DefaultConfigFile = '/etc/checkpointd/checkpointd.json';
    const packageVersion = async (): Promise<string> =>
      (JSON.parse(await fs.readFile(path.join(path.dirname(CliPath), '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

    it('prints the package version with --version and -V (exit 0), and names the option in --help', async function () {
      const version = await packageVersion();
      const [long, short, help] = await Promise.all([runCli(['--version']), runCli(['-V']), runCli(['--help'])]);
      expect(long.code, long.stderr).to.equal(0);
      expect(long.stdout).to.equal(`${version}\n`);
      expect(short.stdout).to.equal(`${version}\n`);
      expect(help.stdout).to.match(/-V, --version +print the version/);
    });

    it('run without --config reads the file CHECKPOINTD_CONFIG names, and its listening line and status carry the version', async function () {
      const d = await DaemonProcess.start({ dir, spawn: { configFromEnv: true } });
      try {
        expect(d.child.spawnargs).to.not.include('--config');
        const listening = d.lines.find((l) => l.message === 'listening')!;
        expect(listening).to.include({ version: await packageVersion(), nodeVersion: process.version });
        const status = await d.request('GET', '/api/admin/status');
        expect(status.body).to.have.nested.property('data.version', await packageVersion());
      } finally {
        await d.kill('SIGTERM');
      }
    });

    it('--config wins over CHECKPOINTD_CONFIG', async function () {
      const d = await DaemonProcess.start({ dir, env: { CHECKPOINTD_CONFIG: path.join(dir, 'no-such.json') } });
      try {
        expect(d.child.spawnargs).to.include('--config');
        expect((await d.request('GET', '/api/admin/status')).status).to.equal(200);
      } finally {
        await d.kill('SIGTERM');
      }
    });

    it(`without either, reads ${DefaultConfigFile}: a missing one stops run and token create (2) naming --config and CHECKPOINTD_CONFIG, creating nothing`, async function () {
      if (await fs.access(DefaultConfigFile).then(() => true, () => false)) this.skip(); // this machine has an installation's file; the test must not read it
      const [run, token] = await Promise.all([runCli(['run'], { cwd: dir }), runCli(['token', 'create', '--name', 'ci', '--role', 'member'], { cwd: dir })]);
      for (const res of [run, token]) {
        expect(res.code, res.stderr).to.equal(2);
        expect(res.stderr).to.equal(`checkpointd: no configuration file: ${DefaultConfigFile} does not exist; pass --config FILE, or set CHECKPOINTD_CONFIG=FILE\n`);
      }
      expect(await fs.readdir(dir)).to.deep.equal([]);
    });

    it('refuses a CHECKPOINTD_CONFIG that names no file (2), saying where the name came from', async function () {
      const missing = path.join(dir, 'nope.json');
      const res = await runCli(['run'], { env: { CHECKPOINTD_CONFIG: missing }, cwd: dir });
      expect(res.code).to.equal(2);
      expect(res.stderr).to.equal(`checkpointd: config ${missing} (from CHECKPOINTD_CONFIG): no such file; correct CHECKPOINTD_CONFIG, or pass --config FILE\n`);
    });

    it('token create adds the token to the tokens file of the configuration CHECKPOINTD_CONFIG names', async function () {
      const file = await config('{"paths":{"data":"data","fileVault":"FileVault"}}');
      const res = await runCli(['token', 'create', '--name', 'ci', '--role', 'member'], { env: { CHECKPOINTD_CONFIG: file }, cwd: os.tmpdir() });
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stdout).to.match(/^cpd_[A-Za-z0-9_-]{43}\n$/);
      const tokens = JSON.parse(await fs.readFile(path.join(dir, 'data', 'tokens.json'), 'utf8')) as { tokens: { name: string; role: string }[] };
      expect(tokens.tokens.map((t) => [t.name, t.role])).to.deep.equal([['ci', 'member']]);
    });
  });

  describe('environment overrides', function () {
    it('CHECKPOINTD_PORT, CHECKPOINTD_DATA and CHECKPOINTD_VAULT move the port and folders', async function () {
      const port = await DaemonProcess.freePort();
      const d = await DaemonProcess.start({ dir, config: { api: { port: 1 } }, env: { CHECKPOINTD_DATA: path.join(dir, 'elsewhere'), CHECKPOINTD_VAULT: path.join(dir, 'vault2'), CHECKPOINTD_PORT: String(port) } });
      try {
        expect(d.url).to.equal(`http://127.0.0.1:${port}`);
        await fs.access(path.join(dir, 'elsewhere', 'admin.token'));
        await fs.access(path.join(dir, 'elsewhere', 'tokens.json'));
        await fs.access(path.join(dir, 'vault2', 'journal'));
        await fs.access(path.join(dir, 'data')).then(() => expect.fail('the default data folder was created despite CHECKPOINTD_DATA'), () => undefined);
      } finally {
        await d.kill('SIGTERM');
      }
    });
  });

  describe('tokens', function () {
    it('creates an admin token on first start: only its hash stored, the token in a 0600 file whose path is logged', async function () {
      const d = await DaemonProcess.start({ dir });
      try {
        const tokenFile = path.join(dir, 'data', 'admin.token');
        expect((await fs.stat(tokenFile)).mode & 0o777).to.equal(0o600);
        const tokens = await fs.readFile(path.join(dir, 'data', 'tokens.json'), 'utf8');
        expect(tokens).to.not.include(d.token);
        expect(JSON.parse(tokens)).to.have.nested.property('tokens[0].role', 'collection-admin');
        expect((await fs.stat(path.join(dir, 'data', 'tokens.json'))).mode & 0o777).to.equal(0o600);
        expect(d.lines.some((l) => l.file === tokenFile)).to.equal(true);
        expect((await d.request('GET', '/api/admin/status')).status).to.equal(200);
      } finally {
        await d.kill('SIGTERM');
      }
    });

    it('token create prints only the token, which works against a running daemon at once', async function () {
      const d = await DaemonProcess.start({ dir });
      try {
        const res = await cli(['token', 'create', '--config', d.configFile, '--name', 'ci', '--role', 'collection-admin']);
        expect(res.code).to.equal(0);
        expect(res.stdout).to.match(/^cpd_[A-Za-z0-9_-]{43}\n$/);
        const token = res.stdout.trim();
        expect(await fs.readFile(path.join(dir, 'data', 'tokens.json'), 'utf8')).to.not.include(token);
        expect((await d.request('GET', '/api/admin/status', { token })).status).to.equal(200);
      } finally {
        await d.kill('SIGTERM');
      }
    });

    it('token create refuses an unknown role (2) and a duplicate name', async function () {
      const file = await config('{}');
      expect((await cli(['token', 'create', '--config', file, '--name', 'x', '--role', 'root'])).code).to.equal(2);
      expect((await cli(['token', 'create', '--config', file, '--name', 'x', '--role', 'member'])).code).to.equal(0);
      const dup = await cli(['token', 'create', '--config', file, '--name', 'x', '--role', 'member']);
      expect(dup.code).to.not.equal(0);
      expect(dup.stderr).to.include('already exists');
    });
  });

  it('refuses a second daemon on the same data folder', async function () {
    const d = await DaemonProcess.start({ dir });
    try {
      const second = await cli(['run', '--config', d.configFile]);
      expect(second.code).to.equal(1);
      expect(second.stderr).to.match(/another checkpointd \(pid \d+\)/);
    } finally {
      await d.kill('SIGTERM');
    }
  });
});
