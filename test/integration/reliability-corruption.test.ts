/**
 * The corruption suite's few-trial run in `npm test` (the same code as
 * `npm run soak -- corruption`): a flipped bit or a cut in the newest
 * checkpoint or the journal of a stopped daemon, then a restart. The fixed
 * seed damages a checkpoint, the newest and an older journal, and a copy a
 * standby pre-verifies. test/e2e/reliability-extended.test.ts adds a random
 * seed (printed; SOAK_SEED replays it): new offsets each run.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.js';
import { DaemonProcess } from '../helpers/daemon-process.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait-for.js';
import { runCorruption } from '../soak/corruption.js';

describe('reliability: corrupted checkpoints and journals (real daemon)', function () {
  this.timeout(90_000);
  const log = (line: string): void => console.log(`      [corruption] ${line}`);

  it('detects every damage (status, /metrics, a standby), falls back or refuses as docs/OPERATIONS.md says, and never serves a wrong value (fixed seed)', async function () {
    const r = await runCorruption({ trials: 4, seed: 36, log });
    log(r.summary);
    expect(r.violations).to.deep.equal([]);
    expect(r.figures.trials).to.equal(4);
    expect(r.figures.checkpointFaults, 'checkpoints damaged').to.be.at.least(1);
    expect(r.figures.checkpointsSkipped, 'damaged checkpoints skipped and reported').to.be.at.least(1);
    expect(r.figures.journalFaults, 'newest journals damaged').to.be.at.least(1);
    expect(r.figures.journalCuts, 'torn tails cut').to.be.at.least(1);
    expect(r.figures.journalRefusals, 'damage in the middle refused (exit 3)').to.be.at.least(1);
    expect(r.figures.olderJournalFaults, 'older journals damaged').to.be.at.least(1);
    expect(r.figures.olderJournalReported, 'older journals: served with nothing lost, damage reported').to.equal(r.figures.olderJournalFaults);
    expect(r.figures.olderJournalRecovered, 'older journals moved aside as advised: checked clean, nothing lost').to.equal(r.figures.olderJournalFaults);
    expect(r.figures.standbyReported, 'damaged checkpoints named by a standby').to.equal(1);
  });

  it('refuses to start on damage in the journal file with newer commits; damage in an older file is reported by the background check while the node serves', async function () {
    const d = await DaemonProcess.start();
    try {
      await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: [] } });
      await d.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } });
      for (let i = 0; i < 3; i++) expect((await d.request('PUT', `/api/space/s/object/before${i}`, { body: { i } })).status).to.equal(201);
      const made = await d.request('POST', '/api/admin/checkpoint', { body: {} });
      expect(made.status).to.equal(201);
      const checkpoint = (made.body as { data: { id: number } }).data.id;
      for (let i = 0; i < 3; i++) expect((await d.request('PUT', `/api/space/s/object/after${i}`, { body: { i } })).status).to.equal(201);
      await d.kill('SIGTERM');
      const folder = path.join(d.dir, 'FileVault', 'journal');
      const [older, newest] = (await fs.readdir(folder)).filter((n) => n.endsWith('.log')).sort().slice(-2) as [string, string];
      const flip = async (name: string): Promise<Buffer> => {
        const bytes = await fs.readFile(path.join(folder, name));
        const good = Buffer.from(bytes);
        bytes[10]! ^= 0x04; // inside the first record
        await fs.writeFile(path.join(folder, name), bytes);
        return good;
      };
      type OlderFiles = { state: string; belowSeq: number; files: number; error: string | null };
      const olderFiles = (node: DaemonProcess): Promise<OlderFiles> =>
        waitFor(
          async () => {
            const res = await node.request('GET', '/api/admin/status');
            const checked = (res.body as { data: { journal: { olderFiles: OlderFiles } } }).data.journal.olderFiles;
            return checked.state === 'checking' ? null : checked;
          },
          { what: 'the check of the older journal files to finish' },
        );
      const damagedMetric = async (node: DaemonProcess): Promise<number | undefined> =>
        sampleValue(parsePrometheusText((await node.request('GET', '/metrics', { token: null })).text), 'checkpointd_journal_older_files_damaged');

      // The newest file's first record: the data folder holds its commits, but start-up reads this file (it holds the
      // next record), and its damage with good records after it stops the start.
      const newestGood = await flip(newest);
      const p = DaemonProcess.spawn(d.dir, d.configFile);
      await waitFor(() => p.exit !== null, { what: 'start-up to stop' });
      expect(p.exit?.code).to.equal(3);
      expect(p.stderr).to.include(`${newest} is damaged at byte offset 0`);
      expect(p.stderr).to.not.include('loses nothing');
      await fs.writeFile(path.join(folder, newest), newestGood);

      // The older file: start-up does not read it; the node serves, and the check in the background names it.
      const olderGood = await flip(older);
      const started = await DaemonProcess.start({ dir: d.dir });
      try {
        for (const key of ['before0', 'before2', 'after0', 'after2']) expect((await started.request('GET', `/api/space/s/object/${key}`)).status, key).to.equal(200);
        const found = await olderFiles(started);
        expect(found.state).to.equal('damaged');
        expect(found.error).to.include(`${older} is damaged at byte offset 0`).and.include(`Every record in ${older} is at or before seq`).and.include('nothing is lost');
        expect(await damagedMetric(started)).to.equal(1);
        const shown = await runCli(['status'], { env: { CHECKPOINTD_URL: started.url, CHECKPOINTD_TOKEN: started.token } });
        expect(shown.stdout).to.match(/^journal: +DAMAGED: 1 older journal file \(below seq \d+\): journal file .+ is damaged at byte offset 0/m);
        expect(started.lines.some((l) => l.level === 'error' && l.message === 'older journal file damaged' && l.file === path.join(folder, older))).to.equal(true);
        // A restore journaled in the damaged file might name the checkpoint: it stays until the file checks clean.
        const refused = await started.request('DELETE', `/api/collection/checkpoint/${checkpoint}`);
        expect(refused.status).to.equal(409);
        expect(refused.text).to.include('cannot be deleted yet');
        expect(await fs.readFile(path.join(folder, older)), 'the check leaves the file as it is').to.not.deep.equal(olderGood);
      } finally {
        await started.kill('SIGTERM');
      }

      // Moving just that file aside, as the report says, loses nothing; the files left check clean.
      await fs.rename(path.join(folder, older), path.join(d.dir, `${older}.aside`));
      const again = await DaemonProcess.start({ dir: d.dir });
      try {
        for (const key of ['before0', 'before2', 'after0', 'after2']) expect((await again.request('GET', `/api/space/s/object/${key}`)).status, key).to.equal(200);
        const clean = await olderFiles(again);
        expect(clean).to.deep.include({ state: 'verified', error: null });
        expect(clean.files, 'the newest file of the run before is older now').to.equal(1);
        expect(await damagedMetric(again)).to.equal(0);
      } finally {
        await again.kill('SIGTERM');
      }
    } finally {
      await d.cleanup();
    }
  });
});
