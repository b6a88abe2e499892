/**
 * Corruption: a bit flipped or the file truncated at a random offset, in the
 * newest checkpoint or in the journal of a cleanly stopped daemon; then a
 * restart on the same folder. What each case must give (docs/RELIABILITY.md):
 *
 * - newest checkpoint, flip or truncation: the daemon starts, skips it (falls
 *   back to the older checkpoint and a longer journal replay), reports it in
 *   status (data.checkpoints.unreadable) and /metrics
 *   (checkpointd_checkpoints_unusable), and serves every acknowledged write.
 *   A damaged checkpoint that still loads is an undetected corruption, unless
 *   not one byte of its content changed as Info-ZIP `unzip` reads it: 3 of the
 *   8 bits of a deflated entry's last byte can be padding, which no reader
 *   looks at; such a flip is counted apart ("content unchanged").
 * - newest journal file, truncation at offset o: the daemon starts, cuts the
 *   torn record (logged, status recovery.tailCut), and serves exactly the
 *   state at the last record that ends at or before o. The records after o
 *   were acknowledged and are newer than every checkpoint: no good copy holds
 *   them, so they are gone (counted, not a violation); everything before is kept.
 * - newest journal file, bit flip in record r: if r is the last record, the
 *   daemon cuts r (logged) and serves the state before it, or refuses to
 *   start (exit 3); a cleanly written last record and a torn one look alike,
 *   so the cut is the documented cost (docs/OPERATIONS.md). If records follow r, it must
 *   refuse to start with exit 3, naming the file and r's offset, and leave
 *   the file as it was. Never may it serve r's flipped value.
 * - an older journal file (one start-up does not read: every record in it is
 *   in the data folder): the daemon starts and serves every acknowledged
 *   write; its background check reports the damage (status
 *   data.journal.olderFiles names the file and offset and says that moving
 *   the file(s) aside loses nothing; /metrics
 *   checkpointd_journal_older_files_damaged 1). Done as it says, the daemon
 *   starts again, the check finds the rest clean, and nothing is lost.
 *
 * - a standby's pre-verification: a damaged copy of a checkpoint appears as
 *   the next id; the secondary names it (status failover.standby.checkpoints
 *   .damaged, /metrics) and keeps its good base, and after the primary is
 *   killed it promotes and serves every acknowledged write.
 *
 * Each trial writes, makes two checkpoints, writes more, stops the daemon
 * (SIGTERM), keeps a copy of the folder, damages one file, restarts, checks,
 * and puts the good copy back. SOAK_SEED replays a run exactly.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { node } from '../helpers/cluster.js';
import { DaemonProcess, tempDir } from '../helpers/daemon-process.js';
import { parsePrometheusText } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait-for.js';
import type { Suite, SuiteOptions, SuiteReport } from './suite.js';
import { createSpace, Rng, runSeed, WriteModel } from './workload.js';

/** Options beyond the common ones, for the few-trial test. */
export interface CorruptionOptions extends SuiteOptions {
  /** The seed; SOAK_SEED or a random one when absent. */
  seed?: number;
  /** Standby trials after the others (one per 20 trials, at least one, unless given). */
  standbyTrials?: number;
}

/** One journal frame of a file: where it starts and ends, and its seq. */
interface Frame {
  start: number;
  end: number;
  seq: number;
}

/** The frames of a good journal file (length u32 LE | CRC u32 LE | JSON payload; see src/journal/record.ts). */
function frames(bytes: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let p = 0; p + 8 <= bytes.length;) {
    const end = p + 8 + bytes.readUInt32LE(p);
    if (end > bytes.length) throw new Error(`journal frame at ${p} runs past the end: the good copy is not good`);
    out.push({ start: p, end, seq: (JSON.parse(bytes.subarray(p + 8, end).toString('utf8')) as { seq: number }).seq });
    p = end;
  }
  return out;
}

/** A damage: a flipped bit or a cut, at `offset`. */
interface Fault {
  kind: 'flip' | 'truncate';
  offset: number;
  bit: number;
}

async function damage(file: string, fault: Fault): Promise<void> {
  if (fault.kind === 'truncate') return fs.truncate(file, fault.offset);
  const bytes = await fs.readFile(file);
  bytes[fault.offset]! ^= 1 << fault.bit;
  await fs.writeFile(file, bytes);
}

/** Start the daemon on `dir`, which may refuse: the process, and whether it listens. */
async function startOrRefuse(dir: string): Promise<{ d: DaemonProcess; listening: boolean }> {
  const d = DaemonProcess.spawn(dir, path.join(dir, 'config.json'));
  await waitFor(() => d.lines.some((l) => l.message === 'listening') || d.exit !== null, { what: 'the daemon to listen or exit', timeoutMs: 30_000 });
  if (d.exit !== null) return { d, listening: false };
  d.url = String(d.lines.find((l) => l.message === 'listening')!.url);
  d.token = (await fs.readFile(path.join(dir, 'data', 'admin.token'), 'utf8')).trim();
  return { d, listening: true };
}

interface Status {
  seq: number;
  journal: { olderFiles: { state: string; error: string | null } };
  recovery: { startCheckpointSeq: number; tailCut: unknown };
  checkpoints: { unreadable: { id: number; problem: string }[] };
}

async function status(d: DaemonProcess): Promise<Status> {
  const res = await d.request('GET', '/api/admin/status');
  if (res.status !== 200) throw new Error(`status: ${res.status} ${res.text}`);
  return (res.body as { data: Status }).data;
}

/** The sum of metric `name`'s samples. */
async function metric(d: DaemonProcess, name: string): Promise<number> {
  const res = await d.request('GET', '/metrics', { token: null });
  return parsePrometheusText(res.text).samples.filter((s) => s.name === name).reduce((n, s) => n + s.value, 0);
}

/** The background check of the journal files start-up did not read, once it has finished. */
async function olderFilesChecked(d: DaemonProcess): Promise<Status['journal']['olderFiles']> {
  return waitFor(
    async () => {
      const older = (await status(d)).journal.olderFiles;
      return older.state === 'checking' ? null : older;
    },
    { what: 'the check of the older journal files to finish', timeoutMs: 30_000 },
  );
}

const run = promisify(execFile);

/** Whether two ZIP files hold the same entries with the same bytes, as Info-ZIP `unzip` reads them (independent of our reader). */
async function sameContent(a: Buffer, b: Buffer): Promise<boolean> {
  const dir = await tempDir('cpd-soak-unzip-');
  try {
    const read = async (bytes: Buffer, name: string): Promise<string | null> => {
      const file = path.join(dir, name);
      await fs.writeFile(file, bytes);
      try {
        const list = await run('unzip', ['-Z1', file], { maxBuffer: 1 << 26 });
        const data = await run('unzip', ['-p', file], { maxBuffer: 1 << 26, encoding: 'buffer' });
        return `${list.stdout}\n${createHash('sha256').update(data.stdout).digest('hex')}`;
      } catch {
        return null;
      }
    };
    const [x, y] = [await read(a, 'a.zip'), await read(b, 'b.zip')];
    return x !== null && x === y;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

const exists = (file: string): Promise<boolean> => fs.stat(file).then(() => true, () => false);

interface StandbyView {
  checkpoints: { verified: { id: number } | null; damaged: { id: number; problem: string }[] };
}

async function standbyView(d: DaemonProcess): Promise<StandbyView> {
  const res = await d.request('GET', '/api/admin/status');
  return (res.body as { data: { failover: { standby: StandbyView } } }).data.failover.standby;
}

/**
 * A standby's pre-verification: a primary and a secondary on one vault; a
 * copy of a real checkpoint, flipped or cut at a random offset, appears as
 * the next id. The standby must name it (status failover.standby.checkpoints
 * .damaged, /metrics) and keep the good one as its base; when the primary is
 * then killed, the promoted standby serves every acknowledged write.
 */
async function standbyTrial(seed: number, i: number, log: (line: string) => void, figures: Record<string, number>): Promise<string[]> {
  const rng = new Rng(seed ^ Math.imul(i, 0x85ebca6b));
  const model = new WriteModel(rng);
  const root = await tempDir('cpd-soak-standby-');
  const problems: string[] = [];
  let primary: DaemonProcess | null = null;
  let secondary: DaemonProcess | null = null;
  try {
    primary = await node(root, 'a', 'primary');
    secondary = await node(root, 'b', 'secondary');
    const a = primary;
    const b = secondary;
    await createSpace(a);
    for (let k = 0; k < 20; k++) if (!(await model.writeOnce(a, rng.int(4)))) throw new Error('a write failed on a healthy primary');
    const made = await a.request('POST', '/api/admin/checkpoint', { body: { description: 'standby trial' } });
    if (made.status !== 201) throw new Error(`checkpoint: ${made.status} ${made.text}`);
    const id = (made.body as { data: { id: number } }).data.id;
    await waitFor(async () => (await standbyView(b)).checkpoints.verified?.id === id, { what: 'the standby to verify the checkpoint', timeoutMs: 20_000 });
    const dir = path.join(root, 'FileVault', 'checkpoint');
    const original = await fs.readFile(path.join(dir, `Checkpoint-${String(id).padStart(9, '0')}`));
    const fault: Fault = { kind: rng.next() < 0.5 ? 'flip' : 'truncate', offset: rng.int(original.length), bit: rng.int(8) };
    const planted = path.join(dir, 'planted');
    await fs.writeFile(planted, original);
    await damage(planted, fault);
    const damaged = await fs.readFile(planted);
    await fs.rename(planted, path.join(dir, `Checkpoint-${String(id + 1).padStart(9, '0')}`));
    const where = `standby trial ${i}: ${fault.kind} at offset ${fault.offset}${fault.kind === 'flip' ? ` bit ${fault.bit}` : ''} of a copy of checkpoint ${id} (${original.length} bytes)`;
    const seen = await waitFor(async () => {
      const view = await standbyView(b);
      return view.checkpoints.damaged.some((d) => d.id === id + 1) ? 'damaged' : view.checkpoints.verified?.id === id + 1 ? 'verified' : null;
    }, { what: 'the standby to look at the planted checkpoint', timeoutMs: 20_000 });
    figures.standbyFaults = (figures.standbyFaults ?? 0) + 1;
    if (seen === 'damaged') {
      figures.standbyReported = (figures.standbyReported ?? 0) + 1;
      if ((await metric(b, 'checkpointd_checkpoints_unusable')) < 1) problems.push(`${where}: the standby's /metrics checkpointd_checkpoints_unusable does not count it`);
      if ((await standbyView(b)).checkpoints.verified?.id !== id) problems.push(`${where}: the standby's base is no longer checkpoint ${id}`);
    } else if (!(await sameContent(original, damaged))) {
      figures.undetected = (figures.undetected ?? 0) + 1;
      problems.push(`${where}: undetected: the standby verified it`);
    }
    for (let k = 0; k < 10; k++) if (!(await model.writeOnce(a, rng.int(4)))) throw new Error('a write failed on a healthy primary');
    await a.kill('SIGKILL');
    await waitFor(() => b.lines.some((l) => l.message === 'promoted to primary'), { what: 'the standby to promote', timeoutMs: 20_000 });
    await waitFor(async () => (await b.request('GET', '/primary', { token: null })).status === 200, { what: '/primary on the promoted standby' });
    problems.push(...model.checkAt(await WriteModel.served(b), model.lastAckedSeq(), where).problems);
    log(`${where} -> ${seen === 'damaged' ? 'named by the standby, good base kept' : 'content unchanged, verified'}; promoted standby checked: ${problems.length} problem(s)`);
  } finally {
    await primary?.kill('SIGKILL');
    await secondary?.kill('SIGKILL');
    if (problems.length === 0) await fs.rm(root, { recursive: true, force: true });
    else log(`standby folders kept for inspection: ${root}`);
  }
  return problems;
}

/** Run the corruption suite. */
export async function runCorruption(options: CorruptionOptions): Promise<SuiteReport> {
  const { log, trials } = options;
  const seed = runSeed(log, options.seed);
  const model = new WriteModel(new Rng(seed));
  const dir = await tempDir('cpd-soak-corrupt-');
  const good = `${dir}.good`;
  const vault = path.join(dir, 'FileVault');
  const violations: string[] = [];
  const figures = {
    trials: 0, checkpointFaults: 0, checkpointsSkipped: 0, journalFaults: 0, journalCuts: 0, journalRefusals: 0,
    olderJournalFaults: 0, olderJournalReported: 0, olderJournalRecovered: 0, recordsLostWithCut: 0, undetected: 0, harmless: 0, standbyFaults: 0, standbyReported: 0, wrongState: 0, ackedChecked: 0,
  };

  let d = await DaemonProcess.start({ dir, config: { journal: { sync: 'commit' } } });
  try {
    await createSpace(d);
    await model.loadBulk(d, 100, 1024);
    for (let i = 1; i <= trials; i++) {
      const rng = new Rng(seed ^ Math.imul(i, 0x9e3779b9));
      const write = async (n: number): Promise<void> => {
        for (let k = 0; k < n; k++) if (!(await model.writeOnce(d, rng.int(4)))) throw new Error(`trial ${i}: a write failed on a healthy daemon`);
      };
      const checkpoint = async (): Promise<{ id: number; seq: number }> => {
        const res = await d.request('POST', '/api/admin/checkpoint', { body: { description: `corruption trial ${i}` } });
        if (res.status !== 201) throw new Error(`checkpoint: ${res.status} ${res.text}`);
        return (res.body as { data: { id: number; seq: number } }).data;
      };
      await write(10);
      const older = await checkpoint();
      await write(10);
      const newest = await checkpoint();
      await write(10 + rng.int(20));
      await d.kill('SIGTERM');
      if (d.exit?.code !== 0) throw new Error(`trial ${i}: clean stop exited ${JSON.stringify(d.exit)}:\n${d.stderr}`);
      await fs.rm(good, { recursive: true, force: true });
      await fs.cp(dir, good, { recursive: true });

      const journals = (await fs.readdir(path.join(vault, 'journal'))).filter((n) => n.endsWith('.log')).sort();
      const olderJournals: string[] = [];
      for (const n of journals.slice(0, -1)) if ((await fs.stat(path.join(vault, 'journal', n))).size > 0) olderJournals.push(n);
      const pick = rng.next();
      const target = pick < 0.4 ? 'checkpoint' : pick < 0.85 || olderJournals.length === 0 ? 'journal' : 'older-journal';
      const file = target === 'checkpoint'
        ? path.join(vault, 'checkpoint', `Checkpoint-${String(newest.id).padStart(9, '0')}`)
        : path.join(vault, 'journal', target === 'journal' ? journals.at(-1)! : olderJournals[rng.int(olderJournals.length)]!);
      const original = await fs.readFile(file);
      const fault: Fault = { kind: rng.next() < 0.5 ? 'flip' : 'truncate', offset: rng.int(original.length), bit: rng.int(8) };
      await damage(file, fault);
      const damaged = await fs.readFile(file);
      const where = `trial ${i}: ${target} ${fault.kind} at offset ${fault.offset}${fault.kind === 'flip' ? ` bit ${fault.bit}` : ''} of ${path.basename(file)} (${original.length} bytes)`;
      const problems: string[] = [];
      const everything = model.lastAckedSeq();

      // A damaged checkpoint matters at start-up only to a node that has to load one: a node whose data folder (its
      // storage engine) is lost, or new. That node is the one tried here; a damaged journal is tried on a node that
      // keeps its engine.
      if (target === 'checkpoint') await fs.rm(path.join(dir, 'data', 'engine'), { recursive: true, force: true });
      const started = await startOrRefuse(dir);
      d = started.d;
      let outcome: string;
      if (target === 'checkpoint') {
        figures.checkpointFaults++;
        if (!started.listening) {
          problems.push(`${where}: the daemon did not start (exit ${JSON.stringify(d.exit)}) although an older checkpoint and the journal hold everything: ${d.stderr.trim()}`);
          outcome = 'refused';
        } else {
          const s = await status(d);
          const reported = s.checkpoints.unreadable.some((u) => u.id === newest.id);
          // Not reported is fine only when not one byte of content changed (a flip in a deflate stream's padding bits), as unzip sees it.
          const harmless = !reported && (await sameContent(original, damaged));
          if (reported) figures.checkpointsSkipped++;
          else if (harmless) figures.harmless++;
          else {
            figures.undetected++;
            problems.push(`${where}: undetected: status does not report checkpoint ${newest.id} although its content changed (start-up checkpoint seq ${s.recovery.startCheckpointSeq})`);
          }
          if (reported && s.recovery.startCheckpointSeq !== older.seq) problems.push(`${where}: start-up began at seq ${s.recovery.startCheckpointSeq}, not at the older checkpoint's ${older.seq}`);
          if (reported && (await metric(d, 'checkpointd_checkpoints_unusable')) < 1) problems.push(`${where}: /metrics checkpointd_checkpoints_unusable does not count the damaged checkpoint`);
          problems.push(...model.checkAt(await WriteModel.served(d), everything, where).problems);
          outcome = reported ? 'skipped, reported, older checkpoint + journal used' : harmless ? 'content unchanged (deflate padding bit), used as is' : 'NOT DETECTED';
        }
      } else if (target === 'older-journal') {
        figures.olderJournalFaults++;
        if (!started.listening) {
          outcome = `refused, exit ${d.exit?.code}`;
          problems.push(`${where}: the daemon did not start (exit ${JSON.stringify(d.exit)}) although its data folder holds every record of the damaged file: ${d.stderr.trim()}`);
        } else {
          const older = await olderFilesChecked(d);
          problems.push(...model.checkAt(await WriteModel.served(d), everything, where).problems);
          const advice = older.error === null ? null : /Every record in (?:the \d+ journal files from (\S+) to (\S+)|(.+?)) is at or before seq \d+, which this node's data folder already holds, so nothing is lost/.exec(older.error);
          if (older.state !== 'damaged') {
            figures.undetected++;
            problems.push(`${where}: undetected: the check of the older journal files says ${older.state}`);
            outcome = 'NOT DETECTED';
          } else if (!/journal-\d+(-\d+)?\.log is damaged at byte offset \d+/.test(older.error!) || advice === null) {
            problems.push(`${where}: status data.journal.olderFiles does not name the damaged file and offset, or not say that moving it aside loses nothing: ${older.error}`);
            outcome = 'reported without the advice';
          } else {
            figures.olderJournalReported++;
            outcome = 'started, nothing lost, damage reported';
            if ((await metric(d, 'checkpointd_journal_older_files_damaged')) !== 1) problems.push(`${where}: /metrics checkpointd_journal_older_files_damaged is not 1`);
            if (Buffer.compare(await fs.readFile(file), damaged) !== 0) problems.push(`${where}: the check changed the damaged file`);
            // Follow the advice: move just those files aside, start again, and find every acknowledged write and a clean check.
            await d.kill('SIGTERM');
            const named = advice[3]?.split(', ') ?? journals.filter((n) => n >= advice[1]! && n <= advice[2]!);
            for (const name of named) await fs.rename(path.join(vault, 'journal', name), path.join(dir, `${name}.aside`));
            const again = await startOrRefuse(dir);
            d = again.d;
            const moved = named.length <= 3 ? named.join(', ') : `${named.length} files`;
            if (!again.listening) problems.push(`${where}: after moving ${moved} aside as advised, start-up fails: ${d.stderr.trim()}`);
            else {
              const after = await olderFilesChecked(d);
              if (after.state !== 'verified') problems.push(`${where}: after moving ${moved} aside as advised, the older files are ${after.state}: ${after.error}`);
              problems.push(...model.checkAt(await WriteModel.served(d), everything, `${where} (after moving ${moved} aside)`).problems);
              figures.olderJournalRecovered++;
              outcome += `; ${moved} moved aside as advised: started, checked clean, nothing lost`;
            }
          }
        }
      } else {
        const all = frames(original);
        const hit = all.find((f) => fault.offset >= f.start && fault.offset < f.end)!;
        const last = hit === all.at(-1);
        figures.journalFaults++;
        if (!started.listening) {
          outcome = `refused, exit ${d.exit?.code}`;
          if (d.exit?.code !== 3) problems.push(`${where}: start-up exited ${JSON.stringify(d.exit)}, not 3: ${d.stderr.trim()}`);
          else if (!(d.stderr.includes(path.basename(file)) && d.stderr.includes(`offset ${hit.start}`))) problems.push(`${where}: exit 3 does not name ${path.basename(file)} at offset ${hit.start}: ${d.stderr.trim()}`);
          if (fault.kind === 'truncate') problems.push(`${where}: a truncated last journal must be cut, not refused`);
          if (Buffer.compare(await fs.readFile(file), damaged) !== 0) problems.push(`${where}: refusing start-up changed the damaged file`);
          figures.journalRefusals++;
          if (/loses nothing/.test(d.stderr)) problems.push(`${where}: the refusal says moving files aside loses nothing, but the damaged file holds records newer than every checkpoint`);
        } else {
          const s = await status(d);
          // The state the daemon must serve: everything before the damaged record (a cut).
          const expected = fault.kind === 'truncate' ? (all.filter((f) => f.end <= fault.offset).at(-1)?.seq ?? hit.seq - 1) : hit.seq - 1;
          if (fault.kind === 'flip' && !last) problems.push(`${where}: a damaged record with ${all.length - all.indexOf(hit) - 1} acknowledged record(s) after it was not refused`);
          if (s.seq !== expected) problems.push(`${where}: the daemon is at seq ${s.seq}, expected ${expected}`);
          const cutExpected = !(fault.kind === 'truncate' && all.some((f) => f.end === fault.offset));
          if (cutExpected && s.recovery.tailCut === null) problems.push(`${where}: status recovery.tailCut does not report the cut`);
          if (cutExpected && !d.lines.some((l) => l.level === 'warn' && (l.message === 'journal torn tail cut off at the last good record' || l.message === 'journal torn tail sealed off at the last good record'))) problems.push(`${where}: the cut is not logged`);
          const check = model.checkAt(await WriteModel.served(d), expected, where);
          problems.push(...check.problems);
          const lost = everything - Math.min(expected, everything);
          figures.recordsLostWithCut += lost;
          if (lost > 0) figures.journalCuts++;
          if (lost > 0 && expected < newest.seq) problems.push(`${where}: seqs ${expected + 1}..${newest.seq} are in checkpoint ${newest.id} but were lost`);
          outcome = lost > 0 ? `cut at seq ${expected}: ${lost} acknowledged record(s) past the newest checkpoint lost (no other copy)` : 'started, nothing lost';
        }
      }
      if (problems.some((p) => p.includes(' holds '))) figures.wrongState++;
      violations.push(...problems);
      figures.trials++;
      figures.ackedChecked = model.acked;
      log(`${where} -> ${outcome}${problems.length > 0 ? `; ${problems.length} problem(s)` : ''}`);

      // Put the good copy back for the next trial.
      await d.kill('SIGTERM');
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(good, dir);
      d = await DaemonProcess.start({ dir });
    }
    await d.kill('SIGTERM');
    const standbys = options.standbyTrials ?? Math.max(1, Math.floor(trials / 20));
    for (let i = 1; i <= standbys; i++) violations.push(...(await standbyTrial(seed, i, log, figures)));
  } finally {
    await d.kill('SIGKILL');
    if (violations.length === 0) await fs.rm(dir, { recursive: true, force: true });
    else log(`daemon folder kept for inspection: ${dir}`);
    if (await exists(good)) await fs.rm(good, { recursive: true, force: true });
  }
  const f = figures;
  const summary =
    `${f.trials} trials, seed ${seed}: newest checkpoint damaged ${f.checkpointFaults}x (skipped and reported ${f.checkpointsSkipped}, content unchanged ${f.harmless}, undetected ${f.undetected}); ` +
    `newest journal damaged ${f.journalFaults}x (tail cut ${f.journalCuts}, refused with exit 3 ${f.journalRefusals}); older journal damaged ${f.olderJournalFaults}x (served with nothing lost and reported ${f.olderJournalReported}, checked clean after moving the file(s) aside as the report advises ${f.olderJournalRecovered}); ` +
    `standby pre-verify: ${f.standbyFaults} damaged copies planted, ${f.standbyReported} named by the standby; ` +
    `${f.recordsLostWithCut} acknowledged records lost with cut tails (newer than every checkpoint: no good copy), wrong state served: ${f.wrongState}`;
  return { summary, violations, figures };
}

/** The corruption suite for `npm run soak -- corruption`. */
export const corruptionSuite: Suite = {
  soakTrials: 100,
  run: (options) => runCorruption(options),
};
