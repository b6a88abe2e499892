/**
 * The installation's identity: a random id kept in `FileVault/installation.json`,
 * made by the first node that starts on an empty FileVault. Checkpoints carry it
 * in their manifest, so a node starts from (and prunes the journal behind) only
 * its own installation's checkpoints; a file copied in from another
 * installation can still be restored by hand, but it never stands in for the
 * journal.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncDir, readIfExists, tempPathFor } from './atomic-file.js';

/** Name of the identity file in the FileVault root. */
export const InstallationFile = 'installation.json';
const IdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function readInstallation(file: string): Promise<string | null> {
  const text = await readIfExists(file);
  if (text === null) return null;
  let id: unknown;
  try {
    id = (JSON.parse(text) as { installation?: unknown } | null)?.installation;
  } catch {
    id = undefined;
  }
  if (typeof id !== 'string' || !IdPattern.test(id)) {
    throw new Error(`${file} does not hold an installation id; restore it from a backup of the FileVault, or move it away to start a new installation`);
  }
  return id;
}

/** This FileVault's installation id, made (once, by whichever node gets there first) if there is none. */
export async function installationId(vaultRoot: string): Promise<string> {
  const file = path.join(vaultRoot, InstallationFile);
  const existing = await readInstallation(file);
  if (existing !== null) return existing;
  const temp = tempPathFor(vaultRoot, InstallationFile);
  const id = randomUUID();
  await fs.writeFile(temp, JSON.stringify({ installation: id, created: new Date().toISOString() }) + '\n', { flag: 'wx', mode: 0o644 });
  try {
    const handle = await fs.open(temp, 'r');
    await handle.sync().finally(() => handle.close());
    // link() never overwrites: when two nodes race, one id wins and both read it.
    await fs.link(temp, file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  } finally {
    await fs.rm(temp, { force: true });
  }
  await fsyncDir(vaultRoot);
  return (await readInstallation(file))!;
}
