/**
 * The whole in-memory store — templates and spaces — as one persistent value.
 *
 * Why persistent: a checkpoint must be consistent at one `seq` without
 * stopping writers (DESIGN.md, "Consistency and durability"). With an
 * immutable state, taking the snapshot is keeping a reference to the current
 * `StoreState`; commits go on producing new states, each sharing all untouched
 * structure with the last (Immutable.js maps, and `SortedMap` B+trees for
 * objects and postings), so one put costs O(log n) and never disturbs the
 * snapshot being serialised. It also makes `apply` all-or-nothing for free:
 * a failed op simply never returns its half-built state.
 */
import { Map as IMap } from 'immutable';
import { ConflictError, NotFoundError } from '../errors.js';
import { compareVersions, validateObjectKey, validateSpaceId, validateTemplateName, validateVersion } from './identifiers.js';
import type { Json } from './json.js';
import { checkOpShape, type StoreOp } from './ops.js';
import { Space, type SpaceInfo } from './space.js';
import { checkTemplate, sameIndexes, type TemplateDef, type TemplateRef } from './template.js';

/** Template name → version → definition (frozen). */
type Templates = IMap<string, IMap<string, TemplateDef>>;

function byVersion(a: TemplateDef, b: TemplateDef): number {
  // Ties (1.0 and 1.0.0) fall back to the text so that the order is total.
  return compareVersions(a.version, b.version) || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0);
}

/** The store's contents after the op numbered `seq`; every change returns a new state. */
export class StoreState {
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
    if (!Number.isSafeInteger(seq) || seq <= this.seq) {
      throw new Error(`apply: seq ${seq} must be an integer greater than the state's seq ${this.seq}`);
    }
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
    }
  }

  /** Every loaded template version, by name and then by version. */
  templates(): TemplateDef[] {
    const all = [...this.templateMap.values()].flatMap((versions) => [...versions.values()]);
    return all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : byVersion(a, b)));
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

  /** The object under `key`, or undefined; NotFoundError if the space is unknown, BadRequestError for an invalid key. */
  getObject(spaceId: string, key: string): Json | undefined {
    const space = this.requireSpace(spaceId);
    return space.get(validateObjectKey(key));
  }

  /**
   * Objects matching every `field=value` of `filter` on indexed fields, by key; all
   * objects for an empty filter. NotFoundError for an unknown space,
   * BadRequestError (naming the indexed fields) for a field that is not indexed.
   */
  query(spaceId: string, filter: Record<string, string>): { key: string; value: Json }[] {
    return this.requireSpace(spaceId).query(filter);
  }

  /** A space's objects in key order, produced lazily (for serialising a snapshot); NotFoundError for an unknown space. */
  objects(spaceId: string): IterableIterator<[string, Json]> {
    return this.requireSpace(spaceId).entries();
  }

  /** The fields a space's template version indexes; NotFoundError for an unknown space. */
  indexedFields(spaceId: string): string[] {
    return [...this.requireSpace(spaceId).indexFields];
  }

  private requireSpace(id: string): Space {
    const space = this.spaceMap.get(validateSpaceId(id));
    if (space === undefined) throw new NotFoundError(`space "${id}" does not exist; create it with POST /api/space`);
    return space;
  }

  private requireTemplate(ref: TemplateRef): TemplateDef {
    const name = validateTemplateName(ref.name);
    const version = validateVersion(ref.version);
    const def = this.template(name, version);
    if (def === undefined) {
      throw new NotFoundError(
        `template ${name} version ${version} is not loaded; load it first with POST /api/template ` +
          `{"name":"${name}","version":"${version}","indexes":[...]}`,
      );
    }
    return def;
  }

  private withSpace(space: Space, seq: number): StoreState {
    return new StoreState(this.templateMap, this.spaceMap.set(space.id, space), seq);
  }

  private loadTemplate(template: TemplateDef, seq: number): StoreState {
    const def = checkTemplate(template);
    const loaded = this.template(def.name, def.version);
    if (loaded !== undefined) {
      if (sameIndexes(loaded, def)) return this;
      throw new ConflictError(
        `template ${def.name} version ${def.version} is already loaded with indexes [${loaded.indexes.join(', ')}]; ` +
          `a template version never changes: load the new indexes as a new version and upgrade spaces to it`,
      );
    }
    const versions = this.templateMap.get(def.name) ?? IMap<string, TemplateDef>();
    return new StoreState(this.templateMap.set(def.name, versions.set(def.version, def)), this.spaceMap, seq);
  }

  private createSpace(id: string, ref: TemplateRef, seq: number): StoreState {
    validateSpaceId(id);
    const def = this.requireTemplate(ref);
    if (this.spaceMap.has(id)) {
      throw new ConflictError(`space "${id}" already exists; choose another id, or upgrade it with PUT /api/space/${id}/template`);
    }
    return this.withSpace(Space.create(id, def, seq), seq);
  }

  private upgradeSpace(id: string, version: string, seq: number): StoreState {
    validateVersion(version);
    const space = this.requireSpace(id);
    const current = space.template;
    const def = this.template(current.name, version);
    if (def === undefined) {
      throw new NotFoundError(
        `template ${current.name} version ${version} is not loaded, so space "${id}" cannot move to it; ` +
          `load it first with POST /api/template {"name":"${current.name}","version":"${version}","indexes":[...]}`,
      );
    }
    if (compareVersions(version, current.version) <= 0) {
      throw new ConflictError(
        `space "${id}" follows template ${current.name} version ${current.version}; version ${version} is not newer, ` +
          `and an upgrade only moves forward: load and name a version newer than ${current.version}`,
      );
    }
    return this.withSpace(space.upgrade(def, seq), seq);
  }
}
