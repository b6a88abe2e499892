/**
 * One daemon per data folder: a lock file created with O_EXCL holding the
 * owner's pid. A lock whose pid no longer runs is stale (the owner crashed)
 * and is taken over. A clean shutdown removes the file, so a stale lock is
 * also the daemon's "no clean-shutdown mark": the last run crashed.
 */
import { promises as fs } from 'node:fs';
import { ConflictError } from '../errors.js';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A held lock; release it on shutdown. */
export class PidLock {
  private constructor(
    readonly file: string,
    /** True when a stale lock was taken over: the previous owner did not shut down cleanly. */
    readonly tookOverStale: boolean,
  ) {}

  /** Take the lock at `file` or throw ConflictError naming the running owner. */
  static async acquire(file: string): Promise<PidLock> {
    let stale = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await fs.writeFile(file, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
        return new PidLock(file, stale);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number.parseInt(await fs.readFile(file, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(owner) && owner !== process.pid && isRunning(owner)) {
        throw new ConflictError(`another checkpointd (pid ${owner}) is using this data folder (${file}); stop it first or give this one its own paths.data`);
      }
      await fs.rm(file, { force: true });
      stale = true;
    }
    throw new ConflictError(`could not take the lock ${file}; another process keeps recreating it`);
  }

  /** Remove the lock file. */
  async release(): Promise<void> {
    await fs.rm(this.file, { force: true });
  }
}
