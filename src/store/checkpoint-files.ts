/**
 * The store's files inside a checkpoint ZIP, written from a snapshot and read
 * back into spaces. The ZIP layer (src/checkpoint) frames, checksums and
 * verifies them; this file owns what they say.
 *
 * Formats (version 1). "Ascending" is JavaScript string order (UTF-16 code
 * units, as `<` compares), which is the order the in-memory maps keep.
 *
 * - `collection/collection.json` (collection scope only), one JSON object:
 *   `{"format":1,"templates":[{"name","version","indexes":[...]}...],
 *   "spaces":[{"id","template":{"name","version"},"objects":N,"createdSeq":N,"updatedSeq":N}...]}`,
 *   templates by name then version, spaces by id (as StoreState lists them).
 * - `space/<id>/store/objects.ndjson`: one line per object, keys ascending:
 *   `{"key":"<key>","value":<the object's stored JSON text>}\n`. Keys need no
 *   escaping (their alphabet has neither quote nor backslash), so a reader
 *   takes the value as the text between `,"value":` and the final `}` without
 *   parsing it: a restore costs a scan per line, not a JSON.parse per object.
 * - `space/<id>/index/<field>.ndjson`, one per indexed field of the space's
 *   template, even when empty (0 bytes): one line per distinct indexed value,
 *   values ascending: `{"value":"<value, JSON-escaped>","keys":["k1","k2",...]}\n`,
 *   keys ascending, never an empty list. Indexes are written rather than
 *   recomputed on restore; the reader trusts them after checks of their form
 *   and order (not that each key is in the object file: see SpaceBuilder)
 *   because the ZIP layer has verified every file's SHA-256.
 *
 * Pieces: every file is handed out as strings cut only between whole JSON
 * tokens (whole lines of a leaf of the object map, the keys of a leaf of a
 * posting list), so each piece is well-formed UTF-16 and encodes to UTF-8 on
 * its own; the archive writer gathers them into large writes. The text of
 * each leaf of objects is kept with it, and then only the text
 * (SortedMap.encodedLeaves with a decoder); a leaf of an index whose posting
 * lists are each one leaf keeps the text of its lines; a long posting list
 * keeps the text of each of its leaves. So a checkpoint encodes only what
 * changed since the one before. A restore keeps the texts it read the same
 * way (an index line of a short posting list with that list, SortedMap.memo,
 * joined into its index leaf's text by the first checkpoint after it).
 */
import { BadRequestError } from '../errors.js';
import { isObjectKeyAt, show, validateObjectKey, validateSpaceId, validateTemplateName, validateVersion } from './identifiers.js';
import { Space, SpaceData, type FieldIndex, type Postings, type SpaceInfo } from './space.js';
import { MaxLeafEntries, SortedMap, type LeafBase, type LeafDecoder, type LeafEncoder, type LeafText } from './sorted-map.js';
import type { StoreState } from './store-state.js';
import { checkTemplate, type TemplateDef, type TemplateRef } from './template.js';

/** Format version of collection.json. */
export const CollectionFormat = 1;
/** Path of the collection database inside a checkpoint. */
export const CollectionFilePath = 'collection/collection.json';

/** Path of a space's object file inside a checkpoint. */
export function storeFilePath(spaceId: string): string {
  return `space/${spaceId}/store/objects.ndjson`;
}

/** Path of a space's index file for `field` inside a checkpoint. */
export function indexFilePath(spaceId: string, field: string): string {
  return `space/${spaceId}/index/${field}.ndjson`;
}

/** One file of a checkpoint: its path in the ZIP and its text. */
export interface ArchiveFileSource {
  path: string;
  /** The text in pieces (see above); may be called again and yields identical text each time. */
  chunks: () => Iterable<string>;
}

/** What collection.json says about one space. */
export interface SpaceMeta {
  id: string;
  template: TemplateRef;
  objects: number;
  createdSeq: number;
  updatedSeq: number;
}

/** The collection database read back from collection.json. */
export interface CollectionData {
  templates: TemplateDef[];
  spaces: SpaceMeta[];
}

/** Keys are written unescaped; a key the identifier rules let through with a quote or backslash would corrupt the file. */
function plainKey(key: string): string {
  // A loop: includes('"') costs several times more per call in V8, and this runs for every key of every file.
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) throw new Error(`object key ${show(key)} holds a quote or backslash; keys cannot`);
  }
  return key;
}

function* collectionPieces(state: CollectionSource): Generator<string, void, undefined> {
  yield `{"format":${CollectionFormat},"templates":[`;
  let first = true;
  for (const t of state.templates()) {
    yield (first ? '' : ',') + JSON.stringify({ name: t.name, version: t.version, indexes: t.indexes });
    first = false;
  }
  yield '],"spaces":[';
  first = true;
  for (const s of state.spaces()) {
    const meta: SpaceMeta = { id: s.id, template: { name: s.template.name, version: s.template.version }, objects: s.objectCount, createdSeq: s.createdSeq, updatedSeq: s.updatedSeq };
    yield (first ? '' : ',') + JSON.stringify(meta);
    first = false;
  }
  yield ']}';
}

/**
 * The object-file lines of one leaf of a space's object map. The leaf then
 * keeps only this text (SortedMap.encodedLeaves with decodeStoreLeaf): the
 * objects a commit stored one by one across the heap end up side by side, in
 * one string, and the next checkpoint re-encodes only leaves changed since.
 */
const encodeStoreLeaf: LeafEncoder<string> = (keys, texts, base) => {
  const parts: string[] = [];
  const fresh = (i: number): void => {
    parts.push(KeyPrefix, plainKey(keys[i] as string), ValueInfix, texts[i] as string, '}\n');
  };
  leafLines(keys, texts, base, parts, fresh);
  return parts.join('');
};

/**
 * Appends to `parts` the lines (each ending in `\n`) of a leaf's entries: made
 * by `fresh`, except those `base` holds under the same key with the same
 * value, which are copied from its text a run at a time. A scan of text
 * already in the cache instead of a visit to every key and value somewhere in
 * the heap.
 *
 * Compared with Object.is rather than ===, which for strings gives the same
 * answer (equal text) at another cost: V8's === reads both strings (their
 * lengths) before it looks at whether they are one string, a cache miss each
 * for keys and values spread over a heap of gigabytes, while Object.is
 * answers for one string without reading it (2 million scattered keys: 3 ns
 * a comparison against 42). The keys and values a leaf shares with its base
 * are mostly the very same strings.
 */
function leafLines<V>(keys: readonly string[], values: readonly V[], base: LeafBase<V> | undefined, parts: string[], fresh: (i: number) => void): void {
  if (base === undefined) {
    for (let i = 0; i < keys.length; i++) fresh(i);
    return;
  }
  const { keys: old, values: oldValues, text: oldText } = base;
  let j = 0;
  let pos = 0; // where base line j starts
  let runStart = -1;
  let runEnd = -1;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    while (j < old.length && !Object.is(old[j], key) && (old[j] as string) < key) {
      pos = oldText.indexOf('\n', pos) + 1;
      j++;
    }
    if (j < old.length && Object.is(old[j], key)) {
      const lineEnd = oldText.indexOf('\n', pos) + 1;
      const same = Object.is(oldValues[j], values[i]);
      j++;
      if (same) {
        if (runStart < 0 || runEnd !== pos) {
          if (runStart >= 0) parts.push(oldText.slice(runStart, runEnd));
          runStart = pos;
        }
        runEnd = lineEnd;
        pos = lineEnd;
        continue;
      }
      pos = lineEnd;
    }
    if (runStart >= 0) parts.push(oldText.slice(runStart, runEnd));
    runStart = -1;
    fresh(i);
  }
  if (runStart >= 0) parts.push(oldText.slice(runStart, runEnd));
}

/** The keys of one leaf of a posting list, as an index line lists them: `k1","k2",...,"kn`; runs of keys its base holds are copied from its text (compared as in leafLines). */
const encodePostingsLeaf: LeafEncoder<true> = (keys, _values, base) => {
  if (base === undefined) {
    for (const key of keys) plainKey(key);
    return keys.join(KeySeparator);
  }
  const { keys: old, text: oldText } = base;
  const pieces: string[] = [];
  let j = 0;
  let pos = 0; // where base key j starts
  let runStart = -1;
  let runEnd = -1;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    while (j < old.length && !Object.is(old[j], key) && (old[j] as string) < key) {
      pos = endOfKey(oldText, pos) + KeySeparator.length;
      j++;
    }
    if (j < old.length && Object.is(old[j], key)) {
      const end = endOfKey(oldText, pos);
      if (runStart < 0 || runEnd + KeySeparator.length !== pos) {
        if (runStart >= 0) pieces.push(oldText.slice(runStart, runEnd));
        runStart = pos;
      }
      runEnd = end;
      pos = end + KeySeparator.length;
      j++;
      continue;
    }
    if (runStart >= 0) pieces.push(oldText.slice(runStart, runEnd));
    runStart = -1;
    pieces.push(plainKey(key));
  }
  if (runStart >= 0) pieces.push(oldText.slice(runStart, runEnd));
  return pieces.join(KeySeparator);
};

/** Where the key at `from` in a posting leaf's text ends: at the next quote (keys hold none), or the text's end. */
function endOfKey(text: string, from: number): number {
  const end = text.indexOf('"', from);
  return end < 0 ? text.length : end;
}

/** The index line of a posting list of one leaf for `value`. */
function singleLeafLine(postings: Postings, value: string): string {
  return `${IndexValueHead}${JSON.stringify(value)}${IndexKeysInfix}${postings.singleLeafText(encodePostingsLeaf) as string}${IndexEnd}\n`;
}

/** A posting list's line: the one a restore kept with it as read (then kept only in the text it goes into), else made now. */
function lineOf(postings: Postings, value: string): string {
  return postings.takeMemo(value) ?? singleLeafLine(postings, value);
}

/** Whether a leaf of an index is kept as one text: when each of its posting lists is one leaf, so each line at most 64 keys. */
function smallLines(_values: readonly string[], lists: readonly Postings[]): boolean {
  for (let i = 0; i < lists.length; i++) if (!(lists[i] as Postings).oneLeaf) return false;
  return true;
}

/**
 * The lines of one leaf of an index whose posting lists are each one leaf
 * (most values are held by a few objects); lines of values the base holds
 * with the very same posting list are copied from its text (see leafLines).
 */
const encodeIndexLeaf: LeafEncoder<Postings> = (values, lists, base) => {
  const parts: string[] = [];
  leafLines(values, lists, base, parts, (i) => parts.push(lineOf(lists[i] as Postings, values[i] as string)));
  return parts.join('');
};

function* storePieces(state: StoreState, spaceId: string): Generator<string, void, undefined> {
  yield* state.encodedObjects(spaceId, encodeStoreLeaf, decodeStoreLeaf);
}

function* indexPieces(state: StoreState, spaceId: string, field: string): Generator<string, void, undefined> {
  for (const leaf of state.encodedIndex(spaceId, field, encodeIndexLeaf, smallLines)) {
    if (typeof leaf === 'string') {
      if (leaf.length > 0) yield leaf;
      continue;
    }
    // A leaf with a long posting list, written a leaf of it at a time.
    const { keys: values, values: lists } = leaf;
    let text = '';
    for (let i = 0; i < values.length; i++) {
      const value = values[i] as string;
      const postings = lists[i] as Postings;
      if (postings.oneLeaf) {
        text += postings.memo(value, singleLeafLine);
        continue;
      }
      if (text.length > 0) yield text;
      text = '';
      let first = true;
      for (const keys of postings.encodedLeaves(encodePostingsLeaf)) {
        yield first ? `${IndexValueHead}${JSON.stringify(value)}${IndexKeysInfix}${keys}` : `","${keys}`;
        first = false;
      }
      yield `${IndexEnd}\n`;
    }
    if (text.length > 0) yield text;
  }
}

/** What collection.json is written from: a state's templates and spaces (StoreState, EngineSnapshot). */
export interface CollectionSource {
  templates(): readonly TemplateDef[];
  spaces(): SpaceInfo[];
}

/** collection.json of `state` (a snapshot: it never changes, so every call of `chunks` yields the same text). */
export function collectionArchiveFile(state: CollectionSource): ArchiveFileSource {
  return { path: CollectionFilePath, chunks: () => collectionPieces(state) };
}

/**
 * The files of one space of `state`: its object file, then one index file per
 * indexed field, by field name. NotFoundError for an unknown space.
 */
export function spaceArchiveFiles(state: StoreState, spaceId: string): ArchiveFileSource[] {
  const fields = state.indexedFields(spaceId).sort();
  return [
    { path: storeFilePath(spaceId), chunks: () => storePieces(state, spaceId) },
    ...fields.map((field) => ({ path: indexFilePath(spaceId, field), chunks: () => indexPieces(state, spaceId, field) })),
  ];
}

function requireRecord(value: unknown, where: string, fields: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadRequestError(`${where} must be a JSON object, not ${show(value)}`);
  }
  const record = value as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (!fields.includes(name)) throw new BadRequestError(`${where} has the unknown member ${show(name)}; format ${CollectionFormat} knows ${fields.join(', ')}`);
  }
  for (const name of fields) {
    if (!Object.hasOwn(record, name)) throw new BadRequestError(`${where} lacks "${name}"`);
  }
  return record;
}

function requireCount(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new BadRequestError(`${where} must be a whole number of 0 or more, not ${typeof value === 'number' ? value : show(value)}`);
  }
  return value;
}

/** Runs `check`, prefixing the message of a BadRequestError it throws with `where`. */
function within<T>(where: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof BadRequestError) throw new BadRequestError(`${where}: ${error.message}`);
    throw error;
  }
}

/** A checked copy of `value` as a SpaceMeta; BadRequestError naming `where` otherwise. */
function checkSpaceMeta(value: unknown, where: string): SpaceMeta {
  const record = requireRecord(value, where, ['id', 'template', 'objects', 'createdSeq', 'updatedSeq']);
  const id = within(`${where}.id`, () => validateSpaceId(record.id));
  const ref = requireRecord(record.template, `${where}.template`, ['name', 'version']);
  const template = within(`${where}.template`, () => ({ name: validateTemplateName(ref.name), version: validateVersion(ref.version) }));
  const objects = requireCount(record.objects, `${where}.objects`);
  const createdSeq = requireCount(record.createdSeq, `${where}.createdSeq`);
  const updatedSeq = requireCount(record.updatedSeq, `${where}.updatedSeq`);
  if (updatedSeq < createdSeq) throw new BadRequestError(`${where}: updatedSeq ${updatedSeq} is before createdSeq ${createdSeq}`);
  return { id, template, objects, createdSeq, updatedSeq };
}

/**
 * The collection database from the text of collection.json, with its shape and
 * every identifier checked: known format, valid templates (no version twice),
 * valid spaces (no id twice) whose templates the file holds. BadRequestError
 * naming the file and the part that is wrong.
 */
export function parseCollectionFile(text: string): CollectionData {
  const file = CollectionFilePath;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new BadRequestError(`${file} is not JSON (${(error as Error).message})`);
  }
  const top = requireRecord(data, file, ['format', 'templates', 'spaces']);
  if (top.format !== CollectionFormat) {
    throw new BadRequestError(`${file} has format ${typeof top.format === 'number' ? top.format : show(top.format)}; this checkpointd reads format ${CollectionFormat}`);
  }
  if (!Array.isArray(top.templates)) throw new BadRequestError(`${file}: templates must be an array`);
  if (!Array.isArray(top.spaces)) throw new BadRequestError(`${file}: spaces must be an array`);

  const templates = new Map<string, TemplateDef>();
  (top.templates as unknown[]).forEach((value, i) => {
    const where = `${file}: templates[${i}]`;
    const record = requireRecord(value, where, ['name', 'version', 'indexes']);
    const def = within(where, () => checkTemplate(record as unknown as TemplateDef));
    const id = `${def.name} ${def.version}`;
    if (templates.has(id)) throw new BadRequestError(`${where}: template ${id} is listed twice`);
    templates.set(id, def);
  });

  const ids = new Set<string>();
  const spaces = (top.spaces as unknown[]).map((value, i) => {
    const where = `${file}: spaces[${i}]`;
    const meta = checkSpaceMeta(value, where);
    if (ids.has(meta.id)) throw new BadRequestError(`${where}: space "${meta.id}" is listed twice`);
    ids.add(meta.id);
    if (!templates.has(`${meta.template.name} ${meta.template.version}`)) {
      throw new BadRequestError(`${where}: space "${meta.id}" follows template ${meta.template.name} ${meta.template.version}, which the file does not list`);
    }
    return meta;
  });
  return { templates: [...templates.values()], spaces };
}

const KeyPrefix = '{"key":"';
const ValueInfix = '","value":';
const IndexValueHead = '{"value":';
const IndexValuePrefix = `${IndexValueHead}"`;
const IndexKeysInfix = ',"keys":["';
const IndexEnd = '"]}';
/** Between the keys of an index line. */
const KeySeparator = '","';
/** Whether character code `c` can start a JSON value: { [ " - 0-9 t f n. */
function startsValue(c: number): boolean {
  return c === 0x7b || c === 0x5b || c === 0x22 || c === 0x2d || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66 || c === 0x6e;
}

/**
 * The index of the first quote in `text` from `from`, before `end`; -1 if none.
 * A loop rather than indexOf('"'), which V8 runs several times slower than
 * this for the few characters of a key.
 */
function quoteFrom(text: string, from: number, end: number): number {
  for (let i = from; i < end; i++) if (text.charCodeAt(i) === 0x22) return i;
  return -1;
}

/** Whether `text` holds `literal` at `at` (startsWith, without its cost per call). */
function holdsAt(text: string, at: number, literal: string): boolean {
  if (at + literal.length > text.length) return false;
  for (let i = 0; i < literal.length; i++) if (text.charCodeAt(at + i) !== literal.charCodeAt(i)) return false;
  return true;
}

/** The index (before `end`) of the quote closing the JSON string whose text starts at `from`, or -1. */
function closingQuote(line: string, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x22) return i;
    if (c === 0x5c) i++;
  }
  return -1;
}

/** Reads back a leaf of the object file: `count` lines, checked when they were read (SpaceBuilder.storeLine). */
const decodeStoreLeaf: LeafDecoder<string> = (text, count) => {
  const keys = new Array<string>(count);
  const texts = new Array<string>(count);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const keyEnd = quoteFrom(text, at + KeyPrefix.length, text.length);
    const lineEnd = text.indexOf('\n', keyEnd);
    keys[i] = text.slice(at + KeyPrefix.length, keyEnd);
    texts[i] = text.slice(keyEnd + ValueInfix.length, lineEnd - 1);
    at = lineEnd + 1;
  }
  return { keys, values: texts };
};

/** Reads back a leaf of a posting list: `count` keys joined by `","`, checked when their line was read (SpaceBuilder.indexLine). */
const decodePostingsLeaf: LeafDecoder<true> = (text, count) => ({ keys: text.split(KeySeparator), values: new Array<true>(count).fill(true) });


/** Whether `a` from `aStart` to `aEnd` comes before `b` from `bStart` to `bEnd` in string order (`<`), compared in place. */
function before(a: string, aStart: number, aEnd: number, b: string, bStart: number, bEnd: number): boolean {
  const length = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(aStart + i);
    const y = b.charCodeAt(bStart + i);
    if (x !== y) return x < y;
  }
  return aEnd - aStart < bEnd - bStart;
}

/**
 * The lines of one leaf as they arrive: runs of consecutive lines of one text
 * are kept as one range and cut out once, so a leaf read from one chunk of
 * the file is a single slice of it.
 */
class LeafCollector {
  private pieces: string[] = [];
  private text = '';
  private start = -1;
  private end = -1;

  /** Adds a line: `text` from `start` to `end`, without its `\n`. */
  add(text: string, start: number, end: number): void {
    if (this.start >= 0 && text === this.text && start === this.end + 1 && text.charCodeAt(this.end) === 0x0a) {
      this.end = end;
      return;
    }
    this.cut();
    this.text = text;
    this.start = start;
    this.end = end;
  }

  /** The lines added since the last call, each ended by `\n`. */
  take(): string {
    this.cut();
    const pieces = this.pieces;
    this.pieces = [];
    this.text = '';
    return pieces.length === 1 ? (pieces[0] as string) : pieces.join('');
  }

  private cut(): void {
    if (this.start < 0) return;
    const { text, start, end } = this;
    this.pieces.push(text.charCodeAt(end) === 0x0a ? text.slice(start, end + 1) : `${text.slice(start, end)}\n`);
    this.start = -1;
  }
}

/** One index file as read so far: values ascending and, for each, its posting list. */
interface IndexLines {
  values: string[];
  postings: Postings[];
}

/**
 * Rebuilds one space from its checkpoint files, a line at a time, checking as
 * it goes. Object values are kept as the text the line holds, never parsed;
 * indexes are taken as written once their form and order check out.
 *
 * Feed it every line of `objects.ndjson` with `storeLine`, and every index
 * file: `indexFile(field)` when the file starts (needed for an empty file, as
 * it has no lines), then `indexLine(field, line)` per line. A line may be
 * given as a range of a larger text (`start`, `end`), so that a reader need
 * not cut each line out first. `build()` then checks the whole and returns
 * the space.
 *
 * Lines are checked in place and kept as text: the object file's lines are
 * gathered into the leaves of the object map as the map would cut them
 * (SortedMap.leafSizes), each leaf one text read into keys and values when
 * first used (SortedMap.fromTexts); an index line's keys likewise become the
 * leaves of its posting list. A restore so allocates a few strings per leaf
 * rather than per object, and the next checkpoint writes the same texts again.
 *
 * What is not checked: that each key an index names is in the object file.
 * The archive layer verifies every byte of both files against the manifest's
 * SHA-256 before a restore is adopted, so they are what the writer wrote from
 * one snapshot; matching two keys per object against the object file took
 * half of a restore's time. Queries skip a key without an object (Space.query).
 */
export class SpaceBuilder {
  private readonly meta: SpaceMeta;
  private readonly template: TemplateDef;
  private readonly storePath: string;
  /** Entries of each leaf of the object map, in order. */
  private readonly leafSizes: number[];
  private readonly leaves: LeafText[] = [];
  private readonly leaf = new LeafCollector();
  private leafCount = 0;
  private leafFirst = '';
  private objects = 0;
  /** The previous line's key, as a range of its text. */
  private lastKey = { text: '', start: 0, end: 0 };
  private readonly indexes = new Map<string, IndexLines>();
  /** Where each key of an index line starts, reused from line to line. */
  private keyStarts = new Int32Array(1024);
  /** The first backslash at or after the last index line's keys in its text (-1: none), see backslashBefore. */
  private readonly nextBackslash = { text: '', at: -1 };
  private built = false;

  /** `template` is the definition of the template version `meta` names; BadRequestError if either is invalid or they differ. */
  constructor(meta: SpaceMeta, template: TemplateDef) {
    this.meta = checkSpaceMeta(meta, 'space');
    this.template = checkTemplate(template);
    this.storePath = storeFilePath(this.meta.id);
    if (this.template.name !== this.meta.template.name || this.template.version !== this.meta.template.version) {
      throw new BadRequestError(
        `space "${this.meta.id}" follows template ${this.meta.template.name} ${this.meta.template.version}, ` +
          `but it is being rebuilt with template ${this.template.name} ${this.template.version}`,
      );
    }
    this.leafSizes = SortedMap.leafSizes(this.meta.objects);
  }

  /** One line of objects.ndjson: `text` from `start` to `end` (without its `\n`). BadRequestError naming the line on any fault. */
  storeLine(text: string, start = 0, end = text.length): void {
    this.requireOpen();
    // No closures, regular expressions or strings per line: this runs a million times in a restore.
    if (!holdsAt(text, start, KeyPrefix)) throw this.storeFault(`does not start with {"key":"`);
    const keyStart = start + KeyPrefix.length;
    const keyEnd = quoteFrom(text, keyStart, end);
    if (keyEnd < 0) throw this.storeFault('the key has no closing quote');
    if (!holdsAt(text, keyEnd, ValueInfix)) throw this.storeFault('the key is not followed by ,"value":');
    const valueStart = keyEnd + ValueInfix.length;
    if (end < valueStart + 2 || text.charCodeAt(end - 1) !== 0x7d || !startsValue(text.charCodeAt(valueStart))) {
      throw this.storeFault('does not hold a JSON value and a closing }');
    }
    if (!isObjectKeyAt(text, keyStart, keyEnd)) {
      try {
        validateObjectKey(text.slice(keyStart, keyEnd));
      } catch (error) {
        throw this.storeFault((error as Error).message);
      }
    }
    const last = this.lastKey;
    if (this.objects > 0 && !before(last.text, last.start, last.end, text, keyStart, keyEnd)) {
      const previous = last.text.slice(last.start, last.end);
      const key = text.slice(keyStart, keyEnd);
      throw this.storeFault(previous === key ? `key ${show(key)} is there twice` : `key ${show(key)} comes after ${show(previous)}; keys must be ascending`);
    }
    if (this.objects >= this.meta.objects) throw this.storeFault(`more objects than the ${this.meta.objects} the space is said to hold`);
    last.text = text;
    last.start = keyStart;
    last.end = keyEnd;
    if (this.leafCount === 0) this.leafFirst = text.slice(keyStart, keyEnd);
    this.leaf.add(text, start, end);
    this.objects++;
    this.leafCount++;
    if (this.leafCount === this.leafSizes[this.leaves.length]) {
      this.leaves.push({ text: this.leaf.take(), count: this.leafCount, first: this.leafFirst });
      this.leafCount = 0;
    }
  }

  /** Marks that index/<field>.ndjson is present; BadRequestError if the field is not indexed or its file was given already. */
  indexFile(field: string): void {
    this.requireOpen();
    if (this.indexes.has(field)) throw new BadRequestError(`${indexFilePath(this.meta.id, field)} is given twice`);
    this.startIndex(field);
  }

  /**
   * One line of index/<field>.ndjson: `text` from `start` to `end` (without its
   * `\n`); starts that file if `indexFile` was not called. BadRequestError
   * naming the line on any fault.
   */
  indexLine(field: string, text: string, start = 0, end = text.length): void {
    this.requireOpen();
    const index = this.indexes.get(field) ?? this.startIndex(field);
    if (!holdsAt(text, start, IndexValuePrefix)) throw this.indexFault(field, index, `does not start with {"value":"`);
    const valueStart = start + IndexValuePrefix.length;
    const valueEnd = closingQuote(text, valueStart, end);
    if (valueEnd < 0) throw this.indexFault(field, index, 'the value has no closing quote');
    let value = text.slice(valueStart, valueEnd);
    for (let i = valueStart; i < valueEnd; i++) {
      if (text.charCodeAt(i) < 0x20) throw this.indexFault(field, index, 'the value holds a control character; it is not a JSON string');
    }
    const escaped = this.backslashBefore(text, valueStart, valueEnd);
    if (escaped) {
      try {
        value = JSON.parse(text.slice(valueStart - 1, valueEnd + 1)) as string;
      } catch {
        throw this.indexFault(field, index, 'the value is not a JSON string');
      }
    }
    if (!holdsAt(text, valueEnd + 1, IndexKeysInfix)) throw this.indexFault(field, index, 'the value is not followed by a non-empty ,"keys":[...]');
    const keysStart = valueEnd + 1 + IndexKeysInfix.length;
    const keysEnd = end - IndexEnd.length;
    if (keysEnd < keysStart || !holdsAt(text, keysEnd, IndexEnd)) throw this.indexFault(field, index, 'does not end with "]}');
    const previous = index.values[index.values.length - 1];
    if (previous !== undefined && !(previous < value)) {
      throw this.indexFault(field, index, previous === value ? `value ${show(value)} is there twice` : `value ${show(value)} comes after ${show(previous)}; values must be ascending`);
    }
    if (this.backslashBefore(text, keysStart, keysEnd)) throw this.indexFault(field, index, 'a key holds a backslash; keys cannot');
    // Each key, in place: up to the next quote, which must open the separator `","`.
    let count = 0;
    let keyStart = keysStart;
    for (;;) {
      let keyEnd = quoteFrom(text, keyStart, keysEnd);
      if (keyEnd < 0) keyEnd = keysEnd;
      else if (!holdsAt(text, keyEnd, KeySeparator) || keyEnd + KeySeparator.length > keysEnd) throw this.indexFault(field, index, `keys[${count}] is not a key`);
      if (keyEnd === keyStart) throw this.indexFault(field, index, `keys[${count}] is not a key`);
      if (count > 0) {
        const lastStart = this.keyStarts[count - 1] as number;
        const lastEnd = keyStart - KeySeparator.length;
        if (!before(text, lastStart, lastEnd, text, keyStart, keyEnd)) {
          const key = text.slice(keyStart, keyEnd);
          const last = text.slice(lastStart, lastEnd);
          throw this.indexFault(field, index, `keys[${count}] ${show(key)} is not after ${show(last)}; keys must be ascending`);
        }
      }
      if (count === this.keyStarts.length) {
        const grown = new Int32Array(count * 2);
        grown.set(this.keyStarts);
        this.keyStarts = grown;
      }
      this.keyStarts[count++] = keyStart;
      if (keyEnd === keysEnd) break;
      keyStart = keyEnd + KeySeparator.length;
    }
    index.values.push(value);
    // The keys become the leaves of the posting list, cut as the map would cut them; most lines are one leaf.
    if (count <= MaxLeafEntries) {
      const postings = SortedMap.fromText(text.slice(keysStart, keysEnd), count, undefined, decodePostingsLeaf, encodePostingsLeaf);
      // The line as read is the one the next checkpoint writes, when the value is written as JSON.stringify writes it.
      if (!escaped) postings.remember(value, text.charCodeAt(end) === 0x0a ? text.slice(start, end + 1) : `${text.slice(start, end)}\n`);
      index.postings.push(postings);
      return;
    }
    const texts: LeafText[] = [];
    let from = 0;
    for (const size of SortedMap.leafSizes(count)) {
      const to = from + size;
      const leafStart = this.keyStarts[from] as number;
      const leafEnd = to === count ? keysEnd : (this.keyStarts[to] as number) - KeySeparator.length;
      const firstEnd = size === 1 ? leafEnd : (this.keyStarts[from + 1] as number) - KeySeparator.length;
      texts.push({ text: text.slice(leafStart, leafEnd), count: size, first: text.slice(leafStart, firstEnd) });
      from = to;
    }
    index.postings.push(SortedMap.fromTexts(texts, decodePostingsLeaf, encodePostingsLeaf));
  }

  /**
   * Whether `text` holds a backslash from `start` to `end`. The next one at or
   * after a position is remembered per text, as lines come in order: a search
   * per line would run on to the end of a chunk of thousands of lines.
   */
  private backslashBefore(text: string, start: number, end: number): boolean {
    const seen = this.nextBackslash;
    if (seen.text !== text || (seen.at !== -1 && seen.at < start)) {
      seen.text = text;
      seen.at = text.indexOf('\\', start);
    }
    return seen.at !== -1 && seen.at < end;
  }

  /**
   * The rebuilt space. BadRequestError if the object count is not the one the
   * space is said to hold, or an index file of an indexed field was not given.
   */
  build(): SpaceData {
    this.requireOpen();
    this.built = true;
    const { id, objects, createdSeq, updatedSeq } = this.meta;
    if (this.objects !== objects) {
      throw new BadRequestError(`${this.storePath} holds ${this.objects} objects, but space "${id}" is said to hold ${objects}`);
    }
    const indexes = new Map<string, FieldIndex>();
    for (const field of this.template.indexes) {
      const lines = this.indexes.get(field);
      if (lines === undefined) {
        throw new BadRequestError(`${indexFilePath(id, field)} is missing: template ${this.template.name} ${this.template.version} indexes "${field}"`);
      }
      indexes.set(field, SortedMap.fromSortedArrays(lines.values, lines.postings, true));
    }
    const leaves = this.leaves.splice(0);
    this.indexes.clear();
    const space = Space.restore(id, this.template, SortedMap.fromTexts(leaves, decodeStoreLeaf, encodeStoreLeaf), indexes, createdSeq, updatedSeq);
    return new SpaceData(space);
  }

  private startIndex(field: string): IndexLines {
    if (!this.template.indexes.includes(field)) {
      throw new BadRequestError(
        `space "${this.meta.id}": an index file for field ${show(field)} was given, but template ${this.template.name} ${this.template.version} ` +
          `does not index that field (it indexes ${this.template.indexes.length === 0 ? 'no fields' : this.template.indexes.join(', ')})`,
      );
    }
    const lines: IndexLines = { values: [], postings: [] };
    this.indexes.set(field, lines);
    return lines;
  }

  private indexFault(field: string, index: IndexLines, what: string): BadRequestError {
    return new BadRequestError(`${indexFilePath(this.meta.id, field)} line ${index.values.length + 1}: ${what}`);
  }

  private storeFault(what: string): BadRequestError {
    return new BadRequestError(`${this.storePath} line ${this.objects + 1}: ${what}`);
  }

  private requireOpen(): void {
    if (this.built) throw new Error(`SpaceBuilder for space "${this.meta.id}" has built its space already; make a new one`);
  }
}
