/**
 * Prometheus tooling is clean: `promtool check metrics` accepts what both
 * roles expose (real daemons on loopback, a primary and a standby), and the
 * alert rules that ship in config/prometheus/ pass `promtool check rules` and
 * their own unit tests (`promtool test rules`). promtool is in Debian's
 * `prometheus` package, which .ci/run installs; where it is missing the tests
 * are skipped, saying so.
 */
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { node, seedSpace } from '../helpers/cluster.js';
import { tempDir, type DaemonProcess } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

const RulesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'prometheus');
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

/** Run promtool with `args` (and `input` on stdin): its exit status and output. */
function promtool(args: string[], input?: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', args, { cwd: RulesDir, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') return reject(new Error(`promtool ${args.join(' ')} did not run: ${err.message}`));
      resolve({ code: err === null ? 0 : (err.code as number), output: `${stdout}${stderr}` });
    });
    child.stdin!.end(input ?? '');
  });
}

describe('Prometheus tooling (promtool)', function () {
  before(function () {
    if (!hasPromtool) {
      console.log('      promtool is not installed (Debian package prometheus); skipping');
      this.skip();
    }
  });

  describe('check metrics on both roles', function () {
    let root: string;
    let a: DaemonProcess;
    let b: DaemonProcess;
    before(async function () {
      root = await tempDir('cpd-promtool-');
      a = await node(root, 'a', 'primary');
      await seedSpace(a);
      b = await node(root, 'b', 'secondary');
      await waitFor(async () => (await b.request('GET', '/standby', { token: null })).status === 200, { what: 'the standby to catch up' });
      // Every family present: a checkpoint (histogram, timestamps) and a request or two.
      expect((await a.request('POST', '/api/admin/checkpoint')).status).to.equal(201);
    });
    after(async function () {
      await a?.cleanup();
      await b?.cleanup();
      await fs.rm(root, { recursive: true, force: true });
    });

    for (const which of ['primary', 'secondary'] as const) {
      it(`accepts the ${which}'s /metrics`, async function () {
        const d = which === 'primary' ? a : b;
        const text = (await d.request('GET', '/metrics', { token: null })).text;
        expect(text).to.include('checkpointd_role');
        const { code, output } = await promtool(['check', 'metrics'], text);
        expect(output).to.equal('');
        expect(code).to.equal(0);
      });
    }
  });

  it('accepts the shipped alert rules (promtool check rules)', async function () {
    const { code, output } = await promtool(['check', 'rules', 'alerts.yml']);
    expect(code, output).to.equal(0);
    expect(output).to.match(/SUCCESS: \d+ rules found/);
  });

  it("passes the rules' unit tests: no recent checkpoint (also when none ever existed), the primary count (also when no node reports), …", async function () {
    const { code, output } = await promtool(['test', 'rules', 'alerts.test.yml']);
    expect(code, output).to.equal(0);
    expect(output).to.include('SUCCESS');
  });
});
