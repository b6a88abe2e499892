/**
 * Turn a space file (closed) into the layout of space file format 1, as the
 * first engine builds wrote it (up to commit e1a6c07): the objects in a
 * WITHOUT ROWID table keyed by `key`, the rest as it is. For tests of the
 * upgrade, and for the layout benchmark's reference.
 */
import Database from 'better-sqlite3';

export function toSpaceFileFormat1(file: string): void {
  const db = new Database(file);
  try {
    db.exec(`BEGIN;
      ALTER TABLE objects RENAME TO objects_now;
      DROP INDEX objects_key;
      CREATE TABLE objects (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO objects (key, value) SELECT key, value FROM objects_now;
      DROP TABLE objects_now;
      UPDATE space SET format = 1;
      COMMIT;`);
    db.exec('VACUUM');
  } finally {
    db.close();
  }
}
