/**
 * Errors as RFC 9457 `application/problem+json`, mapped from our typed errors
 * and from Fastify's own (bad JSON, body too large, schema) in one place.
 */
import { STATUS_CODES } from 'node:http';
import { CheckpointdError, storageFailure } from '../errors.js';

/** The body of a problem response. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
}

/** Content type of every error response. */
export const ProblemContentType = 'application/problem+json';

interface FastifyLikeError {
  statusCode?: number;
  code?: string;
  message: string;
  validation?: unknown;
}

// Fastify's messages for these are terse; say what to do instead.
const FastifyDetails: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'the request body is not valid JSON; send a JSON document with Content-Type: application/json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'the request body is empty; send a JSON document',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported Content-Type; send the body as JSON with Content-Type: application/json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'the Content-Length header does not match the body',
};

/** The status and problem body for any thrown value; `internal` is true for 5xx surprises worth logging. */
export function toProblem(err: unknown, instance?: string): { problem: Problem; internal: boolean } {
  let status = 500;
  let detail = 'internal error; the daemon log has the details';
  let internal = true;
  // A full, forbidden or missing FileVault is the operator's to fix: say so, whatever layer it surfaced in (logged).
  const storage = storageFailure(err);
  if (storage !== null) {
    status = storage.status;
    detail = storage.message;
  } else if (err instanceof CheckpointdError) {
    status = err.status;
    detail = err.message;
    internal = status >= 500 && status !== 503;
  } else if (typeof err === 'object' && err !== null && 'message' in err) {
    const e = err as FastifyLikeError;
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      status = e.statusCode;
      internal = false;
      if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') detail = `the request body is larger than the limit (api.bodyLimitBytes); send less or raise the limit`;
      else if (e.code !== undefined && FastifyDetails[e.code] !== undefined) detail = FastifyDetails[e.code]!;
      else if (e.code === 'FST_ERR_BAD_URL') detail = 'the request URL is malformed (bad percent-encoding?)';
      else detail = e.message;
    }
  }
  const problem: Problem = { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail };
  if (instance !== undefined) problem.instance = instance;
  return { problem, internal };
}
