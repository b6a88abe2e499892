/**
 * Automatic collection checkpoints (docs/API.md "Automatic checkpoints"): the
 * journal threshold, system events and the cron schedule all end here, in
 * {@link AutoCheckpointer.fire}.
 *
 * - Coalescing: the first trigger starts a `coalesceMs` wait; triggers during
 *   the wait join it, and one checkpoint names them all. A trigger while that
 *   checkpoint runs books at most one more, after it. Manual requests go
 *   straight to the Checkpointer and queue on its lock, so they wait their
 *   turn and get their own checkpoint.
 * - Nothing to add: when the collection has not changed since the newest
 *   collection checkpoint, an automatic one is skipped (logged).
 * - Retention runs after each automatic checkpoint (checkpoint/retention.ts).
 * - Failure: the checkpointer has removed its temp file and kept every earlier
 *   checkpoint; this logs one error line, shows the failure in status, and
 *   retries after `retry.minMs`, doubling to `retry.maxMs`. Triggers that
 *   arrive while a retry waits join the retry instead of hammering a full disk.
 */
import { createTask, type ScheduledTask } from 'node-cron';
import { isOwnCollection, type Checkpointer, type ListedCheckpoint } from '../checkpoint/index.js';
import type { CheckpointConfig, CheckpointEvent } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { Store, StoreOp } from '../store/index.js';
import { JournalWatcher } from './journal-watcher.js';

/** Trigger of a journal-threshold checkpoint. */
export const ThresholdTrigger = 'journal-threshold';
/** Trigger of a scheduled checkpoint. */
export const ScheduleTrigger = 'schedule';

/** The trigger name of a system event. */
export function eventTrigger(event: CheckpointEvent): string {
  return `event:${event}`;
}

/** The system event a durable operation stands for, if any. */
function eventOf(op: StoreOp): CheckpointEvent | null {
  switch (op.type) {
    case 'space.create':
      return 'space-created';
    case 'space.upgrade':
      return 'space-upgraded';
    case 'template.load':
      return 'template-loaded';
    case 'restore':
      return 'restore-done';
    default:
      return null;
  }
}

/** Options for {@link AutoCheckpointer}. */
export interface AutoCheckpointerOptions {
  checkpointer: Checkpointer;
  store: Store;
  config: CheckpointConfig;
  journalDir: string;
  logger: Logger;
}

/** The last failed automatic checkpoint, while no later one has succeeded. */
export interface AutoFailure {
  time: string;
  triggers: string[];
  error: string;
  attempts: number;
  retryAt: string;
}

/** What `GET /api/admin/status` shows of automatic checkpoints. */
export interface AutoStatus {
  newest: { id: number; trigger: string; time: string; durationMs: number; size: number; seq: number } | null;
  journalBytesSince: number | null;
  journalThreshold: number | null;
  schedule: string | null;
  nextScheduled: string | null;
  state: 'idle' | 'waiting' | 'running' | 'retrying' | 'stopped';
  pending: string[];
  lastFailure: AutoFailure | null;
}

/** Turns triggers into collection checkpoints, one at a time, and prunes after each. */
export class AutoCheckpointer {
  private watcher: JournalWatcher | null = null;
  private task: ScheduledTask | null = null;
  private unsubscribe: (() => void) | null = null;
  /** Triggers gathered during the coalescing wait (or a retry's backoff). */
  private waiting: string[] | null = null;
  private timer: NodeJS.Timeout | null = null;
  private retrying = false;
  private running: Promise<void> | null = null;
  /** Triggers that arrived while a checkpoint ran: one more after it. */
  private again: string[] | null = null;
  private stopped = false;
  private failure: AutoFailure | null = null;
  private backoffMs = 0;
  /** The newest collection checkpoint of this installation. */
  private newest: ListedCheckpoint | null = null;

  constructor(private readonly options: AutoCheckpointerOptions) {}

  /** Learn the newest checkpoint, then start the journal watcher, the schedule and the event subscription. */
  async start(): Promise<void> {
    const { checkpointer, store, config, logger } = this.options;
    const own = (await checkpointer.catalogue.manifests()).filter((e) => isOwnCollection(e, checkpointer.installation));
    this.newest = own.sort((a, b) => a.manifest.seq - b.manifest.seq || a.id - b.id).at(-1) ?? null;
    checkpointer.onCreated((entry) => {
      if (isOwnCollection(entry, checkpointer.installation)) this.newest = entry;
    });
    this.unsubscribe = store.onCommit((op) => {
      const event = eventOf(op);
      if (event !== null) this.event(event);
    });
    if (config.journalThreshold !== null) {
      this.watcher = await JournalWatcher.start({
        dir: this.options.journalDir,
        usePolling: config.watch.usePolling,
        intervalMs: config.watch.intervalMs,
        logger,
        onChange: () => this.checkThreshold(),
      });
      this.checkThreshold();
    }
    if (config.schedule !== null) {
      this.task = createTask(config.schedule, () => this.fire(ScheduleTrigger), { name: 'checkpoint', noOverlap: true });
      await this.task.start();
    }
    logger.info('automatic checkpoints on', {
      journalThreshold: config.journalThreshold,
      schedule: config.schedule,
      events: Object.entries(config.events).filter(([, on]) => on).map(([event]) => event),
      keepLast: config.retention.keepLast,
      keepWithinMs: config.retention.keepWithinMs,
    });
  }

  /** A system event happened: checkpoint if `checkpoint.events` has it on. */
  event(event: CheckpointEvent): void {
    if (this.options.config.events[event]) this.fire(eventTrigger(event));
  }

  /** Journal bytes since the newest collection checkpoint (null without a watcher). */
  get journalBytesSince(): number | null {
    return this.watcher?.bytesAfter(this.newest?.manifest.seq ?? 0) ?? null;
  }

  private checkThreshold(): void {
    const threshold = this.options.config.journalThreshold;
    // While a checkpoint is booked or running it will reset the count: do not book another for the same bytes.
    if (threshold === null || this.waiting !== null || this.running !== null) return;
    const bytes = this.journalBytesSince;
    if (bytes !== null && bytes >= threshold) this.fire(ThresholdTrigger);
  }

  /** Ask for an automatic checkpoint; see the file comment for coalescing. */
  fire(trigger: string): void {
    if (this.stopped) return;
    if (this.waiting !== null) {
      if (!this.waiting.includes(trigger)) this.waiting.push(trigger);
      return;
    }
    if (this.running !== null) {
      this.again ??= [];
      if (!this.again.includes(trigger)) this.again.push(trigger);
      return;
    }
    this.book([trigger], this.options.config.coalesceMs);
  }

  private book(triggers: string[], delayMs: number): void {
    this.waiting = triggers;
    this.timer = setTimeout(() => {
      this.timer = null;
      const batch = this.waiting ?? [];
      this.waiting = null;
      this.retrying = false;
      this.running = this.run(batch).finally(() => {
        this.running = null;
        const more = this.again;
        this.again = null;
        if (this.stopped) return;
        if (more !== null && !this.retrying) this.book(more, this.options.config.coalesceMs);
        else if (more !== null) for (const t of more) this.fire(t);
        else this.checkThreshold();
      });
    }, delayMs);
  }

  private async run(triggers: string[]): Promise<void> {
    const { checkpointer, store, config, logger } = this.options;
    if (this.newest !== null && this.newest.manifest.seq === store.state.seq) {
      logger.info('automatic checkpoint skipped: nothing changed since the newest collection checkpoint', { triggers, id: this.newest.id, seq: store.state.seq });
      this.succeeded();
      return;
    }
    try {
      await checkpointer.create({
        scope: 'collection',
        trigger: triggers[0]!,
        description: triggers.length === 1 ? `automatic (${triggers[0]})` : `automatic (${triggers.join(', ')})`,
      });
    } catch (err) {
      this.failed(triggers, err as Error);
      return;
    }
    this.succeeded();
    try {
      const pruned = await checkpointer.applyRetention({ keepLast: config.retention.keepLast, keepWithinMs: config.retention.keepWithinMs });
      if (pruned.removed.length > 0 || pruned.journalFilesRemoved > 0) logger.info('retention applied', { ...pruned });
    } catch (err) {
      logger.error('retention failed; old checkpoints and journal files stay until the next checkpoint', { error: (err as Error).message });
    }
  }

  private succeeded(): void {
    if (this.failure !== null) this.options.logger.info('automatic checkpoints work again', { after: this.failure.attempts });
    this.failure = null;
    this.backoffMs = 0;
  }

  private failed(triggers: string[], err: Error): void {
    const { retry } = this.options.config;
    this.backoffMs = this.backoffMs === 0 ? retry.minMs : Math.min(this.backoffMs * 2, retry.maxMs);
    const attempts = (this.failure?.attempts ?? 0) + 1;
    const retryAt = new Date(Date.now() + this.backoffMs).toISOString();
    this.failure = { time: new Date().toISOString(), triggers, error: err.message, attempts, retryAt };
    this.options.logger.error('automatic checkpoint failed; earlier checkpoints are kept, retrying', { triggers, error: err.message, code: (err as NodeJS.ErrnoException).code, attempts, retryInMs: this.backoffMs });
    if (this.stopped) return;
    this.retrying = true;
    // The retry is booked like any trigger, so later triggers join it rather than start early.
    this.book([...triggers, ...(this.again ?? []).filter((t) => !triggers.includes(t))], this.backoffMs);
    this.again = null;
  }

  /** Status for `GET /api/admin/status`. */
  status(): AutoStatus {
    const { config, checkpointer } = this.options;
    const n = this.newest;
    let state: AutoStatus['state'] = 'idle';
    if (this.stopped) state = 'stopped';
    else if (this.running !== null) state = 'running';
    else if (this.retrying) state = 'retrying';
    else if (this.waiting !== null) state = 'waiting';
    return {
      newest:
        n === null
          ? null
          : {
              id: n.id,
              trigger: n.manifest.trigger,
              time: n.manifest.time,
              // Made by an earlier run: from its start (the manifest's time) to when its file was finished.
              durationMs: checkpointer.durationOf(n.id) ?? Math.max(0, Math.round(n.writtenAt - Date.parse(n.manifest.time))),
              size: n.size,
              seq: n.manifest.seq,
            },
      journalBytesSince: this.journalBytesSince,
      journalThreshold: config.journalThreshold,
      schedule: config.schedule,
      nextScheduled: this.task?.getNextRun()?.toISOString() ?? null,
      state,
      pending: [...(this.waiting ?? []), ...(this.again ?? [])],
      lastFailure: this.failure,
    };
  }

  /**
   * Stop every trigger and wait for a running checkpoint. With `finalTrigger`
   * (a clean shutdown), then make one last checkpoint if anything changed.
   */
  async stop(finalTrigger?: string): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.waiting = null;
    this.again = null;
    this.unsubscribe?.();
    await this.task?.destroy();
    await this.watcher?.close();
    await this.running;
    if (finalTrigger === undefined) return;
    const { checkpointer, store, logger } = this.options;
    if (this.newest !== null && this.newest.manifest.seq === store.state.seq) return;
    try {
      await checkpointer.create({ scope: 'collection', trigger: finalTrigger, description: `automatic (${finalTrigger})` });
    } catch (err) {
      logger.error('shutdown checkpoint failed; the journal holds every commit, so nothing is lost', { error: (err as Error).message });
    }
  }
}
