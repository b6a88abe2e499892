/**
 * Fault injection below our code, for tests that run checkpointd (or any node
 * script) as a child process: vault-faults.c, built here into an LD_PRELOAD
 * library, makes the paths that match stall their writes, fail their reads,
 * opens or fsyncs with EIO, or list slowly, switched at run time by files in a
 * control folder this class owns. The child must be started with {@link VaultFaults.env};
 * it cannot act on the test's own process.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor } from './wait-for.js';

const execFileP = promisify(execFile);

const SourceFile = fileURLToPath(new URL('./vault-faults.c', import.meta.url));
const ControlFiles = ['stall-writes', 'stall-next', 'stall-next-hold', 'fail-reads', 'fail-opens', 'fail-syncs', 'slow-listing', 'stalled.log'];

let built: Promise<string> | undefined;

/** The shim, compiled once per process into os.tmpdir() under a hash of its source (a later run reuses it). */
function buildShim(): Promise<string> {
  built ??= (async () => {
    const source = await fs.readFile(SourceFile);
    const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
    const library = path.join(os.tmpdir(), `libvaultfaults-${hash}.so`);
    try {
      await fs.access(library);
      return library;
    } catch {
      // Not built yet.
    }
    // Build beside it and rename, so a test process running alongside never loads half a file.
    const partial = `${library}.${process.pid}.tmp`;
    await execFileP('cc', ['-shared', '-fPIC', '-O2', '-o', partial, SourceFile, '-ldl', '-lpthread']);
    await fs.rename(partial, library);
    return library;
  })();
  return built;
}

/** Whether `error` says the command itself could not be found. */
function isMissingCommand(error: unknown): boolean {
  const e = error as NodeJS.ErrnoException;
  return e.code === 'ENOENT' && typeof e.syscall === 'string' && e.syscall.startsWith('spawn');
}

/**
 * A control folder and the environment that points a child at it. Faults apply
 * only to paths containing one of the `match` substrings (a path is tested with
 * a '/' appended, so '/FileVault/journal/' covers the folder itself too).
 */
export class VaultFaults {
  private constructor(
    /** The control folder. */
    readonly dir: string,
    private readonly library: string,
    private readonly match: string[],
  ) {}

  /** Null when the shim can be built and preloaded here, else why not (for `this.skip()`). */
  static async available(): Promise<string | null> {
    if (process.platform !== 'linux') return `LD_PRELOAD fault injection needs Linux and /proc/self/fd (this is ${process.platform})`;
    try {
      await buildShim();
      return null;
    } catch (error) {
      if (isMissingCommand(error)) return 'no C compiler: `cc` is not on PATH (apt-get install gcc)';
      throw error;
    }
  }

  /** Build the shim if needed and make an empty control folder for paths containing any of `match`. */
  static async create(match: string[]): Promise<VaultFaults> {
    if (match.length === 0 || match.some((m) => m === '' || m.includes(':'))) {
      throw new Error(`vault faults: give one or more non-empty match substrings without ':' (got ${JSON.stringify(match)})`);
    }
    const library = await buildShim();
    const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-faults-')));
    await fs.chmod(dir, 0o777); // a child started as another user still reads and counts down the control files
    return new VaultFaults(dir, library, match);
  }

  /** Variables to merge into the child's environment (io_uring off: it would bypass libc, and the shim with it). */
  env(): Record<string, string> {
    const preload = process.env.LD_PRELOAD ? `${this.library}:${process.env.LD_PRELOAD}` : this.library;
    return { LD_PRELOAD: preload, CPD_FAULT_DIR: this.dir, CPD_FAULT_MATCH: this.match.join(':'), UV_USE_IO_URING: '0' };
  }

  /** Block matching writes, fsyncs and truncates (only those whose path also contains `narrower`, if given) until {@link releaseWrites}. */
  async stallWrites(narrower?: string): Promise<void> {
    await this.put('stall-writes', narrower ?? '');
  }

  /** Block only the next `n` matching write calls (until {@link releaseNextWrites}); the calls after them go through. */
  async stallNextWrites(n: number): Promise<void> {
    await this.put('stall-next-hold', '');
    await this.put('stall-next', String(count(n, 'stallNextWrites')));
  }

  /** Let the calls {@link stallNextWrites} held run, at the offsets they were issued with. */
  async releaseNextWrites(): Promise<void> {
    await fs.rm(this.file('stall-next-hold'), { force: true });
  }

  /** Let stalled writes run, at the offsets they were issued with. */
  async releaseWrites(): Promise<void> {
    await fs.rm(this.file('stall-writes'), { force: true });
  }

  /** The paths of the calls that have stalled so far, one per stalled call, oldest first. */
  async stalledPaths(): Promise<string[]> {
    try {
      return (await fs.readFile(this.file('stalled.log'), 'utf8')).split('\n').filter((line) => line !== '');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /** How many calls have stalled so far. */
  async stalledCount(): Promise<number> {
    return (await this.stalledPaths()).length;
  }

  /** Wait (bounded) until at least `count` calls have stalled; resolves with their paths. */
  async waitForStall(count = 1, timeoutMs = 10_000): Promise<string[]> {
    return waitFor(async () => {
      const paths = await this.stalledPaths();
      return paths.length >= count ? paths : null;
    }, { what: `${count} stalled write call(s) under ${this.match.join(', ')}`, timeoutMs });
  }

  /** Make the next `n` matching reads fail with EIO. */
  async failReads(n: number): Promise<void> {
    await this.put('fail-reads', String(count(n, 'failReads')));
  }

  /** Make the next `n` matching opens fail with EIO. */
  async failOpens(n: number): Promise<void> {
    await this.put('fail-opens', String(count(n, 'failOpens')));
  }

  /** Make the next `n` matching fsyncs and fdatasyncs fail with EIO (after a stall, if writes are stalled too). */
  async failSyncs(n: number): Promise<void> {
    await this.put('fail-syncs', String(count(n, 'failSyncs')));
  }

  /** Make every listing (readdir, opendir) of a matching folder sleep `ms` first; 0 stops it. */
  async slowListing(ms: number): Promise<void> {
    await this.put('slow-listing', String(count(ms, 'slowListing')));
  }

  /** Remove every fault (stalled writes run) and forget the stall log. */
  async clear(): Promise<void> {
    await Promise.all(ControlFiles.map((name) => fs.rm(this.file(name), { force: true })));
  }

  /** Remove the control folder (and with it every fault). */
  async close(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Write a control file whole: the shim reads it on every call, so it must never see it half written. */
  private async put(name: string, content: string): Promise<void> {
    const partial = this.file(`.${name}.${randomBytes(4).toString('hex')}`);
    await fs.writeFile(partial, `${content}\n`, { mode: 0o666 });
    await fs.chmod(partial, 0o666);
    await fs.rename(partial, this.file(name));
  }
}

/** `n` checked as a count the shim can parse. */
function count(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`vault faults: ${what} needs a non-negative integer (got ${n})`);
  return n;
}

/** A mocha `before` hook body: skip the suite, saying why, where the shim cannot be built here. */
export async function skipWithoutShim(context: Mocha.Context): Promise<void> {
  const why = await VaultFaults.available();
  if (why === null) return;
  console.log(`      skipped: ${why}`);
  context.skip();
}
