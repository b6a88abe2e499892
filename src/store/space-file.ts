/**
 * One space in the storage engine: a SQLite database file of its own
 * (better-sqlite3) holding the space's objects, its posting lists and one row
 * that describes it, the seq of the last operation applied to it included.
 *
 * Why a file per space: a space is what a checkpoint and a restore handle as a
 * unit, so a space's file can be copied out of a consistent read snapshot and
 * put back by swapping files, never by reloading rows. Every change of a space
 * is one SQLite transaction that also writes the seq it applies, so the file
 * says exactly which journal records it holds after any stop.
 *
 * Durability is the journal's: the file runs in WAL mode with
 * `synchronous=NORMAL`, which keeps it consistent through a power loss (it may
 * lose its newest transactions, which replay from the journal restores) without
 * an fsync per transaction. No mmap: the pages a process holds are its page
 * cache (`cache_size`), so memory follows the configured cache and not the
 * size of the data.
 *
 * Index terms are stored as UTF-16BE bytes: SQLite compares BLOBs with memcmp,
 * which on those bytes is the order `<` gives JavaScript strings, the order a
 * checkpoint's index files are written in. Keys are ASCII (identifiers.ts), so
 * TEXT order is that order already.
 */
import { rmSync, statSync } from 'node:fs';
import Database from './sqlite.js';
import type { Json } from './json.js';
import type { TxOp } from './ops.js';
import { checkFilter, checkTransaction, missingDeleteError, notIndexedError } from './rules.js';
import type { SpaceInfo } from './space.js';
import { templateRef, type TemplateDef, type TemplateRef } from './template.js';
import { mayHold, parsedForIndex, termsOf } from './terms.js';

/**
 * The layout version of the space files this version writes. Format 1 (the
 * first engine builds, up to commit e1a6c07) kept the objects in a WITHOUT
 * ROWID table; it is still read, and rewritten into format 2 when opened for writing
 * (UpgradeFormat1). Any other version is refused, never guessed at.
 */
export const SpaceFileFormat = 2;

/** The layouts this version reads. */
const ReadFormats: readonly number[] = [1, SpaceFileFormat];

/**
 * The objects table of format 2: a rowid table whose values stay out of the
 * B-tree that keys are searched in (the unique index on `key`). Format 1's
 * WITHOUT ROWID table held whole rows in its B-tree, and SQLite compares a key
 * with a row that spills onto overflow pages by reading all of the row: with
 * 60 KB values a lookup took 380 µs, and rows just over 1 KB took 3.4 times
 * the space (bench/README.md, "layout").
 */
const ObjectsTable = `
CREATE TABLE objects (row INTEGER PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL);
CREATE UNIQUE INDEX objects_key ON objects (key);
`;

/**
 * Rewrite a format-1 file's objects into format 2's table, in key order (so
 * that row order is key order, as a scan reads it), inside one transaction
 * the caller opens. The posting lists and the space row stay as they are.
 * Plain SQL, so that the check thread (space-check.ts) runs it too.
 */
export const UpgradeFormat1 = `
ALTER TABLE objects RENAME TO objects_format_1;
${ObjectsTable}
INSERT INTO objects (key, value) SELECT key, value FROM objects_format_1 ORDER BY key;
DROP TABLE objects_format_1;
UPDATE space SET format = ${SpaceFileFormat} WHERE one = 1;
`;

/** Rows a space file built from a format-1 checkpoint takes a transaction (SpaceFile.build). */
const BuildRowsPerStep = 10_000;

/** Rows an upgrade reads at a time while it builds a new field's index. */
const RebuildPageRows = 1000;

/** One object of a page: its key and stored JSON text. */
export interface KeyText {
  key: string;
  text: string;
}

/** Remove a SQLite database file and the files SQLite keeps beside it (WAL, shared memory, rollback journal). */
export function removeDatabase(file: string): void {
  rmSync(file, { force: true });
  removeSideFiles(file);
}

/**
 * Remove the files SQLite keeps beside database `file` (WAL, shared memory,
 * rollback journal); with `keepFramedWal`, a WAL that holds frames stays (the
 * database was renamed away from `file` and the WAL is all that has them).
 */
export function removeSideFiles(file: string, keepFramedWal = false): void {
  for (const suffix of ['-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
  let walBytes = 0;
  try {
    walBytes = keepFramedWal ? statSync(`${file}-wal`).size : 0;
  } catch {
    return; // No WAL.
  }
  if (walBytes === 0) rmSync(`${file}-wal`, { force: true });
}

/** A WAL past this size is folded in whole and cut back to nothing by the writer (limitWal). */
export const WalLimitBytes = 64 * 1024 * 1024;

/**
 * Whether the writer may cut back the WAL of database `file`, now `walBytes`
 * long, at once: false while that would fold much of it on the event loop
 * (WalFolder.mayCut).
 */
export type WalGate = (file: string, walBytes: number) => boolean;

/**
 * Keep the WAL of database `file` (open as `db`, which just committed) from
 * growing without bound. SQLite writes a WAL from its start again only once a
 * checkpoint folded all of it before the next write began, which under steady
 * writes never happens (the folding thread always trails the writer): the WAL
 * grew to 4.4 GB beside 141 MB of data in a bulk load, and a start after a
 * crash reads all of it. So once the WAL is past WalLimitBytes, and `gate`
 * says the folding thread has folded nearly all of it, the writer folds what
 * is left and truncates it (a TRUNCATE checkpoint).
 *
 * It never waits: while a reader holds old frames (a snapshot a checkpoint is
 * copying) or the folding thread is at work, it folds what it may and
 * answers busy at once, and the next commit tries again. A TRUNCATE
 * checkpoint otherwise waits for readers through the connection's busy
 * handler (better-sqlite3's default: 5 s), on the event loop, once a step:
 * a checkpoint of 256 MiB under 16 writers took minutes that way. And the
 * gate keeps it from folding, on the event loop, what piled up while a
 * snapshot was held (a 10 s checkpoint under 16 writers: a 990 ms stall).
 */
export function limitWal(db: Database.Database, file: string, gate: WalGate): void {
  let size: number;
  try {
    size = statSync(`${file}-wal`).size;
  } catch {
    return;
  }
  if (size < WalLimitBytes || !gate(file, size)) return;
  const patience = db.pragma('busy_timeout', { simple: true }) as number;
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // The commit is done: a fold that fails is tried again after the next one, whose own failure, if the folder
    // is failing, stops the engine.
  } finally {
    db.pragma(`busy_timeout = ${patience}`);
  }
}

/** A term as stored: UTF-16BE, so that byte order is JavaScript's string order. */
export function termBytes(term: string): Buffer {
  return Buffer.from(term, 'utf16le').swap16();
}

/** The term `termBytes` stored. */
export function termText(bytes: Uint8Array): string {
  return Buffer.from(bytes).swap16().toString('utf16le');
}

interface SpaceRow {
  format: number;
  id: string;
  template_name: string;
  template_version: string;
  index_fields: string;
  created_seq: number;
  updated_seq: number;
  applied_seq: number;
  objects: number;
}

const Schema = `
CREATE TABLE space (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  format INTEGER NOT NULL,
  id TEXT NOT NULL,
  template_name TEXT NOT NULL,
  template_version TEXT NOT NULL,
  index_fields TEXT NOT NULL,
  created_seq INTEGER NOT NULL,
  updated_seq INTEGER NOT NULL,
  applied_seq INTEGER NOT NULL,
  objects INTEGER NOT NULL
);
${ObjectsTable}
CREATE TABLE postings (field TEXT NOT NULL, term BLOB NOT NULL, key TEXT NOT NULL, PRIMARY KEY (field, term, key)) WITHOUT ROWID;
`;

/** How a space file is opened. */
export interface SpaceFileOptions {
  /** Page cache of this connection, in KiB. */
  cacheKiB: number;
  /** Open for reading only (a snapshot, a checkpoint's copy). */
  readOnly?: boolean;
  /**
   * Read the file through a memory map of up to this many bytes (SQLite caps
   * it at 2 GiB a file) instead of the page cache: for a one-off scan outside
   * the daemon (`checkpointd export`), whose reads in key order jump around
   * the table. Never in the daemon, whose memory must follow `cacheKiB`
   * (mapped pages count in its RSS). Default 0: no map.
   */
  mapBytes?: number;
}

/** The smallest page cache a space file gets, in KiB, however many spaces share the cache. */
const MinCacheKiB = 256;

function setCache(db: Database.Database, cacheKiB: number): void {
  db.pragma(`cache_size = -${Math.max(MinCacheKiB, Math.floor(cacheKiB))}`);
}

function configure(db: Database.Database, options: SpaceFileOptions): void {
  setCache(db, options.cacheKiB);
  db.pragma(`mmap_size = ${Math.max(0, Math.floor(options.mapBytes ?? 0))}`);
  if (options.readOnly === true) return;
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  // Folded on a thread of its own (wal-folder.ts), never inside a commit.
  db.pragma('wal_autocheckpoint = 0');
}

/** A space's database file, open. */
export class SpaceFile {
  private row: SpaceRow;
  /** Set while `row` holds changes not written yet (commits inside a batch write it once, at endBatch). */
  private rowChanged = false;
  /** Set between beginBatch and endBatch. */
  private batched = false;
  /** Set while a read transaction `lookups` opened is open (until the end of this turn of the event loop, or the next write). */
  private turnRead = false;
  private readonly getText: Database.Statement<[string], string>;
  private readonly hasKey: Database.Statement<[string], number>;
  private readonly putText: Database.Statement<[string, string]>;
  private readonly deleteText: Database.Statement<[string]>;
  private readonly addPosting: Database.Statement<[string, Buffer, string]>;
  private readonly dropPosting: Database.Statement<[string, Buffer, string]>;
  private readonly saveRow: Database.Statement<[number, number, number, string, string, string]>;
  private readonly pages = new Map<number, Database.Statement<unknown[], KeyText>>();
  private readonly batch: { begin: Database.Statement; commit: Database.Statement };
  /** The template's index fields, parsed once per change of the row. */
  private fields: string[];

  private constructor(
    /** The file's path. */
    readonly path: string,
    private readonly db: Database.Database,
    /**
     * Whether reads share a transaction per turn of the event loop (the live
     * file's connection): each statement outside one opens and ends a read
     * transaction of its own, whose WAL locks cost 6 µs against 0.7 µs for the
     * lookup itself (a PUT looks its key up to answer 200 or 201).
     */
    private readonly turnReads = false,
  ) {
    this.row = readRow(db, path);
    this.fields = JSON.parse(this.row.index_fields) as string[];
    this.batch = { begin: db.prepare('BEGIN'), commit: db.prepare('COMMIT') };
    this.getText = db.prepare<[string], string>('SELECT value FROM objects WHERE key = ?').pluck();
    // Answered from the key index alone: the value, which may be 60 KB on overflow pages, is not read.
    this.hasKey = db.prepare<[string], number>('SELECT 1 FROM objects WHERE key = ?').pluck();
    this.putText = db.prepare('INSERT INTO objects (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    this.deleteText = db.prepare('DELETE FROM objects WHERE key = ?');
    this.addPosting = db.prepare('INSERT OR IGNORE INTO postings (field, term, key) VALUES (?, ?, ?)');
    this.dropPosting = db.prepare('DELETE FROM postings WHERE field = ? AND term = ? AND key = ?');
    this.saveRow = db.prepare(
      'UPDATE space SET updated_seq = ?, applied_seq = ?, objects = ?, template_name = ?, template_version = ?, index_fields = ? WHERE one = 1',
    );
  }

  /** A new, empty space file at `path` (which must not exist) for space `id` following `template`, created at `seq`. */
  static create(path: string, id: string, template: TemplateDef, seq: number, options: SpaceFileOptions): SpaceFile {
    const db = new Database(path, { fileMustExist: false });
    try {
      if ((db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get() as number) !== 0) throw new Error(`${path} already holds a database`);
      configure(db, options);
      db.transaction(() => {
        db.exec(Schema);
        db.prepare(
          'INSERT INTO space (one, format, id, template_name, template_version, index_fields, created_seq, updated_seq, applied_seq, objects) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 0)',
        ).run(SpaceFileFormat, id, template.name, template.version, JSON.stringify(template.indexes), seq, seq, seq);
      })();
      return new SpaceFile(path, db, true);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * A read-only connection to the space file at `path` holding a read
   * transaction from now until it closes: it sees the file as it is at this
   * moment however the file changes after (WAL keeps the pages it reads), so
   * copies made from it (`copyTo`) are consistent at one seq.
   */
  static pin(path: string, options: Omit<SpaceFileOptions, 'readOnly'>): SpaceFile {
    const db = new Database(path, { fileMustExist: true, readonly: true });
    try {
      configure(db, { ...options, readOnly: true });
      db.exec('BEGIN');
      // The first read starts the transaction's snapshot; the row read is the one the snapshot holds.
      return new SpaceFile(path, db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * A new space file at `path` (which must not exist) holding a whole space
   * given as `info` (its description), its `objects` (key and JSON text, keys
   * ascending) and each indexed field's `index` (values ascending, each with
   * its keys ascending): a space read back from a checkpoint of format 1.
   * Written `BuildRowsPerStep` rows a transaction, with a turn of the event
   * loop between them; closed when done. The file is removed if anything fails.
   */
  static async build(
    path: string,
    info: SpaceInfo,
    template: TemplateDef,
    objects: Iterable<[string, string]>,
    index: (field: string) => Iterable<[string, Iterable<string>]>,
    options: SpaceFileOptions,
  ): Promise<void> {
    const file = SpaceFile.create(path, info.id, template, info.createdSeq, options);
    try {
      const putRow = file.db.prepare<[string, string]>('INSERT INTO objects (key, value) VALUES (?, ?)');
      const objectRows: [string, string][] = [];
      const postingRows: [string, Buffer, string][] = [];
      const flush = file.db.transaction(() => {
        for (const [key, text] of objectRows) putRow.run(key, text);
        for (const [field, term, key] of postingRows) file.addPosting.run(field, term, key);
      });
      const step = async (): Promise<void> => {
        flush();
        objectRows.length = 0;
        postingRows.length = 0;
        await new Promise((resolve) => setImmediate(resolve));
      };
      let count = 0;
      for (const row of objects) {
        objectRows.push(row);
        count++;
        if (objectRows.length === BuildRowsPerStep) await step();
      }
      for (const field of template.indexes) {
        for (const [term, keys] of index(field)) {
          const bytes = termBytes(term);
          for (const key of keys) {
            postingRows.push([field, bytes, key]);
            if (postingRows.length === BuildRowsPerStep) await step();
          }
        }
      }
      await step();
      file.save({ ...file.row, updated_seq: info.updatedSeq, applied_seq: info.updatedSeq, objects: count });
    } catch (err) {
      file.close();
      removeDatabase(path);
      throw err;
    }
    file.close();
  }

  /**
   * The space file at `path`; an Error naming the file if it is not one this
   * version reads. Opened for writing, a file of an older format is first
   * rewritten into this version's, with `onRewrite` told (the format found, the
   * file's bytes) before it starts.
   */
  static open(path: string, options: SpaceFileOptions, onRewrite?: (from: number, bytes: number) => void): SpaceFile {
    const db = new Database(path, { fileMustExist: true, readonly: options.readOnly === true });
    try {
      configure(db, options);
      const format = readRow(db, path).format;
      if (format !== SpaceFileFormat && options.readOnly !== true) {
        onRewrite?.(format, statSync(path).size);
        db.transaction(() => db.exec(UpgradeFormat1))();
        // The old table's pages are free now: give them back, so that the file (and every checkpoint of it) is the size of its data.
        db.exec('VACUUM');
      }
      return new SpaceFile(path, db, options.readOnly !== true);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** The layout version the file is in (SpaceFileFormat, or an older one a read-only open leaves as it is). */
  get format(): number {
    return this.row.format;
  }

  /** The space id. */
  get id(): string {
    return this.row.id;
  }

  /** The template version the space follows. */
  get template(): TemplateRef {
    return templateRef({ name: this.row.template_name, version: this.row.template_version });
  }

  /** Fields the template version indexes. */
  get indexFields(): string[] {
    return [...this.fields];
  }

  /** Seq of the last operation applied to this file. */
  get appliedSeq(): number {
    return this.row.applied_seq;
  }

  /** What the API and checkpoints say about the space (a fresh object). */
  info(): SpaceInfo {
    const { row } = this;
    return { id: row.id, template: { ...this.template }, objectCount: row.objects, createdSeq: row.created_seq, updatedSeq: row.updated_seq };
  }

  /** The stored JSON text of the object under `key` (already validated), or undefined. */
  text(key: string): string | undefined {
    this.lookups();
    return this.getText.get(key);
  }

  /** Whether an object is stored under `key` (already validated). */
  has(key: string): boolean {
    this.lookups();
    return this.hasKey.get(key) !== undefined;
  }

  /**
   * Up to `limit` objects whose indexed fields equal every value of `filter`
   * (all objects for an empty one), in key order, from the first key after
   * `after`: one page of a keyset query, read from the posting lists.
   * BadRequestError for a field that is not indexed.
   */
  page(filter: Readonly<Record<string, string>>, after: string | undefined, limit: number): KeyText[] {
    this.lookups();
    const conditions = checkFilter(this.info(), this.indexFields, filter);
    // The statement names the driving (first) condition last, after the lookups of the others.
    const params: unknown[] = [];
    for (const [field, wanted] of [...conditions.slice(1), ...conditions.slice(0, 1)]) params.push(field, termBytes(wanted));
    params.push(after ?? '', limit);
    return this.pageStatement(conditions.length).all(...params);
  }

  /** Every object, in key order, read `pageRows` at a time (keyset pages: nothing is held open between them). */
  *objects(pageRows = 1000): IterableIterator<KeyText> {
    let after: string | undefined;
    for (;;) {
      const page = this.page({}, after, pageRows);
      yield* page;
      if (page.length < pageRows) return;
      after = page.at(-1)!.key;
    }
  }

  /**
   * One indexed field a page at a time: up to `limit` postings after
   * (`afterTerm`, `afterKey`) in (term, key) order, each as its term and key.
   * BadRequestError if the field is not indexed.
   */
  postings(field: string, after: { term: string; key: string } | undefined, limit: number): { term: string; key: string }[] {
    this.lookups();
    if (!this.indexFields.includes(field)) throw notIndexedError(this.info(), this.indexFields, field);
    const rows = this.db
      .prepare<[string, Buffer, Buffer, string, number], { term: Buffer; key: string }>(
        'SELECT term, key FROM postings WHERE field = ? AND (term > ? OR (term = ? AND key > ?)) ORDER BY term, key LIMIT ?',
      )
      .all(field, termBytes(after?.term ?? ''), termBytes(after?.term ?? ''), after?.key ?? '', limit);
    return rows.map((row) => ({ term: termText(row.term), key: row.key }));
  }

  /**
   * Apply a transaction's `ops`, in order, each seeing the ones before, as the
   * operation numbered `seq`: all or nothing, in one SQLite transaction with
   * the new seq. BadRequestError for a malformed op, ConflictError for a
   * delete of a missing key (nothing changed).
   */
  commit(ops: readonly TxOp[], seq: number): void {
    this.endLookups();
    checkTransaction(ops);
    this.requireNext(seq);
    const fields = this.fields;
    // Every delete is checked before anything is written, so that writing cannot fail halfway for a reason of
    // ours: inside a batch (beginBatch) the writes then need no savepoint of their own.
    const present = new Map<string, boolean>();
    ops.forEach((op, i) => {
      if (op.op === 'delete' && !(present.get(op.key) ?? this.has(op.key))) throw missingDeleteError(this.row.id, op.key, i);
      present.set(op.key, op.op === 'put');
    });
    const write = (): void => {
      let objects = this.row.objects;
      for (const op of ops) {
        // Read again: an earlier op of this transaction may have changed it.
        const old = this.getText.get(op.key);
        if (op.op === 'put') {
          const text = JSON.stringify(op.value);
          if (text === old) continue;
          this.putText.run(op.key, text);
          if (old === undefined) objects++;
          if (fields.length > 0) this.reindex(fields, op.key, parsedForIndex(old, fields), op.value);
        } else {
          this.deleteText.run(op.key);
          objects--;
          if (fields.length > 0) this.reindex(fields, op.key, parsedForIndex(old, fields), undefined);
        }
      }
      // The row is written once per batch (endBatch) or transaction.
      this.row = { ...this.row, updated_seq: seq, applied_seq: seq, objects };
      this.rowChanged = true;
    };
    if (this.batched) {
      write();
    } else {
      this.db.transaction(() => {
        write();
        this.writeRow();
      })();
    }
  }

  /** Follow the newer `template` version (already checked) from `seq`: the indexes of fields it drops go, new ones are built. */
  upgrade(template: TemplateDef, seq: number): void {
    this.endLookups();
    this.requireNext(seq);
    const old = new Set(this.indexFields);
    const run = this.db.transaction(() => {
      for (const field of old) if (!template.indexes.includes(field)) this.db.prepare('DELETE FROM postings WHERE field = ?').run(field);
      const added = template.indexes.filter((field) => !old.has(field));
      if (added.length > 0) this.buildIndexes(added);
      this.save({
        ...this.row,
        template_name: template.name,
        template_version: template.version,
        index_fields: JSON.stringify(template.indexes),
        updated_seq: seq,
        applied_seq: seq,
      });
    });
    run();
  }

  /**
   * Copy the database as this connection sees it to `dest` (a new file) with
   * SQLite's online backup, `pagesPerStep` pages a step, yielding to the event
   * loop between steps. On a pinned connection the copy is the pinned
   * snapshot, whatever is written meanwhile.
   */
  async copyTo(dest: string, pagesPerStep: number): Promise<void> {
    this.endLookups();
    await this.db.backup(dest, { progress: () => pagesPerStep });
  }

  /**
   * Check the description of a file read back from a checkpoint (space-check.ts
   * checks its structure): its object count against `rows` (the rows it holds;
   * null when they were counted when the checkpoint was made) and its
   * description against `expected` (the manifest's). An Error saying what
   * differs.
   */
  checkDescription(expected: SpaceInfo, rows: number | null): void {
    if (rows !== null && rows !== this.row.objects) throw new Error(`${this.path} counts ${this.row.objects} objects but holds ${rows}`);
    const info = this.info();
    const same =
      info.id === expected.id &&
      info.template.name === expected.template.name &&
      info.template.version === expected.template.version &&
      info.objectCount === expected.objectCount &&
      info.createdSeq === expected.createdSeq &&
      info.updatedSeq === expected.updatedSeq;
    if (!same) throw new Error(`${this.path} describes space ${JSON.stringify(info)}, where the manifest lists ${JSON.stringify(expected)}`);
  }

  /**
   * Put this file (a space read back from a checkpoint) in place under
   * `template` (same name and index fields, already checked) as restored at
   * `seq`: changed then, made no later than then (a checkpoint of another
   * installation counts its own seqs), and applied up to it.
   */
  restoredAt(template: TemplateDef, seq: number): void {
    this.endLookups();
    const row = this.row;
    this.db
      .prepare('UPDATE space SET created_seq = ?, updated_seq = ?, applied_seq = ?, template_name = ?, template_version = ? WHERE one = 1')
      .run(Math.min(row.created_seq, seq), seq, seq, template.name, template.version);
    this.row = { ...row, created_seq: Math.min(row.created_seq, seq), updated_seq: seq, applied_seq: seq, template_name: template.name, template_version: template.version };
  }

  /**
   * Fold the WAL into the database file, without waiting for anyone (a
   * PASSIVE checkpoint). True when it all went in: the file alone then holds
   * the database, and a reader that starts now reads only the file, which no
   * checkpoint may change until that reader ends (SQLite never copies WAL
   * frames a current reader must not see into the file). False when an older
   * reader held part of it back.
   */
  foldWal(): boolean {
    this.endLookups();
    const [result] = this.db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    return result !== undefined && result.busy === 0 && result.log === result.checkpointed;
  }

  /** The size of the database this connection sees, in bytes (its pages times the page size). */
  byteSize(): number {
    return (this.db.pragma('page_count', { simple: true }) as number) * (this.db.pragma('page_size', { simple: true }) as number);
  }

  /**
   * Open a transaction that the changes after it join (each still all or
   * nothing on its own: better-sqlite3 nests them as savepoints), until
   * `endBatch`: many operations, one commit of the file. No-op when one is open.
   */
  beginBatch(): void {
    this.endLookups();
    if (!this.db.inTransaction) this.batch.begin.run();
    this.batched = true;
  }

  /** Commit the transaction `beginBatch` opened, if any; then keep the WAL bounded as `gate` allows (limitWal). */
  endBatch(gate: WalGate): void {
    this.batched = false;
    if (!this.db.inTransaction) return;
    this.writeRow();
    this.batch.commit.run();
    limitWal(this.db, this.path, gate);
  }

  /** Count this file (a space as a start-up checkpoint holds it) as applied up to `seq`, the checkpoint's: its description stays. */
  appliedAt(seq: number): void {
    this.endLookups();
    if (seq < this.row.updated_seq) throw new Error(`${this.path} was changed at seq ${this.row.updated_seq}, after the checkpoint's seq ${seq}`);
    this.db.prepare('UPDATE space SET applied_seq = ? WHERE one = 1').run(seq);
    this.row = { ...this.row, applied_seq: seq };
  }

  /** Resize this connection's page cache. */
  setCacheKiB(cacheKiB: number): void {
    setCache(this.db, cacheKiB);
  }

  /** End the read transaction of a pinned connection (SpaceFile.pin), if open: it no longer holds the WAL back. */
  endRead(): void {
    if (this.db.open && this.db.inTransaction) this.db.exec('COMMIT');
  }

  /** Close the connection (its WAL is folded into the file when it is the last one). */
  close(): void {
    this.endLookups();
    if (this.db.open) this.db.close();
  }

  /**
   * Open the read transaction this turn's lookups share, if the connection
   * shares them (turnReads) and none is open; it ends when the turn does
   * (setImmediate) or before the next write, whichever comes first. The
   * connection is the file's only writer, so what it reads in it is the file
   * as it is.
   */
  private lookups(): void {
    if (!this.turnReads || this.turnRead || this.db.inTransaction) return;
    this.batch.begin.run();
    this.turnRead = true;
    setImmediate(() => this.endLookups());
  }

  /** End the read transaction `lookups` opened, if open: before any write, which must commit on its own. */
  private endLookups(): void {
    if (!this.turnRead) return;
    this.turnRead = false;
    if (this.db.open && this.db.inTransaction) this.batch.commit.run();
  }

  private requireNext(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq <= this.row.applied_seq) {
      throw new Error(`space file ${this.path}: seq ${seq} must be an integer greater than its applied seq ${this.row.applied_seq}`);
    }
  }

  private save(row: SpaceRow): void {
    if (row.index_fields !== this.row.index_fields) this.fields = JSON.parse(row.index_fields) as string[];
    this.row = row;
    this.rowChanged = true;
    this.writeRow();
  }

  /** Write the space row as this connection holds it, if it changed since it was last written. */
  private writeRow(): void {
    if (!this.rowChanged) return;
    const row = this.row;
    this.saveRow.run(row.updated_seq, row.applied_seq, row.objects, row.template_name, row.template_version, row.index_fields);
    this.rowChanged = false;
  }

  /** The postings of `key` after it changed from `before` to `after` (undefined = absent): only differing terms are touched. */
  private reindex(fields: readonly string[], key: string, before: Json | undefined, after: Json | undefined): void {
    for (const field of fields) {
      const old = termsOf(before, field);
      const next = termsOf(after, field);
      for (const t of old) if (!next.has(t)) this.dropPosting.run(field, termBytes(t), key);
      for (const t of next) if (!old.has(t)) this.addPosting.run(field, termBytes(t), key);
    }
  }

  /** Index `fields` over every object, a page of rows at a time (inside the caller's transaction). */
  private buildIndexes(fields: readonly string[]): void {
    const read = this.db.prepare<[string, number], KeyText>('SELECT key, value AS text FROM objects WHERE key > ? ORDER BY key LIMIT ?');
    let after = '';
    for (;;) {
      const rows = read.all(after, RebuildPageRows);
      for (const { key, text } of rows) {
        if (!fields.some((field) => mayHold(text, field))) continue;
        const value = JSON.parse(text) as Json;
        for (const field of fields) for (const t of termsOf(value, field)) this.addPosting.run(field, termBytes(t), key);
      }
      if (rows.length < RebuildPageRows) return;
      after = rows.at(-1)!.key;
    }
  }

  /** The page query for `conditions` equality conditions (prepared once per count). */
  private pageStatement(conditions: number): Database.Statement<unknown[], KeyText> {
    let statement = this.pages.get(conditions);
    if (statement !== undefined) return statement;
    let sql: string;
    if (conditions === 0) {
      sql = 'SELECT key, value AS text FROM objects WHERE key > ? ORDER BY key LIMIT ?';
    } else {
      // The first condition drives, in key order (CROSS JOIN keeps SQLite from reordering the loops, which would sort
      // every match before the first row); each further one is a lookup in its posting list.
      const joins = Array.from({ length: conditions - 1 }, (_, i) => `CROSS JOIN postings p${i + 1} ON p${i + 1}.field = ? AND p${i + 1}.term = ? AND p${i + 1}.key = p0.key`);
      sql =
        'SELECT p0.key AS key, o.value AS text FROM postings p0 ' +
        joins.join(' ') +
        ' CROSS JOIN objects o ON o.key = p0.key WHERE p0.field = ? AND p0.term = ? AND p0.key > ? ORDER BY p0.key LIMIT ?';
    }
    statement = this.db.prepare<unknown[], KeyText>(sql);
    this.pages.set(conditions, statement);
    return statement;
  }
}

function readRow(db: Database.Database, path: string): SpaceRow {
  let row: SpaceRow | undefined;
  try {
    row = db.prepare<[], SpaceRow>('SELECT * FROM space WHERE one = 1').get();
  } catch (err) {
    throw new Error(`${path} is not a checkpointd space file (${(err as Error).message})`, { cause: err });
  }
  if (row === undefined) throw new Error(`${path} is not a checkpointd space file: it describes no space`);
  if (!ReadFormats.includes(row.format)) throw new Error(`${path} is a space file of format ${row.format}; this version reads formats ${ReadFormats.join(' and ')}`);
  return row;
}
