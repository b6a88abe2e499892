/**
 * Streaming a file download: never the whole file in memory. Strong ETag
 * (the file's SHA-256), single byte ranges (206) so a broken download can
 * resume, 416 for a range that cannot be served, 304 for If-None-Match.
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

/** Send `download` as the reply to `request`. */
export async function sendDownload(request: FastifyRequest, reply: FastifyReply, download: Download): Promise<FastifyReply> {
  const etag = `"${download.sha256}"`;
  void reply
    .header('accept-ranges', 'bytes')
    .header('etag', etag)
    .header('cache-control', 'private, no-transform')
    .header('content-disposition', `attachment; filename="${download.name}"`);
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((t) => t.trim() === etag || t.trim() === '*')) return reply.code(304).send();
  // If-Range with another validator: the client's partial copy is of another file, so send it all.
  const ifRange = request.headers['if-range'];
  const range = typeof ifRange === 'string' && ifRange.trim() !== etag ? 'whole' : parseRange(request.headers.range, download.size);
  if (range === 'unsatisfiable') {
    const { problem } = toProblem({ statusCode: 416, message: `the requested range cannot be served; the file has ${download.size} bytes (ranges are 0-based and inclusive)` }, request.url);
    return reply.code(416).header('content-range', `bytes */${download.size}`).type(ProblemContentType).send(problem);
  }
  // Open first: a checkpoint deleted while it streams stays readable through this descriptor.
  const handle = await fs.open(download.file, 'r');
  const { start, end } = range === 'whole' ? { start: 0, end: download.size - 1 } : range;
  const length = Math.max(0, end - start + 1);
  void reply.type(download.contentType).header('content-length', length);
  if (range !== 'whole') void reply.code(206).header('content-range', `bytes ${start}-${end}/${download.size}`);
  if (length === 0 || request.method === 'HEAD') {
    await handle.close();
    return reply.send();
  }
  return reply.send(handle.createReadStream({ start, end, highWaterMark: 1 << 20 }));
}
