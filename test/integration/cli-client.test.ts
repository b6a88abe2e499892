/**
 * The client commands of `checkpointd` (status, checkpoint …, switchover,
 * pause, resume) as a person or script runs them: the built binary, token in
 * CHECKPOINTD_TOKEN or a file, against a real daemon on loopback.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { hasScript, runCli, runCliOnTerminal, type CliResult } from '../helpers/cli-process.js';
import { CliPath, DaemonProcess, tempDir } from '../helpers/daemon-process.js';
import { BrokenFigure, frameTotal, progressFrames } from '../helpers/progress-frames.js';
import { makeCa, makeServerCert } from '../helpers/test-certificates.js';
import { waitFor } from '../helpers/wait-for.js';

interface Resource {
  href: string;
  data: { id: number; scope: string; spaces: string[]; trigger: string; time: string; size: number; sha256: string; seq: number; description: string };
}

/** A CA of the test's own and a certificate it signed for 127.0.0.1, PEM files in `dir`. */
async function makePki(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = await makeCa('test CA');
  const server = await makeServerCert(ca, { dns: ['localhost'], ips: ['127.0.0.1'] });
  const files = { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'node.crt'), key: path.join(dir, 'node.key') };
  await fs.writeFile(files.ca, ca.cert);
  await fs.writeFile(files.cert, server.cert);
  await fs.writeFile(files.key, server.key, { mode: 0o600 });
  return files;
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const checkpointFile = (id: number): string => `Checkpoint-${String(id).padStart(9, '0')}`;

describe('checkpointd client commands (real binary, real daemon)', function () {
  this.timeout(30_000);
  let d: DaemonProcess;
  let work: string;
  let env: Record<string, string>;

  /** `checkpointd ARGS` with the daemon's URL and admin token in the environment, in the work folder. */
  const cli = (args: string[], extra: Record<string, string> = {}): Promise<CliResult> => runCli(args, { env: { ...env, ...extra }, cwd: work });
  const json = <T>(res: CliResult): T => {
    expect(res.code, res.stderr).to.equal(0);
    return JSON.parse(res.stdout) as T;
  };
  /** Request log lines (debug) for `urlPath` answered with `status`. */
  const answered = (urlPath: string, status: number): number => d.lines.filter((l) => l.message === 'request' && l.path === urlPath && l.status === status).length;

  before(async function () {
    d = await DaemonProcess.start({ config: { log: { level: 'debug' } } });
    env = { CHECKPOINTD_URL: d.url, CHECKPOINTD_TOKEN: d.token };
    work = await tempDir('cpd-cli-client-');
    expect((await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } })).status).to.equal(201);
    expect((await d.request('POST', '/api/space', { body: { id: 'test', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
    const ops = Array.from({ length: 300 }, (_, i) => ({ op: 'put', key: `k${i}`, value: { type: i % 2 === 0 ? 'Part' : 'Doc', i, pad: 'x'.repeat(200) } }));
    expect((await d.request('POST', '/api/space/test/transaction', { body: { ops } })).status).to.equal(200);
  });
  after(async function () {
    await d?.cleanup();
    if (work !== undefined) await fs.rm(work, { recursive: true, force: true });
  });

  describe('status', function () {
    it('prints lines a person reads, and the API answer unchanged with --json', async function () {
      const { version } = JSON.parse(await fs.readFile(path.join(path.dirname(CliPath), '..', '..', 'package.json'), 'utf8')) as { version: string };
      const human = await cli(['status']);
      expect(human.code, human.stderr).to.equal(0);
      expect(human.stderr).to.equal('');
      expect(human.stdout).to.match(/^node: +test \(primary\), pid \d+/m);
      expect(human.stdout.split('\n')).to.include(`version:     ${version}`);
      expect(human.stdout).to.match(/^checkpoints: /m);
      expect(human.stdout).to.match(/^failover: +epoch \d+, automatic promotion on/m);
      const body = json<{ href: string; data: { node: { name: string; role: string }; spaces: number; checkpoints: { restoring: unknown } } }>(await cli(['status', '--json']));
      const api = (await d.request('GET', '/api/admin/status')).body as typeof body;
      expect(body.href).to.equal(api.href);
      expect(body.data.node).to.deep.equal(api.data.node);
      expect(body.data.spaces).to.equal(1);
      expect(body.data.checkpoints.restoring).to.equal(null);
      expect(body).to.have.nested.property('data.version', version);
    });
  });

  describe('checkpoint create, list, get, delete', function () {
    it('creates a collection and a space checkpoint, lists both, gets one as the API has it, deletes one', async function () {
      const made = await cli(['checkpoint', 'create', '--description', 'before the upgrade']);
      expect(made.code, made.stderr).to.equal(0);
      const [, collectionId] = /^created checkpoint (\d+) \(collection scope, 1 space, seq \d+, [\d.]+ KiB\)\n$/.exec(made.stdout) ?? expect.fail(made.stdout);
      const space = json<Resource>(await cli(['checkpoint', 'create', '--space', 'test', '--description', 'space only', '--json']));
      expect(space.data).to.include({ scope: 'space', description: 'space only', trigger: 'manual' });
      expect(space.data.spaces).to.deep.equal(['test']);

      const table = await cli(['checkpoint', 'list']);
      expect(table.code, table.stderr).to.equal(0);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).to.match(/^ID +SCOPE +SPACES +TRIGGER +TIME +SIZE +DESCRIPTION$/);
      expect(lines.find((l) => l.startsWith(`${collectionId} `))).to.match(/^\d+ +collection +test +manual +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +[\d.]+ KiB +before the upgrade$/);
      expect(lines.find((l) => l.startsWith(`${space.data.id} `))).to.match(/ space +test +manual .* space only$/);
      const bySpace = json<{ data: Resource[] }>(await cli(['checkpoint', 'list', '--space', 'test', '--json']));
      expect(bySpace.data.map((r) => r.data.id)).to.include.members([Number(collectionId), space.data.id]);

      const got = await cli(['checkpoint', 'get', String(space.data.id), '--json']);
      expect(json<Resource>(got)).to.deep.equal((await d.request('GET', `/api/collection/checkpoint/${space.data.id}`)).body);
      const shown = await cli(['checkpoint', 'get', String(space.data.id)]);
      expect(shown.stdout).to.match(new RegExp(`^sha256: +${space.data.sha256}$`, 'm'));
      expect(shown.stdout).to.match(/^scope: +space$/m);

      const deleted = await cli(['checkpoint', 'delete', String(space.data.id)]);
      expect(deleted.code, deleted.stderr).to.equal(0);
      expect(deleted.stdout).to.equal(`deleted checkpoint ${space.data.id}\n`);
      expect((await d.request('GET', `/api/collection/checkpoint/${space.data.id}`)).status).to.equal(404);
      const gone = await cli(['checkpoint', 'get', String(space.data.id)]);
      expect(gone.code).to.equal(6);
      expect(gone.stderr).to.match(/^checkpointd: checkpoint \d+ does not exist/);
    });
  });

  describe('checkpoint download', function () {
    let cp: Resource;
    let original: Buffer;
    const downloadPath = () => `/api/collection/checkpoint/${cp.data.id}/download`;

    before(async function () {
      cp = (await d.request('POST', '/api/admin/checkpoint', { body: { description: 'to download' } })).body as Resource;
    });

    it('streams the file under the daemon\'s name, checks its SHA-256, leaves no partial file and shows no bar when piped; verify accepts it', async function () {
      const res = await cli(['checkpoint', 'download', String(cp.data.id)]);
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stderr).to.equal('');
      const file = path.join(work, checkpointFile(cp.data.id));
      expect(res.stdout).to.match(new RegExp(`^${checkpointFile(cp.data.id)}: [\\d.]+ KiB, SHA-256 verified\\n$`));
      original = await fs.readFile(file);
      expect(original.length).to.equal(cp.data.size);
      expect(sha256(original)).to.equal(cp.data.sha256);
      expect((await fs.readdir(work)).filter((n) => n.includes('.partial'))).to.deep.equal([]);
      const verified = await cli(['verify', file]);
      expect(verified.code, verified.stderr).to.equal(0);
      expect(verified.stdout).to.match(/: ok: checkpoint \d+, collection scope/);
    });

    it('refuses to overwrite an existing file (exit 1) unless --force', async function () {
      const file = path.join(work, checkpointFile(cp.data.id));
      await fs.writeFile(file, 'mine');
      const refused = await cli(['checkpoint', 'download', String(cp.data.id)]);
      expect(refused.code).to.equal(1);
      expect(refused.stderr).to.match(/exists; use --force/);
      expect(await fs.readFile(file, 'utf8')).to.equal('mine');
      const forced = await cli(['checkpoint', 'download', String(cp.data.id), '--force']);
      expect(forced.code, forced.stderr).to.equal(0);
      expect((await fs.readFile(file)).equals(original)).to.equal(true);
    });

    it('resumes a broken download from its .partial file with a range (206) and ends byte-identical', async function () {
      const out = path.join(work, 'resumed.zip');
      const half = Math.floor(original.length / 2);
      await fs.writeFile(`${out}.partial`, original.subarray(0, half));
      await fs.writeFile(`${out}.partial.etag`, `"${cp.data.sha256}"\n`);
      const before206 = answered(downloadPath(), 206);
      const res = await cli(['checkpoint', 'download', String(cp.data.id), '--out', out, '--json']);
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stderr).to.equal(`checkpointd: resuming ${out} at ${half} of ${original.length} bytes\n`);
      expect(JSON.parse(res.stdout)).to.deep.equal({ file: out, size: original.length, sha256: cp.data.sha256, resumedAt: half });
      expect((await fs.readFile(out)).equals(original)).to.equal(true);
      await waitFor(() => answered(downloadPath(), 206) > before206, { what: 'the daemon to log a 206 for the download' });
      expect(await fs.readdir(work)).to.not.include.members(['resumed.zip.partial', 'resumed.zip.partial.etag']);
    });

    it('resumes under the daemon\'s file name when no --out is given', async function () {
      const name = checkpointFile(cp.data.id);
      await fs.rm(path.join(work, name));
      await fs.writeFile(path.join(work, `${name}.partial`), original.subarray(0, 100));
      await fs.writeFile(path.join(work, `${name}.partial.etag`), `"${cp.data.sha256}"\n`);
      const res = await cli(['checkpoint', 'download', String(cp.data.id)]);
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stderr).to.match(/resuming .* at 100 of \d+ bytes/);
      expect(res.stdout).to.match(/SHA-256 verified \(resumed at 100 bytes\)/);
      expect((await fs.readFile(path.join(work, name))).equals(original)).to.equal(true);
    });

    it('starts over when the partial file came with another ETag (the checkpoint changed)', async function () {
      const out = path.join(work, 'changed.zip');
      await fs.writeFile(`${out}.partial`, Buffer.alloc(Math.floor(original.length / 2), 0x55));
      await fs.writeFile(`${out}.partial.etag`, `"${'0'.repeat(64)}"\n`);
      const before200 = answered(downloadPath(), 200);
      const res = await cli(['checkpoint', 'download', String(cp.data.id), '--out', out]);
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stderr).to.match(/not the one the partial download came from; starting over/);
      expect((await fs.readFile(out)).equals(original)).to.equal(true);
      await waitFor(() => answered(downloadPath(), 200) > before200, { what: 'the daemon to answer the If-Range request in full (200)' });
    });

    it('finishes a partial file that is already whole (416) without downloading it again', async function () {
      const out = path.join(work, 'whole.zip');
      await fs.writeFile(`${out}.partial`, original);
      await fs.writeFile(`${out}.partial.etag`, `"${cp.data.sha256}"\n`);
      const before416 = answered(downloadPath(), 416);
      const res = await cli(['checkpoint', 'download', String(cp.data.id), '--out', out]);
      expect(res.code, res.stderr).to.equal(0);
      expect((await fs.readFile(out)).equals(original)).to.equal(true);
      await waitFor(() => answered(downloadPath(), 416) > before416, { what: 'the daemon to answer 416' });
    });

    it('refuses a download whose bytes do not match the ETag (exit 1) and removes the partial file', async function () {
      const out = path.join(work, 'damaged.zip');
      const damaged = Buffer.from(original.subarray(0, 200));
      damaged[10] = damaged[10]! ^ 0xff;
      await fs.writeFile(`${out}.partial`, damaged);
      await fs.writeFile(`${out}.partial.etag`, `"${cp.data.sha256}"\n`);
      const res = await cli(['checkpoint', 'download', String(cp.data.id), '--out', out]);
      expect(res.code).to.equal(1);
      expect(res.stderr).to.match(/SHA-256 is [0-9a-f]{64}, not [0-9a-f]{64} as the daemon said/);
      expect((await fs.readdir(work)).filter((n) => n.startsWith('damaged.zip'))).to.deep.equal([]);
    });
  });

  describe('checkpoint restore', function () {
    it('brings a space back to the checkpoint\'s data', async function () {
      const before = (await d.request('GET', '/api/space/test/object/k1')).body;
      const cp = json<Resource>(await cli(['checkpoint', 'create', '--space', 'test', '--json']));
      expect((await d.request('PUT', '/api/space/test/object/k1', { body: { changed: true } })).status).to.be.oneOf([200, 201]);
      expect((await d.request('DELETE', '/api/space/test/object/k2')).status).to.be.oneOf([200, 204]);
      const res = await cli(['checkpoint', 'restore', String(cp.data.id), '--space', 'test']);
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stdout).to.match(new RegExp(`^restored space test from checkpoint ${cp.data.id}, journaled at seq \\d+\\n$`));
      expect(res.stderr).to.equal('');
      expect((await d.request('GET', '/api/space/test/object/k1')).body).to.deep.equal(before);
      expect((await d.request('GET', '/api/space/test/object/k2')).status).to.equal(200);
    });
  });

  describe('switchover, pause, resume (a primary without a secondary)', function () {
    it('answers switchover with 409 (exit 7, no standby) and an unknown candidate with 404 (exit 6)', async function () {
      const res = await cli(['switchover']);
      expect(res.code).to.equal(7);
      expect(res.stderr).to.match(/^checkpointd: no standby is connected/);
      const named = await cli(['switchover', '--candidate', 'ghost']);
      expect(named.code).to.equal(6);
      expect(named.stderr).to.match(/no connected standby is named ghost/);
    });

    it('pauses and resumes automatic promotion (exit 0), as status shows', async function () {
      const paused = await cli(['pause']);
      expect(paused.code, paused.stderr).to.equal(0);
      expect(paused.stdout).to.match(/^automatic promotion paused/);
      expect(json<{ data: { failover: { paused: boolean } } }>(await cli(['status', '--json'])).data.failover.paused).to.equal(true);
      const resumed = json<{ data: { paused: boolean } }>(await cli(['resume', '--json']));
      expect(resumed.data.paused).to.equal(false);
      expect(json<{ data: { failover: { paused: boolean } } }>(await cli(['status', '--json'])).data.failover.paused).to.equal(false);
    });
  });

  describe('exit codes', function () {
    it('4 when nothing listens at --url', async function () {
      const port = await DaemonProcess.freePort();
      const res = await cli(['status', '--url', `http://127.0.0.1:${port}`]);
      expect(res.code).to.equal(4);
      expect(res.stderr).to.match(/^checkpointd: cannot reach the daemon at http:\/\/127\.0\.0\.1:\d+: connection refused/);
    });

    it('5 for a token the daemon does not know; --token-file wins over CHECKPOINTD_TOKEN', async function () {
      const bad = await cli(['status'], { CHECKPOINTD_TOKEN: 'not-a-token' });
      expect(bad.code).to.equal(5);
      expect(bad.stderr).to.match(/^checkpointd: the token is not valid/);
      const file = path.join(work, 'token');
      await fs.writeFile(file, `  ${d.token}\n`, { mode: 0o600 });
      const good = await cli(['status', '--token-file', file], { CHECKPOINTD_TOKEN: 'not-a-token' });
      expect(good.code, good.stderr).to.equal(0);
    });

    it('6 for an unknown checkpoint; --json prints the problem on stdout', async function () {
      const res = await cli(['checkpoint', 'get', '999999', '--json']);
      expect(res.code).to.equal(6);
      expect(res.stderr).to.match(/^checkpointd: checkpoint 999999 does not exist/);
      expect(JSON.parse(res.stdout)).to.include({ status: 404 });
    });

    it('2 for usage errors, a request the API calls wrong (400), and no token at all', async function () {
      const [missing, unknown, bad, none] = await Promise.all([
        cli(['checkpoint', 'get']),
        cli(['checkpoint', 'list', '--bogus']),
        cli(['checkpoint', 'get', 'abc']),
        runCli(['status'], { env: { CHECKPOINTD_URL: d.url }, cwd: work }),
      ]);
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.match(/missing required argument 'id'/);
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.match(/unknown option '--bogus'/);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.match(/must be a positive integer/);
      expect(none.code).to.equal(2);
      expect(none.stderr).to.match(/^checkpointd: no API token: set CHECKPOINTD_TOKEN .* or pass --token-file FILE/);
    });
  });

  describe('errors name checkpointd commands, not API routes', function () {
    it('prints the command where the API advises a route; --json keeps the API\'s problem as it came', async function () {
      const [missing, notCovered, badId] = await Promise.all([
        cli(['checkpoint', 'get', '999999', '--json']),
        cli(['checkpoint', 'get', String(((await d.request('POST', '/api/admin/checkpoint')).body as Resource).data.id), '--space', 'ghost']),
        cli(['checkpoint', 'get', 'abc']),
      ]);
      expect(missing.code).to.equal(6);
      expect(missing.stderr).to.equal('checkpointd: checkpoint 999999 does not exist; `checkpointd checkpoint list` lists them\n');
      expect((JSON.parse(missing.stdout) as { detail: string }).detail).to.equal('checkpoint 999999 does not exist; GET /api/collection/checkpoint lists them');
      expect(notCovered.code).to.equal(6);
      expect(notCovered.stderr).to.match(/does not cover space ghost; `checkpointd checkpoint list --space ghost` lists those that do\n$/);
      expect(badId.code).to.equal(2);
      expect(badId.stderr).to.match(/must be a positive integer, as in `checkpointd checkpoint get 3`\n$/);
      for (const res of [missing, notCovered, badId]) expect(res.stderr).to.not.include('/api/');
    });

    it('says which command a token lacks the role for (403, exit 5)', async function () {
      const created = await runCli(['token', 'create', '--config', d.configFile, '--name', 'reader', '--role', 'member']);
      expect(created.code, created.stderr).to.equal(0);
      const res = await cli(['status'], { CHECKPOINTD_TOKEN: created.stdout.trim() });
      expect(res.code).to.equal(5);
      expect(res.stderr).to.equal('checkpointd: token "reader" has role member; this command needs collection-admin\n');
    });
  });

  describe('https with a private CA', function () {
    it('reaches a daemon whose certificate a private CA signed with --ca, and refuses it without (exit 4)', async function () {
      const dir = await tempDir('cpd-cli-tls-');
      let secure: DaemonProcess | undefined;
      try {
        const pki = await makePki(dir);
        secure = await DaemonProcess.start({ config: { api: { tls: { cert: pki.cert, key: pki.key } } }, tls: { ca: await fs.readFile(pki.ca, 'utf8') } });
        expect(secure.url).to.match(/^https:/);
        const secureEnv = { CHECKPOINTD_URL: secure.url, CHECKPOINTD_TOKEN: secure.token };
        const [trusted, untrusted, notPem, fromEnv, optionWins, envNotPem] = await Promise.all([
          runCli(['status', '--ca', pki.ca, '--json'], { env: secureEnv }),
          runCli(['status'], { env: secureEnv }),
          runCli(['status', '--ca', pki.key], { env: secureEnv }),
          runCli(['status', '--json'], { env: { ...secureEnv, CHECKPOINTD_CA: pki.ca } }),
          runCli(['status', '--json', '--ca', pki.ca], { env: { ...secureEnv, CHECKPOINTD_CA: pki.key } }),
          runCli(['status'], { env: { ...secureEnv, CHECKPOINTD_CA: pki.key } }),
        ]);
        expect(trusted.code, trusted.stderr).to.equal(0);
        expect(JSON.parse(trusted.stdout)).to.have.nested.property('data.node.role', 'primary');
        expect(untrusted.code).to.equal(4);
        expect(untrusted.stderr).to.match(/^checkpointd: cannot reach the daemon at https:.*TLS failed: .*--ca FILE or CHECKPOINTD_CA\)/);
        expect(notPem.code).to.equal(2);
        expect(notPem.stderr).to.match(/holds no PEM certificate/);
        // CHECKPOINTD_CA stands in for --ca; --ca wins over it.
        expect(fromEnv.code, fromEnv.stderr).to.equal(0);
        expect(JSON.parse(fromEnv.stdout)).to.have.nested.property('data.node.role', 'primary');
        expect(optionWins.code, optionWins.stderr).to.equal(0);
        expect(envNotPem.code).to.equal(2);
        expect(envNotPem.stderr).to.equal(`checkpointd: the CA file ${pki.key} holds no PEM certificate (-----BEGIN CERTIFICATE-----)\n`);
      } finally {
        await secure?.cleanup();
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe('on a terminal', function () {
    it('draws a progress bar for a download and for a restore', async function () {
      if (!hasScript()) this.skip(); // util-linux `script` gives the command a pseudo-terminal; without it there is no TTY to test
      const cp = (await d.request('POST', '/api/space/test/checkpoint', { body: {} })).body as Resource;
      const out = path.join(work, 'tty.zip');
      const res = await runCliOnTerminal(['checkpoint', 'download', String(cp.data.id), '--out', out], { env, cwd: work });
      expect(res.code, res.output).to.equal(0);
      expect(res.output).to.match(/download \[[^\]]*\] 100%/);
      expect(sha256(await fs.readFile(out))).to.equal(cp.data.sha256);
      const restored = await runCliOnTerminal(['checkpoint', 'restore', String(cp.data.id), '--space', 'test'], { env, cwd: work });
      expect(restored.code, restored.output).to.equal(0);
      expect(restored.output).to.match(/restored space test from checkpoint/);
      expect(restored.output).to.match(/restore \[[^\]]*\] 100%/);
      // Every frame finite and readable, and each bar keeps one total from its first frame to its last.
      for (const [output, label] of [[res.output, 'download'], [restored.output, 'restore']] as const) {
        const frames = progressFrames(output, label);
        expect(frames.length, output).to.be.greaterThan(0);
        for (const frame of frames) expect(frame).to.not.match(BrokenFigure);
        expect(new Set(frames.map(frameTotal)).size, frames.join('\n')).to.equal(1);
      }
    });
  });

  describe('--help', function () {
    const commands: [string[], RegExp[]][] = [
      [['status'], [/--url/, /--token-file/, /--ca/, /--json/]],
      [['checkpoint', 'list'], [/--space/]],
      [['checkpoint', 'create'], [/--space/, /--description/]],
      [['checkpoint', 'get'], [/<id>/]],
      [['checkpoint', 'download'], [/--out/, /--force/, /\.partial/]],
      [['checkpoint', 'restore'], [/--space/]],
      [['checkpoint', 'delete'], [/<id>/]],
      [['switchover'], [/--candidate/]],
      [['pause'], [/--url/]],
      [['resume'], [/--url/]],
    ];
    it('exits 0 for each client command, naming its options, with an example that takes the token from a file', async function () {
      const results = await Promise.all(commands.map(([args]) => runCli([...args, '--help'])));
      results.forEach((res, i) => {
        const [args, patterns] = commands[i]!;
        expect(res.code, args.join(' ')).to.equal(0);
        for (const pattern of patterns) expect(res.stdout, args.join(' ')).to.match(pattern);
        expect(res.stdout, args.join(' ')).to.match(/export CHECKPOINTD_TOKEN=\$\(cat [^)]+\)\n {2}checkpointd /);
        expect(res.stdout, args.join(' ')).to.match(/Exit codes: 0 ok;/);
      });
    });

    it('has an example in the --help of every command, found from the help itself', async function () {
      /** The subcommands a help text lists under "Commands:" (two-space indent; wrapped descriptions are deeper). */
      const listed = (help: string): string[] => {
        const section = help.split(/^Commands:\n/m)[1] ?? '';
        const names: string[] = [];
        for (const line of section.split('\n')) {
          if (line.trim() === '') break;
          const name = /^ {2}(\S+)/.exec(line)?.[1];
          if (name !== undefined && name !== 'help') names.push(name);
        }
        return names;
      };
      const seen: string[] = [];
      const visit = async (args: string[]): Promise<void> => {
        const res = await runCli([...args, '--help']);
        const shown = ['checkpointd', ...args].join(' ');
        expect(res.code, shown).to.equal(0);
        const example = /\nExamples?:\n((?: {2}\S.*\n)+)/.exec(res.stdout)?.[1];
        expect(example, `${shown} --help has no Example section`).to.be.a('string');
        expect(example, shown).to.include(shown);
        seen.push(args.join(' '));
        await Promise.all(listed(res.stdout).map((name) => visit([...args, name])));
      };
      await visit([]);
      expect(seen).to.include.members(['', 'run', 'token', 'token create', 'verify', 'export', 'status', 'checkpoint', 'checkpoint download', 'checkpoint restore', 'switchover', 'pause', 'resume']);
      expect(seen).to.have.length.at.least(17);
    });
  });
});
