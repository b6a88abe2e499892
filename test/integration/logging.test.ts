import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CliPath, DaemonProcess, tempDir } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

describe('logging', function () {
  it('writes one JSON object per line, and never a token, a token hash or an Authorization header', async function () {
    const d = await DaemonProcess.start({ config: { log: { level: 'debug' } } });
    try {
      const member = (await run(process.execPath, [CliPath, 'token', 'create', '--config', d.configFile, '--name', 'm', '--role', 'member'])).stdout.trim();
      await d.request('GET', '/api/space');                                   // good admin token
      await d.request('GET', '/api/space', { token: member });                // good member token
      await d.request('POST', '/api/space', { token: member, body: { id: 'x', template: { name: 'a', version: '1' } } }); // 403
      await d.request('GET', '/api/space', { token: 'cpd_not-a-real-token-but-shaped-like-one' }); // 401
      await d.request('GET', '/api/space', { headers: { authorization: 'Basic dXNlcjpwYXNz' }, token: null }); // wrong scheme
      await d.request('GET', `/api/space/${member}`);                         // a token in a URL
      await d.kill('SIGTERM');
      const hashes = (JSON.parse(await fs.readFile(path.join(d.dir, 'data', 'tokens.json'), 'utf8')) as { tokens: { hash: string }[] }).tokens.map((t) => t.hash);
      const log = d.stdout + d.stderr;
      expect(log).to.include('request refused'); // the failed attempts were logged...
      for (const secret of [d.token, member, 'cpd_not-a-real-token', 'dXNlcjpwYXNz', ...hashes, ...hashes.map((h) => h.slice(7))]) {
        expect(log, `log leaks ${secret.slice(0, 8)}…`).to.not.include(secret); // ...without the secret
      }
      expect(log).to.not.match(/authorization/i);
      for (const line of d.stdout.trim().split('\n')) {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        expect(parsed).to.include.keys('level', 'message', 'timestamp');
      }
      expect(d.lines.some((l) => l.level === 'debug')).to.equal(true);
    } finally {
      await d.cleanup();
    }
  });

  it('takes its level from the configuration (warn: no info or debug lines)', async function () {
    const dir = await tempDir();
    const port = await DaemonProcess.freePort();
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ api: { port }, paths: { data: 'data', fileVault: 'FileVault' }, log: { level: 'warn' } }));
    const d = DaemonProcess.spawn(dir, path.join(dir, 'config.json'));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.status === 200, { what: 'the daemon to serve' });
      await d.kill('SIGTERM');
      expect(d.lines.length).to.be.greaterThan(0); // the admin-token line is a warning
      expect(d.lines.filter((l) => l.level !== 'warn' && l.level !== 'error')).to.deep.equal([]);
    } finally {
      await d.cleanup();
    }
  });
});
