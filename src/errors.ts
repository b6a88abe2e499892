/**
 * The small set of typed errors every component throws. `api/problem.ts` maps
 * them to HTTP status codes in one place; messages say what to do next.
 */

/** Base class: `status` is the HTTP status the API answers with. */
export class CheckpointdError extends Error {
  readonly status: number = 500;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that can never succeed as sent (400). */
export class BadRequestError extends CheckpointdError {
  override readonly status = 400;
}

/** No valid credentials (401). */
export class UnauthorizedError extends CheckpointdError {
  override readonly status = 401;
}

/** Valid credentials, wrong role (403). */
export class ForbiddenError extends CheckpointdError {
  override readonly status = 403;
}

/** The named thing does not exist (404). */
export class NotFoundError extends CheckpointdError {
  override readonly status = 404;
}

/** The request clashes with the current state (409). */
export class ConflictError extends CheckpointdError {
  override readonly status = 409;
}

/** A body or upload over a configured limit (413). */
export class PayloadTooLargeError extends CheckpointdError {
  override readonly status = 413;
}

/** Well-formed but semantically refused, e.g. a template version mismatch (422). */
export class UnprocessableError extends CheckpointdError {
  override readonly status = 422;
}

/** This node cannot serve the request now: a secondary, fenced, or storage failing (503). */
export class UnavailableError extends CheckpointdError {
  override readonly status = 503;
}

/**
 * This node may not acknowledge now: it is not the primary with a valid lease
 * (a lapsed or lost lease, a higher epoch, a switchover in progress). 503: the
 * client retries on the primary. The rule is failover/fence.ts.
 */
export class FencedError extends UnavailableError {}

/** The journal could not be written or synced; the commit was not acknowledged (503). */
export class JournalWriteError extends UnavailableError {}

/** What an operator does about each OS error that means the storage failed, not the request. */
const StorageAdvice: Record<string, string> = {
  ENOSPC: 'the file system is full: free space on it (or raise its quota)',
  EDQUOT: 'the file system is full: free space on it (or raise its quota)',
  EACCES: 'permission denied: give the user the daemon runs as read and write access to that folder and its files',
  EPERM: 'permission denied: give the user the daemon runs as read and write access to that folder and its files',
  EROFS: 'the file system is mounted read-only: remount it read-write',
  ENOENT: 'a folder is missing: check that the FileVault is mounted and its folders are in place',
  ENOTDIR: 'a folder is missing: check that the FileVault is mounted and its folders are in place',
  EIO: 'the storage failed: check the disk, or the network file system and its mount',
  ESTALE: 'the storage failed: check the disk, or the network file system and its mount',
  ENOTCONN: 'the storage failed: check the disk, or the network file system and its mount',
};

/**
 * The storage under a request failed (full, not permitted, read-only, gone):
 * 507 Insufficient Storage when full, else 503. The message says what failed
 * and what to do; {@link storageFailure} makes one from an OS error.
 */
export class StorageError extends CheckpointdError {
  override readonly status: number;
  constructor(
    message: string,
    /** The OS error code (`ENOSPC`, `EACCES`, …). */
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.status = code === 'ENOSPC' || code === 'EDQUOT' ? 507 : 503;
  }
}

/**
 * A {@link StorageError} for `err` when it (or its cause) is an OS error that
 * means the storage failed, else null. A typed error keeps its message (it
 * already says what was not done) and gains the advice; a bare OS error says
 * that nothing was changed, as every write path publishes atomically.
 */
export function storageFailure(err: unknown): StorageError | null {
  if (err instanceof StorageError) return err;
  let code: string | undefined;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5 && code === undefined; e = e.cause, depth++) {
    const c = (e as NodeJS.ErrnoException).code;
    if (typeof c === 'string' && StorageAdvice[c] !== undefined) code = c;
  }
  if (code === undefined || !(err instanceof Error)) return null;
  if (err instanceof CheckpointdError) {
    if (err.status !== 503 && err.status !== 500) return null;
    return new StorageError(`${err.message}; ${StorageAdvice[code]!}`, code, { cause: err });
  }
  return new StorageError(`storage failed (${err.message}); nothing was changed: ${StorageAdvice[code]!}, then retry`, code, { cause: err });
}

/**
 * The journal holds a damaged record followed by good ones: cutting there would
 * drop acknowledged commits, so start-up stops and an operator decides.
 */
export class JournalCorruptError extends CheckpointdError {
  /** What is damaged and where, without the advice (the message adds what start-up did about it). */
  readonly damage: string;

  constructor(
    message: string,
    readonly file: string,
    readonly offset: number,
    readonly lastGoodSeq: number,
    damage?: string,
  ) {
    super(message);
    this.damage = damage ?? message;
  }
}

/** A configuration file or override that cannot be used; the CLI exits with status 2. */
export class ConfigError extends CheckpointdError {}
