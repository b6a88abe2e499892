/**
 * The whole in-memory store — templates and spaces — as one persistent value.
 *
 * Why persistent: a checkpoint must be consistent at one `seq` without
 * stopping writers (docs/ARCHITECTURE.md, "Consistency and durability"). With an
 * immutable state, taking the snapshot is keeping a reference to the current
 * `StoreState`; commits go on producing new states, each sharing all untouched
 * structure with the last (Immutable.js maps, and `SortedMap` B+trees for
 * objects, indexes and postings), so one put costs O(log n) and never disturbs the
 * snapshot being serialised. It also makes `apply` all-or-nothing for free:
 * a failed op simply never returns its half-built state.
 */
import { Map as IMap } from 'immutable';
import { BadRequestError, ConflictError } from '../errors.js';
import type { CollectionData } from './checkpoint-files.js';
import { validateObjectKey, validateSpaceId } from './identifiers.js';
import type { Json } from './json.js';
import { checkOpShape, type StoreOp } from './ops.js';
import { Space, type Postings, type SpaceData, type SpaceInfo } from './space.js';
import { checkSpaceCreate, checkSpaceUpgrade, checkTemplateLoad, noSuchSpaceError, requireTemplate } from './rules.js';
import type { Catalogue } from './rules.js';
import { checkTemplate, compareTemplates, sameIndexes, type TemplateDef, type TemplateRef } from './template.js';
import type { LeafDecoder, LeafEncoder, LeafEntries } from './sorted-map.js';

/** Template name → version → definition (frozen). */
type Templates = IMap<string, IMap<string, TemplateDef>>;

function requireSeq(seq: number, after: number, what: string): void {
  if (!Number.isSafeInteger(seq) || seq <= after) throw new Error(`${what}: seq ${seq} must be an integer greater than the state's seq ${after}`);
}

/** Whether the rebuilt `space` follows `def` exactly: same name, version and index fields. */
function follows(space: Space, def: TemplateDef): boolean {
  const { template, indexFields } = space;
  return template.name === def.name && template.version === def.version && sameIndexes(def, { ...template, indexes: [...indexFields] });
}

function* parsed(texts: IterableIterator<[string, string]>): IterableIterator<[string, Json]> {
  for (const [key, text] of texts) yield [key, JSON.parse(text) as Json];
}

/** The store's contents after the op numbered `seq`; every change returns a new state. */
export class StoreState implements Catalogue {
  private static readonly emptyState = new StoreState(IMap(), IMap(), 0);

  private constructor(
    private readonly templateMap: Templates,
    private readonly spaceMap: IMap<string, Space>,
    /** Seq of the last applied op (0 for the empty state). */
    readonly seq: number,
  ) {}

  /** The state with no templates and no spaces (one shared instance). */
  static empty(): StoreState {
    return StoreState.emptyState;
  }

  /**
   * The state after `op`, numbered `seq`. Pure: `this` never changes. Validates
   * fully and throws a typed error (BadRequestError, NotFoundError,
   * ConflictError) before anything is built; a plain Error if `seq` does not
   * move forward. Loading a template identical to a loaded one returns `this`.
   */
  apply(op: StoreOp, seq: number): StoreState {
    requireSeq(seq, this.seq, 'apply');
    const checked = checkOpShape(op);
    switch (checked.type) {
      case 'template.load':
        return this.loadTemplate(checked.template, seq);
      case 'space.create':
        return this.createSpace(checked.id, checked.template, seq);
      case 'space.upgrade':
        return this.upgradeSpace(checked.id, checked.version, seq);
      case 'commit': {
        const space = this.requireSpace(checked.space);
        return this.withSpace(space.commit(checked.ops, seq), seq);
      }
      case 'restore':
        throw new Error(`restore ops are applied by the Store with the checkpoint's content (use withRestoredSpaces or fromCollection)`);
    }
  }

  /**
   * The state with each of `spaces` (rebuilt from a checkpoint) in place of the
   * space of its id, or added if there is none, at `seq`: the state's seq and
   * each restored space's updatedSeq. Other spaces and templates stay as they
   * are. NotFoundError if a space's template version is not loaded,
   * ConflictError if the loaded one indexes other fields, BadRequestError if an
   * id comes twice; a plain Error if `seq` does not move forward.
   */
  withRestoredSpaces(spaces: readonly SpaceData[], seq: number): StoreState {
    requireSeq(seq, this.seq, 'withRestoredSpaces');
    const ids = new Set<string>();
    const restored = spaces.map(({ space }) => {
      if (ids.has(space.id)) throw new BadRequestError(`space "${space.id}" is restored twice in one step`);
      ids.add(space.id);
      const def = this.requireTemplate(space.template);
      if (!follows(space, def)) {
        throw new ConflictError(
          `space "${space.id}" was saved under template ${def.name} ${def.version} indexing [${space.indexFields.join(', ')}], ` +
            `but the loaded ${def.name} ${def.version} indexes [${def.indexes.join(', ')}]; a template version never changes, so the checkpoint is from elsewhere`,
        );
      }
      return space.restoredAt(def, seq);
    });
    const spaceMap = this.spaceMap.withMutations((map) => {
      for (const space of restored) map.set(space.id, space);
    });
    return new StoreState(this.templateMap, spaceMap, seq);
  }

  /**
   * A whole new state read back from a collection checkpoint: exactly the
   * templates and spaces of `collection`, with `spaces` the rebuilt data of each
   * of its spaces (no more, no fewer, each matching its listing), at `seq`.
   * BadRequestError naming what does not match. `restoredAt`: the state a
   * restore of that checkpoint makes at journal seq `seq`: every space then
   * changed at `seq` (as a space restore has it), whatever seqs the checkpoint
   * counted — those of another installation's journal may be past this one's.
   */
  static fromCollection(collection: CollectionData, spaces: readonly SpaceData[], seq: number, restoredAt = false): StoreState {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new Error(`fromCollection: seq ${seq} must be a whole number`);
    let templateMap: Templates = IMap();
    collection.templates.forEach((template, i) => {
      let def: TemplateDef;
      try {
        def = checkTemplate(template);
      } catch (error) {
        throw new BadRequestError(`collection templates[${i}]: ${(error as Error).message}`);
      }
      const versions = templateMap.get(def.name) ?? IMap<string, TemplateDef>();
      if (versions.has(def.version)) throw new BadRequestError(`collection lists template ${def.name} ${def.version} twice`);
      templateMap = templateMap.set(def.name, versions.set(def.version, def));
    });
    const byId = new Map<string, Space>();
    for (const { space } of spaces) {
      if (byId.has(space.id)) throw new BadRequestError(`space "${space.id}" was rebuilt twice`);
      byId.set(space.id, space);
    }
    const listed = new Set<string>();
    const spaceMap = IMap<string, Space>().withMutations((map) => {
      for (const meta of collection.spaces) {
        const space = byId.get(meta.id);
        if (space === undefined) throw new BadRequestError(`the collection lists space "${meta.id}", but no rebuilt data was given for it`);
        if (listed.has(meta.id)) throw new BadRequestError(`the collection lists space "${meta.id}" twice`);
        listed.add(meta.id);
        const def = templateMap.get(meta.template.name)?.get(meta.template.version);
        if (def === undefined) {
          throw new BadRequestError(`space "${meta.id}" follows template ${meta.template.name} ${meta.template.version}, which the collection does not list`);
        }
        if (!follows(space, def)) {
          throw new BadRequestError(`space "${meta.id}" was rebuilt under template ${space.template.name} ${space.template.version} [${space.indexFields.join(', ')}], not the listed ${def.name} ${def.version} [${def.indexes.join(', ')}]`);
        }
        if (space.objectCount !== meta.objects || space.createdSeq !== meta.createdSeq || space.updatedSeq !== meta.updatedSeq) {
          throw new BadRequestError(
            `space "${meta.id}" was rebuilt with ${space.objectCount} objects, createdSeq ${space.createdSeq}, updatedSeq ${space.updatedSeq}; ` +
              `the collection lists ${meta.objects}, ${meta.createdSeq}, ${meta.updatedSeq}`,
          );
        }
        if (restoredAt) {
          map.set(meta.id, space.restoredAt(def, seq));
          continue;
        }
        if (meta.updatedSeq > seq) throw new BadRequestError(`space "${meta.id}" was updated at seq ${meta.updatedSeq}, after the checkpoint's seq ${seq}`);
        map.set(meta.id, space);
      }
    });
    for (const id of byId.keys()) {
      if (!listed.has(id)) throw new BadRequestError(`space "${id}" was rebuilt, but the collection does not list it`);
    }
    return new StoreState(templateMap, spaceMap, seq);
  }

  /** Every loaded template version, by name and then by version. */
  templates(): TemplateDef[] {
    const all = [...this.templateMap.values()].flatMap((versions) => [...versions.values()]);
    return all.sort(compareTemplates);
  }

  /** One loaded template version (frozen), or undefined. */
  template(name: string, version: string): TemplateDef | undefined {
    return this.templateMap.get(name)?.get(version);
  }

  /** Every space, by id. */
  spaces(): SpaceInfo[] {
    return [...this.spaceMap.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((s) => s.info());
  }

  /** One space, or undefined. */
  space(id: string): SpaceInfo | undefined {
    return this.spaceMap.get(id)?.info();
  }

  /**
   * The object under `key`, parsed from its stored text (a fresh value each
   * call), or undefined; NotFoundError if the space is unknown, BadRequestError
   * for an invalid key.
   */
  getObject(spaceId: string, key: string): Json | undefined {
    const space = this.requireSpace(spaceId);
    return space.get(validateObjectKey(key));
  }

  /** The stored JSON text of the object under `key`, or undefined; errors as `getObject`. */
  getObjectText(spaceId: string, key: string): string | undefined {
    const space = this.requireSpace(spaceId);
    return space.getText(validateObjectKey(key));
  }

  /**
   * Objects matching every `field=value` of `filter` on indexed fields, by key; all
   * objects for an empty filter. NotFoundError for an unknown space,
   * BadRequestError (naming the indexed fields) for a field that is not indexed.
   */
  query(spaceId: string, filter: Record<string, string>): { key: string; value: Json }[] {
    return this.queryText(spaceId, filter).map(({ key, text }) => ({ key, value: JSON.parse(text) as Json }));
  }

  /** As `query`, with each object's stored JSON text rather than a parsed value. */
  queryText(spaceId: string, filter: Record<string, string>): { key: string; text: string }[] {
    return Array.from(this.queryMatches(spaceId, filter));
  }

  /** As `queryText`, produced lazily, from the first key after `after` when given (a page of a keyset query). */
  queryMatches(spaceId: string, filter: Record<string, string>, after?: string): IterableIterator<{ key: string; text: string }> {
    return this.requireSpace(spaceId).matches(filter, after);
  }

  /** A space's objects in key order, parsed lazily; NotFoundError for an unknown space. */
  objects(spaceId: string): IterableIterator<[string, Json]> {
    return parsed(this.requireSpace(spaceId).entries());
  }

  /** A space's objects as stored JSON text, in key order, lazily (for serialising a snapshot); NotFoundError for an unknown space. */
  objectTexts(spaceId: string): IterableIterator<[string, string]> {
    return this.requireSpace(spaceId).entries();
  }

  /**
   * One indexed field of a space, lazily: each distinct indexed value (as a
   * string) in ascending order, with the keys holding it in key order.
   * NotFoundError for an unknown space, BadRequestError for a field that is not indexed.
   */
  indexEntries(spaceId: string, field: string): IterableIterator<[string, IterableIterator<string>]> {
    return this.requireSpace(spaceId).indexEntries(field);
  }

  /** A space's objects as text `encode` makes of a few at a time, kept with them (Space.encodedObjects); for a checkpoint writer. */
  encodedObjects(spaceId: string, encode: LeafEncoder<string>, decode: LeafDecoder<string>): IterableIterator<string> {
    return this.requireSpace(spaceId).encodedObjects(encode, decode);
  }

  /** One indexed field of a space a leaf at a time, as text where `encodes` says so (Space.encodedIndex): what a checkpoint writer walks. */
  encodedIndex(spaceId: string, field: string, encode: LeafEncoder<Postings>, encodes: (values: readonly string[], lists: readonly Postings[]) => boolean): IterableIterator<string | LeafEntries<Postings>> {
    return this.requireSpace(spaceId).encodedIndex(field, encode, encodes);
  }

  /** The fields a space's template version indexes; NotFoundError for an unknown space. */
  indexedFields(spaceId: string): string[] {
    return [...this.requireSpace(spaceId).indexFields];
  }

  private requireSpace(id: string): Space {
    const space = this.spaceMap.get(validateSpaceId(id));
    if (space === undefined) throw noSuchSpaceError(id);
    return space;
  }

  private requireTemplate(ref: TemplateRef): TemplateDef {
    return requireTemplate(this, ref);
  }

  private withSpace(space: Space, seq: number): StoreState {
    return new StoreState(this.templateMap, this.spaceMap.set(space.id, space), seq);
  }

  private loadTemplate(template: TemplateDef, seq: number): StoreState {
    const def = checkTemplateLoad(this, template);
    if (def === null) return this;
    const versions = this.templateMap.get(def.name) ?? IMap<string, TemplateDef>();
    return new StoreState(this.templateMap.set(def.name, versions.set(def.version, def)), this.spaceMap, seq);
  }

  private createSpace(id: string, ref: TemplateRef, seq: number): StoreState {
    return this.withSpace(Space.create(id, checkSpaceCreate(this, id, ref), seq), seq);
  }

  private upgradeSpace(id: string, version: string, seq: number): StoreState {
    const def = checkSpaceUpgrade(this, id, version);
    return this.withSpace(this.requireSpace(id).upgrade(def, seq), seq);
  }
}
