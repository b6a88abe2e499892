/**
 * Watches the journal folder with chokidar and knows each journal file's
 * size, so "journal bytes since the newest collection checkpoint" costs no
 * I/O. File events do not arrive from network file systems (NFS, SMB): there
 * `usePolling` makes chokidar stat the files every `intervalMs` instead.
 *
 * The journal rolls to a new file at each collection checkpoint, named for its
 * first seq, so the bytes since a checkpoint at seq S are the sizes of the
 * files that begin after S. (Commits made while that checkpoint was being
 * written sit in the file before the roll and are not counted: they are a
 * checkpoint's duration of writes, not a threshold's.)
 *
 * chokidar drops a file's `change` events for 50 ms after one it emits, with
 * no trailing event, so a burst of appends can end with the file's last size
 * never reported. Each event therefore also (re)books one stat of that file
 * 75 ms later, which sees whatever the dropped events would have said.
 *
 * Polling is the default even on local disks: under a heavy write load file
 * events cost the commit path dearly (chokidar handled ~7,000 events/s for
 * ~3,500 journal writes/s, about 0.4 of a core, and commits/s fell to
 * 0.53–0.76× in `npm run bench -- auto`), while polling one file twice a
 * second costs nothing measurable and notices the threshold within
 * `intervalMs`.
 */
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { parseJournalFileName } from '../journal/index.js';
import type { Logger } from '../log/index.js';

/** Delay of the stat that follows a file's last event (longer than chokidar's 50 ms change throttle). */
const TrailingStatMs = 75;

/** Options for {@link JournalWatcher.start}. */
export interface JournalWatcherOptions {
  dir: string;
  usePolling: boolean;
  intervalMs: number;
  logger: Logger;
  /** Called after a journal file appeared, grew or went. */
  onChange: () => void;
}

/** The journal files' sizes, kept current by chokidar. */
export class JournalWatcher {
  /** First seq and size, by file. */
  private readonly sizes = new Map<string, { firstSeq: number; size: number }>();
  /** Trailing stats booked, by file. */
  private readonly rechecks = new Map<string, NodeJS.Timeout>();
  private closed = false;

  private constructor(private readonly watcher: FSWatcher) {}

  /** Start watching; resolves once the existing files are known. */
  static async start(options: JournalWatcherOptions): Promise<JournalWatcher> {
    const watcher = watch(options.dir, {
      usePolling: options.usePolling,
      interval: options.intervalMs,
      alwaysStat: true,
      depth: 0,
      ignoreInitial: false,
      ignored: (file: string) => file !== options.dir && parseJournalFileName(path.basename(file)) === null,
    });
    const self = new JournalWatcher(watcher);
    const seen = (file: string, stats?: Stats): void => {
      const firstSeq = parseJournalFileName(path.basename(file))?.firstSeq;
      if (firstSeq === undefined || stats === undefined) return;
      self.sizes.set(file, { firstSeq, size: stats.size });
      options.onChange();
      clearTimeout(self.rechecks.get(file));
      if (!self.closed) {
        self.rechecks.set(file, setTimeout(() => {
          self.rechecks.delete(file);
          fs.stat(file).then((now) => {
            if (!self.closed && self.sizes.has(file) && now.size !== self.sizes.get(file)?.size) {
              self.sizes.set(file, { firstSeq, size: now.size });
              options.onChange();
            }
          }, () => undefined);
        }, TrailingStatMs));
      }
    };
    watcher.on('add', seen);
    watcher.on('change', seen);
    watcher.on('unlink', (file) => {
      if (self.sizes.delete(file)) options.onChange();
    });
    watcher.on('error', (err) => options.logger.warn('journal watcher error; the journal threshold may be noticed late', { dir: options.dir, error: (err as Error).message }));
    await new Promise<void>((resolve) => watcher.once('ready', resolve));
    return self;
  }

  /** Bytes in the journal files that begin after seq `seq`. */
  bytesAfter(seq: number): number {
    let bytes = 0;
    for (const { firstSeq, size } of this.sizes.values()) if (firstSeq > seq) bytes += size;
    return bytes;
  }

  /** Stop watching. */
  close(): Promise<void> {
    this.closed = true;
    for (const timer of this.rechecks.values()) clearTimeout(timer);
    this.rechecks.clear();
    return this.watcher.close();
  }
}
