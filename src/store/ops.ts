/**
 * The operations that change a store: what the journal records and what
 * `StoreState.apply` accepts. The shape check here is the only thing replay
 * trusts about a payload read back from disk.
 */
import { BadRequestError } from '../errors.js';
import { show } from './identifiers.js';
import { checkJson, type Json } from './json.js';
import type { TemplateDef, TemplateRef } from './template.js';

/** One change inside a commit. */
export type TxOp = { op: 'put'; key: string; value: Json } | { op: 'delete'; key: string };

/**
 * A restore of checkpoint `checkpoint` (its ZIP's SHA-256, lowercase hex):
 * `scope` `space` names the one space restored, `collection` every space the
 * checkpoint holds. The content comes from the checkpoint, not the journal, so
 * the Store applies it; `StoreState.apply` refuses it.
 */
export interface RestoreOp {
  type: 'restore';
  checkpoint: number;
  sha256: string;
  scope: 'space' | 'collection';
  spaces: string[];
}

/** One journaled change to the store. */
export type StoreOp =
  | { type: 'template.load'; template: TemplateDef }
  | { type: 'space.create'; id: string; template: TemplateRef }
  | { type: 'space.upgrade'; id: string; version: string }
  | { type: 'commit'; space: string; ops: TxOp[] }
  | RestoreOp;

const OpTypes = ['template.load', 'space.create', 'space.upgrade', 'commit', 'restore'];
const Sha256Pattern = /^[0-9a-f]{64}$/;

function requireObject(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadRequestError(`${where} must be a JSON object, not ${show(value)}`);
  }
  return value as Record<string, unknown>;
}

function requireString(record: Record<string, unknown>, field: string, where: string): void {
  if (typeof record[field] !== 'string') throw new BadRequestError(`${where}.${field} must be a string, not ${show(record[field])}`);
}

/** Checks one transaction op's shape (not its key's rules); BadRequestError naming `where`, e.g. `ops[3]`. */
export function checkTxOpShape(value: unknown, where: string): asserts value is TxOp {
  const op = requireObject(value, where);
  if (op.op !== 'put' && op.op !== 'delete') {
    throw new BadRequestError(`${where}.op is ${show(op.op)}; it must be "put" or "delete" (for example {"op":"delete","key":"k1"})`);
  }
  requireString(op, 'key', where);
  if (op.op === 'put') {
    if (!('value' in op) || op.value === undefined) {
      throw new BadRequestError(`${where} is a put without a value (for example {"op":"put","key":"k1","value":{"type":"Part"}})`);
    }
    checkJson(op.value, `${where}.value`);
  }
}

/**
 * `value` as a StoreOp if its shape is right: the type, the fields each type
 * needs with the right JSON types, and values that are JSON. Identifier rules
 * and the state's own rules are for `StoreState.apply`. BadRequestError otherwise.
 */
export function checkOpShape(value: unknown): StoreOp {
  const op = requireObject(value, 'operation');
  switch (op.type) {
    case 'template.load': {
      const template = requireObject(op.template, 'template');
      requireString(template, 'name', 'template');
      requireString(template, 'version', 'template');
      if (!Array.isArray(template.indexes) || !template.indexes.every((f) => typeof f === 'string')) {
        throw new BadRequestError(`template.indexes must be an array of field names (for example ["type","owner"])`);
      }
      break;
    }
    case 'space.create': {
      requireString(op, 'id', 'space');
      const template = requireObject(op.template, 'template');
      requireString(template, 'name', 'template');
      requireString(template, 'version', 'template');
      break;
    }
    case 'space.upgrade':
      requireString(op, 'id', 'space');
      requireString(op, 'version', 'upgrade');
      break;
    case 'commit': {
      requireString(op, 'space', 'commit');
      if (!Array.isArray(op.ops)) {
        throw new BadRequestError(`ops must be an array of operations (for example [{"op":"put","key":"k1","value":{}}])`);
      }
      op.ops.forEach((txOp, i) => checkTxOpShape(txOp, `ops[${i}]`));
      break;
    }
    case 'restore': {
      if (!Number.isSafeInteger(op.checkpoint) || (op.checkpoint as number) < 1) {
        throw new BadRequestError(`restore.checkpoint must be a checkpoint id (a positive integer), not ${show(op.checkpoint)}`);
      }
      if (typeof op.sha256 !== 'string' || !Sha256Pattern.test(op.sha256)) {
        throw new BadRequestError(`restore.sha256 must be 64 lowercase hex digits, not ${show(op.sha256)}`);
      }
      if (op.scope !== 'space' && op.scope !== 'collection') {
        throw new BadRequestError(`restore.scope is ${show(op.scope)}; it must be "space" or "collection"`);
      }
      if (!Array.isArray(op.spaces) || !op.spaces.every((s) => typeof s === 'string')) {
        throw new BadRequestError(`restore.spaces must be an array of space ids`);
      }
      if (op.scope === 'space' && op.spaces.length !== 1) {
        throw new BadRequestError(`a space-scope restore names exactly one space, not ${op.spaces.length}`);
      }
      break;
    }
    default:
      throw new BadRequestError(`operation type ${show(op.type)} is not one of ${OpTypes.join(', ')}`);
  }
  return op as StoreOp;
}

/** Whether `value` has the shape of a StoreOp; replay uses it so that a bad journal payload is reported, not a crash. */
export function isValidOp(value: unknown): value is StoreOp {
  try {
    checkOpShape(value);
    return true;
  } catch {
    return false;
  }
}
