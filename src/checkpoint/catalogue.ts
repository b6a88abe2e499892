/**
 * The checkpoint folder of the FileVault: which checkpoints exist, their
 * manifests, the id sequence, and atomic publication.
 *
 * Ids come from `checkpoint/sequence` (the last id handed out) and are never
 * reused, not even after the newest is deleted: the next id is one past the
 * larger of the sequence and every id on disk (a file copied in from another
 * installation counts too). A checkpoint is published by hard-linking its
 * finished temp file to its final name, which fails rather than overwrite,
 * then removing the temp name and fsyncing the folder. A file from elsewhere
 * comes in the same way, under a fresh id (`import`).
 *
 * An id names one content for good: the SHA-256 first seen under each id is
 * kept (with the hash cache). A file that later shows another SHA-256 under
 * that id — a checkpoint of another installation copied over one of these —
 * is reported as changed (status, {@link changed}) and never restored.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { StaleTempMs } from '../config/index.js';
import { ConflictError, NotFoundError, storageFailure } from '../errors.js';
import type { Logger } from '../log/index.js';
import { fsyncDir, removeLargeFile, removeTempFiles, tempPathFor, writeFileAtomic } from '../vault/index.js';
import { readManifest, type Manifest } from './archive/index.js';

const NamePattern = /^Checkpoint-(\d{9,})$/;
const SequenceFile = 'sequence';
/** In the hash cache, the key of the SHA-256 an id was first seen with. */
const IdentityPrefix = 'id:';

/** `Checkpoint-000000003`: nine digits, more past 999,999,999. */
export function checkpointFileName(id: number): string {
  return `Checkpoint-${String(id).padStart(9, '0')}`;
}

/** The id in a checkpoint file name, or null for any other name. */
export function parseCheckpointFileName(name: string): number | null {
  const match = NamePattern.exec(name);
  if (match === null) return null;
  const id = Number(match[1]);
  return Number.isSafeInteger(id) && id > 0 ? id : null;
}

/** One published checkpoint. */
export interface CatalogueEntry extends ListedCheckpoint {
  sha256: string;
}

/** A checkpoint as {@link Catalogue.manifests} lists it: its manifest, not its hash. */
export interface ListedCheckpoint {
  id: number;
  file: string;
  size: number;
  manifest: Manifest;
  /** When the file was last written (ms since the epoch, from its mtime): when its writer finished it. */
  writtenAt: number;
}

interface Cached {
  key: string;
  entry: CatalogueEntry;
}

/** SHA-256 of a whole file, streamed. */
async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The checkpoints in `FileVault/checkpoint`. A file's SHA-256 (its ETag) costs a
 * full read, so the ones known are kept in `hashCacheFile` (node-local, in
 * paths.data) under the file's size, mtime and inode: a restart does not
 * re-read every checkpoint, and a file that changed is read again.
 */
export class Catalogue {
  private cache = new Map<number, Cached>();
  private hashes = new Map<string, string>();
  /** Files that look like checkpoints but cannot be read, by id: why. */
  readonly unreadable = new Map<number, string>();
  /** Checkpoints whose manifest reads but whose content failed to verify when loaded, by id: why. */
  readonly damaged = new Map<number, string>();
  /** Checkpoints whose file is not the one first seen under their id (another SHA-256), by id: why. Never restored. */
  readonly changed = new Map<number, string>();
  /** The SHA-256 each id was first seen with. */
  private identities = new Map<number, string>();

  constructor(readonly dir: string, private readonly logger: Logger, private readonly hashCacheFile?: string) {}

  /** Final path of checkpoint `id`. */
  pathOf(id: number): string {
    return path.join(this.dir, checkpointFileName(id));
  }

  /** Create the folder and remove temp files a crash left behind. */
  async init(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const removed = await removeTempFiles(this.dir, StaleTempMs);
    if (removed.length > 0) this.logger.warn('removed unfinished checkpoint temp files', { dir: this.dir, files: removed });
    if (this.hashCacheFile !== undefined) {
      try {
        const known = JSON.parse(await fs.readFile(this.hashCacheFile, 'utf8')) as Record<string, unknown>;
        for (const [key, sha] of Object.entries(known)) {
          if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) continue;
          const id = key.startsWith(IdentityPrefix) ? parseCheckpointFileName(key.slice(IdentityPrefix.length)) : null;
          if (id !== null) this.identities.set(id, sha);
          else this.hashes.set(key, sha);
        }
      } catch {
        // No cache yet, or unreadable: hashes are recomputed as needed.
      }
    }
  }

  private async rememberHash(key: string, sha256: string): Promise<void> {
    this.hashes.set(key, sha256);
    await this.saveHashes();
  }

  private async saveHashes(): Promise<void> {
    if (this.hashCacheFile === undefined) return;
    const identities = [...this.identities].map(([id, sha]) => [`${IdentityPrefix}${checkpointFileName(id)}`, sha]);
    await writeFileAtomic(this.hashCacheFile, JSON.stringify(Object.fromEntries([...this.hashes, ...identities])) + '\n').catch((err: unknown) => {
      this.logger.warn('cannot write the checkpoint hash cache; hashes will be recomputed after a restart', { file: this.hashCacheFile, error: (err as Error).message });
    });
  }

  /**
   * Every readable checkpoint by id ascending, with its manifest but without
   * hashing a file this node has never seen: what start-up needs to pick its
   * base (the load verifies every entry it reads) on a node whose data folder
   * is new, where hashing every checkpoint first would read them all (a
   * standby's pre-loader and the automatic checkpoints' start use it too, so
   * that nothing on the way to a promotion does). A file under an id seen
   * before is hashed (list's check for a changed file).
   */
  async manifests(): Promise<ListedCheckpoint[]> {
    const listed: ListedCheckpoint[] = [];
    for (const id of await this.ids()) {
      const file = this.pathOf(id);
      try {
        const { key, stat } = await this.identify(id);
        const cached = this.cache.get(id);
        // A file first seen with another hash is hashed, so that one copied over it is still found changed.
        if (cached?.key === key) listed.push(cached.entry);
        else if (this.identities.has(id) || this.hashes.has(key)) listed.push(await this.load(id));
        else listed.push({ id, file, size: stat.size, manifest: await readManifest(file), writtenAt: stat.mtimeMs });
      } catch (err) {
        if (!(err instanceof NotFoundError)) this.markUnreadable(id, file, err);
      }
    }
    return listed;
  }

  private async ids(): Promise<number[]> {
    const names = await fs.readdir(this.dir);
    return names.map(parseCheckpointFileName).filter((id): id is number => id !== null).sort((a, b) => a - b);
  }

  private markUnreadable(id: number, file: string, err: unknown): void {
    const why = (err as Error).message;
    if (this.unreadable.get(id) !== why) this.logger.warn('checkpoint file cannot be read; it is skipped', { id, file, error: why });
    this.unreadable.set(id, why);
  }

  /** Every readable checkpoint, by id ascending. Unreadable ones are logged once and kept in {@link unreadable}. */
  async list(): Promise<CatalogueEntry[]> {
    const ids = await this.ids();
    const present = new Set(ids);
    for (const id of this.cache.keys()) if (!present.has(id)) this.cache.delete(id);
    for (const id of this.unreadable.keys()) if (!present.has(id)) this.unreadable.delete(id);
    for (const id of this.damaged.keys()) if (!present.has(id)) this.damaged.delete(id);
    const entries: CatalogueEntry[] = [];
    for (const id of ids) {
      const entry = await this.load(id).catch(() => null);
      if (entry !== null) entries.push(entry);
    }
    // Forget the hashes of files that are gone (a full pass has seen every file there is).
    const live = new Set([...this.cache.values()].map((c) => c.key));
    const stale = [...this.hashes.keys()].filter((k) => !live.has(k));
    if (stale.length > 0) {
      for (const k of stale) this.hashes.delete(k);
      await this.saveHashes();
    }
    return entries;
  }

  /** Checkpoint `id`, or NotFoundError. */
  async get(id: number): Promise<CatalogueEntry> {
    try {
      return await this.load(id);
    } catch (err) {
      if (err instanceof NotFoundError) throw err;
      // A file the daemon may not read, or storage that fails, is the operator's to fix (503), not a missing checkpoint.
      if (storageFailure(err) !== null) throw err;
      throw new NotFoundError(`checkpoint ${id} cannot be read (${(err as Error).message}); it is not usable`);
    }
  }

  /** The file of checkpoint `id` as it is now (its size, mtime and inode: the key its hash is cached under); NotFoundError when missing. */
  private async identify(id: number): Promise<{ key: string; stat: Stats }> {
    const file = this.pathOf(id);
    let stat;
    try {
      stat = await fs.stat(file);
    } catch (err) {
      // Missing only if the folder it would be in is there: a vanished FileVault is not a 404.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fs.stat(this.dir);
      throw new NotFoundError(`checkpoint ${id} does not exist; GET /api/collection/checkpoint lists them`);
    }
    return { key: `${path.basename(file)}:${stat.size}:${stat.mtimeMs}:${stat.ino}`, stat };
  }

  private async load(id: number): Promise<CatalogueEntry> {
    const file = this.pathOf(id);
    const { key, stat } = await this.identify(id);
    const cached = this.cache.get(id);
    if (cached?.key === key) return cached.entry;
    try {
      const manifest = await readManifest(file);
      let sha256 = this.hashes.get(key);
      const hashed = sha256 === undefined;
      if (sha256 === undefined) {
        const started = performance.now();
        sha256 = await sha256OfFile(file);
        this.logger.debug('checkpoint file hashed', { id, bytes: stat.size, ms: Math.round(performance.now() - started) });
        this.hashes.set(key, sha256);
      }
      const entry: CatalogueEntry = { id, file, size: stat.size, sha256, manifest, writtenAt: stat.mtimeMs };
      this.cache.set(id, { key, entry });
      this.unreadable.delete(id);
      // One write of the cache for what this load learned: a new hash, a first identity, or both.
      if (this.checkIdentity(id, sha256) || hashed) await this.saveHashes();
      return entry;
    } catch (err) {
      this.markUnreadable(id, file, err);
      throw err;
    }
  }

  /**
   * Remember the SHA-256 first seen under `id`; another one later marks the
   * checkpoint as changed. True when it learned a first identity (the cache
   * then needs saving).
   */
  private checkIdentity(id: number, sha256: string): boolean {
    const first = this.identities.get(id);
    if (first === undefined) {
      this.identities.set(id, sha256);
      return true;
    }
    if (first === sha256) {
      this.changed.delete(id);
      return false;
    }
    const why =
      `its file changed under the same id (SHA-256 ${sha256.slice(0, 12)}…, first seen as ${first.slice(0, 12)}…): another file was copied over it; ` +
      'it is never restored. Delete it (checkpointd checkpoint delete) and bring a copied checkpoint in with checkpointd checkpoint import FILE, which gives it a fresh id';
    if (this.changed.get(id) !== why) this.logger.error('a checkpoint file changed under the same id; it will not be restored', { id, file: this.pathOf(id), sha256, firstSeen: first });
    this.changed.set(id, why);
    return false;
  }

  /** Hand out the next id (never reused) and record it in the sequence file. */
  async nextId(): Promise<number> {
    const sequenceFile = path.join(this.dir, SequenceFile);
    const text = await fs.readFile(sequenceFile, 'utf8').catch(() => '0');
    const last = Number.parseInt(text.trim(), 10);
    const onDisk = (await fs.readdir(this.dir)).map(parseCheckpointFileName).filter((id): id is number => id !== null);
    const id = Math.max(Number.isSafeInteger(last) ? last : 0, ...onDisk, 0) + 1;
    await writeFileAtomic(sequenceFile, `${id}\n`);
    return id;
  }

  /** Publish the finished temp file `temp` as checkpoint `id`; never overwrites. */
  async publish(temp: string, id: number, known: { size: number; sha256: string; manifest: Manifest }): Promise<CatalogueEntry> {
    const file = this.pathOf(id);
    try {
      await fs.link(temp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`checkpoint file ${file} already exists; it was not overwritten`);
      throw err;
    } finally {
      await fs.rm(temp, { force: true });
    }
    await fsyncDir(this.dir);
    const stat = await fs.stat(file);
    const entry: CatalogueEntry = { id, file, ...known, writtenAt: stat.mtimeMs };
    const key = `${path.basename(file)}:${stat.size}:${stat.mtimeMs}:${stat.ino}`;
    this.cache.set(id, { key, entry });
    this.identities.set(id, known.sha256);
    this.changed.delete(id);
    await this.rememberHash(key, known.sha256);
    return entry;
  }

  /** Remove checkpoint `id` (NotFoundError if absent). */
  async remove(id: number): Promise<void> {
    const file = this.pathOf(id);
    // Out of the catalogue first, under a temp name (removed at start-up if a crash comes before the end), then
    // given back to the file system a slice at a time (see removeLargeFile).
    const doomed = tempPathFor(this.dir, path.basename(file));
    try {
      await fs.rename(file, doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`checkpoint ${id} does not exist`);
      throw err;
    }
    await fsyncDir(this.dir);
    this.cache.delete(id);
    this.unreadable.delete(id);
    this.changed.delete(id);
    // The id's first SHA-256 stays known: a different file that appears under a deleted id later is changed too.
    try {
      await removeLargeFile(doomed);
    } catch (err) {
      // The checkpoint is deleted (no longer listed); only its space is not back yet.
      this.logger.warn('a deleted checkpoint could not be removed from the disk; the next start-up removes it', { id, file: doomed, error: (err as Error).message });
    }
  }
}
