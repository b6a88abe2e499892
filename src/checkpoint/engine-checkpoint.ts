/**
 * Checkpoints of the storage engine (manifest formats 2 and 3): each space is
 * its engine file, `space/<id>/store/space.sqlite`, copied out of a held
 * snapshot (EngineSnapshot: one seq for every space while writers go on),
 * checked as it is archived (format 3; space-check.ts), and read back into
 * staged files that the engine installs by renaming them.
 *
 * Why the engine's own files rather than a dump: a restore then writes each
 * space once, at the speed of extracting it, and builds nothing (a dump would
 * be inserted row by row and indexed again); the file carries its posting
 * lists, so there is no index/ folder. Every entry is still checked byte for
 * byte against the manifest's SHA-256 while it is read, and each staged file
 * matches the manifest's description of the space (and, from a format-2
 * checkpoint, passes SQLite's structure check) before anything is installed.
 */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { BadRequestError, NotFoundError, storageFailure } from '../errors.js';
import { checkSnapshotFile, checkSpaceFile, parseCollectionFile, removeDatabase, SpaceFile, type CollectionData, type Engine, type EngineSnapshot, type StagedSpace } from '../store/index.js';
import { loadCheckpoint, readAll } from './checkpoint-loader.js';
import { CollectionEntry, EngineSpaceFile, readCheckpointArchive, spaceEntryPath, type Manifest, type SpaceSource } from './archive/index.js';

/** Pages a snapshot copy takes a step (4 KiB pages: 1 MiB), between which the event loop runs. */
const CopyPagesPerStep = 256;

/** Page cache of a space file being built from a format-1 checkpoint, in KiB. */
const BuildCacheKiB = 16 * 1024;

/** Bytes of a staged file written between two of its fdatasyncs (writeDurably). */
const SyncEveryBytes = 64 * 1024 * 1024;

/** Bytes read from a copy at a time on their way into the archive. */
const CopyReadBytes = 1024 * 1024;

const EntryPath = new RegExp(`^space/([A-Za-z0-9._-]+)/store/${EngineSpaceFile.replace('.', '\\.')}$`);

/**
 * The structure checks of one checkpoint's space files (checkSnapshotFile),
 * one after another on a thread of their own while the archive goes on:
 * those of the files a snapshot froze all start when the archive reaches its
 * first space (nothing changes those files while the snapshot is held), a
 * copy's once it is made. The last file's bytes end only once every check
 * passed, so that the archive never gets its manifest (and never becomes a
 * checkpoint) before then. Checked one at a time as the archive reached
 * each file, a `store` checkpoint of 504 MiB took 3.1 s, against 2.5 s this
 * way and 2.0 s unchecked.
 */
class SpaceChecks {
  private chain: Promise<void> = Promise.resolve();
  private readonly cleanups: Promise<void>[] = [];
  private frozenStarted = false;

  constructor(
    private readonly snapshot: EngineSnapshot,
    private readonly objects: ReadonlyMap<string, number>,
  ) {}

  /** Start the checks of every space the snapshot froze, once (the archive reached one of them). */
  startFrozen(): void {
    if (this.frozenStarted) return;
    this.frozenStarted = true;
    for (const [space, objects] of this.objects) {
      const source = this.snapshot.source(space);
      if (source.frozen) void this.add(source.path, space, source.enginePath, objects);
    }
  }

  /** Check `file`, space `id`'s bytes (the engine's file `shownAs`), after the checks added before it; its outcome (awaited by `all`, or by the caller). */
  add(file: string, id: string, shownAs: string, objects = this.objects.get(id)!): Promise<void> {
    const next = this.chain.then(() => checkSnapshotFile(file, id, objects, shownAs));
    next.catch(() => undefined); // reported by all()
    this.chain = next;
    return next;
  }

  /** Let `all` also wait for `work` (removing a copy once its check is done). */
  after(work: Promise<void>): void {
    this.cleanups.push(work.catch(() => undefined));
  }

  /** Resolves once every check added so far passed (and the work `after` added is done); rejects with the first failure. */
  async all(): Promise<void> {
    try {
      await this.chain;
    } finally {
      await Promise.all(this.cleanups);
    }
  }
}

/**
 * Yield `bytes` of file `path` (all when absent), whose check `checks` holds;
 * `last`: end only once every check passed. When reading fails, the checks
 * are let end first: nothing may read a file the snapshot lets go of.
 */
async function* checkedWhileRead(path: string, bytes: number | undefined, checks: SpaceChecks, last: boolean): AsyncGenerator<Buffer> {
  try {
    if (bytes !== 0) {
      for await (const chunk of createReadStream(path, { ...(bytes === undefined ? {} : { start: 0, end: bytes - 1 }), highWaterMark: CopyReadBytes })) yield chunk as Buffer;
    }
  } catch (err) {
    await checks.all().catch(() => undefined);
    throw err;
  }
  if (last) await checks.all();
}

/**
 * The bytes of space `id`'s database as `snapshot` holds it: the file itself
 * where the snapshot froze it, else a copy made into `scratchDir`, read, and
 * removed once its check is done; checked (SpaceChecks), so that the
 * checkpoint fails rather than carry a damaged file.
 */
async function* copiedSpace(snapshot: EngineSnapshot, id: string, scratchDir: string, checks: SpaceChecks, last: boolean): AsyncGenerator<Buffer> {
  const source = snapshot.source(id);
  if (source.frozen) {
    // The snapshot keeps the file as it is until the writer is done, after the last file's end.
    checks.startFrozen();
    yield* checkedWhileRead(source.path, source.bytes, checks, last);
    return;
  }
  const copy = path.join(scratchDir, `snapshot-${process.pid}-${id}.sqlite`);
  await fs.rm(copy, { force: true });
  let checked: Promise<void> | null = null;
  try {
    await snapshot.copySpace(id, copy, CopyPagesPerStep);
    checked = checks.add(copy, id, `${source.enginePath} (copied out as ${copy})`);
    yield* checkedWhileRead(copy, undefined, checks, last);
  } finally {
    // The check may still read the copy while the next space is archived: the copy goes once it is done.
    const remove = () => fs.rm(copy, { force: true });
    if (checked === null) await remove();
    else checks.after(checked.catch(() => undefined).then(remove));
  }
}

/**
 * The archive writer's sources for spaces `ids` of `snapshot` (formats 2 and
 * 3, in the order given), each copied into `scratchDir` (on the node's own
 * disk) only when the writer reaches it, and checked. NotFoundError for a
 * space the snapshot does not hold.
 */
export function engineSpaceSources(snapshot: EngineSnapshot, ids: readonly string[], scratchDir: string): SpaceSource[] {
  const infos = new Map(snapshot.spaces().map((info) => [info.id, info]));
  for (const id of ids) if (!infos.has(id)) throw new NotFoundError(`space "${id}" is not in the snapshot`);
  const checks = new SpaceChecks(snapshot, new Map(ids.map((id) => [id, infos.get(id)!.objectCount])));
  return ids.map((id, i) => {
    const info = infos.get(id)!;
    return {
      id,
      template: info.template,
      objects: info.objectCount,
      createdSeq: info.createdSeq,
      updatedSeq: info.updatedSeq,
      files: [{ path: spaceEntryPath(id, 'store', EngineSpaceFile), chunks: () => copiedSpace(snapshot, id, scratchDir, checks, i === ids.length - 1) }],
    };
  });
}

/**
 * Write `chunks` into the new file `target` and make it durable before it is
 * installed: the engine's collection names the file once installed, and a
 * power loss must not leave it naming pages that never reached the disk.
 * Written out every `SyncEveryBytes` as it goes (one `fdatasync` in flight at
 * a time, while the next chunks are read), so that the last one waits for
 * little, and so that the node's next fsyncs (its epoch, lease and journal
 * at a promotion) do not wait behind a whole checkpoint of dirty pages: on
 * ext4 they did, 0.2–0.3 s each after a 1.3 GB load. A failure to write is
 * the data folder's (StorageError, naming the file), not the checkpoint's.
 */
async function writeDurably(target: string, chunks: AsyncIterable<Buffer>): Promise<void> {
  // Errors of the local file say so; those of `chunks` (the checkpoint as read and checked) pass as they are.
  const local = async <T>(work: Promise<T>): Promise<T> => {
    try {
      return await work;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw storageFailure(Object.assign(new Error(`cannot write ${target} (${e.message})`, { cause: err }), { code: e.code })) ?? err;
    }
  };
  const handle = await local(fs.open(target, 'wx', 0o600));
  let syncing: Promise<void> | null = null;
  try {
    let unsynced = 0;
    for await (const chunk of chunks) {
      await local(handle.write(chunk));
      unsynced += chunk.length;
      if (unsynced >= SyncEveryBytes) {
        await syncing;
        syncing = local(handle.datasync());
        syncing.catch(() => undefined); // awaited before the next one, or below
        unsynced = 0;
      }
    }
    await syncing;
    await local(handle.datasync());
  } finally {
    await syncing?.catch(() => undefined);
    await handle.close();
  }
}

/** What to take from a checkpoint into the engine. */
export interface StageRequest {
  /** The spaces to stage; all of the checkpoint's when absent. */
  spaces?: readonly string[];
  /** Also read the collection database (collection checkpoints only): a whole collection's templates and listing. */
  collection: boolean;
  /** Called as the archive is read: uncompressed bytes done, out of the total of the entries read. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** What a checkpoint gave the engine: its collection database when asked for, and a staged file per space. */
export interface Staged {
  collection: CollectionData | null;
  spaces: StagedSpace[];
}

/**
 * Read spaces of checkpoint `file` (whose checked manifest is `manifest`),
 * of any format, into staged files of `engine`, ready for Engine.install.
 * Formats 2 and 3: each space file as it is, checked (space-check.ts) against
 * the manifest. Format 1: each space rebuilt from its NDJSON files (in memory, a
 * space at a time, as releases before the engine read them) and written into
 * a new file. Without the collection database, a space's template must be
 * loaded in `engine`. On any failure every staged file is removed and the
 * error thrown: nothing is left half-read.
 */
export async function stageCheckpoint(file: string, manifest: Manifest, engine: Engine, request: StageRequest): Promise<Staged> {
  const ids = request.spaces ?? manifest.spaces.map((s) => s.id);
  if (manifest.format !== 1) return stageEngineSpaces(file, manifest, engine, ids, request);
  const loaded = await loadCheckpoint(file, manifest, {
    collection: request.collection,
    spaces: [...ids],
    templates: (name, version) => engine.template(name, version),
    ...(request.onProgress === undefined ? {} : { onProgress: request.onProgress }),
  });
  const templates = loaded.collection?.templates ?? engine.templates();
  const staged: StagedSpace[] = [];
  try {
    for (const data of loaded.spaces) {
      const info = data.info();
      const template = templates.find((t) => t.name === info.template.name && t.version === info.template.version)!;
      const target = engine.stagePath(info.id);
      staged.push({ id: info.id, path: target });
      await SpaceFile.build(target, info, template, data.entries(), (field) => data.indexEntries(field), { cacheKiB: BuildCacheKiB });
    }
  } catch (err) {
    removeStaged(staged);
    throw err;
  }
  return { collection: loaded.collection, spaces: staged };
}

/** Remove staged files (and any SQLite side files) that were not installed. */
export function removeStaged(staged: readonly StagedSpace[]): void {
  for (const { path: stagedPath } of staged) removeDatabase(stagedPath);
}

/** Formats 2 and 3: the space files (and the collection database when asked for), each checked while the next is read. */
async function stageEngineSpaces(file: string, manifest: Manifest, engine: Engine, ids: readonly string[], request: StageRequest): Promise<Staged> {
  if (request.collection && manifest.collection === null) throw new BadRequestError(`checkpoint ${manifest.id} is a space checkpoint: it holds no collection database`);
  const wanted = new Set(ids);
  const metas = new Map(manifest.spaces.filter((s) => wanted.has(s.id)).map((s) => [s.id, s]));
  for (const id of wanted) if (!metas.has(id)) throw new NotFoundError(`checkpoint ${manifest.id} does not cover space ${id}`);
  const staged: StagedSpace[] = [];
  let collection: CollectionData | null = null;
  // Each file is checked on a thread of its own while the next is extracted.
  const checks: Promise<void>[] = [];
  try {
    await readCheckpointArchive(
      file,
      {
        file: async (entry, data) => {
          if (entry.path === CollectionEntry) {
            collection = parseCollectionFile(await readAll(data));
            return;
          }
          const id = EntryPath.exec(entry.path)?.[1];
          if (id === undefined) throw new BadRequestError(`checkpoint ${manifest.id}: unexpected entry ${entry.path}`);
          const target = engine.stagePath(id);
          staged.push({ id, path: target });
          await writeDurably(target, data);
          const meta = metas.get(id)!;
          const expected = { id, template: meta.template, objectCount: meta.objects, createdSeq: meta.createdSeq, updatedSeq: meta.updatedSeq };
          const check = checkSpaceFile(target, expected, manifest.format >= 3);
          check.catch(() => undefined); // awaited below; a failure before then is not unhandled
          checks.push(check);
        },
        transient: true,
      },
      {
        only: (p) => (p === CollectionEntry ? request.collection : wanted.has(EntryPath.exec(p)?.[1] ?? '')),
        ...(request.onProgress === undefined ? {} : { onProgress: request.onProgress }),
      },
    );
    await Promise.all(checks);
    if (staged.length !== wanted.size) throw new BadRequestError(`checkpoint ${manifest.id}: ${wanted.size - staged.length} of the spaces asked for have no file`);
    return { collection, spaces: staged };
  } catch (err) {
    await Promise.allSettled(checks);
    removeStaged(staged);
    throw err;
  }
}
