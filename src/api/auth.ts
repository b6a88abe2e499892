/**
 * Bearer-token authentication and role checks, as Fastify pre-handlers.
 * Failures never echo the token; the log line names only the route and why.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../errors.js';
import type { Role, TokenEntry, TokenStore } from './token-store.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The token entry that authenticated this request, once auth has run. */
    principal?: TokenEntry;
    /** Why auth refused this request (for metrics; never the token itself). */
    authFailure?: AuthFailure;
  }
}

/** Why a request was refused: the `reason` label of `checkpointd_auth_failures_total`. */
export type AuthFailure = 'missing_token' | 'malformed_header' | 'invalid_token' | 'insufficient_role' | 'cluster_token';

/** Every {@link AuthFailure}, so that each counter exists (at 0) before the first refusal. */
export const AuthFailures: readonly AuthFailure[] = ['missing_token', 'malformed_header', 'invalid_token', 'insufficient_role', 'cluster_token'];

/** Realm named in `WWW-Authenticate`. */
export const Realm = 'checkpointd';

/** A 401 that carries the `WWW-Authenticate` challenge to send. */
export class ChallengeError extends UnauthorizedError {
  constructor(message: string, readonly challenge: string) {
    super(message);
  }
}

/** A pre-handler that checks the token; `roles` says which it lets through (the API description reads it). */
export type RoleCheck = ((request: FastifyRequest, reply: FastifyReply) => Promise<void>) & { readonly roles: readonly Role[] };

/** A pre-handler that lets through only tokens with one of `roles`. */
export function requireRole(tokens: TokenStore, roles: readonly Role[]): RoleCheck {
  const check = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      request.authFailure = 'missing_token';
      throw new ChallengeError('this route needs a token: send Authorization: Bearer <token> (see the admin.token file the daemon wrote on first start)', `Bearer realm="${Realm}"`);
    }
    const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
    if (match === null) {
      request.authFailure = 'malformed_header';
      throw new ChallengeError('the Authorization header must be "Bearer <token>"', `Bearer realm="${Realm}", error="invalid_request"`);
    }
    const entry = await tokens.verify(match[1]!);
    if (entry === undefined) {
      request.authFailure = 'invalid_token';
      throw new ChallengeError('the token is not valid (unknown, revoked or mistyped); ask an administrator for a token', `Bearer realm="${Realm}", error="invalid_token"`);
    }
    request.principal = entry;
    if (!roles.includes(entry.role)) {
      request.authFailure = 'insufficient_role';
      throw new ForbiddenError(`token "${entry.name}" has role ${entry.role}; this route needs ${roles.join(' or ')}`);
    }
  };
  return Object.assign(check, { roles });
}
