/**
 * Automatic checkpoints on real daemons on loopback ports: the journal
 * threshold (inotify and polling), each system event, the cron schedule,
 * status, and a disk-full failure on a real tmpfs where this machine lets the
 * test mount one (the in-process suite covers the same with a fault injected
 * at node:fs, for machines where it cannot).
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DaemonProcess, QuietCheckpoints, tempDir } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);

interface Item {
  data: { id: number; trigger: string; seq: number; description: string };
}

interface AutoStatus {
  newest: { id: number; trigger: string; time: string; durationMs: number; size: number; seq: number } | null;
  journalBytesSince: number | null;
  journalThreshold: number | null;
  schedule: string | null;
  nextScheduled: string | null;
  state: string;
  lastFailure: { error: string; attempts: number; retryAt: string; triggers: string[] } | null;
}

async function checkpoints(d: DaemonProcess): Promise<Item['data'][]> {
  const res = await d.request('GET', '/api/collection/checkpoint');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: Item[] }).data.map((i) => i.data);
}

async function auto(d: DaemonProcess): Promise<AutoStatus> {
  const res = await d.request('GET', '/api/admin/status');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: { checkpoints: { automatic: AutoStatus } } }).data.checkpoints.automatic;
}

async function ok(d: DaemonProcess, method: string, url: string, body: unknown): Promise<void> {
  const res = await d.request(method, url, { body });
  expect(res.status, `${method} ${url}: ${res.text}`).to.be.within(200, 299);
}

async function space(d: DaemonProcess, id = 's1'): Promise<void> {
  await ok(d, 'POST', '/api/template', { name: 'plm', version: '1.0', indexes: ['kind'] });
  await ok(d, 'POST', '/api/space', { id, template: { name: 'plm', version: '1.0' } });
}

/** Write about `bytes` of journal in transactions of ~8 KiB. */
async function write(d: DaemonProcess, bytes: number, tag = 'w'): Promise<void> {
  const filler = 'x'.repeat(1000);
  for (let done = 0, n = 0; done < bytes; done += 8 * 1000, n++) {
    const ops = Array.from({ length: 8 }, (_, i) => ({ op: 'put', key: `${tag}-${n}-${i}`, value: { kind: 'Part', filler } }));
    await ok(d, 'POST', '/api/space/s1/transaction', { ops });
  }
}

const triggerAppears = (d: DaemonProcess, trigger: string) => waitFor(async () => (await checkpoints(d)).find((c) => c.trigger === trigger), { what: `a checkpoint with trigger ${trigger}`, timeoutMs: 20_000 });

const allEvents = { 'space-created': true, 'space-upgraded': true, 'template-loaded': true, 'restore-done': true, promotion: true, 'clean-shutdown': true, 'crash-recovery': true };

describe('automatic checkpoints (real daemons on loopback)', function () {
  this.timeout(60_000);
  const daemons: DaemonProcess[] = [];
  const start = async (config: Record<string, unknown>, dir?: string): Promise<DaemonProcess> => {
    const d = await DaemonProcess.start({ config: { checkpoint: config }, ...(dir === undefined ? {} : { dir }) });
    daemons.push(d);
    return d;
  };
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.cleanup();
  });

  for (const usePolling of [false, true]) {
    it(`makes a checkpoint when the journal passes checkpoint.journalThreshold (${usePolling ? 'chokidar polling, as on NFS/SMB' : 'chokidar file events'})`, async () => {
      const threshold = 64 * 1024;
      const d = await start({ journalThreshold: '64KiB', coalesceMs: 0, watch: { usePolling, intervalMs: 100 } });
      await space(d);
      expect((await checkpoints(d)).length).to.equal(0);
      await write(d, threshold + 16 * 1024);
      const made = await triggerAppears(d, 'journal-threshold').catch(async (err: Error) => {
        throw new Error(`${err.message}; status ${JSON.stringify(await auto(d))}; journal ${JSON.stringify(await fs.readdir(path.join(d.dir, 'FileVault', 'journal')))}`);
      });
      const status = await waitFor(async () => {
        const s = await auto(d);
        return s.newest?.id === made.id && s.state === 'idle' ? s : null;
      }, { what: 'status to show the new checkpoint' });
      expect(status.journalThreshold).to.equal(threshold);
      expect(status.newest!.trigger).to.equal('journal-threshold');
      expect(status.newest!.durationMs).to.be.a('number');
      expect(status.newest!.size).to.be.above(0);
      expect(status.journalBytesSince, 'the journal rolled: the count starts again').to.be.below(threshold);
      const journal = (await fs.readdir(path.join(d.dir, 'FileVault', 'journal'))).filter((n) => n.endsWith('.log')).sort();
      expect(Number(/\d+/.exec(journal.at(-1)!)![0]), 'a new journal file began after the checkpoint').to.be.above(made.seq);
    });
  }

  it('makes a checkpoint for each system event switched on, named for it, and none for one switched off', async () => {
    const d = await start({ events: { ...allEvents, 'template-loaded': false }, coalesceMs: 0 });
    await ok(d, 'POST', '/api/template', { name: 'plm', version: '1.0', indexes: [] });
    await ok(d, 'POST', '/api/space', { id: 's1', template: { name: 'plm', version: '1.0' } });
    const created = await triggerAppears(d, 'event:space-created');
    expect((await checkpoints(d)).map((c) => c.trigger), 'template-loaded is off').to.deep.equal(['event:space-created']);
    expect(created.description).to.equal('automatic (event:space-created)');
    await ok(d, 'PUT', '/api/space/s1/object/a', { kind: 'Part' });
    await ok(d, 'POST', '/api/template', { name: 'plm', version: '2.0', indexes: ['kind'] });
    await ok(d, 'PUT', '/api/space/s1/template', { version: '2.0' });
    await triggerAppears(d, 'event:space-upgraded');
    await ok(d, 'PUT', '/api/space/s1/object/b', { kind: 'Doc' });
    const restore = await d.request('POST', `/api/collection/checkpoint/${created.id}`);
    expect(restore.status, restore.text).to.equal(200);
    await triggerAppears(d, 'event:restore-done');
    expect((await checkpoints(d)).map((c) => c.trigger)).to.deep.equal(['event:space-created', 'event:space-upgraded', 'event:restore-done']);
  });

  it('makes a checkpoint when a template is loaded (template-loaded)', async () => {
    const d = await start({ events: { ...QuietCheckpoints.events, 'template-loaded': true }, coalesceMs: 0 });
    await ok(d, 'POST', '/api/template', { name: 'plm', version: '1.0', indexes: [] });
    await triggerAppears(d, 'event:template-loaded');
  });

  it('makes a checkpoint on a clean shutdown, and none on the next if nothing changed', async () => {
    const d = await start({ events: { ...QuietCheckpoints.events, 'clean-shutdown': true } });
    await space(d);
    await write(d, 4000);
    const seq = (await auto(d)).newest;
    expect(seq).to.equal(null);
    await d.kill('SIGTERM');
    expect(d.exit).to.deep.equal({ code: 0, signal: null });
    expect(d.lines.some((l) => l.message === 'checkpoint created' && l.trigger === 'event:clean-shutdown')).to.equal(true);
    const again = await start({ events: { ...QuietCheckpoints.events, 'clean-shutdown': true } }, d.dir);
    const list = await checkpoints(again);
    expect(list.map((c) => c.trigger)).to.deep.equal(['event:clean-shutdown']);
    const newest = (await auto(again)).newest!;
    expect(newest.trigger).to.equal('event:clean-shutdown');
    expect(newest.durationMs, 'made by the previous run: from its manifest time to its file time').to.be.a('number').and.at.least(0).and.below(60_000);
    const status = (await again.request('GET', '/api/admin/status')).body as { data: { recovery: { startCheckpointSeq: number; replayed: number } } };
    expect(status.data.recovery.startCheckpointSeq, 'start-up began at the shutdown checkpoint').to.equal(list[0]!.seq);
    expect(status.data.recovery.replayed).to.equal(0);
    await again.kill('SIGTERM');
    expect(again.lines.some((l) => l.message === 'checkpoint created')).to.equal(false);
  });

  it('makes a checkpoint at start-up after a crash: SIGKILL (no clean-shutdown mark), and a torn journal tail', async () => {
    const events = { ...QuietCheckpoints.events, 'crash-recovery': true };
    const d = await start({ events, coalesceMs: 0 });
    await space(d);
    await write(d, 4000);
    await d.kill('SIGKILL');
    const after = await start({ events, coalesceMs: 0 }, d.dir);
    expect(after.lines.some((l) => l.message === 'the last run did not end cleanly' && l.evidence === 'no clean-shutdown mark (stale pid lock)')).to.equal(true);
    const first = await triggerAppears(after, 'event:crash-recovery');
    await write(after, 4000, 'more');
    await after.kill('SIGTERM');
    // A clean stop, then a torn record at the journal's end.
    const journal = path.join(d.dir, 'FileVault', 'journal');
    const newest = (await fs.readdir(journal)).filter((n) => n.endsWith('.log')).sort().at(-1)!;
    await fs.appendFile(path.join(journal, newest), Buffer.from([0, 0, 1, 0, 9, 9]));
    const torn = await start({ events, coalesceMs: 0 }, d.dir);
    expect(torn.lines.some((l) => l.message === 'the last run did not end cleanly' && l.evidence === 'torn journal tail')).to.equal(true);
    await waitFor(async () => (await checkpoints(torn)).filter((c) => c.trigger === 'event:crash-recovery').length === 2, { what: 'a second crash-recovery checkpoint' });
    expect((await checkpoints(torn)).at(-1)!.seq).to.be.above(first.seq);
  });

  it('makes checkpoints on the cron schedule (per-second expression) and shows the next run', async () => {
    const d = await start({ schedule: '* * * * * *', coalesceMs: 0 });
    const status = await auto(d);
    expect(status.schedule).to.equal('* * * * * *');
    const next = Date.parse(status.nextScheduled!);
    expect(next - Date.now()).to.be.within(-50, 1100);
    await space(d);
    await triggerAppears(d, 'schedule');
    await write(d, 2000);
    // The list shows a checkpoint once it is published; the status's newest once its journal has rolled, just after.
    await waitFor(async () => (await auto(d)).newest !== null, { what: 'the status to show the newest checkpoint' });
    const seq = (await auto(d)).newest!.seq;
    await waitFor(async () => (await checkpoints(d)).filter((c) => c.trigger === 'schedule').length >= 2, { what: 'a second scheduled checkpoint' });
    expect((await checkpoints(d)).at(-1)!.seq).to.be.above(seq);
  });

  it('refuses to start with a bad cron expression, naming the key (exit 2)', async () => {
    const dir = await tempDir();
    const configFile = path.join(dir, 'config.json');
    await fs.writeFile(configFile, JSON.stringify({ api: { port: 0 }, paths: { data: 'data', fileVault: 'FileVault' }, checkpoint: { schedule: '61 * * * *' } }));
    const d = DaemonProcess.spawn(dir, configFile);
    daemons.push(d);
    await d.waitExit();
    expect(d.exit!.code).to.equal(2);
    expect(d.stderr).to.include('"checkpoint.schedule" must be a cron expression');
  });

  it('survives a full disk on a real small file system (tmpfs): temp file removed, earlier checkpoints kept, retried with backoff, shown in status', async function () {
    const dir = await tempDir();
    const checkpointDir = path.join(dir, 'FileVault', 'checkpoint');
    await fs.mkdir(checkpointDir, { recursive: true });
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', checkpointDir]);
    } catch (err) {
      await fs.rm(dir, { recursive: true, force: true });
      // The in-process suite's injected ENOSPC covers this where no file system can be mounted.
      this.skip();
      void err;
    }
    try {
      const d = await start({ compression: 'store', schedule: null, coalesceMs: 0, events: { ...QuietCheckpoints.events, 'space-created': true }, retry: { minMs: 100, maxMs: 400 } }, dir);
      await ok(d, 'POST', '/api/template', { name: 'plm', version: '1.0', indexes: [] });
      await ok(d, 'POST', '/api/space', { id: 's1', template: { name: 'plm', version: '1.0' } });
      const before = await triggerAppears(d, 'event:space-created');
      // Incompressible data well past the file system's 256 KiB, then another event.
      for (let i = 0; i < 20; i++) await ok(d, 'PUT', `/api/space/s1/object/k${i}`, { blob: randomBytes(15_000).toString('base64') });
      await ok(d, 'POST', '/api/space', { id: 's2', template: { name: 'plm', version: '1.0' } });
      const failing = await waitFor(async () => {
        const s = await auto(d);
        return (s.lastFailure?.attempts ?? 0) >= 2 ? s : null;
      }, { what: 'two failed attempts', timeoutMs: 20_000 }).catch((err: Error) => {
        throw new Error(`${err.message}\n${d.stdout.slice(-3000)}`);
      });
      expect(failing.lastFailure!.error).to.include('ENOSPC');
      expect(failing.state).to.equal('retrying');
      const names = await fs.readdir(checkpointDir);
      expect(names.filter((n) => n.startsWith('.tmp-')), 'no temp file left behind').to.deep.equal([]);
      expect((await checkpoints(d)).map((c) => c.id)).to.deep.equal([before.id]);
      const errors = d.lines.filter((l) => l.message === 'automatic checkpoint failed; earlier checkpoints are kept, retrying');
      expect(errors.length).to.be.at.least(2);
      expect(errors[0]!.level).to.equal('error');
      expect(errors[1]!.retryInMs).to.be.above(errors[0]!.retryInMs as number);
      // Space comes back: the next retry succeeds and status clears the failure.
      await run('mount', ['-o', 'remount,size=16m', checkpointDir]);
      await waitFor(async () => (await auto(d)).lastFailure === null && (await checkpoints(d)).length === 2, { what: 'the retry to succeed', timeoutMs: 20_000 });
      await d.kill('SIGKILL');
    } finally {
      await run('umount', [checkpointDir]).catch(() => undefined);
    }
  });
});
