/**
 * The package as an operator installs it (README, "Running under systemd",
 * Install): `npm pack` of the built repository, then `npm install -g` of the
 * tarball into a temporary prefix, from npm's cache where it can
 * (--prefer-offline). npm warns of no engine, every installed package accepts
 * the oldest Node our `engines` allows (an `overrides` entry does not apply to
 * a global install, so a pin has to hold without one), `npm ls -g` is clean,
 * and the installed `checkpointd` knows its version, finds no configuration
 * of its own in the working directory, and runs a daemon from the file
 * CHECKPOINTD_CONFIG names.
 *
 * Install scripts run, as in an operator's install: better-sqlite3 (the
 * storage engine) fetches its prebuilt binary or, where it cannot (this CI
 * reaches only the npm registry), builds from source with the C++ toolchain
 * .ci/run installs. Optional packages are left out (--omit=optional):
 * unix-dgram's native build (README "Without systemd") is not what this
 * checks. Takes 10–120 s, mostly npm and that build.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CliPath, DaemonProcess, tempDir } from '../helpers/daemon-process.js';

/** The repository root: dist/cli/main.js is two folders below it. */
const Root = path.resolve(path.dirname(CliPath), '..', '..');
/** The part of semver this test uses (fastify depends on semver, so it is always installed). */
const semver = createRequire(import.meta.url)('semver') as { satisfies(version: string, range: string): boolean; minVersion(range: string): { version: string } | null };

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment without npm's own `npm_*` variables (set when this runs under `npm run`), so they cannot redirect the install. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  for (const name of Object.keys(env)) if (name.startsWith('npm_') || name.startsWith('CHECKPOINTD_')) delete env[name];
  return { ...env, ...extra };
}

async function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: options.cwd, env: options.env ?? cleanEnv(), timeout: options.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && (typeof err.code !== 'number' || err.killed)) return reject(new Error(`${file} ${args.join(' ')} did not run to its end: ${err.message}\n${stderr}`));
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

/** Every package.json of the packages installed under `dir` (node_modules, nested ones included). */
async function installedPackages(dir: string): Promise<{ name: string; version: string; engines?: { node?: string } }[]> {
  const found: { name: string; version: string; engines?: { node?: string } }[] = [];
  const modules = path.join(dir, 'node_modules');
  const names = await fs.readdir(modules).catch(() => [] as string[]);
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const folders = name.startsWith('@') ? (await fs.readdir(path.join(modules, name))).map((n) => path.join(modules, name, n)) : [path.join(modules, name)];
    for (const folder of folders) {
      found.push(JSON.parse(await fs.readFile(path.join(folder, 'package.json'), 'utf8')) as (typeof found)[number]);
      found.push(...(await installedPackages(folder)));
    }
  }
  return found;
}

describe('a global install of the packed tarball (npm pack, npm install -g)', function () {
  this.timeout(300_000);
  let dir: string;
  let prefix: string;
  let bin: string;
  let pkg: { version: string; engines: { node: string } };
  /** PATH for the installed command: its `#!/usr/bin/env -S node …` line must find this node. */
  let pathEnv: string;
  let install: Ran;

  before(async function () {
    if ((await run('npm', ['--version']).catch(() => null)) === null) this.skip(); // npm comes with node; a bare node binary has none
    await fs.access(CliPath); // npm run test:e2e builds dist/ first; the tarball is packed from it
    pkg = JSON.parse(await fs.readFile(path.join(Root, 'package.json'), 'utf8')) as typeof pkg;
    dir = await tempDir('cpd-global-install-');
    prefix = path.join(dir, 'prefix');
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: Root });
    expect(packed.code, packed.stderr).to.equal(0);
    const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
    install = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--omit=optional', '--no-audit', '--no-fund', path.join(dir, filename)], { cwd: dir, timeoutMs: 240_000 });
    bin = path.join(prefix, 'bin', 'checkpointd');
    pathEnv = [path.dirname(process.execPath), process.env.PATH ?? ''].join(path.delimiter);
  });
  after(async function () {
    if (dir !== undefined) await fs.rm(dir, { recursive: true, force: true });
  });

  it('installs without an engine warning, and every installed package accepts the oldest Node that engines allows', async function () {
    expect(install.code, install.stderr).to.equal(0);
    expect(install.stdout + install.stderr).to.not.match(/EBADENGINE|ERR!/);
    const oldest = semver.minVersion(pkg.engines.node);
    expect(oldest, `engines.node ${pkg.engines.node}`).to.not.equal(null);
    const packages = await installedPackages(path.join(prefix, 'lib', 'node_modules', 'checkpointd'));
    expect(packages.map((p) => p.name)).to.include.members(['fastify', 'commander', 'light-my-request']);
    const refusing = packages.filter((p) => p.engines?.node !== undefined && !semver.satisfies(oldest!.version, p.engines.node)).map((p) => `${p.name}@${p.version} (node ${p.engines!.node})`);
    expect(refusing, `packages that refuse Node ${oldest!.version}`).to.deep.equal([]);
  });

  it('leaves a clean npm ls -g (exit 0, nothing invalid, extraneous, missing or unmet but optional peers)', async function () {
    const [top, all] = await Promise.all([run('npm', ['ls', '-g', '--prefix', prefix], { cwd: dir }), run('npm', ['ls', '-g', '--all', '--prefix', prefix], { cwd: dir })]);
    for (const res of [top, all]) {
      expect(res.code, res.stdout + res.stderr).to.equal(0);
      expect(res.stdout + res.stderr).to.not.match(/invalid|extraneous|missing|UNMET DEPENDENCY|npm error|ERR!/); // ws's optional peers (bufferutil, utf-8-validate) show as UNMET OPTIONAL, which is fine
    }
    expect(top.stdout).to.include(`checkpointd@${pkg.version}`);
  });

  it('gives a checkpointd command that prints the package version and, with no configuration named, says how to name one', async function () {
    const env = cleanEnv({ PATH: pathEnv });
    const version = await run(bin, ['--version'], { cwd: dir, env });
    expect(version.code, version.stderr).to.equal(0);
    expect(version.stdout).to.equal(`${pkg.version}\n`);
    if (await fs.access('/etc/checkpointd/checkpointd.json').then(() => false, () => true)) {
      const bare = await run(bin, ['run'], { cwd: dir, env });
      expect(bare.code).to.equal(2);
      expect(bare.stderr).to.equal('checkpointd: no configuration file: /etc/checkpointd/checkpointd.json does not exist; pass --config FILE, or set CHECKPOINTD_CONFIG=FILE\n');
    }
  });

  it('runs a daemon from the file CHECKPOINTD_CONFIG names, whose status and listening line carry the version', async function () {
    const d = await DaemonProcess.start({ spawn: { command: bin, configFromEnv: true }, env: { PATH: pathEnv, NODE_OPTIONS: '' } });
    try {
      expect(d.lines.find((l) => l.message === 'listening')).to.include({ version: pkg.version });
      const status = await run(bin, ['status'], { cwd: dir, env: cleanEnv({ PATH: pathEnv, CHECKPOINTD_URL: d.url, CHECKPOINTD_TOKEN: d.token }) });
      expect(status.code, status.stderr).to.equal(0);
      expect(status.stdout.split('\n')).to.include(`version:     ${pkg.version}`);
    } finally {
      await d.cleanup();
    }
  });
});
