/**
 * The store's public face: the embedded host database's state as a persistent
 * value, the operations that change it, and the rules for identifiers.
 */
export {
  compareVersions,
  validateFieldName,
  validateObjectKey,
  validateSpaceId,
  validateTemplateName,
  validateVersion,
} from './identifiers.js';
export type { Json } from './json.js';
export { isValidOp, type StoreOp, type TxOp } from './ops.js';
export type { SpaceInfo } from './space.js';
export { StoreState } from './store-state.js';
export type { TemplateDef, TemplateRef } from './template.js';
export { Store, type CommitResult, type RecoveryInfo, type StoreOptions } from './store.js';
