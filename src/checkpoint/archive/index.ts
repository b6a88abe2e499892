/** The checkpoint file format: writing, reading and verifying checkpoint ZIPs (see manifest.ts). */
export {
  CheckpointFileMode,
  writeCheckpointArchive,
  type ArchiveFileSource,
  type Compression,
  type SpaceSource,
  type WriteOptions,
  type WriteResult,
} from './archive-writer.js';
export { readCheckpointArchive, readManifest, type EntryConsumer, type ReadOptions } from './archive-reader.js';
export { verifyCheckpointArchive, type VerifyOptions, type VerifyResult } from './archive-verify.js';
export { CheckpointFormatError } from './checkpoint-format-error.js';
export { CollectionEntry, ManifestEntry, isSafeSegment, spaceEntryPath, type SpacePart } from './entry-names.js';
export {
  EngineSpaceFile,
  ManifestFormats,
  ManifestMaxBytes,
  manifestFiles,
  type CheckpointScope,
  type FileEntry,
  type Manifest,
  type ManifestFormat,
  type ManifestHeader,
  type ManifestSpace,
} from './manifest.js';
