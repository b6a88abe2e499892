/**
 * One space: its objects by key and an index per indexed field. A `Space` is a
 * value: every change returns a new one that shares all untouched structure
 * with the old, so an older `StoreState` keeps reading exactly what it held.
 */
import { Map as IMap } from 'immutable';
import { BadRequestError, ConflictError } from '../errors.js';
import { show, validateObjectKey } from './identifiers.js';
import { isPlainObject, type Json } from './json.js';
import type { TxOp } from './ops.js';
import { SortedMap } from './sorted-map.js';
import { templateRef, type TemplateDef, type TemplateRef } from './template.js';

/** Most operations in one commit. */
export const MaxTransactionOps = 10_000;

/** What the API and checkpoints say about a space. */
export interface SpaceInfo {
  id: string;
  template: TemplateRef;
  objectCount: number;
  createdSeq: number;
  updatedSeq: number;
}

/** Keys of the objects holding one indexed value, in key order so that query results need no sort. */
type Postings = SortedMap<true>;
/** Indexed value (as a string) → keys of the objects holding it, for one field. */
type FieldIndex = IMap<string, Postings>;

const NoTerms: ReadonlySet<string> = new Set();

function term(v: Json | undefined): string | undefined {
  if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return String(v);
  return undefined;
}

/** The strings under which `value` is indexed for `field`: its scalar, or each scalar of its array. */
function termsOf(value: Json | undefined, field: string): ReadonlySet<string> {
  if (!isPlainObject(value) || !Object.hasOwn(value, field)) return NoTerms;
  const v = value[field];
  if (Array.isArray(v)) {
    const terms = new Set<string>();
    for (const element of v) {
      const t = term(element);
      if (t !== undefined) terms.add(t);
    }
    return terms;
  }
  const t = term(v);
  return t === undefined ? NoTerms : new Set([t]);
}

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
    let index = out.get(field) ?? IMap<string, Postings>();
    for (const t of old) {
      if (next.has(t)) continue;
      const postings = (index.get(t) ?? SortedMap.empty<true>()).delete(key);
      index = postings.size === 0 ? index.remove(t) : index.set(t, postings);
    }
    for (const t of next) {
      if (old.has(t)) continue;
      index = index.set(t, (index.get(t) ?? SortedMap.empty<true>()).set(key, true));
    }
    out = out.set(field, index);
  }
  return out;
}

/** A fresh index on `field` over every object, built in one pass (objects arrive in key order, so postings do too). */
function buildIndex(objects: SortedMap<Json>, field: string): FieldIndex {
  const keysByTerm = new Map<string, [string, true][]>();
  for (const [key, value] of objects) {
    for (const t of termsOf(value, field)) {
      let keys = keysByTerm.get(t);
      if (keys === undefined) keysByTerm.set(t, (keys = []));
      keys.push([key, true]);
    }
  }
  return IMap<string, Postings>().withMutations((index) => {
    for (const [t, keys] of keysByTerm) index.set(t, SortedMap.fromSorted(keys));
  });
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
    private readonly objects: SortedMap<Json>,
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

  /** Number of objects; O(1). */
  get objectCount(): number {
    return this.objects.size;
  }

  /** The object under `key`, or undefined. */
  get(key: string): Json | undefined {
    return this.objects.get(key);
  }

  /** All objects in key order, lazily. */
  entries(): IterableIterator<[string, Json]> {
    return this.objects.entries();
  }

  /**
   * The space after all of `ops`, in order, each seeing the ones before it. Throws
   * (BadRequestError for a malformed op, ConflictError for a delete of a missing
   * key) without any effect: the new space is only returned once every op applied.
   */
  commit(ops: readonly TxOp[], seq: number): Space {
    if (ops.length === 0 || ops.length > MaxTransactionOps) {
      throw new BadRequestError(`a transaction holds 1 to ${MaxTransactionOps} operations; this one holds ${ops.length}`);
    }
    ops.forEach((op, i) => {
      try {
        validateObjectKey(op.key);
      } catch (error) {
        throw new BadRequestError(`ops[${i}]: ${(error as Error).message}`);
      }
    });
    let objects = this.objects;
    let indexes = this.indexes;
    ops.forEach((op, i) => {
      const before = objects.get(op.key);
      if (op.op === 'put') {
        const next = objects.set(op.key, op.value);
        if (next === objects) return;
        objects = next;
        indexes = reindex(indexes, this.indexFields, op.key, before, op.value);
      } else {
        if (!objects.has(op.key)) {
          throw new ConflictError(
            `ops[${i}] deletes ${show(op.key)}, which does not exist in space "${this.id}" at that point; ` +
              `nothing in the transaction was applied (leave the delete out, or put the object first)`,
          );
        }
        objects = objects.delete(op.key);
        indexes = reindex(indexes, this.indexFields, op.key, before, undefined);
      }
    });
    return new Space(this.id, this.template, this.indexFields, objects, indexes, this.createdSeq, seq);
  }

  /** The space following the newer `template` version (already checked): indexes for fields it dropped go, new ones are built. */
  upgrade(template: TemplateDef, seq: number): Space {
    const indexes = IMap<string, FieldIndex>().withMutations((out) => {
      for (const field of template.indexes) {
        out.set(field, this.indexFields.includes(field) ? (this.indexes.get(field) ?? IMap()) : buildIndex(this.objects, field));
      }
    });
    return new Space(this.id, templateRef(template), template.indexes, this.objects, indexes, this.createdSeq, seq);
  }

  /**
   * Objects whose indexed fields equal every value in `filter`, in key order;
   * all objects for an empty filter. Uses the indexes: the smallest matching
   * posting list is walked and checked against the others.
   */
  query(filter: Readonly<Record<string, string>>): { key: string; value: Json }[] {
    const conditions = Object.entries(filter);
    if (conditions.length === 0) return Array.from(this.objects, ([key, value]) => ({ key, value }));
    const lists: Postings[] = [];
    for (const [field, wanted] of conditions) {
      if (!this.indexFields.includes(field)) {
        const indexed = this.indexFields.length === 0 ? 'it indexes no fields' : `indexed fields: ${this.indexFields.join(', ')}`;
        throw new BadRequestError(
          `space "${this.id}" (template ${this.template.name} ${this.template.version}) cannot be queried by ${show(field)}: ${indexed}`,
        );
      }
      if (typeof wanted !== 'string') throw new BadRequestError(`query value for "${field}" must be one string, not ${show(wanted)}`);
      lists.push(this.indexes.get(field)?.get(wanted) ?? SortedMap.empty());
    }
    lists.sort((a, b) => a.size - b.size);
    const [smallest, ...others] = lists as [Postings, ...Postings[]];
    const out: { key: string; value: Json }[] = [];
    for (const key of smallest.keys()) {
      if (others.every((list) => list.has(key))) out.push({ key, value: this.objects.get(key) as Json });
    }
    return out;
  }

  /** A fresh description for callers (they may keep or change it freely). */
  info(): SpaceInfo {
    return { id: this.id, template: { ...this.template }, objectCount: this.objects.size, createdSeq: this.createdSeq, updatedSeq: this.updatedSeq };
  }
}
