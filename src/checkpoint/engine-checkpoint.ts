/**
 * Checkpoints of the storage engine (manifest format 2): each space is its
 * engine file, `space/<id>/store/space.sqlite`, copied out of a held snapshot
 * (EngineSnapshot: one seq for every space while writers go on) and read back
 * into staged files that the engine installs by renaming them.
 *
 * Why the engine's own files rather than a dump: a restore then writes each
 * space once, at the speed of extracting it, and builds nothing (a dump would
 * be inserted row by row and indexed again); the file carries its posting
 * lists, so there is no index/ folder. Every entry is still checked byte for
 * byte against the manifest's SHA-256 while it is read, and each staged file
 * passes SQLite's structure check and matches the manifest's description of
 * the space before anything is installed.
 */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { BadRequestError, NotFoundError } from '../errors.js';
import { SpaceFile, type Engine, type EngineSnapshot, type StagedSpace } from '../store/index.js';
import { EngineSpaceFile, readCheckpointArchive, spaceEntryPath, type Manifest, type SpaceSource } from './archive/index.js';

/** Pages a snapshot copy takes a step (4 KiB pages: 1 MiB), between which the event loop runs. */
const CopyPagesPerStep = 256;

/** Bytes read from a copy at a time on their way into the archive. */
const CopyReadBytes = 1024 * 1024;

/** Page cache of a staged file while it is checked, in KiB. */
const CheckCacheKiB = 8 * 1024;

const EntryPath = new RegExp(`^space/([A-Za-z0-9._-]+)/store/${EngineSpaceFile.replace('.', '\\.')}$`);

/** The bytes of space `id`'s file as `snapshot` holds it: copied into `scratchDir`, read, and the copy removed. */
async function* copiedSpace(snapshot: EngineSnapshot, id: string, scratchDir: string): AsyncGenerator<Buffer> {
  const copy = path.join(scratchDir, `snapshot-${process.pid}-${id}.sqlite`);
  await fs.rm(copy, { force: true });
  try {
    await snapshot.copySpace(id, copy, CopyPagesPerStep);
    for await (const chunk of createReadStream(copy, { highWaterMark: CopyReadBytes })) yield chunk as Buffer;
  } finally {
    await fs.rm(copy, { force: true });
  }
}

/**
 * The archive writer's sources for spaces `ids` of `snapshot` (format 2, in
 * the order given), each copied into `scratchDir` (on the node's own disk)
 * only when the writer reaches it. NotFoundError for a space the snapshot
 * does not hold.
 */
export function engineSpaceSources(snapshot: EngineSnapshot, ids: readonly string[], scratchDir: string): SpaceSource[] {
  const infos = new Map(snapshot.spaces().map((info) => [info.id, info]));
  return ids.map((id) => {
    const info = infos.get(id);
    if (info === undefined) throw new NotFoundError(`space "${id}" is not in the snapshot`);
    return {
      id,
      template: info.template,
      objects: info.objectCount,
      createdSeq: info.createdSeq,
      updatedSeq: info.updatedSeq,
      files: [{ path: spaceEntryPath(id, 'store', EngineSpaceFile), chunks: () => copiedSpace(snapshot, id, scratchDir) }],
    };
  });
}

/**
 * Read spaces `ids` of format-2 checkpoint `file` (whose checked manifest is
 * `manifest`) into staged files of `engine`, each checked (SpaceFile.check)
 * against the manifest; ready for Engine.install. On any failure every staged
 * file is removed and the error thrown: nothing is left half-read.
 */
export async function stageEngineSpaces(
  file: string,
  manifest: Manifest,
  engine: Engine,
  ids: readonly string[],
  onProgress?: (doneBytes: number, totalBytes: number) => void,
): Promise<StagedSpace[]> {
  if (manifest.format !== 2) throw new BadRequestError(`checkpoint ${manifest.id} is of format ${manifest.format}; its spaces are not engine files`);
  const wanted = new Set(ids);
  const metas = new Map(manifest.spaces.filter((s) => wanted.has(s.id)).map((s) => [s.id, s]));
  for (const id of wanted) if (!metas.has(id)) throw new NotFoundError(`checkpoint ${manifest.id} does not cover space ${id}`);
  const staged: StagedSpace[] = [];
  try {
    await readCheckpointArchive(
      file,
      {
        file: async (entry, data) => {
          const id = EntryPath.exec(entry.path)?.[1];
          if (id === undefined) throw new BadRequestError(`checkpoint ${manifest.id}: unexpected entry ${entry.path}`);
          const target = engine.stagePath(id);
          staged.push({ id, path: target });
          const handle = await fs.open(target, 'wx', 0o600);
          try {
            for await (const chunk of data) await handle.write(chunk);
          } finally {
            await handle.close();
          }
        },
        transient: true,
      },
      { only: (p) => wanted.has(EntryPath.exec(p)?.[1] ?? ''), ...(onProgress === undefined ? {} : { onProgress }) },
    );
    for (const { id, path: stagedPath } of staged) {
      const meta = metas.get(id)!;
      const opened = SpaceFile.open(stagedPath, { cacheKiB: CheckCacheKiB, readOnly: true });
      try {
        opened.check({ id, template: meta.template, objectCount: meta.objects, createdSeq: meta.createdSeq, updatedSeq: meta.updatedSeq });
      } finally {
        opened.close();
      }
    }
    if (staged.length !== wanted.size) throw new BadRequestError(`checkpoint ${manifest.id}: ${wanted.size - staged.length} of the spaces asked for have no file`);
    return staged;
  } catch (err) {
    for (const { path: stagedPath } of staged) for (const suffix of ['', '-wal', '-shm', '-journal']) await fs.rm(`${stagedPath}${suffix}`, { force: true });
    throw err;
  }
}
