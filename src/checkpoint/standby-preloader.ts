/**
 * Warm standby's checkpoint half (docs/ARCHITECTURE.md "Failover protocol"): a secondary keeps its
 * state current from the journal, and reads each new collection checkpoint of
 * its installation as it appears, end to end (every entry's SHA-256), so that
 * the checkpoint it would load after a gap in the journal or a rejoin is
 * already known good, and one that is damaged is known and reported (status,
 * log) before anyone needs it — never at the moment of a failover. Reading it
 * also leaves the file in this host's page cache.
 */
import { promises as fs } from 'node:fs';
import { verifyCheckpointArchive } from './archive/index.js';
import type { Catalogue } from './catalogue.js';
import { isOwnCollection } from './retention.js';
import type { Logger } from '../log/index.js';

/** The newest checkpoint a standby has verified. */
export interface PreloadedCheckpoint {
  id: number;
  seq: number;
  bytes: number;
  /** How long verifying it took. */
  ms: number;
  /** When it was verified (ISO 8601). */
  at: string;
}

/** What status shows of a standby's checkpoints. */
export interface PreloadStatus {
  verified: PreloadedCheckpoint | null;
  /** Checkpoints known not to be usable (unreadable, or not verifying), by id, with why. */
  damaged: { id: number; problem: string }[];
}

/** Options for {@link StandbyPreloader}. */
export interface StandbyPreloaderOptions {
  catalogue: Catalogue;
  installation: string;
  logger: Logger;
  /** Look at the checkpoint folder at most this often. */
  intervalMs: number;
  /** The checkpoint start-up loaded, if it did: that load verified every entry, so it is not read again. */
  loaded?: { id: number; seq: number; bytes: number; ms: number } | null;
}

/** Verifies each new checkpoint on a secondary, one at a time, in the background. */
export class StandbyPreloader {
  private verified: PreloadedCheckpoint | null = null;
  /** Ids already looked at (verified or damaged): never read twice. */
  private readonly seen = new Set<number>();
  private running: Promise<void> | null = null;
  private lastLook = -Infinity;

  constructor(private readonly options: StandbyPreloaderOptions) {
    const { loaded } = options;
    if (loaded !== undefined && loaded !== null) {
      this.verified = { ...loaded, at: new Date().toISOString() };
      this.seen.add(loaded.id);
    }
  }

  /** Look for a newer checkpoint and verify it; returns at once (the work runs in the background, one pass at a time). */
  refresh(): void {
    if (this.running !== null || performance.now() - this.lastLook < this.options.intervalMs) return;
    this.lastLook = performance.now();
    this.running = this.pass()
      .catch((err: unknown) => {
        this.options.logger.warn('cannot read the checkpoint folder to pre-load checkpoints; trying again', { error: (err as Error).message });
      })
      .finally(() => {
        this.running = null;
      });
  }

  /** Settles when the pass under way, if any, has ended. */
  async settled(): Promise<void> {
    await this.running;
  }

  status(): PreloadStatus {
    return {
      verified: this.verified,
      damaged: [...this.options.catalogue.unreadable, ...this.options.catalogue.damaged, ...this.options.catalogue.changed].map(([id, problem]) => ({ id, problem })).sort((a, b) => a.id - b.id),
    };
  }

  /** Verify the newest checkpoint not looked at yet; older unseen ones are skipped (a newer one supersedes them). */
  private async pass(): Promise<void> {
    const { catalogue, installation, logger } = this.options;
    const candidates = (await catalogue.manifests())
      .filter((e) => isOwnCollection(e, installation) && !catalogue.damaged.has(e.id) && !catalogue.changed.has(e.id))
      .sort((a, b) => b.manifest.seq - a.manifest.seq || b.id - a.id);
    const newest = candidates[0];
    if (newest === undefined || this.seen.has(newest.id) || (this.verified !== null && newest.manifest.seq < this.verified.seq)) return;
    const started = performance.now();
    const deleted = () => {
      this.seen.add(newest.id);
      logger.info('a checkpoint was deleted while this standby verified it; skipped', { id: newest.id, file: newest.file });
    };
    let result: Awaited<ReturnType<typeof verifyCheckpointArchive>>;
    try {
      result = await verifyCheckpointArchive(newest.file);
    } catch (err) {
      if (await isGone(newest.file)) return deleted();
      throw err;
    }
    // A delete on the primary renames the file away, then shrinks it a slice at a time: a read under way here sees it end early.
    if (!result.ok && (await isGone(newest.file))) return deleted();
    this.seen.add(newest.id);
    const ms = Math.round(performance.now() - started);
    if (!result.ok) {
      const problem = `does not verify: ${result.problem}${result.entry === null ? '' : ` (entry ${result.entry})`}`;
      catalogue.damaged.set(newest.id, problem);
      logger.error('a new checkpoint does not verify; this standby keeps the one before it as its base (the primary still lists it: check it with checkpointd verify)', {
        id: newest.id,
        file: newest.file,
        problem,
        base: this.verified?.id ?? null,
      });
      return;
    }
    this.verified = { id: newest.id, seq: newest.manifest.seq, bytes: newest.size, ms, at: new Date().toISOString() };
    logger.info('checkpoint pre-loaded (verified on this standby)', { id: newest.id, seq: newest.manifest.seq, bytes: newest.size, ms });
  }
}

/** Whether `file` is no longer there by its name (deleted, or renamed away to be deleted). */
async function isGone(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
