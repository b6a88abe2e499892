/**
 * Streaming a file download: never the whole file in memory. Strong ETag
 * (the file's SHA-256) and Last-Modified, single byte ranges (206) so a
 * broken download can resume (If-Range by tag or date), 416 for a range that
 * cannot be served, and the conditional requests of RFC 9110: If-None-Match
 * (weak comparison) and If-Modified-Since answer 304, If-Match (strong) and
 * If-Unmodified-Since answer 412.
 */
import { promises as fs } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProblemContentType, toProblem } from './problem.js';

/** What is being downloaded. */
export interface Download {
  file: string;
  size: number;
  sha256: string;
  /** The name the client should save it under. */
  name: string;
  contentType: string;
  /** When the file was written (ms since the epoch): Last-Modified. */
  modified: number;
}

type Range = { start: number; end: number } | 'whole' | 'unsatisfiable';

/** Parse a Range header against `size` (RFC 9110 §14): one `bytes=` range or the whole file. */
export function parseRange(header: string | undefined, size: number): Range {
  if (header === undefined) return 'whole';
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (match === null) return 'whole'; // another unit: ignore, as the RFC says
  const specs = match[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length !== 1) return specs.length === 0 ? 'unsatisfiable' : 'whole'; // several ranges: send it all (allowed)
  const spec = /^(\d*)-(\d*)$/.exec(specs[0]!);
  if (spec === null || (spec[1] === '' && spec[2] === '')) return 'unsatisfiable';
  if (spec[1] === '') {
    const suffix = Number(spec[2]);
    if (!Number.isSafeInteger(suffix) || suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(spec[1]);
  const end = spec[2] === '' ? size - 1 : Math.min(Number(spec[2]), size - 1);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

/** The opaque part of an entity tag (`W/"x"` and `"x"` both give `"x"`), or null when `text` is not one. */
function opaque(text: string): string | null {
  const tag = text.trim().replace(/^W\//, '');
  return /^"[^"]*"$/.test(tag) ? tag : null;
}

/** The entity tags of an If-Match or If-None-Match list; `*` stays as itself. */
function tagList(header: string): string[] {
  return header.split(',').map((t) => t.trim()).filter((t) => t !== '');
}

/** An HTTP date as milliseconds, or null when it is not one (then the header is ignored, RFC 9110 §13.1.3). */
function httpDate(header: string | undefined): number | null {
  if (header === undefined || !/^[A-Za-z]{3},? /.test(header.trim())) return null;
  const ms = Date.parse(header);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * The preconditions of RFC 9110 §13.2.2, in its order: 412 when If-Match
 * names no current tag (strong comparison) or, without If-Match, the file
 * changed after If-Unmodified-Since; 304 when If-None-Match names the tag
 * (weak comparison: `W/"x"` matches `"x"`) or, without If-None-Match, it did
 * not change after If-Modified-Since; else null: answer the request.
 */
function precondition(request: FastifyRequest, etag: string, modifiedSecond: number): 304 | 412 | null {
  const { headers } = request;
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    if (!tagList(ifMatch).some((t) => t === '*' || t === etag)) return 412;
  } else {
    const since = httpDate(headers['if-unmodified-since']);
    if (since !== null && modifiedSecond > since) return 412;
  }
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (tagList(ifNoneMatch).some((t) => t === '*' || opaque(t) === etag)) return 304;
  } else {
    const since = httpDate(headers['if-modified-since']);
    if (since !== null && modifiedSecond <= since) return 304;
  }
  return null;
}

/**
 * Whether a Range may be served under If-Range: with no If-Range, yes; with
 * an entity tag, only when it is the file's (strong comparison: a weak tag
 * never matches); with a date, only when it is the file's Last-Modified.
 */
function rangeAllowed(header: string | undefined, etag: string, modifiedSecond: number): boolean {
  if (header === undefined) return true;
  const date = httpDate(header);
  return date === null ? header.trim() === etag : date === modifiedSecond;
}

/**
 * Send `download` as the reply to `request` (GET or HEAD). A HEAD answers
 * the headers a GET would, Content-Length included (the route must be
 * registered for HEAD itself: Fastify's automatic HEAD route sets it to 0).
 */
export async function sendDownload(request: FastifyRequest, reply: FastifyReply, download: Download): Promise<FastifyReply> {
  const etag = `"${download.sha256}"`;
  const modifiedSecond = Math.floor(download.modified / 1000) * 1000;
  void reply
    .header('accept-ranges', 'bytes')
    .header('etag', etag)
    .header('last-modified', new Date(modifiedSecond).toUTCString())
    .header('cache-control', 'private, no-transform')
    .header('content-disposition', `attachment; filename="${download.name}"`);
  const verdict = precondition(request, etag, modifiedSecond);
  if (verdict === 304) return reply.code(304).send();
  if (verdict === 412) {
    const { problem } = toProblem({ statusCode: 412, message: `the checkpoint file is not the one the request's If-Match or If-Unmodified-Since names: its ETag is now ${etag}; fetch it again without the condition` }, request.url);
    return reply.code(412).type(ProblemContentType).send(problem);
  }
  // If-Range that does not name this file: the client's partial copy is of another file, so send it all.
  const ifRange = request.headers['if-range'];
  const range = !Array.isArray(ifRange) && rangeAllowed(ifRange, etag, modifiedSecond) ? parseRange(request.headers.range, download.size) : 'whole';
  if (range === 'unsatisfiable') {
    const { problem } = toProblem({ statusCode: 416, message: `the requested range cannot be served; the file has ${download.size} bytes (ranges are 0-based and inclusive)` }, request.url);
    return reply.code(416).header('content-range', `bytes */${download.size}`).type(ProblemContentType).send(problem);
  }
  const { start, end } = range === 'whole' ? { start: 0, end: download.size - 1 } : range;
  const length = Math.max(0, end - start + 1);
  void reply.type(download.contentType).header('content-length', length);
  if (range !== 'whole') void reply.code(206).header('content-range', `bytes ${start}-${end}/${download.size}`);
  if (length === 0 || request.method === 'HEAD') return reply.send();
  // Open first: a checkpoint deleted while it streams stays readable through this descriptor.
  const handle = await fs.open(download.file, 'r');
  return reply.send(handle.createReadStream({ start, end, highWaterMark: 1 << 20 }));
}
