/**
 * Which checkpoints automatic retention removes, and how far back the journal
 * must reach. A pure function of the catalogue, so the rules are tested on
 * their own:
 *
 * - candidates are this installation's automatic collection checkpoints
 *   (trigger other than `manual`); everything else goes only by hand;
 * - a candidate stays when it is one of the newest `keepLast` of them, or
 *   younger than `keepWithinMs`, or the newest collection checkpoint of this
 *   installation (the start-up base), or a journaled restore still needs it;
 * - the journal must reach back to the oldest retained collection checkpoint
 *   of this installation, so falling back to an older base when a newer one
 *   is damaged always finds the journal it needs.
 */
import type { CatalogueEntry } from './catalogue.js';

/** What retention keeps. */
export interface RetentionPolicy {
  keepLast: number;
  /** Also keep automatic checkpoints younger than this; null: count only. */
  keepWithinMs: number | null;
}

/** What to remove, and the seq up to which the journal is no longer needed. */
export interface RetentionPlan {
  remove: CatalogueEntry[];
  /** Journal records at or below this seq may go (0: keep everything). */
  journalNeededAfter: number;
}

/** True for a collection checkpoint written by this installation. */
export function isOwnCollection(entry: Pick<CatalogueEntry, 'manifest'>, installation: string): boolean {
  return entry.manifest.scope === 'collection' && entry.manifest.installation === installation;
}

/** The plan for `entries` (every readable checkpoint) at time `now` (ms since the epoch). */
export function planRetention(
  entries: readonly CatalogueEntry[],
  policy: RetentionPolicy,
  installation: string,
  neededByJournal: ReadonlySet<number>,
  now: number,
): RetentionPlan {
  const own = entries.filter((e) => isOwnCollection(e, installation)).sort((a, b) => a.manifest.seq - b.manifest.seq || a.id - b.id);
  const newest = own.at(-1);
  const automatic = own.filter((e) => e.manifest.trigger !== 'manual');
  const lastKept = new Set(automatic.slice(-policy.keepLast).map((e) => e.id));
  const remove = automatic.filter(
    (e) =>
      !lastKept.has(e.id) &&
      e !== newest &&
      !neededByJournal.has(e.id) &&
      (policy.keepWithinMs === null || now - Date.parse(e.manifest.time) > policy.keepWithinMs),
  );
  const gone = new Set(remove.map((e) => e.id));
  const oldestKept = own.find((e) => !gone.has(e.id));
  return { remove, journalNeededAfter: oldestKept?.manifest.seq ?? 0 };
}
