/**
 * Atomic publication: every file another process reads is written to a temp
 * file in the same folder, fsynced, renamed over the target, and the folder is
 * fsynced, so a reader (or a restart after a crash) never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, promises as fs } from 'node:fs';
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

/** {@link fsyncDir}, blocking: for a thread whose I/O must not queue behind anyone's in libuv's pool (the lease renewal). */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch (err) {
    if (!RefusedFolderSyncCodes.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    closeSync(fd);
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

/** The node whose temp files this process makes (see setTempOwner); null until the daemon names it. */
let tempOwner: string | null = null;

/**
 * Name this process's temp files after `node` (its node name: letters,
 * digits, `.`, `_`, `-`), so that on a shared FileVault a node starting up
 * removes its own leftovers and not a file another node is writing now.
 */
export function setTempOwner(node: string): void {
  tempOwner = node;
}

/** The node named by setTempOwner, or null: handed to worker threads, whose module state starts empty. */
export function currentTempOwner(): string | null {
  return tempOwner;
}

/** The node a temp file name says made it, or null. */
function ownerOf(name: string): string | null {
  const at = name.lastIndexOf('@');
  return at < 0 ? null : name.slice(at + 1);
}

/** A temp file name in `dir` for a file to be published as `name`: `.tmp-<name>-<pid>-<random>[@<node>]`. */
export function tempPathFor(dir: string, name: string): string {
  const owner = tempOwner === null ? '' : `@${tempOwner}`;
  return path.join(dir, `${TempPrefix}${name}-${process.pid}-${randomBytes(4).toString('hex')}${owner}`);
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

/**
 * Remove the temp files a crash left behind in `dir`, at start-up; returns
 * their names. This node's own (see setTempOwner) all go: it is starting, so
 * it writes none of them. Any other goes only once unwritten for `staleMs`
 * (StaleTempMs in config/defaults.ts: this folder does not load the
 * configuration, the lease-renewal thread imports it): on a shared FileVault
 * it may be a checkpoint another node is writing now, which a secondary
 * restarting would otherwise delete from under it.
 *
 * With `published`, only the temp files of those names (`.tmp-<name>-…`): for
 * a folder this program shares with others (the tokens file's, say).
 */
export async function removeTempFiles(dir: string, staleMs: number, published?: readonly string[]): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const now = Date.now();
  const removed: string[] = [];
  const ours = (n: string) => (published === undefined ? n.startsWith(TempPrefix) : published.some((p) => n.startsWith(`${TempPrefix}${p}-`)));
  for (const name of names.filter(ours)) {
    const file = path.join(dir, name);
    if (tempOwner === null || ownerOf(name) !== tempOwner) {
      const stat = await fs.lstat(file).catch(() => null);
      if (stat === null || now - stat.mtimeMs < staleMs) continue;
    }
    await fs.rm(file, { force: true, recursive: true });
    removed.push(name);
  }
  return removed;
}
