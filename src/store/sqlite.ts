/**
 * better-sqlite3, with URI file names on for the whole process, so that a
 * checkpoint can check a space file as a held snapshot froze it, opened
 * `immutable=1` (space-check.ts: SQLite then reads the database file alone,
 * not the WAL that writers go on appending to). better-sqlite3 is built with
 * URIs off; its addon reads `SQLITE_USE_URI` once, when it loads at the first
 * connection of the process, so it is set here, before any. Every other file
 * name the engine opens is an absolute path, which SQLite never reads as a URI.
 */
import Database from 'better-sqlite3';

process.env.SQLITE_USE_URI = '1';

/** The URI that opens the SQLite database at `path` (absolute) as a file nothing changes while it is open. */
export function immutableUri(path: string): string {
  return `file:${path.replace(/[%?#]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}?immutable=1`;
}

export default Database;
