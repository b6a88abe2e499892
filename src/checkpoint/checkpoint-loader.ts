/**
 * From a checkpoint archive back to store state. Entries stream from the
 * archive reader (which checks every byte against the manifest) into the
 * store's SpaceBuilders, line by line; nothing is swapped in by this file —
 * callers get a new state only if the whole archive verified.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BadRequestError, NotFoundError, UnprocessableError } from '../errors.js';
import {
  parseCollectionFile,
  SpaceBuilder,
  StoreState,
  type CollectionData,
  type SpaceData,
  type TemplateDef,
} from '../store/index.js';
import { readCheckpointArchive, type Manifest, type ManifestSpace } from './archive/index.js';
import { forEachLine } from './line-reader.js';

const EntryPath = /^space\/([A-Za-z0-9._-]+)\/(store|index)\/([A-Za-z0-9._-]+)\.ndjson$/;

/** The whole of an entry as UTF-8 text (a small one: collection.json). */
export async function readAll(data: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of data) chunks.push(Buffer.from(chunk)); // a copy: the chunk's memory is reused (transient)
  return Buffer.concat(chunks).toString('utf8');
}

/** What to take from a checkpoint. */
export interface LoadRequest {
  /** The spaces to load; all of the checkpoint's when absent. */
  spaces?: string[];
  /** Also load the collection database (collection checkpoints only). */
  collection: boolean;
  /** Templates for spaces when the collection database is not loaded: the target's. */
  templates?: (name: string, version: string) => TemplateDef | undefined;
  /** Called as the archive is read: uncompressed bytes done, out of the total of the entries loaded. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** What a checkpoint gave. */
export interface Loaded {
  manifest: Manifest;
  collection: CollectionData | null;
  spaces: SpaceData[];
}

/** Read and verify checkpoint `file`, building the requested spaces (and collection). Throws before returning anything on any mismatch. */
export async function loadCheckpoint(file: string, manifest: Manifest, request: LoadRequest): Promise<Loaded> {
  if (manifest.format !== 1) {
    throw new UnprocessableError(`checkpoint ${manifest.id} is of format ${manifest.format} (storage engine files); this reader takes format 1 (NDJSON files)`);
  }
  const wanted = new Set(request.spaces ?? manifest.spaces.map((s) => s.id));
  const metas = new Map<string, ManifestSpace>(manifest.spaces.filter((s) => wanted.has(s.id)).map((s) => [s.id, s]));
  for (const id of wanted) if (!metas.has(id)) throw new NotFoundError(`checkpoint ${manifest.id} does not cover space ${id}`);
  if (request.collection && manifest.collection === null) throw new BadRequestError(`checkpoint ${manifest.id} is a space checkpoint: it holds no collection database`);

  let collection: CollectionData | null = null;
  const builders = new Map<string, SpaceBuilder>();
  const templateOf = (space: ManifestSpace): TemplateDef => {
    const { name, version } = space.template;
    const template = collection !== null
      ? collection.templates.find((t) => t.name === name && t.version === version)
      : request.templates?.(name, version);
    if (template === undefined) {
      throw new UnprocessableError(`space ${space.id} in checkpoint ${manifest.id} uses template ${name} version ${version}, which is not loaded here; load that exact version first (POST /api/template)`);
    }
    return template;
  };
  const builderFor = (id: string): SpaceBuilder => {
    let builder = builders.get(id);
    if (builder === undefined) {
      const space = metas.get(id)!;
      builder = new SpaceBuilder({ id, template: space.template, objects: space.objects, createdSeq: space.createdSeq, updatedSeq: space.updatedSeq }, templateOf(space));
      builders.set(id, builder);
    }
    return builder;
  };

  await readCheckpointArchive(file, {
    file: async (entry, data) => {
      if (entry.path === 'collection/collection.json') {
        collection = parseCollectionFile(await readAll(data));
        return;
      }
      const match = EntryPath.exec(entry.path);
      if (match === null) throw new BadRequestError(`checkpoint ${manifest.id}: unexpected entry ${entry.path}`);
      const [, id, kind, name] = match as unknown as [string, string, 'store' | 'index', string];
      const builder = builderFor(id);
      if (kind === 'store') await forEachLine(data, (text, start, end) => builder.storeLine(text, start, end));
      else {
        builder.indexFile(name); // an index file with no lines still counts as present
        await forEachLine(data, (text, start, end) => builder.indexLine(name, text, start, end));
      }
    },
    transient: true,
  }, {
    only: (p) => (p === 'collection/collection.json' ? request.collection : wanted.has(EntryPath.exec(p)?.[1] ?? '')),
    ...(request.onProgress === undefined ? {} : { onProgress: request.onProgress }),
  });

  // A space with no entries at all (cannot happen for a good archive, but never trust one).
  for (const id of wanted) builderFor(id);
  // What is left is making the trees, a space per turn.
  const spaces: SpaceData[] = [];
  for (const builder of builders.values()) {
    spaces.push(builder.build());
    await nextTurn();
  }
  return { manifest, collection, spaces };
}

/** A whole state from a collection checkpoint, at the checkpoint's seq. */
export async function loadCollectionState(file: string, manifest: Manifest): Promise<StoreState> {
  const loaded = await loadCheckpoint(file, manifest, { collection: true });
  return StoreState.fromCollection(loaded.collection!, loaded.spaces, manifest.seq);
}
