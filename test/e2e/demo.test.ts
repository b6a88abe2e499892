import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { childEnv, CliPath } from '../helpers/daemon-process.js';

describe('npm run demo', function () {
  this.timeout(60_000);

  it('kills the primary, shows the secondary taking over with every write intact, and removes its folder', async () => {
    const child = spawn(process.execPath, [path.join(path.dirname(CliPath), 'demo.js')], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, out + err).to.equal(0);
    expect(out).to.match(/Killing node-a with SIGKILL/);
    expect(out).to.match(/node-b is the primary [\d.]+ s later/);
    expect(out).to.match(/Read every acknowledged write back from node-b: 300 of 300 intact\./);
    expect(out).to.match(/joined as a secondary of node-b/);
    const root = /A two-node installation in (\S+):/.exec(out)?.[1];
    expect(root, out).to.be.a('string');
    await fs.access(root!).then(
      () => expect.fail(`the demo left ${root} behind`),
      (e: NodeJS.ErrnoException) => expect(e.code).to.equal('ENOENT'),
    );
  });
});
