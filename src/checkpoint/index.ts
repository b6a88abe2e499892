export { Catalogue, checkpointFileName, parseCheckpointFileName, type CatalogueEntry, type ListedCheckpoint } from './catalogue.js';
export { Checkpointer, replayRestore, type CheckpointerOptions, type CreateRequest, type RestoreProgress, type RestoreResult, type RetentionResult } from './checkpointer.js';
export { checkpointTime } from './checkpoint-time.js';
export { loadCheckpoint, loadCollectionState } from './checkpoint-loader.js';
export { engineSpaceSources, stageCheckpoint, type Staged, type StageRequest } from './engine-checkpoint.js';
export { isOwnCollection, planRetention, type RetentionPlan, type RetentionPolicy } from './retention.js';
export { StandbyPreloader, type PreloadedCheckpoint, type PreloadStatus } from './standby-preloader.js';
export { loadStartBase, type StartBase } from './start-base.js';
export {
  CheckpointFormatError,
  EngineSpaceFile,
  isSafeSegment,
  readCheckpointArchive,
  readManifest,
  spaceEntryPath,
  verifyCheckpointArchive,
  writeCheckpointArchive,
  type CheckpointScope,
  type Compression,
  type Manifest,
  type VerifyResult,
} from './archive/index.js';
