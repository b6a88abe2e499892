/**
 * Creating, restoring and deleting checkpoints.
 *
 * One operation at a time: creates and restores queue on one lock and run in
 * arrival order, never interleaved (a restore asked for while a create runs
 * waits for it, and the other way round). Deletes take the lock too, so a
 * checkpoint is never deleted while it is being read.
 *
 * Create: hold a snapshot of the storage engine (EngineSnapshot: a read
 * transaction per space file, writers go on), hand out the next id, write the
 * ZIP (manifest format 3: each space's engine file, checked) to a temp file, publish
 * it atomically, and, for collection checkpoints, roll the journal so each
 * file starts after a checkpoint.
 *
 * Restore: read the checkpoint into staged engine files off to the side
 * while every byte is checked against the manifest, then journal a restore
 * record and install the staged files (renames, one transaction of the
 * collection file) as its seq. Any failure before the install leaves the
 * previous state serving.
 */
import { promises as fs } from 'node:fs';
import { ConflictError, NotFoundError, UnavailableError, UnprocessableError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { collectionArchiveFile, type Engine, type RestoreOp, type StateView, type Store } from '../store/index.js';
import { tempPathFor } from '../vault/index.js';
import { verifyCheckpointArchive, writeCheckpointArchive, type CheckpointScope, type Compression } from './archive/index.js';
import { checkpointFileName, type Catalogue, type CatalogueEntry } from './catalogue.js';
import { engineSpaceSources, removeStaged, stageCheckpoint } from './engine-checkpoint.js';
import { checkpointTime } from './checkpoint-time.js';
import { isOwnCollection, planRetention, type RetentionPolicy } from './retention.js';

/** What to checkpoint. */
export interface CreateRequest {
  scope: CheckpointScope;
  /** The space, for space scope. */
  spaceId?: string;
  description: string;
  /** `manual`, `journal-threshold`, `event:<name>`, `schedule`, `promotion`, … */
  trigger: string;
}

/** What a restore did. */
export interface RestoreResult {
  entry: CatalogueEntry;
  scope: CheckpointScope;
  spaces: string[];
  seq: number;
}

/** A restore under way (`GET /api/admin/status` shows it, so `checkpointd checkpoint restore` can draw a bar). */
export interface RestoreProgress {
  id: number;
  /** Uncompressed bytes of the checkpoint read and checked so far, out of `totalBytes` (0 until reading starts). */
  doneBytes: number;
  totalBytes: number;
}

/** Options for {@link Checkpointer}. */
export interface CheckpointerOptions {
  catalogue: Catalogue;
  store: Store;
  logger: Logger;
  node: string;
  compression: Compression;
  /** Write checkpoint files with O_DIRECT where the file system allows it (default true; see WriteOptions). */
  directWrites?: boolean;
  /** Most bytes a second a checkpoint file is written and read back at (checkpoint.maxDiskRate); null or absent: no limit. */
  maxDiskRate?: number | null;
  /** The FileVault's installation id, written into every manifest. */
  installation: string;
  /** A folder on the node's own disk for the copies a snapshot may need (engine-checkpoint.ts). */
  scratchDir: string;
}

/** What a retention pass removed. */
export interface RetentionResult {
  removed: number[];
  journalFilesRemoved: number;
  /** The journal is kept after this seq. */
  journalNeededAfter: number;
}

/** Creates, restores and deletes checkpoints, one at a time. */
export class Checkpointer {
  private tail: Promise<unknown> = Promise.resolve();
  /** How long the checkpoints this process made took, by id. */
  private readonly durations = new Map<number, number>();
  private readonly created = new Set<(entry: CatalogueEntry) => void>();
  private restoringValue: RestoreProgress | null = null;
  private readonly failed = new Set<(request: CreateRequest, err: Error) => void>();
  private readonly restored = new Set<(result: RestoreResult) => void>();

  /** checkpoint.maxDiskRate for the next checkpoints (a reload may change it; one under way keeps its own). */
  private diskRate: number | null;

  constructor(private readonly options: CheckpointerOptions) {
    this.diskRate = options.maxDiskRate ?? null;
  }

  /** Pace the checkpoints started from now on at `rate` bytes a second (null: no limit). */
  setMaxDiskRate(rate: number | null): void {
    this.diskRate = rate;
  }

  /** Runs `work` after every earlier create, restore or delete. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Make a checkpoint; resolves once it is published. */
  create(request: CreateRequest): Promise<CatalogueEntry> {
    // Set once the request is valid: a refusal (no such space) is not a failed checkpoint.
    let begun = false;
    const run = this.exclusive(async () => {
      const { store, catalogue, logger } = this.options;
      const started = performance.now();
      // Its turn begins once the engine's WALs are nearly folded, so that holding its snapshot folds little on the
      // event loop (Engine.snapshot).
      await store.engine.foldsSettled();
      // Asked again when its turn comes, not only when it was queued: a node fenced meanwhile checkpoints nothing.
      if (store.refusal !== null) throw new UnavailableError(`${store.refusal}; create checkpoints on the primary`);
      const info = request.scope === 'collection' ? null : store.state.space(request.spaceId ?? '');
      if (info === undefined) throw new NotFoundError(`space ${request.spaceId} does not exist; GET /api/space lists the spaces`);
      begun = true;
      const maxDiskRate = this.diskRate;
      // Held now: a commit answered after this point is not in it.
      // Frozen files are hard-linked into the scratch folder, so that a rebuild of the engine meanwhile cannot swap them.
      const snapshot = store.engine.snapshot(info === null ? undefined : [info.id], this.options.scratchDir);
      let written: Awaited<ReturnType<typeof writeCheckpointArchive>>;
      let infos: { id: string }[];
      let id: number;
      let temp: string;
      try {
        id = await catalogue.nextId();
        temp = tempPathFor(catalogue.dir, checkpointFileName(id));
        infos = snapshot.spaces();
        logger.info('checkpoint started', { id, scope: request.scope, trigger: request.trigger, seq: snapshot.seq });
        written = await writeCheckpointArchive(
          temp,
          {
            id,
            scope: request.scope,
            description: request.description,
            time: checkpointTime(),
            trigger: request.trigger,
            node: this.options.node,
            epoch: store.epoch,
            seq: snapshot.seq,
            installation: this.options.installation,
          },
          request.scope === 'collection' ? collectionArchiveFile(snapshot) : null,
          engineSpaceSources(snapshot, infos.map((s) => s.id), this.options.scratchDir),
          { compression: this.options.compression, directWrites: this.options.directWrites !== false, maxDiskRate, format: 3 },
        );
      } finally {
        snapshot.close();
      }
      const entry = await catalogue.publish(temp, id, { size: written.size, sha256: written.sha256, manifest: written.manifest });
      if (request.scope === 'collection' && store.writable) await store.rollJournal();
      const ms = Math.round(performance.now() - started);
      this.durations.set(id, ms);
      logger.info('checkpoint created', { id, scope: request.scope, trigger: request.trigger, seq: written.manifest.seq, spaces: infos.length, bytes: entry.size, ms, writes: written.direct ? 'direct' : 'page cache', maxDiskRate });
      for (const listener of this.created) listener(entry);
      return entry;
    });
    // The caller handles the rejection itself; this branch only tells the listeners.
    void run.catch((err: unknown) => {
      if (begun) for (const listener of this.failed) listener(request, err as Error);
    });
    return run;
  }

  /**
   * Bring in a checkpoint file made elsewhere (another installation, a copy
   * kept off the FileVault). `temp` is a temp file in the checkpoint folder
   * that the caller filled, whose size and SHA-256 it measured while writing
   * it. The file is verified end to end (its structure, its manifest and every
   * entry's checksum) and published under a fresh id, never over an existing
   * checkpoint; its manifest keeps the id and installation it was made with.
   * A file that does not verify is refused (422) and removed: nothing is
   * published.
   */
  import(temp: string, measured: { size: number; sha256: string }): Promise<CatalogueEntry> {
    return this.exclusive(async () => {
      const { store, catalogue, logger } = this.options;
      try {
        if (store.refusal !== null) throw new UnavailableError(`${store.refusal}; import checkpoints on the primary`);
        const started = performance.now();
        const verified = await verifyCheckpointArchive(temp);
        if (!verified.ok) {
          throw new UnprocessableError(`the file is not a checkpoint that verifies (${verified.entry === null ? '' : `entry ${verified.entry}: `}${verified.problem}); nothing was imported`);
        }
        const id = await catalogue.nextId();
        const entry = await catalogue.publish(temp, id, { ...measured, manifest: verified.manifest });
        const { manifest } = verified;
        logger.info('checkpoint imported', { id, originalId: manifest.id, installation: manifest.installation ?? null, scope: manifest.scope, seq: manifest.seq, bytes: measured.size, ms: Math.round(performance.now() - started) });
        return entry;
      } finally {
        await fs.rm(temp, { force: true });
      }
    });
  }

  /**
   * Restore checkpoint `id`: only `spaceId` when given, else what the checkpoint
   * holds (a space checkpoint its spaces, a collection checkpoint everything).
   */
  restore(id: number, spaceId?: string): Promise<RestoreResult> {
    return this.exclusive(async () => {
      const { store, catalogue, logger } = this.options;
      const started = performance.now();
      const entry = await catalogue.get(id);
      const { manifest } = entry;
      const changed = catalogue.changed.get(id);
      if (changed !== undefined) throw new ConflictError(`checkpoint ${id} is not restored: ${changed}`);
      logger.info('restore started', { id, space: spaceId });
      if (spaceId !== undefined && !manifest.spaces.some((s) => s.id === spaceId)) {
        throw new NotFoundError(`checkpoint ${id} does not cover space ${spaceId}`);
      }
      const whole = spaceId === undefined && manifest.scope === 'collection';
      const spaces = spaceId !== undefined ? [spaceId] : manifest.spaces.map((s) => s.id);
      if (!whole) checkTemplates(store.state, manifest.spaces.filter((s) => spaces.includes(s.id)), id);

      const progress: RestoreProgress = { id, doneBytes: 0, totalBytes: 0 };
      this.restoringValue = progress;
      let staged: Awaited<ReturnType<typeof stageCheckpoint>>;
      try {
        staged = await stageCheckpoint(entry.file, manifest, store.engine, {
          collection: whole,
          spaces,
          onProgress: (doneBytes, totalBytes) => Object.assign(progress, { doneBytes, totalBytes }),
        });
      } finally {
        this.restoringValue = null;
      }
      const op: RestoreOp = { type: 'restore', checkpoint: id, sha256: entry.sha256, scope: whole ? 'collection' : 'space', spaces };
      let seq: number;
      try {
        ({ seq } = await store.commitRestore(
          op,
          // Checked again against the state the install lands on: a space may have changed template meanwhile.
          (state) => {
            if (!whole) checkTemplates(state, manifest.spaces.filter((s) => spaces.includes(s.id)), id);
          },
          (engine, next) => engine.install(staged.spaces, next, whole ? staged.collection!.templates : undefined),
        ));
      } catch (err) {
        removeStaged(staged.spaces);
        throw err;
      }
      logger.info('checkpoint restored', { id, scope: op.scope, spaces, seq, ms: Math.round(performance.now() - started) });
      const result: RestoreResult = { entry, scope: op.scope, spaces, seq };
      for (const listener of this.restored) listener(result);
      return result;
    });
  }

  /** The restore reading its checkpoint now, if any (a copy). */
  get restoring(): RestoreProgress | null {
    return this.restoringValue === null ? null : { ...this.restoringValue };
  }

  /** Call `listener` with each checkpoint this service publishes from now on. */
  onCreated(listener: (entry: CatalogueEntry) => void): void {
    this.created.add(listener);
  }

  /** Call `listener` with each checkpoint that fails from now on (after its request was accepted: not a missing space). */
  onFailed(listener: (request: CreateRequest, err: Error) => void): void {
    this.failed.add(listener);
  }

  /** Call `listener` with each restore this service completes from now on (not the replay of a journaled one). */
  onRestored(listener: (result: RestoreResult) => void): void {
    this.restored.add(listener);
  }

  /** Milliseconds checkpoint `id` took to make, when this process made it. */
  durationOf(id: number): number | null {
    return this.durations.get(id) ?? null;
  }

  /** The installation id this service writes into manifests. */
  get installation(): string {
    return this.options.installation;
  }

  /**
   * Remove the automatic collection checkpoints `policy` no longer keeps, then
   * the journal files no retained checkpoint needs (retention.ts has the rules).
   */
  applyRetention(policy: RetentionPolicy): Promise<RetentionResult> {
    return this.exclusive(async () => {
      const { store, catalogue, logger } = this.options;
      const entries = await catalogue.list();
      // A failed check of the older journal files is tried again at each run; until it passes, what they may name stays.
      store.olderJournal.recheck();
      const plan = planRetention(entries, policy, this.options.installation, this.neededByJournal(entries), Date.now());
      for (const entry of plan.remove) {
        await catalogue.remove(entry.id);
        this.durations.delete(entry.id);
        logger.info('checkpoint pruned', { id: entry.id, trigger: entry.manifest.trigger, time: entry.manifest.time, seq: entry.manifest.seq });
      }
      const pruned = plan.journalNeededAfter > 0 && store.writable ? await store.pruneJournal(plan.journalNeededAfter) : [];
      return { removed: plan.remove.map((e) => e.id), journalFilesRemoved: pruned.length, journalNeededAfter: plan.journalNeededAfter };
    });
  }

  /**
   * The checkpoints a journaled restore needs, or may need: while the journal
   * files start-up did not read are still unchecked (older-journal.ts), any
   * checkpoint a restore in them could name (one made before them, or another
   * installation's).
   */
  private neededByJournal(entries: readonly CatalogueEntry[]): Set<number> {
    const needed = new Set(this.options.store.restoreReferences.keys());
    for (const entry of entries) if (this.mayBeNamedByUnchecked(entry)) needed.add(entry.id);
    return needed;
  }

  private mayBeNamedByUnchecked(entry: CatalogueEntry): boolean {
    const below = this.options.store.olderJournal.uncheckedBelow;
    return below > 0 && (entry.manifest.installation !== this.options.installation || entry.manifest.seq < below);
  }

  /** 409 when the journal no longer starts at seq 1 and, without `id`, no checkpoint of this installation is left to replay it on. */
  private async checkNotLastBase(id: number): Promise<void> {
    const { store, catalogue } = this.options;
    const firstSeq = (await store.journalFiles())[0]?.firstSeq ?? 1;
    if (firstSeq <= 1) return;
    const entries = await catalogue.list();
    const bases = entries.filter((e) => isOwnCollection(e, this.options.installation) && e.manifest.seq + 1 >= firstSeq);
    if (bases.length === 1 && bases[0]!.id === id) {
      throw new ConflictError(
        `checkpoint ${id} cannot be deleted: the journal now starts at seq ${firstSeq} (older records were pruned behind checkpoints), and it is the only checkpoint a restart can start from; ` +
          'make a newer collection checkpoint first (POST /api/admin/checkpoint)',
      );
    }
  }

  /** The checkpoints this service reads and writes. */
  get catalogue(): Catalogue {
    return this.options.catalogue;
  }

  /** Delete checkpoint `id`, unless the journal still needs it to rebuild a space (409). */
  delete(id: number): Promise<void> {
    return this.exclusive(async () => {
      const { store, catalogue, logger } = this.options;
      const entry = await catalogue.get(id);
      const restoredAt = store.restoreReferences.get(id);
      if (restoredAt !== undefined) {
        throw new ConflictError(
          `checkpoint ${id} cannot be deleted: the journal restores it at seq ${restoredAt}, so a restart needs it to rebuild the restored spaces; ` +
            'it can go once the journal before a newer collection checkpoint is pruned',
        );
      }
      if (this.mayBeNamedByUnchecked(entry)) {
        const older = store.olderJournal.status();
        throw new ConflictError(
          `checkpoint ${id} cannot be deleted yet: the journal files before seq ${older.belowSeq} are ${older.state === 'checking' ? 'still being checked' : `${older.state} (${older.error ?? ''})`}, ` +
            'and a restore in them may need it; try again once status data.journal.olderFiles.state is verified',
        );
      }
      await this.checkNotLastBase(id);
      await catalogue.remove(id);
      this.durations.delete(id);
      logger.info('checkpoint deleted', { id });
    });
  }
}

function checkTemplates(state: StateView, spaces: { id: string; template: { name: string; version: string } }[], id: number): void {
  for (const space of spaces) {
    const { name, version } = space.template;
    if (state.template(name, version) === undefined) {
      throw new UnprocessableError(`checkpoint ${id} holds space ${space.id} made from template ${name} version ${version}, which is not loaded here; load that exact version first (POST /api/template)`);
    }
    const current = state.space(space.id);
    if (current !== undefined && (current.template.name !== name || current.template.version !== version)) {
      throw new UnprocessableError(
        `space ${space.id} here uses template ${current.template.name} version ${current.template.version}, but checkpoint ${id} holds it with ${name} version ${version}; the versions must be the same to restore`,
      );
    }
  }
}

/** Replay of a journaled restore (start-up, a follower): the same install, from the checkpoint the record names. */
export async function replayRestore(catalogue: Catalogue, op: RestoreOp, engine: Engine, seq: number, epoch: number): Promise<void> {
  const entry = await catalogue.get(op.checkpoint);
  if (entry.sha256 !== op.sha256) {
    throw new UnprocessableError(`checkpoint ${op.checkpoint} is not the file that was restored (SHA-256 ${entry.sha256.slice(0, 12)}… instead of ${op.sha256.slice(0, 12)}…)`);
  }
  const whole = op.scope === 'collection';
  const staged = await stageCheckpoint(entry.file, entry.manifest, engine, { collection: whole, spaces: op.spaces });
  try {
    engine.install(staged.spaces, seq, whole ? staged.collection!.templates : undefined, 'restore', epoch);
  } catch (err) {
    removeStaged(staged.spaces);
    throw err;
  }
}
