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
  }
}

/** Realm named in `WWW-Authenticate`. */
export const Realm = 'checkpointd';

/** A 401 that carries the `WWW-Authenticate` challenge to send. */
export class ChallengeError extends UnauthorizedError {
  constructor(message: string, readonly challenge: string) {
    super(message);
  }
}

/** A pre-handler that lets through only tokens with one of `roles`. */
export function requireRole(tokens: TokenStore, roles: readonly Role[]) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      throw new ChallengeError('this route needs a token: send Authorization: Bearer <token> (see the admin.token file the daemon wrote on first start)', `Bearer realm="${Realm}"`);
    }
    const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
    if (match === null) {
      throw new ChallengeError('the Authorization header must be "Bearer <token>"', `Bearer realm="${Realm}", error="invalid_request"`);
    }
    const entry = await tokens.verify(match[1]!);
    if (entry === undefined) {
      throw new ChallengeError('the token is not valid (unknown, revoked or mistyped); ask an administrator for a token', `Bearer realm="${Realm}", error="invalid_token"`);
    }
    request.principal = entry;
    if (!roles.includes(entry.role)) {
      throw new ForbiddenError(`token "${entry.name}" has role ${entry.role}; this route needs ${roles.join(' or ')}`);
    }
  };
}
