/**
 * Bytes Node's HTTP parser cannot read — malformed HTTP, headers past the
 * limit, a request that did not arrive in time — get a problem+json answer and
 * the connection closes, as Fastify's default does; but never ahead of a
 * response still due on the same connection. Bytes left over after a request
 * whose Content-Length was short are parsed as a next request; answering them at
 * once (Fastify's default) answers the first request with a 400 while its write
 * may already be committed, so a client is told "refused" for a write that was
 * made. Here that 400 follows the first request's own answer.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ProblemContentType, toProblem } from './problem.js';

/** Sockets already being answered: the parser reports an error again for each chunk read after its first. */
const closing = new WeakSet<Socket>();

/** Fastify's `clientErrorHandler`. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || closing.has(socket)) return;
  closing.add(socket);
  const [status, detail] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'the request did not arrive in time; send it whole, without pauses']
    : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'the request headers are larger than 16 KiB; send fewer or shorter headers']
    : [400, `the request is not valid HTTP/1.1 (${err.code ?? err.message}); if it followed a request on the same connection, check that request's Content-Length`];
  const body = JSON.stringify(toProblem({ statusCode: status, message: detail }).problem);
  const answer = (): void => {
    if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${ProblemContentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    socket.destroySoon();
  };
  // The response Node is writing, or will write, on this connection (`_httpMessage`: Node's own field, no public one).
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (inFlight === null || inFlight === undefined || inFlight.writableFinished) return answer();
  // Its request was read whole: the error is in what came after it, which waits for that request's answer.
  if (inFlight.req.complete) return void inFlight.once('close', answer);
  // The error is in that request's own body (a bad chunk): it will never be whole. Answer it, unless its answer began.
  if (inFlight.headersSent) socket.destroy();
  else answer();
}
