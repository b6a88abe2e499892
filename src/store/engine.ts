/**
 * The storage engine: the collection's materialised state on the node's own
 * disk (`paths.data`), so that memory follows the configured cache and not the
 * size of the data, and a node starts from its files instead of a full load.
 *
 * Layout of its folder:
 * - `collection.sqlite`: the loaded templates, the list of spaces (id → file)
 *   and the collection's applied seq: every journal record up to it is in
 *   every file. It is written last in each step, so it never runs ahead.
 * - `spaces/<id>.<seq>.sqlite`: one file per space (space-file.ts), named
 *   after the seq that made it. A file the collection does not list (a create
 *   cut short by a stop) is removed when the engine opens.
 *
 * The journal in the FileVault stays the source of truth: the engine holds
 * only operations already durable there, and each file records the seq it has
 * applied, so after any stop the engine replays the journal after its applied
 * seq and skips, file by file, what a file already holds.
 *
 * Operations are checked by the same rules as the in-memory state
 * (rules.ts): a record that does not apply is an Error, as on replay.
 */
import { existsSync, linkSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import Database from './sqlite.js';
import type { Logger } from '../log/index.js';
import { fsyncDirSync } from '../vault/index.js';
import { validateObjectKey, validateSpaceId } from './identifiers.js';
import type { StoreOp } from './ops.js';
import { checkSpaceCreate, checkSpaceUpgrade, checkTemplateLoad, noSuchSpaceError, type Catalogue } from './rules.js';
import { limitWal, removeDatabase, removeSideFiles, SpaceFile, SpaceFileFormat, type KeyText, type WalGate } from './space-file.js';
import { WalFolder } from './wal-folder.js';
import type { SpaceInfo } from './space.js';
import { compareTemplates, type TemplateDef } from './template.js';

/** The layout version of `collection.sqlite`. */
export const EngineFormat = 1;

/** Page cache of the collection file itself, in KiB (it holds templates and the space list). */
const CollectionCacheKiB = 2048;

/** How the engine is opened. */
export interface EngineOptions {
  /** Its folder (created if missing). */
  dir: string;
  /** Page cache shared by the space files, in bytes: what bounds the engine's memory. */
  cacheBytes: number;
  logger: Logger;
}

/** One journal record for the engine: an operation, its seq, and the epoch of the writer that wrote it (that of the record before when absent). */
export interface AppliedOp {
  op: StoreOp;
  seq: number;
  epoch?: number;
}

/**
 * How `Engine.install` puts spaces in place: `restore`, as a restore does (each
 * space changed at the install's seq, StoreState.withRestoredSpaces); `base`,
 * as a start-up from a checkpoint does (each space as the checkpoint holds it,
 * the engine at the checkpoint's seq).
 */
export type InstallMode = 'restore' | 'base';

const Schema = `
CREATE TABLE collection (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  format INTEGER NOT NULL,
  applied_seq INTEGER NOT NULL,
  applied_epoch INTEGER NOT NULL,
  installation TEXT
);
CREATE TABLE templates (name TEXT NOT NULL, version TEXT NOT NULL, indexes TEXT NOT NULL, PRIMARY KEY (name, version)) WITHOUT ROWID;
CREATE TABLE spaces (id TEXT PRIMARY KEY, file TEXT NOT NULL, applied_seq INTEGER) WITHOUT ROWID;
INSERT INTO collection (one, format, applied_seq, applied_epoch, installation) VALUES (1, ${EngineFormat}, 0, 0, NULL);
`;

function freeze(def: TemplateDef): TemplateDef {
  return Object.freeze({ name: def.name, version: def.version, indexes: Object.freeze([...def.indexes]) as string[] });
}

/** A space file read back from a checkpoint, checked, ready to replace (or add) its space. */
export interface StagedSpace {
  id: string;
  /** Where it was written: a path `Engine.stagePath` gave. */
  path: string;
}

/** A space file held by a snapshot, whether the file alone holds the snapshot, and a hard link to it that a rebuild cannot replace (EngineSnapshot.source). */
interface PinnedSpace {
  file: SpaceFile;
  frozen: boolean;
  held: string | null;
}

/**
 * The engine as it was at one seq, held while writers go on: a read
 * transaction on each space file (SpaceFile.pin), the templates and the spaces'
 * descriptions of that moment. `copySpace` copies a space's file as it was.
 * Close it when done: a held snapshot keeps SQLite from folding the WAL past it.
 */
export class EngineSnapshot {
  constructor(
    /** The seq the snapshot is at: every record up to it, nothing after. */
    readonly seq: number,
    private readonly templateDefs: readonly TemplateDef[],
    private readonly files: ReadonlyMap<string, PinnedSpace>,
    /** Takes the snapshot's connections, their transactions ended, to close them (Engine.closeLater). */
    private readonly release: (files: SpaceFile[]) => void,
  ) {}

  /** The templates loaded at that seq. */
  templates(): readonly TemplateDef[] {
    return this.templateDefs;
  }

  /** The spaces of the snapshot, by id. */
  spaces(): SpaceInfo[] {
    return [...this.files.keys()].sort().map((id) => this.files.get(id)!.file.info());
  }

  /**
   * Where space `id`'s database is as the snapshot sees it (`path`, the link
   * to the engine's file at `enginePath` when there is one): `frozen` when the
   * file itself is the snapshot for as long as the snapshot is held (its WAL
   * was folded in when it was taken, so the first `bytes` of `path` are the
   * whole database and no checkpoint may change them meanwhile); otherwise
   * the snapshot must be copied out with `copySpace`.
   */
  source(id: string): { path: string; enginePath: string; frozen: boolean; bytes: number } {
    const pinned = this.pinned(id);
    return { path: pinned.held ?? pinned.file.path, enginePath: pinned.file.path, frozen: pinned.frozen, bytes: pinned.file.byteSize() };
  }

  /** Copy space `id`'s database as the snapshot sees it to `dest` (a new file); see SpaceFile.copyTo. */
  copySpace(id: string, dest: string, pagesPerStep: number): Promise<void> {
    return this.pinned(id).file.copyTo(dest, pagesPerStep);
  }

  /** End the read transactions (the connections are closed later: Engine.closeLater) and remove the hard links. */
  close(): void {
    const files = [...this.files.values()].map(({ file }) => file);
    for (const file of files) file.endRead();
    this.release(files);
    for (const { held } of this.files.values()) if (held !== null) rmSync(held, { force: true });
  }

  private pinned(id: string): PinnedSpace {
    const pinned = this.files.get(id);
    if (pinned === undefined) throw noSuchSpaceError(id);
    return pinned;
  }
}

/** The collection's state on disk. */
export class Engine implements Catalogue {
  private readonly templateDefs = new Map<string, TemplateDef>();
  private readonly spaceFiles = new Map<string, SpaceFile>();
  private readonly folder: WalFolder;
  /** Connections of snapshots that ended, to be closed (closeLater). */
  private readonly lingering = new Set<SpaceFile>();
  /** When the writer may cut a WAL back (WalFolder.mayCut). */
  private readonly walGate: WalGate = (file, walBytes) => this.folder.mayCut(file, walBytes);
  /** Statements of every step (Engine.apply), prepared once. */
  private readonly steps: { begin: Database.Statement; commit: Database.Statement; mark: Database.Statement<[number, number]>; spaceMark: Database.Statement<[number, string]> };
  private applied: number;
  private appliedEpochValue: number;
  private installationValue: string | null;
  /** Staged files named so far by this process. */
  private staged = 0;
  /** Why the files do not hold what the collection says they hold (a power loss), or null: see `lostWrites`. */
  private lost: string | null = null;

  private constructor(
    private readonly options: EngineOptions,
    private readonly db: Database.Database,
  ) {
    const row = db
      .prepare<[], { format: number; applied_seq: number; applied_epoch: number; installation: string | null }>('SELECT format, applied_seq, applied_epoch, installation FROM collection WHERE one = 1')
      .get();
    if (row === undefined || row.format !== EngineFormat) {
      throw new Error(`${this.collectionPath} is not a collection file of format ${EngineFormat} (found ${row === undefined ? 'none' : `format ${row.format}`})`);
    }
    this.folder = new WalFolder(options.logger);
    this.steps = {
      begin: db.prepare('BEGIN'),
      commit: db.prepare('COMMIT'),
      mark: db.prepare<[number, number]>('UPDATE collection SET applied_seq = ?, applied_epoch = ? WHERE one = 1'),
      spaceMark: db.prepare<[number, string]>('UPDATE spaces SET applied_seq = ? WHERE id = ?'),
    };
    this.applied = row.applied_seq;
    this.appliedEpochValue = row.applied_epoch;
    this.installationValue = row.installation;
    for (const t of db.prepare<[], { name: string; version: string; indexes: string }>('SELECT name, version, indexes FROM templates').all()) {
      this.templateDefs.set(templateKey(t.name, t.version), freeze({ name: t.name, version: t.version, indexes: JSON.parse(t.indexes) as string[] }));
    }
  }

  /** Open (or create) the engine in `options.dir`; removes space files the collection does not list. */
  static open(options: EngineOptions): Engine {
    mkdirSync(path.join(options.dir, 'spaces'), { recursive: true });
    const db = new Database(path.join(options.dir, 'collection.sqlite'));
    let engine: Engine;
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      // Folded on a thread of its own, as the space files are (wal-folder.ts).
      db.pragma('wal_autocheckpoint = 0');
      db.pragma(`cache_size = -${CollectionCacheKiB}`);
      db.pragma('mmap_size = 0');
      if ((db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get() as number) === 0) db.exec(Schema);
      // Engines made before spaces.applied_seq: it is filled in as each space is next written.
      if (!(db.pragma('table_info(spaces)') as { name: string }[]).some((c) => c.name === 'applied_seq')) db.exec('ALTER TABLE spaces ADD COLUMN applied_seq INTEGER');
      engine = new Engine(options, db);
    } catch (err) {
      db.close();
      throw err;
    }
    try {
      engine.openSpaces();
      engine.shareCache();
    } catch (err) {
      engine.close();
      throw err;
    }
    return engine;
  }

  /**
   * Why this engine cannot be trusted, or null: a space file holds less than
   * the collection recorded it holds (or is missing). The engine skips
   * fsyncs, so a power loss may keep one file's newest transactions and lose
   * another's; the collection records each space's applied seq in the step
   * that writes it, and a file found behind that lost writes its journal
   * records say were applied. The node rebuilds from a checkpoint then.
   */
  get lostWrites(): string | null {
    return this.lost;
  }

  /** Every journal record up to this seq is in the engine's files. */
  get appliedSeq(): number {
    return this.applied;
  }

  /** The epoch of the writer of the record at `appliedSeq` (0 for none): a journal sealed below it by a newer epoch voided it. */
  get appliedEpoch(): number {
    return this.appliedEpochValue;
  }

  /** The FileVault installation whose journal the engine follows (vault/installation.ts), or null before it is set. */
  get installation(): string | null {
    return this.installationValue;
  }

  /** Record the installation whose journal the engine follows (set once, when an empty engine starts following it). */
  setInstallation(installation: string): void {
    this.db.prepare('UPDATE collection SET installation = ? WHERE one = 1').run(installation);
    this.installationValue = installation;
  }

  /** Every loaded template version, by name and then by version (as StoreState.templates). */
  templates(): TemplateDef[] {
    return [...this.templateDefs.values()].sort(compareTemplates);
  }

  /** One loaded template version (frozen), or undefined. */
  template(name: string, version: string): TemplateDef | undefined {
    return this.templateDefs.get(templateKey(name, version));
  }

  /** Every space, by id. */
  spaces(): SpaceInfo[] {
    return [...this.spaceFiles.keys()].sort().map((id) => this.spaceFiles.get(id)!.info());
  }

  /** One space, or undefined. */
  space(id: string): SpaceInfo | undefined {
    return this.spaceFiles.get(id)?.info();
  }

  /** The stored JSON text of the object under `key`, or undefined; NotFoundError for an unknown space, BadRequestError for an invalid key. */
  text(spaceId: string, key: string): string | undefined {
    return this.requireSpace(spaceId).text(validateObjectKey(key));
  }

  /** Whether space `spaceId` holds an object under `key` (false for an unknown space); BadRequestError for an invalid key. */
  has(spaceId: string, key: string): boolean {
    return this.spaceFiles.get(spaceId)?.has(validateObjectKey(key)) ?? false;
  }

  /** One page of a keyset query (SpaceFile.page); NotFoundError for an unknown space. */
  page(spaceId: string, filter: Readonly<Record<string, string>>, after: string | undefined, limit: number): KeyText[] {
    return this.requireSpace(spaceId).page(filter, after, limit);
  }

  /** The fields a space's template version indexes; NotFoundError for an unknown space. */
  indexedFields(spaceId: string): string[] {
    return this.requireSpace(spaceId).indexFields;
  }

  /**
   * Apply durable journal records, in seq order, then record the last as the
   * collection's applied seq: each space file touched commits once for all of
   * them, then the collection file (never ahead of the files). A record a file
   * already holds (a replay after a stop mid-step) is skipped. An operation
   * that does not apply throws, with nothing of it applied and the records
   * before it kept: the caller stops (a replay refuses to start, as with the
   * in-memory state).
   */
  apply(records: readonly AppliedOp[]): void {
    if (records.length === 0) return;
    const touched = new Set<SpaceFile>();
    let last: AppliedOp | null = null;
    let failure: Error | null = null;
    this.steps.begin.run();
    try {
      for (const record of records) {
        try {
          this.applyOne(record.op, record.seq, touched);
        } catch (err) {
          failure = err as Error;
          break;
        }
        last = record;
      }
      for (const file of touched) {
        file.endBatch(this.walGate);
        this.steps.spaceMark.run(file.appliedSeq, file.id);
      }
      if (last !== null) this.steps.mark.run(last.seq, last.epoch ?? this.appliedEpochValue);
      this.steps.commit.run();
      limitWal(this.db, this.collectionPath, this.walGate);
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
    if (last !== null) {
      this.applied = last.seq;
      this.appliedEpochValue = last.epoch ?? this.appliedEpochValue;
    }
    if (failure !== null) throw failure;
  }

  /**
   * The engine as it is now, held (EngineSnapshot): `ids` the spaces to hold
   * (all when absent). Synchronous, so no record is applied while it is taken.
   * Each space's WAL is folded into its file first, so that the file itself is
   * the snapshot and a checkpoint reads it as it lies: a few MiB at most once
   * `foldsSettled` resolved (the folding thread folded the rest; without it a
   * snapshot after a burst of writes folded for 180 ms on the event loop).
   * With `holdDir` (outside the engine's folder, on its file system), each
   * file the snapshot froze is also hard-linked there and `source` names the
   * link: a rebuild (replaceWith) replaces the engine's folder, and a
   * checkpoint still reading the snapshot by the engine's path then read the
   * rebuilt file (a fenced primary that rejoined mid-checkpoint, e2e
   * failover-cases (b)). A file that cannot be linked is copied out instead
   * (not frozen). NotFoundError for an unknown space.
   */
  snapshot(ids?: readonly string[], holdDir?: string): EngineSnapshot {
    const wanted = ids ?? [...this.spaceFiles.keys()];
    const pinned = new Map<string, PinnedSpace>();
    try {
      for (const id of wanted) {
        const live = this.requireSpace(id);
        let frozen = live.foldWal();
        const file = SpaceFile.pin(live.path, { cacheKiB: this.cacheShareKiB(this.spaceFiles.size) });
        let held: string | null = null;
        if (frozen && holdDir !== undefined) {
          held = path.join(holdDir, `held-${process.pid}-${++this.staged}-${id}.sqlite`);
          try {
            linkSync(live.path, held);
          } catch {
            // No hard link here (another file system, a refusing one): the snapshot is copied out instead.
            held = null;
            frozen = false;
          }
        }
        pinned.set(id, { file, frozen, held });
      }
    } catch (err) {
      for (const { file, held } of pinned.values()) {
        file.close();
        if (held !== null) rmSync(held, { force: true });
      }
      throw err;
    }
    return new EngineSnapshot(this.applied, this.templates(), pinned, (files) => this.closeLater(files));
  }

  /** Resolves once the folding thread has folded nearly every WAL (WalFolder.settled): the moment to take a snapshot. */
  foldsSettled(): Promise<void> {
    return this.folder.settled();
  }

  /**
   * Where to write space `id`'s file read back from a checkpoint before it is
   * installed: in the engine's folder (so that installing it is a rename), under
   * a name the collection never lists (so that a stop before the install
   * removes it when the engine opens).
   */
  stagePath(id: string): string {
    return path.join(this.spacesDir, `${validateSpaceId(id)}.staged-${process.pid}-${++this.staged}.sqlite`);
  }

  /**
   * A restore's swap, as the operation numbered `seq`: each of `staged`
   * (checked files, SpaceFile.check) replaces the space of its id, or is
   * added; with `templates`, a whole collection: the templates become exactly
   * those, and spaces not staged go. Each staged space must follow a template
   * loaded then, with the same index fields (the caller checked it; an Error
   * otherwise). The collection file switches in one transaction; the replaced
   * files are removed after.
   */
  install(staged: readonly StagedSpace[], seq: number, templates?: readonly TemplateDef[], mode: InstallMode = 'restore', epoch = this.appliedEpochValue): void {
    if (!Number.isSafeInteger(seq) || (mode === 'base' ? seq < this.applied : seq <= this.applied)) throw new Error(`install: seq ${seq} must be an integer greater than the applied seq ${this.applied}`);
    if (mode === 'base' && (templates === undefined || this.spaceFiles.size > 0 || this.templateDefs.size > 0)) {
      throw new Error('install: a start-up base goes into an empty engine, with its templates');
    }
    const defs = new Map<string, TemplateDef>(templates === undefined ? this.templateDefs : templates.map((t) => [templateKey(t.name, t.version), freeze(t)]));
    const opened: { id: string; file: SpaceFile }[] = [];
    try {
      for (const { id, path: stagedPath } of staged) {
        const name = `${id}.${seq}.sqlite`;
        const target = path.join(this.spacesDir, name);
        renameSync(stagedPath, target);
        // What SQLite left beside the checked and closed staged file (its shared-memory index, an empty WAL) would
        // stay under the staged name forever.
        removeSideFiles(stagedPath, true);
        const file = SpaceFile.open(target, { cacheKiB: this.cacheShareKiB(this.spaceFiles.size) });
        opened.push({ id, file });
        if (file.id !== id) throw new Error(`${stagedPath} holds space "${file.id}", not "${id}"`);
        const def = defs.get(templateKey(file.template.name, file.template.version));
        if (def === undefined || !sameFields(def.indexes, file.indexFields)) {
          throw new Error(`space "${id}" was saved under template ${file.template.name} ${file.template.version} [${file.indexFields.join(', ')}], which is not loaded with those index fields`);
        }
        if (mode === 'restore') file.restoredAt(def, seq);
        else file.appliedAt(seq);
      }
      // The renames reach the disk before the collection names the files (their contents already did: writeDurably).
      fsyncDirSync(this.spacesDir);
      this.db.transaction(() => {
        if (templates !== undefined) {
          this.db.exec('DELETE FROM templates; DELETE FROM spaces');
          const insert = this.db.prepare('INSERT INTO templates (name, version, indexes) VALUES (?, ?, ?)');
          for (const def of defs.values()) insert.run(def.name, def.version, JSON.stringify(def.indexes));
        }
        const upsert = this.db.prepare('INSERT INTO spaces (id, file, applied_seq) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET file = excluded.file, applied_seq = excluded.applied_seq');
        for (const { id, file } of opened) upsert.run(id, path.basename(file.path), file.appliedSeq);
        this.steps.mark.run(seq, epoch);
      })();
    } catch (err) {
      for (const { file } of opened) {
        file.close();
        removeDatabase(file.path);
      }
      throw err;
    }
    this.applied = seq;
    this.appliedEpochValue = epoch;
    if (templates !== undefined) {
      this.templateDefs.clear();
      for (const [key, def] of defs) this.templateDefs.set(key, def);
    }
    const replaced = templates === undefined ? opened.map(({ id }) => this.spaceFiles.get(id)).filter((f) => f !== undefined) : [...this.spaceFiles.values()];
    if (templates !== undefined) this.spaceFiles.clear();
    for (const { id, file } of opened) this.spaceFiles.set(id, file);
    for (const old of replaced) {
      old.close();
      removeDatabase(old.path);
    }
    this.shareCache();
  }

  /** The engine's folder. */
  get dir(): string {
    return this.options.dir;
  }

  /**
   * Put `other` (an engine rebuilt in a folder of its own) in this one's
   * place: both close, this folder goes, `other`'s is renamed to it, and the
   * engine opened there is returned. This engine must not be used after.
   */
  replaceWith(other: Engine): Engine {
    const { options } = this;
    this.close();
    other.close();
    Engine.remove(options.dir);
    renameSync(other.options.dir, options.dir);
    return Engine.open(options);
  }

  /** Remove the engine folder `dir` and everything in it (an engine that is rebuilt). */
  static remove(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
  }

  /**
   * Close connections a snapshot held (their transactions ended) once the
   * folding thread has folded the WAL they held back, and so written it out.
   * Closing them at once stalled the event loop for 650 ms after a 10 s
   * checkpoint: on ext4, closing a file that was truncated to nothing (as
   * limitWal does to a WAL) first writes out all of it that is dirty, here
   * everything written under the snapshot (XFS flushes on close after any
   * truncation).
   */
  private closeLater(files: SpaceFile[]): void {
    for (const file of files) this.lingering.add(file);
    void this.folder.settled().then(() => {
      for (const file of files) {
        file.close();
        this.lingering.delete(file);
      }
    });
  }

  /** Close every file. */
  close(): void {
    this.folder.stop();
    for (const file of this.lingering) file.close();
    this.lingering.clear();
    for (const file of this.spaceFiles.values()) file.close();
    this.spaceFiles.clear();
    if (this.db.open) this.db.close();
  }

  private get collectionPath(): string {
    return path.join(this.options.dir, 'collection.sqlite');
  }

  private get spacesDir(): string {
    return path.join(this.options.dir, 'spaces');
  }

  private requireSpace(id: string): SpaceFile {
    const file = this.spaceFiles.get(validateSpaceId(id));
    if (file === undefined) throw noSuchSpaceError(id);
    return file;
  }

  /** Each space's share of the cache, in KiB. */
  private cacheShareKiB(spaces: number): number {
    return this.options.cacheBytes / 1024 / Math.max(1, spaces);
  }

  /** Give every space file its share of the cache again (after a space came or went), and tell the folding thread which files there are. */
  private shareCache(): void {
    const cacheKiB = this.cacheShareKiB(this.spaceFiles.size);
    for (const file of this.spaceFiles.values()) file.setCacheKiB(cacheKiB);
    this.folder.files([this.collectionPath, ...[...this.spaceFiles.values()].map((f) => f.path)]);
  }

  private openSpaces(): void {
    const listed = this.db.prepare<[], { id: string; file: string; applied_seq: number | null }>('SELECT id, file, applied_seq FROM spaces').all();
    const cacheKiB = this.cacheShareKiB(listed.length);
    for (const { id, file, applied_seq: recorded } of listed) {
      if (!existsSync(path.join(this.spacesDir, file))) {
        this.lost ??= `space file ${file} (space "${id}") is missing, though the collection lists it (lost in a power loss?)`;
        continue;
      }
      let rewriting: { from: number; started: number } | null = null;
      let opened: SpaceFile;
      try {
        opened = SpaceFile.open(path.join(this.spacesDir, file), { cacheKiB }, (from, bytes) => {
          rewriting = { from, started: performance.now() };
          this.options.logger.info('storage engine: rewriting a space file into the current format (once; a large space takes a while)', { space: id, file, from, to: SpaceFileFormat, bytes });
        });
      } catch (err) {
        // A file whose creation a power loss cut short (empty, no space row) or whose pages it tore.
        const code = (err as { code?: unknown }).code;
        if (!(code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || /is not a checkpointd space file/.test((err as Error).message))) throw err;
        this.lost ??= `space file ${file} (space "${id}") cannot be read, though the collection lists it (cut short by a power loss?): ${(err as Error).message}`;
        continue;
      }
      if (rewriting !== null) {
        const { from, started } = rewriting;
        this.options.logger.info('storage engine: rewrote a space file into the current format', { space: id, file, from, to: SpaceFileFormat, ms: Math.round(performance.now() - started) });
      }
      if (opened.id !== id) {
        opened.close();
        throw new Error(`${opened.path} holds space "${opened.id}", but the collection lists it for space "${id}"`);
      }
      this.spaceFiles.set(id, opened);
      if (recorded !== null && opened.appliedSeq < recorded) {
        this.lost ??= `space file ${file} (space "${id}") holds the records up to seq ${opened.appliedSeq}, but the collection recorded it holding those up to seq ${recorded}: it lost writes (a power loss?)`;
      }
    }
    const keep = new Set(listed.map((s) => s.file));
    for (const name of readdirSync(this.spacesDir)) {
      const base = name.replace(/-(wal|shm)$/, '');
      if (keep.has(base)) continue;
      rmSync(path.join(this.spacesDir, name), { force: true });
      if (base === name) this.options.logger.info('storage engine: removed a space file the collection does not list', { file: name });
    }
  }

  private applyOne(op: StoreOp, seq: number, touched: Set<SpaceFile>): void {
    switch (op.type) {
      case 'template.load': {
        if (seq <= this.applied) return;
        const def = checkTemplateLoad(this, op.template);
        if (def === null) return;
        this.db.prepare('INSERT INTO templates (name, version, indexes) VALUES (?, ?, ?)').run(def.name, def.version, JSON.stringify(def.indexes));
        this.templateDefs.set(templateKey(def.name, def.version), freeze(def));
        return;
      }
      case 'space.create': {
        if (seq <= this.applied) return;
        const def = checkSpaceCreate(this, op.id, op.template);
        const name = `${op.id}.${seq}.sqlite`;
        const file = SpaceFile.create(path.join(this.spacesDir, name), op.id, def, seq, { cacheKiB: this.cacheShareKiB(this.spaceFiles.size + 1) });
        try {
          this.db.prepare('INSERT INTO spaces (id, file, applied_seq) VALUES (?, ?, ?)').run(op.id, name, seq);
        } catch (err) {
          file.close();
          removeDatabase(file.path);
          throw err;
        }
        this.spaceFiles.set(op.id, file);
        this.shareCache();
        return;
      }
      case 'space.upgrade': {
        const file = this.requireSpace(op.id);
        if (seq <= file.appliedSeq) return;
        const def = checkSpaceUpgrade(this, op.id, op.version);
        touch(file, touched);
        file.upgrade(def, seq);
        return;
      }
      case 'commit': {
        const file = this.requireSpace(op.space);
        if (seq <= file.appliedSeq) return;
        touch(file, touched);
        file.commit(op.ops, seq);
        return;
      }
      case 'restore':
        throw new Error(`journal record seq ${seq} restores checkpoint ${op.checkpoint}; the storage engine does not apply restores yet`);
    }
  }
}

/** Join `file` to the step's transaction (SpaceFile.beginBatch). */
function touch(file: SpaceFile, touched: Set<SpaceFile>): void {
  if (touched.has(file)) return;
  file.beginBatch();
  touched.add(file);
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((f) => b.includes(f));
}

function templateKey(name: string, version: string): string {
  return `${name}\u0000${version}`;
}
