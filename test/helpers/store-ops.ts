/** Short builders of store operations, for the store's unit tests. */
import { expect } from 'chai';
import { BadRequestError } from '../../src/errors.js';
import type { Json, StoreOp, StoreState, TxOp } from '../../src/store/index.js';

/** Applies `ops` in order with consecutive seqs after `state.seq`. */
export function applyAll(state: StoreState, ...ops: StoreOp[]): StoreState {
  return ops.reduce((s, op) => s.apply(op, s.seq + 1), state);
}

/** Load template `name` `version` indexing `indexes`. */
export function load(name: string, version: string, indexes: string[] = []): StoreOp {
  return { type: 'template.load', template: { name, version, indexes } };
}

/** Create space `id` from a template. */
export function create(id: string, name = 'plm', version = '1.0'): StoreOp {
  return { type: 'space.create', id, template: { name, version } };
}

/** A transaction on `space`. */
export function commit(space: string, ...ops: TxOp[]): StoreOp {
  return { type: 'commit', space, ops };
}

/** A put inside a transaction. */
export function put(key: string, value: Json): TxOp {
  return { op: 'put', key, value };
}

/** A delete inside a transaction. */
export function del(key: string): TxOp {
  return { op: 'delete', key };
}

/** The BadRequestError message `fn` throws. */
export function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(BadRequestError);
    return (error as Error).message;
  }
  throw new Error('expected a BadRequestError, none was thrown');
}
