/**
 * The storage-fault suite: real faults on the FileVault of a real daemon,
 * during a commit, a checkpoint and a restore. No mocks:
 *
 * - disk full: the FileVault lives on its own small tmpfs, filled to the last
 *   byte with a ballast file, then freed;
 * - permission denied: the daemon runs as `nobody`, and the journal and
 *   checkpoint folders (and the checkpoint files) lose their write and read
 *   bits, then get them back;
 * - a vanished FileVault: its folder is renamed away, then back.
 *
 * Each trial is one fault during one kind of request. The request either
 * succeeds for real (a commit goes on through the journal file it already
 * has open: Unix checks permissions at open, and a renamed folder keeps its
 * open files) or gets a clear problem+json error (503, or 507 when the disk is
 * full) whose detail says what to do; nothing acknowledged is lost; no
 * half-written checkpoint is listed; and once the fault clears, the next
 * request of the same kind succeeds without a restart. At the end the daemon
 * is killed (SIGKILL) and started again: every acknowledged write and every
 * listed checkpoint is still there and readable.
 *
 * Needs root (to mount the tmpfs and to run the daemon as `nobody`);
 * elsewhere the report says it skipped, and why.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DaemonProcess, tempDir, type Answer, type ChildUser } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';
import type { Suite, SuiteReport } from './suite.js';

const run = promisify(execFile);

/** Size of the FileVault's own file system: small enough to fill in a moment. */
const VaultSize = '8m';
/** Most commits sent to use up the journal's last partly-filled page once the disk is full. */
const MaxCommitsToFill = 400;
/** How long a request may take to succeed again once a fault clears (the node may have had to re-take its lease). */
const ResumeTimeoutMs = 30_000;
/**
 * Failover timings of the (lone) node: the short faults end well inside the
 * lease's validity (leaseTtlMs - safetyMarginMs), the long one outlasts it.
 */
const Failover = { heartbeatMs: 100, heartbeatTimeoutMs: 500, leaseTtlMs: 2000, renewMs: 200, safetyMarginMs: 500 };

type FaultName = 'disk full' | 'permission denied' | 'vanished FileVault' | 'FileVault gone past the lease';
type OperationName = 'commit' | 'checkpoint' | 'restore';

/** What every trial needs. */
interface Bench {
  root: string;
  vaultMount: string;
  vault: string;
  user: ChildUser;
  daemon: DaemonProcess;
  /** Acknowledged writes to space `s`: key → value. */
  acknowledged: Map<string, unknown>;
  /** The space checkpoint of space `r` that restores restore. */
  restoreId: number;
  keys: number;
  /** Violations found by the faults themselves. */
  violations: string[];
  figures: Record<string, number>;
}

/** A fault: inject it, clear it. */
interface Fault {
  name: FaultName;
  /** Held until the node has fenced itself (its lease lapsed), so that it must take the lease again once the fault clears. */
  outlastsLease?: boolean;
  inject(bench: Bench): Promise<void>;
  clear(bench: Bench): Promise<void>;
}

const diskFull: Fault = {
  name: 'disk full',
  async inject({ vaultMount }) {
    // Large chunks, then ever smaller ones, until not one more byte fits.
    const handle = await fs.open(path.join(vaultMount, 'ballast'), 'w');
    try {
      for (let chunk = 1 << 20; chunk >= 1; chunk >>= 2) {
        const block = Buffer.alloc(chunk, 0x55);
        for (;;) {
          try {
            await handle.write(block);
          } catch {
            break;
          }
        }
      }
    } finally {
      await handle.close();
    }
  },
  async clear({ vaultMount }) {
    await fs.rm(path.join(vaultMount, 'ballast'), { force: true });
  },
};

/** The folders and files a permission fault takes away. */
async function guarded(vault: string): Promise<{ dirs: string[]; files: string[] }> {
  const checkpoints = path.join(vault, 'checkpoint');
  const files = (await fs.readdir(checkpoints)).filter((n) => n.startsWith('Checkpoint-')).map((n) => path.join(checkpoints, n));
  return { dirs: [checkpoints, path.join(vault, 'journal')], files };
}

const permissionDenied: Fault = {
  name: 'permission denied',
  async inject({ vault }) {
    const { dirs, files } = await guarded(vault);
    for (const dir of dirs) await fs.chmod(dir, 0o500);
    for (const file of files) await fs.chmod(file, 0o000);
  },
  async clear({ vault }) {
    const { dirs, files } = await guarded(vault);
    for (const dir of dirs) await fs.chmod(dir, 0o755);
    for (const file of files) await fs.chmod(file, 0o644);
  },
};

const vanished: Fault = {
  name: 'vanished FileVault',
  async inject({ vault }) {
    await fs.rename(vault, `${vault}.gone`);
  },
  async clear({ vault, violations }) {
    // The daemon must not make a new, empty FileVault in its place (a restart would then start from nothing).
    const made = await fs.readdir(vault).catch(() => null);
    if (made !== null) {
      violations.push(`the daemon recreated the FileVault while it was gone (${made.join(', ') || 'empty folder'})`);
      await fs.rm(vault, { recursive: true, force: true });
    }
    await fs.rename(`${vault}.gone`, vault);
  },
};

const gonePastLease: Fault = { ...vanished, name: 'FileVault gone past the lease', outlastsLease: true };

const faults: Fault[] = [diskFull, permissionDenied, vanished, gonePastLease];
const operations: OperationName[] = ['commit', 'checkpoint', 'restore'];

/** What a faulted request must answer when it fails: a problem with a status for storage and a detail that says what to do. */
function unclear(res: Answer): string | null {
  if (res.status !== 503 && res.status !== 507) return `status ${res.status} (expected 503, or 507 when the disk is full)`;
  if (!(res.headers.get('content-type') ?? '').startsWith('application/problem+json')) return `content type ${res.headers.get('content-type')}`;
  const detail = (res.body as { detail?: unknown } | undefined)?.detail;
  if (typeof detail !== 'string') return 'no detail';
  if (!/\b(free|check|grant|mount|retry|put .* back|give)\b/i.test(detail)) return `a detail that does not say what to do: ${detail}`;
  return null;
}

async function put(bench: Bench, space: string, key: string, value: unknown): Promise<Answer> {
  const res = await bench.daemon.request('PUT', `/api/space/${space}/object/${key}`, { body: value });
  if (space === 's' && (res.status === 200 || res.status === 201)) bench.acknowledged.set(key, value);
  return res;
}

/** A write to space `s` with a fresh key. */
async function commitOne(bench: Bench): Promise<Answer> {
  const key = `k${++bench.keys}`;
  return put(bench, 's', key, { key, at: bench.keys });
}

/** Run `trials` fault-during-request trials (a round is every fault during every kind of request). */
async function runSuite({ trials, log }: { trials: number; log: (line: string) => void }): Promise<SuiteReport> {
  const skip = (why: string): SuiteReport => ({ summary: `skipped: ${why}`, violations: [], figures: { skipped: 1 } });
  if (process.getuid?.() !== 0) return skip('needs root to mount a small tmpfs for the FileVault and to run the daemon as nobody');
  const user = await nobody();
  const root = await tempDir('cpd-soak-storage-');
  await fs.chmod(root, 0o755);
  const vaultMount = path.join(root, 'vault-fs');
  await fs.mkdir(vaultMount);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${VaultSize},mode=0755,uid=${user.uid},gid=${user.gid}`, 'tmpfs', vaultMount]);
  } catch (err) {
    await fs.rm(root, { recursive: true, force: true });
    return skip(`cannot mount a tmpfs for the FileVault (${(err as Error).message.split('\n')[0]})`);
  }
  const violations: string[] = [];
  const figures: Record<string, number> = { skipped: 0, trials: 0, refused: 0, refusedDiskFull: 0, acknowledgedUnderFault: 0, resumed: 0, lost: 0, halfWrittenListed: 0, restartChecked: 0 };
  const resumeMs: number[] = [];
  let bench: Bench | null = null;
  try {
    const nodeDir = path.join(root, 'node');
    await fs.mkdir(nodeDir);
    await fs.chown(nodeDir, user.uid, user.gid);
    const vault = path.join(vaultMount, 'FileVault');
    const start = (): Promise<DaemonProcess> => DaemonProcess.start({ dir: nodeDir, user, config: { node: { name: 'solo' }, paths: { fileVault: vault }, failover: Failover } });
    const daemon = await start();
    bench = { root, vaultMount, vault, user, daemon, acknowledged: new Map(), restoreId: 0, keys: 0, violations, figures };
    const expectStatus = async (what: string, res: Promise<Answer>, status: number): Promise<Answer> => {
      const answer = await res;
      if (answer.status !== status) throw new Error(`${what}: ${answer.status} ${answer.text}`);
      return answer;
    };
    await expectStatus('template', daemon.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: [] } }), 201);
    for (const id of ['s', 'r']) await expectStatus(`space ${id}`, daemon.request('POST', '/api/space', { body: { id, template: { name: 'plm', version: '1.0' } } }), 201);
    for (let i = 0; i < 20; i++) await expectStatus('seed write', commitOne(bench), 201);
    await expectStatus('seed r', put(bench, 'r', 'kept', { kept: true }), 201);
    const made = await expectStatus('the space checkpoint to restore', daemon.request('POST', '/api/space/r/checkpoint', { body: { description: 'restore source' } }), 201);
    bench.restoreId = (made.body as { data: { id: number } }).data.id;

    for (let t = 0; t < trials; t++) {
      const fault = faults[t % faults.length]!;
      const operation = operations[Math.floor(t / faults.length) % operations.length]!;
      const cell = `${operation} under ${fault.name}`;
      const outcome = await trial(bench, fault, operation, violations);
      figures.trials!++;
      if (outcome.refused) figures.refused!++;
      if (outcome.refused && fault === diskFull) figures.refusedDiskFull!++;
      if (!outcome.refused) figures.acknowledgedUnderFault!++;
      if (outcome.resumeMs !== null) {
        figures.resumed!++;
        resumeMs.push(outcome.resumeMs);
      }
      const key = `${operation}.${fault.name}`;
      figures[key] = (figures[key] ?? 0) + 1;
      if (outcome.refused) figures[`${key}.refused`] = (figures[`${key}.refused`] ?? 0) + 1;
      log(`trial ${t + 1}/${trials}: ${cell}: ${outcome.refused ? `refused ${outcome.status}` : 'succeeded'}${outcome.detail === '' ? '' : ` (${outcome.detail})`}; resumed after ${outcome.resumeMs ?? '—'} ms`);
    }

    // Nothing lost, even across a crash: kill it, start it again, and read everything back.
    await daemon.kill('SIGKILL');
    bench.daemon = await start();
    const listed = await bench.daemon.query('/api/space/s/object');
    const present = new Map((listed.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, JSON.stringify(o.data)]));
    const lost = [...bench.acknowledged].filter(([k, v]) => present.get(k) !== JSON.stringify(v));
    figures.lost = lost.length;
    for (const [k] of lost.slice(0, 20)) violations.push(`acknowledged write ${k} is missing after the faults and a restart`);
    await checkCheckpoints(bench, 'after the restart', violations, figures);
    figures.restartChecked = 1;
    figures.acknowledged = bench.acknowledged.size;
    figures.resumeMaxMs = Math.round(Math.max(0, ...resumeMs));
    const summary =
      `${figures.trials} trials (${faults.map((f) => f.name).join(', ')} × ${operations.join(', ')}) on a ${VaultSize} tmpfs FileVault, daemon as nobody; ` +
      `${figures.refused} requests refused with a clear 503/507, ${figures.acknowledgedUnderFault} succeeded despite the fault; ` +
      `${figures.resumed} resumed without a restart (slowest ${figures.resumeMaxMs} ms); ${bench.acknowledged.size} writes acknowledged, ${lost.length} lost after a SIGKILL restart; ` +
      `${figures.halfWrittenListed} half-written checkpoints listed`;
    return { summary, violations, figures };
  } finally {
    if (bench !== null) await bench.daemon.kill('SIGKILL');
    await fs.rm(path.join(vaultMount, 'ballast'), { force: true }).catch(() => undefined);
    await run('umount', [vaultMount]).catch(() => run('umount', ['-l', vaultMount]));
    await fs.rm(root, { recursive: true, force: true });
  }
}

/** Every listed checkpoint reads, and the daemon knows of no unreadable one. */
async function checkCheckpoints(bench: Bench, when: string, violations: string[], figures: Record<string, number>): Promise<void> {
  const status = await bench.daemon.request('GET', '/api/admin/status');
  const unreadable = (status.body as { data: { checkpoints: { unreadable: { id: number; problem: string }[] } } }).data.checkpoints.unreadable;
  for (const u of unreadable) {
    figures.halfWrittenListed!++;
    violations.push(`${when}: checkpoint ${u.id} is unreadable: ${u.problem}`);
  }
  const listed = await bench.daemon.request('GET', '/api/collection/checkpoint');
  for (const c of (listed.body as { data: { data: { id: number } }[] }).data) {
    const download = await bench.daemon.request('GET', `/api/collection/checkpoint/${c.data.id}/download`);
    if (download.status !== 200) violations.push(`${when}: listed checkpoint ${c.data.id} cannot be downloaded (${download.status})`);
  }
  const temps = (await fs.readdir(path.join(bench.vault, 'checkpoint'))).filter((n) => n.startsWith('.tmp-'));
  if (temps.length > 0) violations.push(`${when}: temp files left in the checkpoint folder: ${temps.join(', ')}`);
}

interface Outcome {
  refused: boolean;
  status: number;
  detail: string;
  resumeMs: number | null;
}

/** One fault during one kind of request, then the checks. */
async function trial(bench: Bench, fault: Fault, operation: OperationName, violations: string[]): Promise<Outcome> {
  const cell = `${operation} under ${fault.name}`;
  const { daemon } = bench;
  const before = (await daemon.request('GET', '/api/collection/checkpoint')).body as { data: { data: { id: number } }[] };
  const checkpointsBefore = before.data.map((c) => c.data.id);
  // Space r carries a write the restore undoes: still there after a refused restore, gone after one that worked.
  const dirty = await put(bench, 'r', 'dirty', { dirty: true });
  if (dirty.status !== 201 && dirty.status !== 200) throw new Error(`${cell}: preparing space r failed: ${dirty.status} ${dirty.text}`);

  const request = (): Promise<Answer> => {
    if (operation === 'commit') return commitOne(bench);
    if (operation === 'checkpoint') return daemon.request('POST', '/api/admin/checkpoint', { body: { description: cell } });
    return daemon.request('POST', `/api/collection/checkpoint/${bench.restoreId}`);
  };
  const succeeded = (res: Answer): boolean => res.status === 200 || res.status === 201;

  const lapsesBefore = daemon.lines.filter((l) => l.message === 'lease lost').length;
  await fault.inject(bench);
  let res: Answer;
  try {
    if (fault.outlastsLease === true) {
      await waitFor(() => daemon.lines.filter((l) => l.message === 'lease lost').length > lapsesBefore, { what: `${cell}: the node to fence itself`, timeoutMs: ResumeTimeoutMs });
    }
    if (fault === diskFull && operation !== 'checkpoint') {
      // The journal's last page may still have room: commits are acknowledged (and must be kept) until it is used up.
      for (let i = 0; i < MaxCommitsToFill && succeeded(await commitOne(bench)); i++);
    }
    res = await request();
  } finally {
    await fault.clear(bench);
  }
  const refused = !succeeded(res);
  const problemDetail = (res.body as { detail?: unknown } | undefined)?.detail;
  const detail = refused ? (typeof problemDetail === 'string' ? problemDetail : res.text).slice(0, 300) : '';
  if (refused) {
    const why = unclear(res);
    if (why !== null) violations.push(`${cell}: the refusal is not clear: ${why}`);
  } else if (fault === diskFull) {
    violations.push(`${cell}: succeeded on a full disk (${res.status}); the fault was not injected`);
  } else if (fault.outlastsLease === true) {
    violations.push(`${cell}: succeeded (${res.status}) on a node whose lease had lapsed`);
  }

  // After a refused restore, space r is as it was; after a successful one, as in the checkpoint.
  const dirtyNow = (await daemon.request('GET', '/api/space/r/object/dirty')).status;
  if (operation === 'restore' && refused && dirtyNow !== 200) violations.push(`${cell}: a refused restore changed space r`);
  if (operation === 'restore' && !refused && dirtyNow !== 404) violations.push(`${cell}: a restore that answered ${res.status} did not restore space r`);
  // A refused checkpoint is not listed, half-written or whole.
  const after = (await daemon.request('GET', '/api/collection/checkpoint')).body as { data: { data: { id: number } }[] };
  const appeared = after.data.map((c) => c.data.id).filter((id) => !checkpointsBefore.includes(id));
  if (operation === 'checkpoint' && refused && appeared.length > 0) violations.push(`${cell}: a refused checkpoint is listed (${appeared.join(', ')})`);

  // Once the fault has cleared, the same kind of request succeeds, without a restart.
  const cleared = performance.now();
  let resumeMs: number | null = null;
  try {
    if (operation === 'restore') await put(bench, 'r', 'dirty', { dirty: true });
    await waitFor(async () => succeeded(await request()), { what: `${cell}: the same request to succeed once the fault cleared`, timeoutMs: ResumeTimeoutMs, intervalMs: 100 });
    resumeMs = Math.round(performance.now() - cleared);
    if (fault.outlastsLease === true && operation !== 'commit') await checkNotWhileFenced(daemon, lapsesBefore, operation, cell, violations);
  } catch (err) {
    violations.push(`${cell}: ${(err as Error).message}`);
  }
  if (daemon.exit !== null) throw new Error(`${cell}: the daemon exited (${JSON.stringify(daemon.exit)})`);

  // Every acknowledged write is readable now.
  const listed = await daemon.query('/api/space/s/object');
  const present = new Map((listed.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, JSON.stringify(o.data)]));
  const lost = [...bench.acknowledged].filter(([k, v]) => present.get(k) !== JSON.stringify(v));
  for (const [k] of lost.slice(0, 5)) violations.push(`${cell}: acknowledged write ${k} is missing`);
  await checkCheckpoints(bench, cell, violations, bench.figures);
  return { refused, status: res.status, detail, resumeMs };
}

/** What the daemon logs when a checkpoint or a restore is done. */
const DoneMessage = { checkpoint: 'checkpoint created', restore: 'checkpoint restored' } as const;

/**
 * After its lease lapsed, the node did this kind of request only once it was
 * the primary again: a fenced node must not checkpoint (nor roll the journal)
 * or restore. Its log is one ordered stream, read once both lines are in.
 */
async function checkNotWhileFenced(daemon: DaemonProcess, lapsesBefore: number, operation: 'checkpoint' | 'restore', cell: string, violations: string[]): Promise<void> {
  const lapse = daemon.lines.map((l, i) => (l.message === 'lease lost' ? i : -1)).filter((i) => i >= 0)[lapsesBefore]!;
  const after = (message: string): number => daemon.lines.findIndex((l, i) => i > lapse && l.message === message);
  await waitFor(() => after(DoneMessage[operation]) >= 0 && after('promoted to primary') >= 0, { what: `${cell}: the log of the promotion and of the ${operation}`, timeoutMs: 5000 });
  if (after(DoneMessage[operation]) < after('promoted to primary')) violations.push(`${cell}: the node did a ${operation} while fenced, before it was the primary again`);
}

/** The uid and gid of `nobody`, from /etc/passwd (65534 where it is not listed). */
async function nobody(): Promise<ChildUser> {
  const passwd = await fs.readFile('/etc/passwd', 'utf8').catch(() => '');
  const line = passwd.split('\n').find((l) => l.startsWith('nobody:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  return { uid: Number(uid ?? 65534), gid: Number(gid ?? 65534) };
}

/** `npm run soak -- storage`: every fault during every kind of request, five rounds. */
export const storage: Suite = { soakTrials: 5 * faults.length * operations.length, run: runSuite };
