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
 *   recomputed on restore; the reader trusts them after cheap checks (order,
 *   keys that exist) because the ZIP layer has verified every file's SHA-256.
 *
 * Pieces: every file is handed out as strings cut only between whole JSON
 * tokens (whole lines of a leaf of the object map, the keys of a leaf of a
 * posting list), so each piece is well-formed UTF-16 and encodes to UTF-8 on
 * its own; the archive writer gathers them into large writes. The text of
 * each leaf is kept with it (SortedMap.encodedLeaves), so a checkpoint
 * encodes only what changed since the one before.
 */
import { BadRequestError } from '../errors.js';
import { show, validateObjectKey, validateSpaceId, validateTemplateName, validateVersion } from './identifiers.js';
import { postingsOf, Space, SpaceData, type FieldIndex, type Postings } from './space.js';
import { SortedMap, type LeafEncoder } from './sorted-map.js';
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
  if (key.includes('"') || key.includes('\\')) throw new Error(`object key ${show(key)} holds a quote or backslash; keys cannot`);
  return key;
}

function* collectionPieces(state: StoreState): Generator<string, void, undefined> {
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
 * The object-file lines of one leaf of a space's object map. The leaf's values
 * are then replaced by slices of the text made (equal strings), so that the
 * leaf holds its objects' text once, in one place: the objects a commit stored
 * one by one across the heap end up side by side, and the text is kept for
 * the next checkpoint (SortedMap.encodedLeaves), which re-encodes only leaves
 * changed since.
 */
const encodeStoreLeaf: LeafEncoder<string> = (keys, texts) => {
  const lines = new Array<string>(keys.length);
  for (let i = 0; i < keys.length; i++) lines[i] = `${KeyPrefix}${plainKey(keys[i] as string)}${ValueInfix}${texts[i] as string}}\n`;
  const text = lines.join('');
  let at = 0;
  for (let i = 0; i < keys.length; i++) {
    const start = at + KeyPrefix.length + (keys[i] as string).length + ValueInfix.length;
    const end = start + (texts[i] as string).length;
    texts[i] = text.slice(start, end);
    at = end + 2;
  }
  return text;
};

/** The keys of one leaf of a posting list, as an index line lists them: `k1","k2",...,"kn`. */
const encodePostingsLeaf: LeafEncoder<true> = (keys) => {
  for (const key of keys) plainKey(key);
  return keys.join('","');
};

function* storePieces(state: StoreState, spaceId: string): Generator<string, void, undefined> {
  yield* state.encodedObjects(spaceId, encodeStoreLeaf);
}

function* indexPieces(state: StoreState, spaceId: string, field: string): Generator<string, void, undefined> {
  let text = '';
  for (const [values, postingLists] of state.indexLeaves(spaceId, field)) {
    for (let i = 0; i < values.length; i++) {
      const head = `${IndexValueHead}${JSON.stringify(values[i])}${IndexKeysInfix}`;
      const postings = postingLists[i] as Postings;
      // Most values are held by a few objects: a posting list of one leaf, joined into the text without an iterator.
      const single = postings.encodedSingleLeaf(encodePostingsLeaf);
      if (single !== undefined) {
        text += `${head}${single}${IndexEnd}\n`;
        continue;
      }
      if (text.length > 0) yield text;
      text = '';
      let first = true;
      for (const keys of postings.encodedLeaves(encodePostingsLeaf)) {
        yield first ? head + keys : `","${keys}`;
        first = false;
      }
      yield `${IndexEnd}\n`;
    }
    if (text.length >= IndexTextChars) {
      yield text;
      text = '';
    }
  }
  if (text.length > 0) yield text;
}

/** collection.json of `state` (a snapshot: it never changes, so every call of `chunks` yields the same text). */
export function collectionArchiveFile(state: StoreState): ArchiveFileSource {
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
/** Whether character code `c` can start a JSON value: { [ " - 0-9 t f n. */
function startsValue(c: number): boolean {
  return c === 0x7b || c === 0x5b || c === 0x22 || c === 0x2d || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66 || c === 0x6e;
}

/** The index of the quote closing the JSON string whose text starts at `from`, or -1. */
function closingQuote(line: string, from: number): number {
  for (let i = from; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x22) return i;
    if (c === 0x5c) i++;
  }
  return -1;
}

const NoKeys: string[] = [];

/** Short index lines are joined into texts of about this many characters before they are handed out. */
const IndexTextChars = 16 * 1024;

/** An index line holding at least 1/DenseLineShare of the space's keys resolves them by search rather than by map. */
const DenseLineShare = 16;

/** One index file as read so far: values ascending and, for each, its keys. */
interface IndexLines {
  values: string[];
  /**
   * Keys of each value: the object file's own strings once resolved, or as cut
   * from the line while the object file is still being read (resolved at build()).
   */
  keys: string[][];
  /** The posting lists of the first lines, made as they are resolved (their `keys` entries are then dropped). */
  postings: Postings[];
}

/**
 * Rebuilds one space from its checkpoint files, a line at a time, checking as
 * it goes. Object values are kept as the text the line holds, never parsed;
 * indexes are taken as written once their order and keys check out.
 *
 * Feed it every line of `objects.ndjson` with `storeLine`, and every index
 * file: `indexFile(field)` when the file starts (needed for an empty file, as
 * it has no lines), then `indexLine(field, line)` per line. `build()` then
 * checks the whole and returns the space.
 */
export class SpaceBuilder {
  private readonly meta: SpaceMeta;
  private readonly template: TemplateDef;
  private readonly storePath: string;
  private keys: string[] = [];
  private texts: string[] = [];
  private readonly indexes = new Map<string, IndexLines>();
  private keyPositions: Map<string, number> | null = null;
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
  }

  /** One line of objects.ndjson (without its `\n`). BadRequestError naming the line on any fault. */
  storeLine(line: string): void {
    this.requireOpen();
    // No closures or regular expressions per line: this runs a million times in a restore.
    if (!line.startsWith(KeyPrefix)) throw this.storeFault(`does not start with {"key":"`);
    const keyEnd = line.indexOf('"', KeyPrefix.length);
    if (keyEnd < 0) throw this.storeFault('the key has no closing quote');
    const key = line.slice(KeyPrefix.length, keyEnd);
    if (!line.startsWith(ValueInfix, keyEnd)) throw this.storeFault('the key is not followed by ,"value":');
    const valueStart = keyEnd + ValueInfix.length;
    if (line.length < valueStart + 2 || line.charCodeAt(line.length - 1) !== 0x7d || !startsValue(line.charCodeAt(valueStart))) {
      throw this.storeFault('does not hold a JSON value and a closing }');
    }
    try {
      validateObjectKey(key);
    } catch (error) {
      throw this.storeFault((error as Error).message);
    }
    const previous = this.keys[this.keys.length - 1];
    if (previous !== undefined && !(previous < key)) {
      throw this.storeFault(previous === key ? `key ${show(key)} is there twice` : `key ${show(key)} comes after ${show(previous)}; keys must be ascending`);
    }
    if (this.keys.length >= this.meta.objects) throw this.storeFault(`more objects than the ${this.meta.objects} the space is said to hold`);
    this.keys.push(key);
    this.texts.push(line.slice(valueStart, line.length - 1));
  }

  /** Marks that index/<field>.ndjson is present; BadRequestError if the field is not indexed or its file was given already. */
  indexFile(field: string): void {
    this.requireOpen();
    if (this.indexes.has(field)) throw new BadRequestError(`${indexFilePath(this.meta.id, field)} is given twice`);
    this.startIndex(field);
  }

  /** One line of index/<field>.ndjson (without its `\n`); starts that file if `indexFile` was not called. BadRequestError naming the line on any fault. */
  indexLine(field: string, line: string): void {
    this.requireOpen();
    const index = this.indexes.get(field) ?? this.startIndex(field);
    if (!line.startsWith(IndexValuePrefix)) throw this.indexFault(field, index, `does not start with {"value":"`);
    const valueEnd = closingQuote(line, IndexValuePrefix.length);
    if (valueEnd < 0) throw this.indexFault(field, index, 'the value has no closing quote');
    let value = line.slice(IndexValuePrefix.length, valueEnd);
    if (value.includes('\\')) {
      try {
        value = JSON.parse(line.slice(IndexValuePrefix.length - 1, valueEnd + 1)) as string;
      } catch {
        throw this.indexFault(field, index, 'the value is not a JSON string');
      }
    }
    if (!line.startsWith(IndexKeysInfix, valueEnd + 1)) throw this.indexFault(field, index, 'the value is not followed by a non-empty ,"keys":[...]');
    const keysStart = valueEnd + 1 + IndexKeysInfix.length;
    if (!line.endsWith(IndexEnd) || line.length - IndexEnd.length < keysStart) throw this.indexFault(field, index, 'does not end with "]}');
    const keys = line.slice(keysStart, line.length - IndexEnd.length).split('","');
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      if (key.length === 0 || key.includes('"')) throw this.indexFault(field, index, `keys[${i}] is not a key`);
      if (i > 0 && !((keys[i - 1] as string) < key)) throw this.indexFault(field, index, `keys[${i}] ${show(key)} is not after ${show(keys[i - 1])}; keys must be ascending`);
    }
    const previous = index.values[index.values.length - 1];
    if (previous !== undefined && !(previous < value)) {
      throw this.indexFault(field, index, previous === value ? `value ${show(value)} is there twice` : `value ${show(value)} comes after ${show(previous)}; values must be ascending`);
    }
    index.values.push(value);
    index.keys.push(keys);
    // Once the whole object file is in, resolve each line as it comes: build() then has little left to do.
    if (this.keys.length === this.meta.objects) this.resolve(field, index);
  }

  /**
   * The rebuilt space. BadRequestError if the object count is not the one the
   * space is said to hold, an index file of an indexed field was not given, or
   * an index names a key the object file does not hold.
   */
  build(): SpaceData {
    this.requireOpen();
    this.built = true;
    const { id, objects, createdSeq, updatedSeq } = this.meta;
    if (this.keys.length !== objects) {
      throw new BadRequestError(`${this.storePath} holds ${this.keys.length} objects, but space "${id}" is said to hold ${objects}`);
    }
    const indexes = new Map<string, FieldIndex>();
    for (const field of this.template.indexes) {
      const lines = this.indexes.get(field);
      if (lines === undefined) {
        throw new BadRequestError(`${indexFilePath(id, field)} is missing: template ${this.template.name} ${this.template.version} indexes "${field}"`);
      }
      this.resolve(field, lines);
      indexes.set(field, SortedMap.fromSortedArrays(lines.values, lines.postings));
    }
    const keys = this.keys;
    const texts = this.texts;
    this.keys = [];
    this.texts = [];
    this.indexes.clear();
    this.keyPositions = null;
    const space = Space.restore(id, this.template, SortedMap.fromSortedArrays(keys, texts), indexes, createdSeq, updatedSeq);
    return new SpaceData(space);
  }

  /**
   * Replace the keys of `lines` not yet resolved by the object file's own
   * strings (so the index shares them rather than keeping the line each was cut
   * from), checking each is there. A line holding many of the space's keys
   * finds each next one a little ahead of the last (a galloping search); a
   * line of a few is looked up in a map from key to position, made once.
   */
  private resolve(field: string, lines: IndexLines): void {
    const keys = this.keys;
    for (let line = lines.postings.length; line < lines.keys.length; line++) {
      const list = lines.keys[line] as string[];
      const dense = list.length * DenseLineShare >= keys.length;
      let from = 0;
      for (let i = 0; i < list.length; i++) {
        const key = list[i] as string;
        const at = dense ? searchFrom(keys, key, from) : (this.positions().get(key) ?? -1);
        if (at < 0) {
          throw new BadRequestError(`${indexFilePath(this.meta.id, field)} line ${line + 1}: key ${show(key)} is not in ${this.storePath}`);
        }
        list[i] = keys[at] as string;
        from = at + 1;
      }
      lines.postings.push(postingsOf(list));
      lines.keys[line] = NoKeys;
    }
  }

  /** Key → position in the object file, made on first use. */
  private positions(): Map<string, number> {
    if (this.keyPositions === null) {
      this.keyPositions = new Map();
      for (let i = 0; i < this.keys.length; i++) this.keyPositions.set(this.keys[i] as string, i);
    }
    return this.keyPositions;
  }

  private startIndex(field: string): IndexLines {
    if (!this.template.indexes.includes(field)) {
      throw new BadRequestError(
        `space "${this.meta.id}": an index file for field ${show(field)} was given, but template ${this.template.name} ${this.template.version} ` +
          `does not index that field (it indexes ${this.template.indexes.length === 0 ? 'no fields' : this.template.indexes.join(', ')})`,
      );
    }
    const lines: IndexLines = { values: [], keys: [], postings: [] };
    this.indexes.set(field, lines);
    return lines;
  }

  private indexFault(field: string, index: IndexLines, what: string): BadRequestError {
    return new BadRequestError(`${indexFilePath(this.meta.id, field)} line ${index.values.length + 1}: ${what}`);
  }

  private storeFault(what: string): BadRequestError {
    return new BadRequestError(`${this.storePath} line ${this.keys.length + 1}: ${what}`);
  }

  private requireOpen(): void {
    if (this.built) throw new Error(`SpaceBuilder for space "${this.meta.id}" has built its space already; make a new one`);
  }
}

/**
 * Where `key` is in the ascending `keys`, looking from `from` on; -1 if absent.
 * Gallops first (1, 2, 4, ... ahead): a posting list's keys come in order, so the
 * next one is usually close and the search costs the log of the gap, not of the space.
 */
function searchFrom(keys: readonly string[], key: string, from: number): number {
  let lo = from;
  let step = 1;
  while (lo + step - 1 < keys.length && (keys[lo + step - 1] as string) < key) {
    lo += step;
    step *= 2;
  }
  let hi = Math.min(lo + step - 1, keys.length);
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return keys[lo] === key ? lo : -1;
}
