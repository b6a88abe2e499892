/** Automatic checkpoints: journal threshold (chokidar), system events, cron schedule, coalescing, retries. */
export { AutoCheckpointer, eventTrigger, ScheduleTrigger, ThresholdTrigger, type AutoCheckpointerOptions, type AutoFailure, type AutoStatus } from './auto-checkpointer.js';
export { JournalWatcher, type JournalWatcherOptions } from './journal-watcher.js';
