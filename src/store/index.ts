/**
 * The store's public face: the embedded host database's state as a persistent
 * value and on disk (the storage engine), the operations that change it, the
 * rules for identifiers, and the store's files in a checkpoint (written from a
 * snapshot, read back into spaces).
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
export { isValidOp, type RestoreOp, type StoreOp, type TxOp } from './ops.js';
export type { SpaceData, SpaceInfo } from './space.js';
export {
  collectionArchiveFile,
  CollectionFilePath,
  indexFilePath,
  parseCollectionFile,
  SpaceBuilder,
  spaceArchiveFiles,
  storeFilePath,
  type ArchiveFileSource,
  type CollectionData,
  type CollectionSource,
  type SpaceMeta,
} from './checkpoint-files.js';
export { StoreState } from './store-state.js';
export { StateView } from './state-view.js';
export { Engine, EngineSnapshot, type AppliedOp, type EngineOptions, type InstallMode, type StagedSpace } from './engine.js';
export { removeDatabase, SpaceFile, type KeyText } from './space-file.js';
export { checkSnapshotFile, checkSpaceFile } from './space-check.js';
export type { TemplateDef, TemplateRef } from './template.js';
export { EngineDivergedError, engineUnusable, Store, type CommitListener, type CommitResult, type RecoveryInfo, type StoreOptions } from './store.js';
