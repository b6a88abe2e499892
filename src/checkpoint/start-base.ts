/**
 * Where a node's start-up begins (docs/ARCHITECTURE.md "Consistency and durability"): the
 * newest collection checkpoint of this installation that verifies and that
 * the journal reaches back to. One that does not verify is logged, reported
 * in status (the catalogue's `unreadable`), and the next older one is tried,
 * with a longer replay; one already known damaged (a standby verifies each new
 * checkpoint as it appears) is not read again. No base at all means replaying the journal from seq 1,
 * which the store refuses if the journal was pruned.
 */
import { StorageError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { Engine } from '../store/index.js';
import type { Catalogue, ListedCheckpoint } from './catalogue.js';
import { removeStaged, stageCheckpoint } from './engine-checkpoint.js';
import { isOwnCollection } from './retention.js';

/** The checkpoint start-up loaded. */
export interface StartBase {
  entry: ListedCheckpoint;
  /** How long staging and installing it took. */
  ms: number;
}

/**
 * Load the start-up base into `engine` (empty): the newest of this
 * installation's collection checkpoints whose seq is at least
 * `journalFirstSeq - 1` (null: no journal) and which verifies, installed as
 * the engine's state at its seq; null when there is none (the engine stays
 * empty).
 */
export async function loadStartBase(catalogue: Catalogue, installation: string, journalFirstSeq: number | null, logger: Logger, engine: Engine): Promise<StartBase | null> {
  // Manifests only: the load verifies every entry's SHA-256 as it reads it, so no checkpoint file needs a hash of its
  // own first (on a new data folder, hashing them would read every checkpoint in full before the start).
  const candidates = (await catalogue.manifests())
    .filter((e) => isOwnCollection(e, installation) && !catalogue.damaged.has(e.id) && !catalogue.changed.has(e.id) && (journalFirstSeq === null || e.manifest.seq + 1 >= journalFirstSeq))
    .sort((a, b) => b.manifest.seq - a.manifest.seq || b.id - a.id);
  for (const entry of candidates) {
    const started = performance.now();
    try {
      const staged = await stageCheckpoint(entry.file, entry.manifest, engine, { collection: true });
      try {
        engine.install(staged.spaces, entry.manifest.seq, staged.collection!.templates, 'base', entry.manifest.epoch);
      } catch (err) {
        removeStaged(staged.spaces);
        throw err;
      }
      const ms = Math.round(performance.now() - started);
      logger.info('start-up checkpoint loaded', { id: entry.id, seq: entry.manifest.seq, bytes: entry.size, ms });
      return { entry, ms };
    } catch (err) {
      // The data folder failing (full, read-only, EIO) is not the checkpoint's fault, and an older one would fail the same.
      if (err instanceof StorageError) throw err;
      const problem = `does not verify: ${(err as Error).message}`;
      catalogue.damaged.set(entry.id, problem);
      logger.error('start-up checkpoint skipped; trying the next older one with a longer journal replay', { id: entry.id, file: entry.file, error: (err as Error).message });
    }
  }
  return null;
}
