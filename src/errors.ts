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

/** The journal could not be written or synced; the commit was not acknowledged (503). */
export class JournalWriteError extends UnavailableError {}

/**
 * The journal holds a damaged record followed by good ones: cutting there would
 * drop acknowledged commits, so start-up stops and an operator decides.
 */
export class JournalCorruptError extends CheckpointdError {
  constructor(
    message: string,
    readonly file: string,
    readonly offset: number,
    readonly lastGoodSeq: number,
  ) {
    super(message);
  }
}

/** A configuration file or override that cannot be used; the CLI exits with status 2. */
export class ConfigError extends CheckpointdError {}
