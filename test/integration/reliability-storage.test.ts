/**
 * The storage-fault suite (test/soak/storage.ts), one round: a full disk, a
 * permission denied, a vanished FileVault and one gone until the lease lapses,
 * each during a commit, a checkpoint and a restore, on a real daemon running as `nobody` with its
 * FileVault on a small tmpfs. `npm run soak -- storage` runs five rounds.
 */
import { expect } from 'chai';
import { storage } from '../soak/storage.js';

describe('reliability: storage faults (one round)', function () {
  this.timeout(120_000);

  it('answers a full disk, a permission denied and a vanished FileVault (briefly, and past the lease) with a clear 507/503, loses nothing, and resumes without a restart', async function () {
    const report = await storage.run({ trials: 12, log: () => undefined });
    if (report.figures.skipped === 1) this.skip(); // report.summary says why: not root, or no tmpfs mount
    expect(report.violations, report.summary).to.deep.equal([]);
    const f = report.figures;
    expect(f.trials).to.equal(12);
    // Every fault bit where it can: the full disk everywhere, every fault on checkpoints and restores.
    expect(f.refusedDiskFull, 'a full disk refused the commit, the checkpoint and the restore').to.equal(3);
    for (const fault of ['disk full', 'permission denied', 'vanished FileVault', 'FileVault gone past the lease']) {
      expect(f[`checkpoint.${fault}.refused`], `checkpoint under ${fault}`).to.equal(1);
      expect(f[`restore.${fault}.refused`], `restore under ${fault}`).to.equal(1);
    }
    expect(f['commit.FileVault gone past the lease.refused'], 'a node that lost its lease refused the commit').to.equal(1);
    expect(f.resumed, 'each kind of request succeeded again once its fault cleared').to.equal(12);
    expect(f.restartChecked, 'the writes were read back after a SIGKILL and a restart').to.equal(1);
    expect(f.lost).to.equal(0);
    expect(f.acknowledged).to.be.above(20);
  });
});
