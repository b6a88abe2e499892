/**
 * Crash during checkpoint: SIGKILL a real daemon at random moments while a
 * checkpoint is being written, with writers committing all along, then
 * restart it on the same folder and check the promises of docs/ARCHITECTURE.md:
 * - every checkpoint the API lists verifies end to end (the real
 *   `checkpointd verify`), and status reports none unusable;
 * - the temp files the kill left in FileVault/checkpoint are gone once the
 *   restarted daemon listens;
 * - every acknowledged write is served with its value, a write in flight at
 *   the kill is there or not (never anything else), no transaction is partial.
 *
 * One daemon folder per run. Each trial asks for a checkpoint (by hand,
 * POST /api/admin/checkpoint, or by crossing a small journal threshold) and
 * kills the daemon a random fraction (0 to 1.3) of the mean checkpoint
 * duration after it started; the checkpoint is made slow enough to hit (a few
 * MB of poorly compressible objects). Whether a checkpoint temp file was on
 * disk at the kill is the proof the fault hit the window. SOAK_SEED replays a
 * run's choices (the kill moments still depend on timing).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli } from '../helpers/cli-process.js';
import { DaemonProcess, QuietCheckpoints, tempDir, type LogLine } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';
import type { Suite, SuiteOptions, SuiteReport } from './suite.js';
import { createSpace, Rng, runSeed, WriteModel } from './workload.js';

/** The daemon configuration of the suite: journal-threshold checkpoints every 128 KiB, one after each crash. */
const Config = {
  checkpoint: {
    journalThreshold: '128KiB',
    coalesceMs: 0,
    events: { ...QuietCheckpoints.events, 'crash-recovery': true },
  },
};

/** Options beyond the common ones, for the few-trial test. */
export interface CrashOptions extends SuiteOptions {
  /** The seed; SOAK_SEED or a random one when absent. */
  seed?: number;
  /** Objects of 4 KiB loaded before the first trial (1000: about 4 MiB). */
  bulkObjects?: number;
  /** Kills land at a random fraction of the mean checkpoint duration up to this (1.3: some land after it ends). */
  maxKillFraction?: number;
}

const isCheckpointTemp = (name: string): boolean => name.startsWith('.tmp-Checkpoint-');

function linesFrom(d: DaemonProcess, from: number, message: string, trigger?: string): LogLine | undefined {
  return d.lines.slice(from).find((l) => l.message === message && (trigger === undefined || l.trigger === trigger));
}

/** Run the crash suite. */
export async function runCrash(options: CrashOptions): Promise<SuiteReport> {
  const { log, trials } = options;
  const seed = runSeed(log, options.seed);
  const model = new WriteModel(new Rng(seed));
  const dir = await tempDir('cpd-soak-crash-');
  const checkpointDir = path.join(dir, 'FileVault', 'checkpoint');
  const violations: string[] = [];
  const figures = { trials: 0, kills: 0, killsInWindow: 0, early: 0, mid: 0, late: 0, after: 0, manual: 0, automatic: 0, checkpointsVerified: 0, leftoversRemoved: 0, ackedChecked: 0, lost: 0, meanCheckpointMs: 0 };
  const durations: number[] = [];
  // Log lines of each daemon already looked at for checkpoint durations.
  const read = new Map<DaemonProcess, number>();
  const noteDurations = (d: DaemonProcess): void => {
    for (const l of d.lines.slice(read.get(d) ?? 0)) if (l.message === 'checkpoint created' && typeof l.ms === 'number') durations.push(l.ms);
    read.set(d, d.lines.length);
  };
  const meanMs = (): number => (durations.length === 0 ? 50 : durations.reduce((a, b) => a + b, 0) / durations.length);
  const verified = new Set<string>();

  let d = await DaemonProcess.start({ dir, config: Config });
  try {
    await createSpace(d);
    await model.loadBulk(d, options.bulkObjects ?? 1000, 4096);
    const first = await d.request('POST', '/api/admin/checkpoint', { body: { description: 'warm-up' } });
    if (first.status !== 201) throw new Error(`warm-up checkpoint: ${first.status} ${first.text}`);
    log(`${model.acked} objects loaded; warm-up checkpoint ${(first.body as { data: { size: number } }).data.size} bytes`);

    for (let i = 1; i <= trials; i++) {
      const rng = new Rng(seed ^ Math.imul(i, 0x9e3779b9));
      const manual = rng.next() < 0.5;
      const fraction = rng.next() * (options.maxKillFraction ?? 1.3);
      noteDurations(d);
      const window = meanMs();
      let stop = false;
      const startAcked = model.acked;
      const writing = model.writeUntil(d, 3, () => stop);
      const from = d.lines.length;
      let asked: Promise<unknown> = Promise.resolve();
      if (manual) {
        await waitFor(() => model.acked >= startAcked + 10 || d.exit !== null, { what: 'writers to get going', timeoutMs: 20_000 });
        asked = d.request('POST', '/api/admin/checkpoint', { body: { description: `crash trial ${i}` } }).catch(() => undefined);
      }
      // Measured from when the checkpoint starts, not when it was asked for (it may queue behind another).
      await waitFor(() => linesFrom(d, from, 'checkpoint started', manual ? 'manual' : 'journal-threshold') ?? d.exit !== null, { what: 'the checkpoint to start', timeoutMs: 30_000 });
      const delay = fraction * window;
      await sleep(delay);
      await d.kill('SIGKILL');
      stop = true;
      await writing;
      await asked;
      figures.kills++;
      figures[manual ? 'manual' : 'automatic']++;
      figures[fraction < 1 / 3 ? 'early' : fraction < 2 / 3 ? 'mid' : fraction < 1 ? 'late' : 'after']++;
      noteDurations(d);

      const leftovers = (await fs.readdir(checkpointDir)).filter((n) => n.startsWith('.tmp-'));
      const inWindow = leftovers.some(isCheckpointTemp);
      if (inWindow) figures.killsInWindow++;

      d = await DaemonProcess.start({ dir, config: Config });
      const where = `trial ${i} (${manual ? 'manual' : 'automatic'}, kill at ${fraction.toFixed(2)} of ${Math.round(window)} ms${inWindow ? ', temp file present' : ''})`;
      const after = new Set(await fs.readdir(checkpointDir));
      const stayed = leftovers.filter((n) => after.has(n));
      if (stayed.length > 0) violations.push(`${where}: leftovers not removed at start-up: ${stayed.join(', ')}`);
      figures.leftoversRemoved += leftovers.length - stayed.length;

      const status = await d.request('GET', '/api/admin/status');
      const unusable = (status.body as { data: { checkpoints: { unreadable: unknown[] } } }).data.checkpoints.unreadable;
      if (unusable.length > 0) violations.push(`${where}: status reports unusable checkpoints after a crash: ${JSON.stringify(unusable)}`);

      const listed = await d.request('GET', '/api/collection/checkpoint');
      for (const item of (listed.body as { data: { data: { id: number; sha256: string } }[] }).data) {
        const key = `${item.data.id}:${item.data.sha256}`;
        if (verified.has(key)) continue;
        const file = path.join(checkpointDir, `Checkpoint-${String(item.data.id).padStart(9, '0')}`);
        const result = await runCli(['verify', file]);
        if (result.code !== 0) {
          // Retention may have removed it since the listing: only a file still there counts.
          if (await fs.stat(file).then(() => true, () => false)) violations.push(`${where}: listed checkpoint ${item.data.id} does not verify: ${result.stderr.trim()}`);
          continue;
        }
        verified.add(key);
        figures.checkpointsVerified++;
      }

      const problems = model.checkAndAdopt(await WriteModel.served(d), where);
      violations.push(...problems);
      figures.lost += problems.length;
      figures.ackedChecked = model.acked;
      figures.trials++;
      log(`${where}: ${model.acked - startAcked} writes acknowledged, ${leftovers.length} leftover(s) removed, ${problems.length} problem(s)`);
    }
  } finally {
    noteDurations(d);
    await d.kill('SIGKILL');
    if (violations.length === 0) await fs.rm(dir, { recursive: true, force: true });
    else log(`daemon folder kept for inspection: ${dir}`);
  }
  figures.meanCheckpointMs = Math.round(meanMs());
  const f = figures;
  const summary =
    `${f.trials} trials (${f.manual} manual, ${f.automatic} journal-threshold checkpoints), seed ${seed}: ${f.kills} SIGKILLs, ${f.killsInWindow} while a checkpoint temp file existed; ` +
    `kill point / checkpoint duration (mean ${f.meanCheckpointMs} ms): early ${f.early}, mid ${f.mid}, late ${f.late}, after ${f.after}; ` +
    `${f.checkpointsVerified} listed checkpoints verified by checkpointd verify, ${f.leftoversRemoved} leftover temp files removed at start-up; ` +
    `${f.ackedChecked} acknowledged writes checked, problems: ${f.lost}`;
  return { summary, violations, figures };
}

/** The crash suite for `npm run soak -- crash`. */
export const crashSuite: Suite = {
  soakTrials: 100,
  run: (options) => runCrash(options),
};
