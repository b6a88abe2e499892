/**
 * Removing a large file without stalling the disk. Unlinking a gigabyte frees
 * all of its blocks in one file-system journal commit (and, where the file
 * system is mounted with `discard`, discards them there): on ext4 on a
 * virtual disk, a 3 KiB O_DSYNC write beside the unlink of a 1 GiB file
 * waited 92–106 ms. Giving the blocks back 32 MiB at a time, one commit each,
 * kept that write under 10 ms, and the whole removal took as long (about
 * 250 ms). Every commit waits on such writes: the journal's, a commit's.
 *
 * The file is never cut short under a reader of this process (a download
 * streaming a checkpoint that is deleted meanwhile reads on to its end through
 * its descriptor), nor when it has another name (a hard link someone made as
 * a copy keeps all of it): when this process has it open, when that cannot be
 * told (no /proc), or when it has more than one link, it is unlinked at once,
 * as before.
 */
import { promises as fs } from 'node:fs';

/** Bytes given back per step. */
const ShrinkStepBytes = 32 * 1024 * 1024;

/** Whether a descriptor of this process refers to the file with `dev` and `ino`; true when it cannot be told. */
async function openHere(dev: number, ino: number): Promise<boolean> {
  let fds: string[];
  try {
    fds = await fs.readdir('/proc/self/fd');
  } catch {
    return true;
  }
  for (const fd of fds) {
    try {
      const target = await fs.stat(`/proc/self/fd/${fd}`);
      if (target.dev === dev && target.ino === ino) return true;
    } catch {
      // Closed meanwhile, or not something stat can follow (a socket's fd is fine, an anonymous inode may not be).
    }
  }
  return false;
}

/**
 * Remove `file`, which nobody may open by its name any more (the caller has
 * renamed it to a name only it knows), shrinking it `stepBytes` at a time
 * first unless this process has it open or it has another name. A file that
 * is already gone is fine.
 */
export async function removeLargeFile(file: string, stepBytes = ShrinkStepBytes): Promise<void> {
  let handle: fs.FileHandle | null = null;
  try {
    const stat = await fs.stat(file);
    if (stat.size > stepBytes && stat.nlink === 1 && !(await openHere(stat.dev, stat.ino))) {
      handle = await fs.open(file, 'r+');
      for (let size = stat.size; size > 0; ) {
        size = Math.max(0, size - stepBytes);
        await handle.truncate(size);
        await handle.datasync();
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  } finally {
    await handle?.close();
  }
  await fs.rm(file, { force: true });
}
