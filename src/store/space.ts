/**
 * One space: its objects by key and an index per indexed field. A `Space` is a
 * value: every change returns a new one that shares all untouched structure
 * with the old, so an older `StoreState` keeps reading exactly what it held.
 *
 * Each object is kept as its JSON text, made once when it is put: a checkpoint
 * writes the text as it is, a restore keeps it without parsing, a GET can
 * answer with it, and a string takes less memory than the object graph it
 * stands for. Index values are read from the parsed value the put carries; the
 * old value's text is parsed only when a replace or delete must drop its index
 * entries, and only if it can hold an indexed field at all.
 */
import { Map as IMap } from 'immutable';
import type { Json } from './json.js';
import type { TxOp } from './ops.js';
import { SortedMap, type LeafDecoder, type LeafEncoder, type LeafEntries } from './sorted-map.js';
import { checkFilter, checkTransaction, missingDeleteError, notIndexedError } from './rules.js';
import { templateRef, type TemplateDef, type TemplateRef } from './template.js';
import { mayHold, parsedForIndex, termsOf } from './terms.js';

/** What the API and checkpoints say about a space. */
export interface SpaceInfo {
  id: string;
  template: TemplateRef;
  objectCount: number;
  createdSeq: number;
  updatedSeq: number;
}

/** Keys of the objects holding one indexed value, in key order so that query results need no sort. */
export type Postings = SortedMap<true>;
/**
 * Indexed value (as a string) → keys of the objects holding it, for one field;
 * sorted by value so that a checkpoint writes an index without sorting it.
 */
export type FieldIndex = SortedMap<Postings>;

/** `indexes` after the object at `key` changed from `before` to `after` (undefined = absent); only differing terms are touched. */
function reindex(
  indexes: IMap<string, FieldIndex>,
  fields: readonly string[],
  key: string,
  before: Json | undefined,
  after: Json | undefined,
): IMap<string, FieldIndex> {
  let out = indexes;
  for (const field of fields) {
    const old = termsOf(before, field);
    const next = termsOf(after, field);
    if (old.size === 0 && next.size === 0) continue;
    let index = out.get(field) ?? SortedMap.empty<Postings>();
    for (const t of old) {
      if (next.has(t)) continue;
      const postings = (index.get(t) ?? SortedMap.empty<true>()).delete(key);
      index = postings.size === 0 ? index.delete(t) : index.set(t, postings);
    }
    for (const t of next) {
      if (old.has(t)) continue;
      index = index.set(t, (index.get(t) ?? SortedMap.empty<true>()).set(key, true));
    }
    out = out.set(field, index);
  }
  return out;
}

/** A posting list from keys in strictly ascending order (Error otherwise, unless `checked` says the caller made sure). */
export function postingsOf(keys: readonly string[], checked = false): Postings {
  return SortedMap.fromSortedKeys(keys, true as const, checked);
}

/** A fresh index on `field` over every object, built in one pass (objects arrive in key order, so postings do too). */
function buildIndex(objects: SortedMap<string>, field: string): FieldIndex {
  const keysByTerm = new Map<string, string[]>();
  for (const [key, text] of objects) {
    if (!mayHold(text, field)) continue;
    for (const t of termsOf(JSON.parse(text) as Json, field)) {
      let keys = keysByTerm.get(t);
      if (keys === undefined) keysByTerm.set(t, (keys = []));
      keys.push(key);
    }
  }
  const terms = [...keysByTerm.keys()].sort();
  return SortedMap.fromSortedArrays(
    terms,
    terms.map((t) => postingsOf(keysByTerm.get(t) as string[])),
  );
}

/** A space's objects and indexes at one point in time. */
export class Space {
  private constructor(
    /** The space id. */
    readonly id: string,
    /** The template version the space follows. */
    readonly template: TemplateRef,
    /** Fields the template version indexes. */
    readonly indexFields: readonly string[],
    /** Key → the object's JSON text. */
    private readonly objects: SortedMap<string>,
    /** Field → its index; a field with no indexed values may be absent. */
    private readonly indexes: IMap<string, FieldIndex>,
    /** Seq of the op that created the space. */
    readonly createdSeq: number,
    /** Seq of the last op that changed the space. */
    readonly updatedSeq: number,
  ) {}

  /** A new, empty space following `template` (already validated). */
  static create(id: string, template: TemplateDef, seq: number): Space {
    return new Space(id, templateRef(template), template.indexes, SortedMap.empty(), IMap(), seq, seq);
  }

  /**
   * A space from parts read back from a checkpoint: `objects` (key → JSON text)
   * and an index for each field of `indexes`. The caller has checked them (see
   * SpaceBuilder); nothing is recomputed.
   */
  static restore(
    id: string,
    template: TemplateDef,
    objects: SortedMap<string>,
    indexes: ReadonlyMap<string, FieldIndex>,
    createdSeq: number,
    updatedSeq: number,
  ): Space {
    const byField = IMap<string, FieldIndex>().withMutations((out) => {
      for (const [field, index] of indexes) if (index.size > 0) out.set(field, index);
    });
    return new Space(id, templateRef(template), template.indexes, objects, byField, createdSeq, updatedSeq);
  }

  /** This space, put in place under `template` (same name, version and index fields) and last changed at `seq`. */
  restoredAt(template: TemplateDef, seq: number): Space {
    // A checkpoint of another installation counts its own seqs: a space it made later than `seq` here counts as made now.
    return new Space(this.id, templateRef(template), template.indexes, this.objects, this.indexes, Math.min(this.createdSeq, seq), seq);
  }

  /** Number of objects; O(1). */
  get objectCount(): number {
    return this.objects.size;
  }

  /** The JSON text of the object under `key`, or undefined. */
  getText(key: string): string | undefined {
    return this.objects.get(key);
  }

  /** The object under `key`, parsed afresh (the caller may change it), or undefined. */
  get(key: string): Json | undefined {
    const text = this.objects.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as Json);
  }

  /** All objects as JSON text, in key order, lazily. */
  entries(): IterableIterator<[string, string]> {
    return this.objects.entries();
  }

  /**
   * One field's index, lazily: each distinct indexed value in ascending order
   * (as `<` compares strings) with the keys holding it in key order.
   * BadRequestError if the field is not indexed.
   */
  indexEntries(field: string): IterableIterator<[string, IterableIterator<string>]> {
    this.requireIndexed(field);
    return walkIndex(this.indexes.get(field), (postings) => postings.keys());
  }

  /** The objects' text as `encode` makes it of each leaf of the object map, in key order (SortedMap.encodedLeaves: kept with each leaf, read back with `decode`). */
  encodedObjects(encode: LeafEncoder<string>, decode: LeafDecoder<string>): IterableIterator<string> {
    return this.objects.encodedLeaves(encode, decode);
  }

  /**
   * One field's index a leaf at a time, for a checkpoint writer: the text
   * `encode` makes of a leaf where `encodes` says so, kept with it
   * (SortedMap.encodedLeavesWhere), else the leaf's indexed values ascending
   * and the posting list of each.
   */
  encodedIndex(field: string, encode: LeafEncoder<Postings>, encodes: (values: readonly string[], lists: readonly Postings[]) => boolean): IterableIterator<string | LeafEntries<Postings>> {
    this.requireIndexed(field);
    return (this.indexes.get(field) ?? SortedMap.empty<Postings>()).encodedLeavesWhere(encode, encodes);
  }

  /**
   * The space after all of `ops`, in order, each seeing the ones before it. Throws
   * (BadRequestError for a malformed op, ConflictError for a delete of a missing
   * key) without any effect: the new space is only returned once every op applied.
   */
  commit(ops: readonly TxOp[], seq: number): Space {
    checkTransaction(ops);
    const fields = this.indexFields;
    let objects = this.objects;
    let indexes = this.indexes;
    ops.forEach((op, i) => {
      const before = objects.get(op.key);
      if (op.op === 'put') {
        // The value was checked to be JSON (ops.ts), so the text parses back to an equal value.
        const next = objects.set(op.key, JSON.stringify(op.value));
        if (next === objects) return;
        objects = next;
        if (fields.length > 0) indexes = reindex(indexes, fields, op.key, parsedForIndex(before, fields), op.value);
      } else {
        if (before === undefined) throw missingDeleteError(this.id, op.key, i);
        objects = objects.delete(op.key);
        if (fields.length > 0) indexes = reindex(indexes, fields, op.key, parsedForIndex(before, fields), undefined);
      }
    });
    return new Space(this.id, this.template, this.indexFields, objects, indexes, this.createdSeq, seq);
  }

  /** The space following the newer `template` version (already checked): indexes for fields it dropped go, new ones are built. */
  upgrade(template: TemplateDef, seq: number): Space {
    const indexes = IMap<string, FieldIndex>().withMutations((out) => {
      for (const field of template.indexes) {
        const index = this.indexFields.includes(field) ? this.indexes.get(field) : buildIndex(this.objects, field);
        if (index !== undefined && index.size > 0) out.set(field, index);
      }
    });
    return new Space(this.id, templateRef(template), template.indexes, this.objects, indexes, this.createdSeq, seq);
  }

  /**
   * Keys and JSON texts of the objects whose indexed fields equal every value
   * in `filter`, in key order, produced lazily; all objects for an empty
   * filter. Uses the indexes: the smallest matching posting list is walked and
   * checked against the others. With `after`, only the keys after it: a page
   * of a keyset query seeks to its first key in O(log n) and reads no further
   * than the caller takes. The filter is checked before the first.
   */
  matches(filter: Readonly<Record<string, string>>, after?: string): IterableIterator<{ key: string; text: string }> {
    const lists: Postings[] = [];
    for (const [field, wanted] of checkFilter(this.info(), this.indexFields, filter)) {
      lists.push(this.indexes.get(field)?.get(wanted) ?? SortedMap.empty());
    }
    lists.sort((a, b) => a.size - b.size);
    return matching(this.objects, lists, after);
  }

  /** A fresh description for callers (they may keep or change it freely). */
  info(): SpaceInfo {
    return { id: this.id, template: { ...this.template }, objectCount: this.objects.size, createdSeq: this.createdSeq, updatedSeq: this.updatedSeq };
  }

  private requireIndexed(field: string): void {
    if (!this.indexFields.includes(field)) throw notIndexedError(this.info(), this.indexFields, field);
  }

}

/** The objects in `lists[0]` (all of them with no list) that every other list holds, after `after`. */
function* matching(objects: SortedMap<string>, lists: readonly Postings[], after: string | undefined): IterableIterator<{ key: string; text: string }> {
  const from = <V>(map: SortedMap<V>): IterableIterator<[string, V]> => (after === undefined ? map.entries() : map.entriesAfter(after));
  const [smallest, ...others] = lists;
  if (smallest === undefined) {
    for (const [key, text] of from(objects)) yield { key, text };
    return;
  }
  for (const [key] of from(smallest)) {
    if (!others.every((list) => list.has(key))) continue;
    // An index restored from a checkpoint is trusted, not matched key by key against the objects (SpaceBuilder).
    const text = objects.get(key);
    if (text !== undefined) yield { key, text };
  }
}

function* walkIndex<T>(index: FieldIndex | undefined, keysOf: (postings: Postings) => T): IterableIterator<[string, T]> {
  if (index === undefined) return;
  for (const [value, postings] of index) yield [value, keysOf(postings)];
}

/**
 * A space rebuilt from a checkpoint (by SpaceBuilder), ready for
 * `StoreState.withRestoredSpaces` or `StoreState.fromCollection`. Opaque to
 * other components: they read its id, template and count.
 */
export class SpaceData {
  /** Only the store makes these. */
  constructor(
    /** @internal The rebuilt space; only StoreState reads it. */
    readonly space: Space,
  ) {}

  /** The space id. */
  get id(): string {
    return this.space.id;
  }

  /** The template version the space follows. */
  get template(): TemplateRef {
    return { ...this.space.template };
  }

  /** Number of objects. */
  get objectCount(): number {
    return this.space.objectCount;
  }

  /** The space's description. */
  info(): SpaceInfo {
    return this.space.info();
  }

  /** Its objects as JSON text, in key order, lazily. */
  entries(): IterableIterator<[string, string]> {
    return this.space.entries();
  }

  /** One indexed field's values ascending, each with its keys ascending, lazily (Space.indexEntries). */
  indexEntries(field: string): IterableIterator<[string, IterableIterator<string>]> {
    return this.space.indexEntries(field);
  }
}
