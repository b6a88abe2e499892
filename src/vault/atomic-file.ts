/**
 * Atomic publication: every file another process reads is written to a temp
 * file in the same folder, fsynced, renamed over the target, and the folder is
 * fsynced, so a reader (or a restart after a crash) never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Prefix of temp files; never listed, removed at start-up by their owners. */
export const TempPrefix = '.tmp-';

/** Folder-fsync errors that some network file systems return although their server commits metadata synchronously. */
const RefusedFolderSyncCodes = new Set(['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM']);

/**
 * fsync a folder so a rename or create inside it survives a crash. Some
 * network file systems refuse fsync on a folder; their server commits
 * metadata synchronously anyway, so that refusal is accepted.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    if (!RefusedFolderSyncCodes.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await handle.close();
  }
}

/** The text of `file`, or null when it does not exist; other errors are thrown. */
export async function readIfExists(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** A temp file name in `dir` for a file to be published as `name`. */
export function tempPathFor(dir: string, name: string): string {
  return path.join(dir, `${TempPrefix}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Write `data` to `file` atomically with permission `mode`. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const temp = tempPathFor(dir, path.basename(file));
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(temp, file);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

/** Remove leftover temp files of {@link writeFileAtomic} in `dir`; returns their names. */
export async function removeTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const temps = names.filter((n) => n.startsWith(TempPrefix));
  await Promise.all(temps.map((n) => fs.rm(path.join(dir, n), { force: true, recursive: true })));
  return temps;
}
