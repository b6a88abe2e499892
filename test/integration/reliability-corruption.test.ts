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
import { DaemonProcess } from '../helpers/daemon-process.js';
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
    expect(r.figures.olderJournalRecovered, 'covered older journals moved aside as advised, nothing lost').to.be.at.least(1);
    expect(r.figures.standbyReported, 'damaged checkpoints named by a standby').to.equal(1);
  });

  it('advises moving aside only journal files the start-up checkpoint covers, never one with newer commits', async function () {
    const d = await DaemonProcess.start();
    try {
      await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: [] } });
      await d.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } });
      for (let i = 0; i < 3; i++) expect((await d.request('PUT', `/api/space/s/object/before${i}`, { body: { i } })).status).to.equal(201);
      expect((await d.request('POST', '/api/admin/checkpoint', { body: {} })).status).to.equal(201);
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
      const refusal = async (): Promise<string> => {
        const p = DaemonProcess.spawn(d.dir, d.configFile);
        await waitFor(() => p.exit !== null, { what: 'start-up to stop' });
        expect(p.exit?.code).to.equal(3);
        return p.stderr;
      };

      // The newest file's first record: its commits are in no checkpoint, so no such advice.
      const newestGood = await flip(newest);
      const first = await refusal();
      expect(first).to.include(`${newest} is damaged at byte offset 0`);
      expect(first).to.not.include('loses nothing');
      await fs.writeFile(path.join(folder, newest), newestGood);

      // The older file: every record is in the checkpoint; moving just it aside, as advised, loses nothing.
      await flip(older);
      const second = await refusal();
      expect(second).to.include(`every record in ${older} is at or before seq`).and.include('loses nothing');
      await fs.rename(path.join(folder, older), path.join(d.dir, `${older}.aside`));
      const again = await DaemonProcess.start({ dir: d.dir });
      try {
        for (const key of ['before0', 'before2', 'after0', 'after2']) expect((await again.request('GET', `/api/space/s/object/${key}`)).status, key).to.equal(200);
      } finally {
        await again.kill('SIGTERM');
      }
    } finally {
      await d.cleanup();
    }
  });
});
