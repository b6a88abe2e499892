/**
 * The checkpoint file format, versions 1 to 3 (ManifestFormats below).
 *
 * A checkpoint is a ZIP file, `FileVault/checkpoint/Checkpoint-NNNNNNNNN`, whose
 * entries are, in this order and nothing else:
 *
 *   manifest.json                 always first; UTF-8 JSON, at most 16 MiB
 *   collection/collection.json    the collection database (collection scope only)
 *   space/<id>/store/<file>       for each space in manifest order: its store files,
 *   space/<id>/index/<file>       then its index files
 *
 * The manifest carries the header (id, scope, description, time, trigger, node,
 * epoch, seq, and the FileVault's installation id when known: the catalogue
 * lists checkpoints from it alone) and every other
 * entry's path, size and SHA-256, in archive order. Space ids and file names
 * are `[A-Za-z0-9._-]`, so an entry name can never climb out of a folder.
 *
 * The ZIP is standard (`unzip -t` and any reader accept it) but written one
 * way only, and readers accept only that way, so that a flipped bit anywhere —
 * data, local headers, data descriptors, central directory, end records — is
 * refused instead of half-trusted (zip-records.ts holds the byte layout):
 *  - entries are contiguous from offset 0 (local header, data, data descriptor
 *    if deflated), then the central directory, the zip64 end records if used,
 *    and the end record: no comments, no gaps, nothing after;
 *  - stored entries carry CRC-32 and sizes in the local header (the writer
 *    fills them in once the entry is written); deflated ones set flag bit 3
 *    and carry them in a signed data descriptor after the data;
 *  - manifest.json is always stored, and may end in spaces: the writer
 *    reserves its place at its longest possible length and fills it last;
 *  - every header says version 2.0 (4.5 with zip64), made by Unix, mode 0640,
 *    date and time the manifest's `time` (UTC, DOS format);
 *  - zip64: every entry but the manifest (its size is unknown when its header
 *    is written, so it may reach 4 GiB) has a zip64 extra field in its local
 *    header (both sizes) and 8-byte sizes in its data descriptor; a central
 *    directory record has a zip64 extra field holding exactly the values that
 *    do not fit in 32 bits; the zip64 end records appear when the directory's
 *    count, size or offset does not fit.
 *
 * Readers check the names and the manifest before reading data, then each
 * entry's size (inflating stops the moment an entry yields one byte more than
 * the manifest lists: zip bombs), CRC-32 and SHA-256.
 */
import { CollectionEntry, ManifestEntry, SpaceParts, isSafeSegment } from './entry-names.js';

/**
 * The manifest format versions: 1, each space as NDJSON files (its objects
 * in store/, an index per field in index/), read back into memory; 2, each
 * space as the storage engine's own file, `space/<id>/store/space.sqlite`
 * (space-file.ts: objects and posting lists in one SQLite database), put in
 * place as it is; 3, the layout of 2, each space file having passed SQLite's
 * structure check and its row count when the checkpoint was made
 * (space-check.ts), so that reading it back checks its bytes and its
 * description only. The version says which reader applies.
 */
export const ManifestFormats = [1, 2, 3] as const;

/** A manifest format version. */
export type ManifestFormat = (typeof ManifestFormats)[number];

/** The one file of a space in a checkpoint of format 2 or 3, in its store/ folder. */
export const EngineSpaceFile = 'space.sqlite';

/** Largest manifest.json accepted, in bytes. */
export const ManifestMaxBytes = 16 * 1024 * 1024;

/** Largest checkpoint id (the file name has 9 digits). */
export const MaxCheckpointId = 999_999_999;

/** `space`: one space; `collection`: the collection database and every space. */
export type CheckpointScope = 'space' | 'collection';

/** One entry of the archive besides the manifest. */
export interface FileEntry {
  path: string;
  size: number;
  sha256: string;
}

/** One space in a checkpoint. */
export interface ManifestSpace {
  id: string;
  template: { name: string; version: string };
  objects: number;
  createdSeq: number;
  updatedSeq: number;
  files: FileEntry[];
}

/** The manifest fields the caller chooses (the rest come from the sources). */
export interface ManifestHeader {
  id: number;
  scope: CheckpointScope;
  description: string;
  time: string;
  trigger: string;
  node: string;
  epoch: number;
  seq: number;
  /** The FileVault's installation id (vault/installation.ts); absent in files written before it existed. */
  installation?: string;
}

/** The content of manifest.json. */
export interface Manifest extends ManifestHeader {
  format: ManifestFormat;
  collection: FileEntry | null;
  spaces: ManifestSpace[];
}

/** ISO 8601 UTC with up to 9 fractional digits, as the API writes `time`. */
const TimePattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;
const Sha256Pattern = /^[0-9a-f]{64}$/;

/** Every file entry of `manifest`, in archive order (the manifest itself excluded). */
export function manifestFiles(manifest: Manifest): FileEntry[] {
  const files = manifest.collection === null ? [] : [manifest.collection];
  for (const space of manifest.spaces) files.push(...space.files);
  return files;
}

/** The UTC fields of a manifest `time`, or null when it is not one. */
export function manifestTimeFields(time: string): { year: number; month: number; day: number; hour: number; minute: number; second: number } | null {
  const m = TimePattern.exec(time);
  if (m === null) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const valid = month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60;
  return valid ? { year, month, day, hour, minute, second } : null;
}

class ShapeError extends Error {}

const InstallationPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function installation(value: unknown): string {
  if (typeof value !== 'string' || !InstallationPattern.test(value)) fail('installation', 'is not an installation id (a lowercase UUID)');
  return value;
}

function fail(where: string, what: string): never {
  throw new ShapeError(`manifest field ${where} ${what}`);
}

function object(value: unknown, where: string, keys: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, 'is not an object');
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) if (!keys.includes(key) && !optional.includes(key)) fail(`${where}.${key}`, 'is not part of the manifest format');
  for (const key of keys) if (!Object.hasOwn(record, key)) fail(`${where}.${key}`, 'is missing');
  return record;
}

function string(value: unknown, where: string, nonEmpty = false): string {
  if (typeof value !== 'string') fail(where, 'is not a string');
  if (nonEmpty && value.length === 0) fail(where, 'is empty');
  return value;
}

function count(value: unknown, where: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) fail(where, `is not an integer from 0 to ${max}`);
  return value;
}

function fileEntry(value: unknown, where: string): FileEntry {
  const r = object(value, where, ['path', 'size', 'sha256']);
  const sha256 = string(r.sha256, `${where}.sha256`);
  if (!Sha256Pattern.test(sha256)) fail(`${where}.sha256`, 'is not 64 lowercase hex digits');
  return { path: string(r.path, `${where}.path`), size: count(r.size, `${where}.size`), sha256 };
}

function space(value: unknown, where: string, format: ManifestFormat): ManifestSpace {
  const r = object(value, where, ['id', 'template', 'objects', 'createdSeq', 'updatedSeq', 'files']);
  const id = string(r.id, `${where}.id`);
  if (!isSafeSegment(id)) fail(`${where}.id`, 'is not a space id made of [A-Za-z0-9._-]');
  const t = object(r.template, `${where}.template`, ['name', 'version']);
  if (!Array.isArray(r.files)) fail(`${where}.files`, 'is not an array');
  const files = r.files.map((f, i) => fileEntry(f, `${where}.files[${i}]`));
  // Store files first, then index files: the archive order the writer uses.
  let part = 0;
  files.forEach((f, i) => {
    const segments = f.path.split('/');
    const p = SpaceParts.indexOf(segments[2] as (typeof SpaceParts)[number]);
    if (segments.length !== 4 || segments[0] !== 'space' || segments[1] !== id || p < 0 || !isSafeSegment(segments[3] ?? '')) {
      fail(`${where}.files[${i}].path`, `is not space/${id}/store|index/<file>`);
    }
    if (p < part) fail(`${where}.files[${i}].path`, 'is an index file listed before a store file');
    part = p;
  });
  if (format !== 1 && (files.length !== 1 || files[0]!.path !== `space/${id}/store/${EngineSpaceFile}`)) {
    fail(`${where}.files`, `is not exactly [space/${id}/store/${EngineSpaceFile}] (formats 2 and 3 keep a space in one engine file)`);
  }
  return {
    id,
    template: { name: string(t.name, `${where}.template.name`, true), version: string(t.version, `${where}.template.version`, true) },
    objects: count(r.objects, `${where}.objects`),
    createdSeq: count(r.createdSeq, `${where}.createdSeq`),
    updatedSeq: count(r.updatedSeq, `${where}.updatedSeq`),
    files,
  };
}

/**
 * Check that `value` (parsed JSON) is a format-1 manifest of the exact shape,
 * and return a fresh copy holding only its fields; or say what is wrong.
 */
export function checkManifest(value: unknown): { ok: true; manifest: Manifest } | { ok: false; problem: string } {
  try {
    const r = object(value, 'manifest', ['format', 'id', 'scope', 'description', 'time', 'trigger', 'node', 'epoch', 'seq', 'collection', 'spaces'], ['installation']);
    const format = ManifestFormats.find((f) => f === r.format);
    if (format === undefined) fail('format', `is ${JSON.stringify(r.format)}, not one of ${ManifestFormats.join(', ')} (written by a newer checkpointd?)`);
    const id = count(r.id, 'id', MaxCheckpointId);
    if (id === 0) fail('id', 'is 0; ids start at 1');
    if (r.scope !== 'space' && r.scope !== 'collection') fail('scope', 'is neither "space" nor "collection"');
    const time = string(r.time, 'time');
    if (manifestTimeFields(time) === null) fail('time', 'is not an ISO 8601 UTC time');
    const collection = r.collection === null ? null : fileEntry(r.collection, 'collection');
    if (collection !== null && collection.path !== CollectionEntry) fail('collection.path', `is not ${CollectionEntry}`);
    if (!Array.isArray(r.spaces)) fail('spaces', 'is not an array');
    const spaces = r.spaces.map((s, i) => space(s, `spaces[${i}]`, format));
    if (r.scope === 'collection' && collection === null) fail('collection', 'is null in a collection-scope checkpoint');
    if (r.scope === 'space' && collection !== null) fail('collection', 'is set in a space-scope checkpoint');
    if (r.scope === 'space' && spaces.length !== 1) fail('spaces', 'does not hold exactly one space in a space-scope checkpoint');
    const ids = new Set<string>();
    for (const [i, s] of spaces.entries()) {
      if (ids.has(s.id)) fail(`spaces[${i}].id`, `repeats space ${s.id}`);
      ids.add(s.id);
    }
    const paths = new Set<string>([ManifestEntry]);
    for (const s of spaces) {
      for (const f of s.files) {
        if (paths.has(f.path)) fail('spaces', `lists ${f.path} twice`);
        paths.add(f.path);
      }
    }
    const manifest: Manifest = {
      format,
      id,
      scope: r.scope,
      description: string(r.description, 'description'),
      time,
      trigger: string(r.trigger, 'trigger', true),
      node: string(r.node, 'node'),
      epoch: count(r.epoch, 'epoch'),
      seq: count(r.seq, 'seq'),
      ...(r.installation === undefined ? {} : { installation: installation(r.installation) }),
      collection,
      spaces,
    };
    return { ok: true, manifest };
  } catch (err) {
    if (err instanceof ShapeError) return { ok: false, problem: err.message };
    throw err;
  }
}
