/**
 * The only names a checkpoint ZIP may hold (see manifest.ts for the format):
 * `manifest.json`, `collection/collection.json`, `space/<id>/store/<file>` and
 * `space/<id>/index/<file>`. Anything else — absolute paths, `..`, backslashes,
 * empty segments, control characters — is refused before a byte is trusted.
 */

/** The manifest's entry name; always the first entry. */
export const ManifestEntry = 'manifest.json';

/** The collection database's entry name (collection scope only). */
export const CollectionEntry = 'collection/collection.json';

/** The two folders of a space inside a checkpoint. */
export const SpaceParts = ['store', 'index'] as const;

/** `store` or `index`. */
export type SpacePart = (typeof SpaceParts)[number];

/** Longest space id or file name accepted (a common file-system limit). */
export const MaxSegmentLength = 255;

const SegmentPattern = /^[A-Za-z0-9._-]+$/;

/** What an entry name says once it has been checked. */
export type EntryName =
  | { kind: 'manifest' }
  | { kind: 'collection' }
  | { kind: 'space'; spaceId: string; part: SpacePart; file: string };

/** True when `segment` may be a space id or a file name: `[A-Za-z0-9._-]`, not `.` or `..`. */
export function isSafeSegment(segment: string): boolean {
  return segment.length <= MaxSegmentLength && SegmentPattern.test(segment) && segment !== '.' && segment !== '..';
}

/** The entry name of a space file. */
export function spaceEntryPath(spaceId: string, part: SpacePart, file: string): string {
  return `space/${spaceId}/${part}/${file}`;
}

/** A name fit for a message: control characters and the like escaped, long names cut. */
export function printableName(name: string): string {
  const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f"]/.test(shown) ? JSON.stringify(shown) : shown;
}

/** Parse an entry name, or say why it is refused. */
export function parseEntryName(name: string): { ok: true; name: EntryName } | { ok: false; problem: string } {
  const refuse = (problem: string) => ({ ok: false as const, problem });
  if (name.length === 0) return refuse('the entry name is empty');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return refuse('the entry name holds a control character');
  if (name.includes('\\')) return refuse('the entry name holds a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return refuse('the entry name is an absolute path');
  const segments = name.split('/');
  if (segments.includes('..')) return refuse("the entry name climbs out with '..'");
  if (segments.includes('.')) return refuse("the entry name holds a '.' segment");
  if (segments.includes('')) return refuse('the entry name holds an empty segment');
  if (name === ManifestEntry) return { ok: true, name: { kind: 'manifest' } };
  if (name === CollectionEntry) return { ok: true, name: { kind: 'collection' } };
  const [top, spaceId, part, file] = segments;
  if (segments.length === 4 && top === 'space' && spaceId !== undefined && file !== undefined && (part === 'store' || part === 'index')) {
    if (!isSafeSegment(spaceId)) return refuse('the space id is not made of [A-Za-z0-9._-]');
    if (!isSafeSegment(file)) return refuse('the file name is not made of [A-Za-z0-9._-]');
    return { ok: true, name: { kind: 'space', spaceId, part, file } };
  }
  return refuse('the entry is not part of the checkpoint layout (manifest.json, collection/collection.json, space/<id>/store|index/<file>)');
}
