/**
 * `checkpointd export FILE --out DIR`: write each space's objects as NDJSON,
 * verifying the whole checkpoint on the way; needs no daemon and no
 * configuration. Files are written under temporary names and renamed only once
 * every byte has verified, so a damaged checkpoint leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CheckpointFormatError, EngineSpaceFile, isSafeSegment, readCheckpointArchive, spaceEntryPath, type Manifest } from '../checkpoint/index.js';
import { SpaceFile } from '../store/index.js';
import { ConflictError, UnprocessableError } from '../errors.js';
import { formatBytes } from './format.js';
import { byteProgress } from './progress.js';
import { problemLine } from './verify.js';

/** Options of `export`. */
export interface ExportCommandOptions {
  out: string;
  force?: boolean;
  json?: boolean;
}

/** The store file exported for each space. */
const ObjectsFile = 'objects.ndjson';

/** How much of a space file an export maps into memory (SQLite's cap: 2 GiB). */
const ExportMapBytes = 2 ** 31;

/** What was exported, for `--json`. */
interface Exported {
  ok: true;
  out: string;
  manifest: string;
  spaces: { id: string; objects: number; file: string; size: number }[];
}

/** Create `out` if needed and refuse a non-empty one without `force`; returns the folder created, if any. */
async function prepareOut(out: string, shown: string, force: boolean): Promise<string | null> {
  let names: string[];
  try {
    names = await fs.readdir(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return (await fs.mkdir(out, { recursive: true })) ?? null;
  }
  if (names.length > 0 && !force) throw new ConflictError(`${shown} is not empty; use --force to write into it anyway`);
  return null;
}

/** A file name inside `out` for space `id`, refusing anything that could land elsewhere. */
function spaceFile(out: string, id: string): string {
  const file = path.join(out, `${id}.ndjson`);
  if (!isSafeSegment(id) || path.dirname(file) !== out) throw new UnprocessableError(`space id ${JSON.stringify(id)} cannot be a file name`);
  return file;
}

/**
 * Write the objects of the engine file `engineFile` (a space of a format-2 or 3
 * checkpoint) to `target` as format 1's store lines,
 * `{"key":"<key>","value":<the object's JSON>}`, one per line in key order;
 * returns the bytes written.
 */
async function writeNdjson(engineFile: string, target: string): Promise<number> {
  // Mapped: rows written in another order than their keys' are read a page each, 3× faster through the map (bench/README.md, "layout").
  const file = SpaceFile.open(engineFile, { cacheKiB: 16 * 1024, readOnly: true, mapBytes: ExportMapBytes });
  try {
    const lines = (function* (): IterableIterator<string> {
      let batch = '';
      for (const { key, text } of file.objects()) {
        batch += `{"key":${JSON.stringify(key)},"value":${text}}\n`;
        if (batch.length >= 1 << 20) {
          yield batch;
          batch = '';
        }
      }
      if (batch.length > 0) yield batch;
    })();
    await pipeline(Readable.from(lines), createWriteStream(target, { flags: 'wx', mode: 0o640 }));
    return (await fs.stat(target)).size;
  } finally {
    file.close();
  }
}

/** Export `file` into `options.out`; throws (after removing what it wrote) when the checkpoint does not verify. */
export async function exportCommand(file: string, options: ExportCommandOptions): Promise<void> {
  const out = path.resolve(options.out);
  const created = await prepareOut(out, options.out, options.force === true);
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const temps = new Map<string, string>(); // final path -> temp path
  const tempFor = (final: string) => {
    const temp = path.join(out, `.tmp-export-${path.basename(final)}-${tag}`);
    temps.set(final, temp);
    return temp;
  };
  const progress = byteProgress('export');
  try {
    let manifest: Manifest;
    const sizes = new Map<string, number>();
    /** Space id → its engine file as read (format 2 or 3), to write as NDJSON. */
    const engineFiles = new Map<string, string>();
    try {
      manifest = await readCheckpointArchive(
        file,
        {
          async file(entry, data) {
            const [top, id, part, name] = entry.path.split('/');
            if (top === 'space' && id !== undefined && entry.path === spaceEntryPath(id, 'store', EngineSpaceFile)) {
              // Format 2: the engine file, turned into NDJSON once the whole checkpoint has verified.
              const target = spaceFile(out, id);
              const copy = tempFor(`${target}.sqlite`);
              await pipeline(Readable.from(data), createWriteStream(copy, { flags: 'wx', mode: 0o600 }));
              engineFiles.set(id, copy);
              return;
            }
            if (top !== 'space' || id === undefined || part !== 'store' || name !== ObjectsFile || entry.path !== spaceEntryPath(id, 'store', ObjectsFile)) {
              for await (const _chunk of data) {
                // Read to verify; not exported.
              }
              return;
            }
            const target = spaceFile(out, id);
            await pipeline(Readable.from(data), createWriteStream(tempFor(target), { flags: 'wx', mode: 0o640 }));
            sizes.set(id, entry.size);
          },
        },
        { onProgress: (done, total) => progress.update(done, total) },
      );
    } finally {
      progress.stop();
    }
    for (const [id, copy] of engineFiles) {
      const target = spaceFile(out, id);
      sizes.set(id, await writeNdjson(copy, tempFor(target)));
      await fs.rm(copy, { force: true });
      temps.delete(`${target}.sqlite`);
      for (const suffix of ['-wal', '-shm']) await fs.rm(`${copy}${suffix}`, { force: true });
    }
    const lower = new Map<string, string>();
    for (const space of manifest.spaces) {
      if (!sizes.has(space.id)) throw new UnprocessableError(`${file}: space ${space.id} has no store/${ObjectsFile} (nor store/${EngineSpaceFile}), so it cannot be exported`);
      const other = lower.get(space.id.toLowerCase());
      if (other !== undefined) throw new UnprocessableError(`${file}: spaces ${other} and ${space.id} differ only in case; their files would collide on some file systems`);
      lower.set(space.id.toLowerCase(), space.id);
    }
    const manifestFile = path.join(out, 'manifest.json');
    await fs.writeFile(tempFor(manifestFile), JSON.stringify(manifest, null, 2) + '\n', { flag: 'wx', mode: 0o640 });
    for (const [final, temp] of temps) await fs.rename(temp, final);
    temps.clear();
    const result: Exported = {
      ok: true,
      out,
      manifest: manifestFile,
      spaces: manifest.spaces.map((s) => ({ id: s.id, objects: s.objects, file: spaceFile(out, s.id), size: sizes.get(s.id) ?? 0 })),
    };
    if (options.json === true) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    } else {
      for (const s of result.spaces) process.stdout.write(`${s.file}: ${s.objects} objects, ${formatBytes(s.size)}\n`);
      process.stdout.write(`${manifestFile}: checkpoint ${manifest.id}, ${manifest.scope} scope, seq ${manifest.seq}\n`);
    }
  } catch (err) {
    await Promise.all([...temps.values()].map((t) => fs.rm(t, { force: true })));
    if (created !== null) await fs.rm(created, { recursive: true, force: true });
    if (err instanceof CheckpointFormatError) {
      if (options.json === true) process.stdout.write(JSON.stringify({ ok: false, problem: err.problem, entry: err.entry }, null, 2) + '\n');
      throw new UnprocessableError(problemLine(file, err.problem, err.entry), { cause: err });
    }
    throw err;
  }
}
