/**
 * Request bodies: JSON parsed with prototype-poisoning protection
 * (secure-json-parse, as Fastify itself uses), and refusals that name the
 * problem and where it is.
 */
import sjson from 'secure-json-parse';
import { BadRequestError } from '../errors.js';

/** Parse a request body, or throw a BadRequestError a person can act on. */
export function parseJsonBody(body: string): unknown {
  if (body.trim() === '') throw new BadRequestError('the request body is empty; send a JSON document with Content-Type: application/json');
  try {
    return sjson.parse(body, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/prototype property/i.test(message)) {
      throw new BadRequestError('the request body has a "__proto__" or "constructor.prototype" key, which is refused; rename the key');
    }
    throw new BadRequestError(`the request body is not valid JSON (${message.slice(0, 120)}); send a JSON document with Content-Type: application/json`);
  }
}
