/**
 * The head: the engine's durable state plus the operations handed to the
 * journal but not applied yet. A new operation is checked against it, so
 * that two concurrent creates of one space cannot both be journaled, and a
 * delete sees the put an earlier commit still in flight made. It keeps only
 * what the checks read of each pending operation (the templates it loads,
 * the spaces it creates or moves, the keys it puts or deletes), each with the
 * seq that set it last, and forgets each once the engine holds its seq.
 */
import type { Engine } from './engine.js';
import { checkOpShape, type StoreOp } from './ops.js';
import { checkSpaceCreate, checkSpaceUpgrade, checkTemplateLoad, checkTransaction, missingDeleteError, requireSpaceInfo, type Catalogue } from './rules.js';
import type { SpaceInfo } from './space.js';
import { templateRef, type TemplateDef } from './template.js';

/** What one pending operation changes, as the checks read it. */
export interface Effects {
  templates: TemplateDef[];
  spaces: SpaceInfo[];
  /** Space id and key → whether the object exists after the operation. */
  keys: Map<string, { space: string; key: string; exists: boolean }>;
}

function templateKey(name: string, version: string): string {
  return `${name}\u0000${version}`;
}

function objectKey(space: string, key: string): string {
  return `${space}\u0000${key}`;
}

/** The engine's state as the pending operations leave it, for checks. */
export class Head implements Catalogue {
  private readonly templates = new Map<string, { def: TemplateDef; seq: number }>();
  private readonly spaces = new Map<string, { info: SpaceInfo; seq: number }>();
  private readonly keys = new Map<string, { exists: boolean; seq: number }>();

  constructor(private engine: Engine) {}

  /** Read the durable state from `engine` from now on, with `pending` (effects and seqs, in seq order) the operations not in it. */
  reset(engine: Engine, pending: readonly { effects: Effects; seq: number }[] = []): void {
    this.engine = engine;
    this.templates.clear();
    this.spaces.clear();
    this.keys.clear();
    for (const { effects, seq } of pending) this.add(effects, seq);
  }

  template(name: string, version: string): TemplateDef | undefined {
    return this.templates.get(templateKey(name, version))?.def ?? this.engine.template(name, version);
  }

  space(id: string): SpaceInfo | undefined {
    return this.spaces.get(id)?.info ?? this.engine.space(id);
  }

  /** Whether space `space` holds `key` at the head. */
  holds(space: string, key: string): boolean {
    const pending = this.keys.get(objectKey(space, key));
    if (pending !== undefined) return pending.exists;
    // A space created by a commit the engine has not taken yet holds only what the head knows of.
    return this.engine.has(space, key);
  }

  /**
   * Check `op` as the operation numbered `seq` against the head: its effects,
   * or null for a no-op (a template loaded again the same). Throws the typed
   * error the API reports (nothing changes). Restores are checked by their
   * caller (Store.commitRestore).
   */
  check(op: StoreOp, seq: number): Effects | null {
    const checked = checkOpShape(op);
    const effects: Effects = { templates: [], spaces: [], keys: new Map() };
    switch (checked.type) {
      case 'template.load': {
        const def = checkTemplateLoad(this, checked.template);
        if (def === null) return null;
        effects.templates.push(def);
        return effects;
      }
      case 'space.create': {
        const def = checkSpaceCreate(this, checked.id, checked.template);
        effects.spaces.push({ id: checked.id, template: templateRef(def), objectCount: 0, createdSeq: seq, updatedSeq: seq });
        return effects;
      }
      case 'space.upgrade': {
        const def = checkSpaceUpgrade(this, checked.id, checked.version);
        effects.spaces.push({ ...requireSpaceInfo(this, checked.id), template: templateRef(def), updatedSeq: seq });
        return effects;
      }
      case 'commit': {
        requireSpaceInfo(this, checked.space);
        checkTransaction(checked.ops);
        checked.ops.forEach((tx, i) => {
          const id = objectKey(checked.space, tx.key);
          // Only a delete asks whether the object is there (a put is valid either way).
          if (tx.op === 'delete' && !(effects.keys.get(id)?.exists ?? this.holds(checked.space, tx.key))) throw missingDeleteError(checked.space, tx.key, i);
          effects.keys.set(id, { space: checked.space, key: tx.key, exists: tx.op === 'put' });
        });
        return effects;
      }
      case 'restore':
        throw new Error('a restore is checked and journaled by Store.commitRestore');
    }
  }

  /** Count `effects` as the head's, set by the operation numbered `seq`. */
  add(effects: Effects, seq: number): void {
    for (const def of effects.templates) this.templates.set(templateKey(def.name, def.version), { def, seq });
    for (const info of effects.spaces) this.spaces.set(info.id, { info, seq });
    for (const [id, { exists }] of effects.keys) this.keys.set(id, { exists, seq });
  }

  /** Forget what the operation numbered `seq` set, unless a later one set it again: the engine holds it now (or it was refused). */
  drop(effects: Effects, seq: number): void {
    for (const def of effects.templates) forget(this.templates, templateKey(def.name, def.version), seq);
    for (const info of effects.spaces) forget(this.spaces, info.id, seq);
    for (const id of effects.keys.keys()) forget(this.keys, id, seq);
  }
}

function forget<T extends { seq: number }>(map: Map<string, T>, key: string, seq: number): void {
  if (map.get(key)?.seq === seq) map.delete(key);
}
