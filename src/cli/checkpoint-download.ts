/**
 * `checkpointd checkpoint download ID [--out FILE]`: stream a checkpoint to a
 * file, never holding it in memory, and resume a download that broke.
 *
 * Bytes go to `FILE.partial`; before the first byte, the answer's ETag (the
 * file's SHA-256 in quotes, exactly as the daemon sent it) goes to
 * `FILE.partial.etag`. A later run that finds both asks only for the rest:
 * `Range: bytes=N-` with `If-Range: <etag>`. The daemon answers 206 with the
 * rest when the checkpoint is the same file, or 200 with all of it when it is
 * not (the download starts over), or 416 when the partial file is already
 * whole. At the end the SHA-256 of the whole file must equal the ETag; only
 * then does `FILE.partial` become `FILE` (and the .etag file goes).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ConflictError } from '../errors.js';
import { DaemonUnreachableError, type ApiClient } from './api-client.js';
import { formatBytes, writeJson } from './format.js';
import { byteProgress } from './progress.js';

/** Options of `checkpoint download`. */
export interface DownloadCommandOptions {
  /** Where to write; the name the daemon gives (Content-Disposition) in the current folder otherwise. */
  out?: string;
  /** Replace an existing file. */
  force?: boolean;
  json?: boolean;
}

/** What `--json` prints. */
export interface Downloaded {
  file: string;
  size: number;
  sha256: string;
  /** Bytes that were already there from a broken download (0: from the start). */
  resumedAt: number;
}

/** The suffix of the file being written, and of the ETag kept beside it. */
export const PartialSuffix = '.partial';
/** Beside `FILE.partial`: the ETag its bytes came with. */
export const EtagSuffix = '.etag';

/** The daemon's strong ETag: the SHA-256 of the file, in quotes. */
const Sha256Etag = /^"([0-9a-f]{64})"$/;

/** The file name in `attachment; filename="Checkpoint-000000003"`, if it is a plain name. */
function attachmentName(header: string | undefined): string | null {
  const name = header === undefined ? undefined : /filename="([^"]+)"/.exec(header)?.[1];
  if (name === undefined || name === '.' || name === '..' || name !== path.basename(name) || name.includes('\\')) return null;
  return name;
}

/** The partial download and its ETag, when both are there. */
async function readPartial(partial: string, etagFile: string): Promise<{ bytes: number; etag: string } | null> {
  try {
    const [{ size }, etag] = await Promise.all([fs.stat(partial), fs.readFile(etagFile, 'utf8')]);
    return Sha256Etag.test(etag.trim()) ? { bytes: size, etag: etag.trim() } : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function hashFile(file: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
}

/** Where a range starts and the total size, from `Content-Range: bytes S-E/N` (or `bytes *` + `/N`, no start). */
function rangeOf(header: string | undefined): { start: number | null; total: number } | null {
  const match = header === undefined ? null : /^bytes (?:(\d+)-\d+|\*)\/(\d+)$/.exec(header.trim());
  return match === null ? null : { start: match[1] === undefined ? null : Number(match[1]), total: Number(match[2]) };
}

/** Asked for on every download request: the file, or a problem. */
const Accept = { accept: 'application/zip, application/problem+json' };

const say = (text: string): boolean => process.stderr.write(`checkpointd: ${text}\n`);

/** Download checkpoint `id`; prints the file written, or `--json` {@link Downloaded}. */
export async function downloadCommand(client: ApiClient, id: string, options: DownloadCommandOptions): Promise<void> {
  const urlPath = `/api/collection/checkpoint/${encodeURIComponent(id)}/download`;
  let res: IncomingMessage | null = null;
  let target: string;
  if (options.out !== undefined) {
    target = path.resolve(options.out);
  } else {
    // The name comes with the answer; a partial file of that name turns this request into a ranged one below.
    res = await client.send('GET', urlPath, { headers: Accept });
    const name = attachmentName(res.headers['content-disposition']);
    if (name === null) {
      res.destroy();
      throw new Error('the daemon did not name the file (Content-Disposition); pass --out FILE');
    }
    target = path.resolve(name);
  }
  const shown = options.out ?? path.basename(target);
  const partial = target + PartialSuffix;
  const etagFile = partial + EtagSuffix;
  try {
    if (options.force !== true && (await fs.stat(target).then(() => true, () => false))) {
      throw new ConflictError(`${shown} exists; use --force to replace it, or --out to write elsewhere`);
    }
    const have = await readPartial(partial, etagFile);
    let resumeFrom = 0;
    if (have !== null && have.bytes > 0 && (res === null || res.headers.etag === have.etag)) {
      res?.destroy();
      res = await client.send('GET', urlPath, { headers: { ...Accept, range: `bytes=${have.bytes}-`, 'if-range': have.etag }, accept: (s) => s === 200 || s === 206 || s === 416 });
      resumeFrom = have.bytes;
    } else if (res === null) {
      res = await client.send('GET', urlPath, { headers: Accept });
    }
    const answer = res;
    res = null;
    let result = await receive(answer, { partial, etagFile, shown, resumeFrom, have });
    if (result === 'restart') {
      await fs.rm(partial, { force: true });
      await fs.rm(etagFile, { force: true });
      say(`${shown}: the partial download does not fit the checkpoint; starting over`);
      result = await receive(await client.send('GET', urlPath, { headers: Accept }), { partial, etagFile, shown, resumeFrom: 0, have: null });
      if (result === 'restart') throw new Error('the daemon answered a whole-file request with a range');
    }
    await fs.rename(partial, target);
    await fs.rm(etagFile, { force: true });
    const downloaded: Downloaded = { file: target, size: result.size, sha256: result.sha256, resumedAt: result.resumedAt };
    if (options.json === true) writeJson(downloaded);
    else process.stdout.write(`${shown}: ${formatBytes(result.size)}, SHA-256 verified${result.resumedAt > 0 ? ` (resumed at ${result.resumedAt} bytes)` : ''}\n`);
  } finally {
    res?.destroy();
  }
}

interface ReceiveContext {
  partial: string;
  etagFile: string;
  shown: string;
  /** The byte asked for with Range (0: the whole file was asked for). */
  resumeFrom: number;
  have: { bytes: number; etag: string } | null;
}

/**
 * Write the answer into the partial file (appending after a 206) and check the
 * whole file's SHA-256; `restart` when the partial file cannot be continued
 * (longer than the checkpoint, or a range that was not asked for).
 */
async function receive(res: IncomingMessage, ctx: ReceiveContext): Promise<{ size: number; sha256: string; resumedAt: number } | 'restart'> {
  const { partial, etagFile, shown } = ctx;
  const etag = res.headers.etag ?? '';
  const sha256 = Sha256Etag.exec(etag)?.[1];
  if (sha256 === undefined) {
    res.destroy();
    throw new Error(`the daemon's answer has no SHA-256 ETag (a proxy in between may have removed it), so the download could not be checked; nothing was written`);
  }
  const status = res.statusCode ?? 0;
  const range = rangeOf(res.headers['content-range']);
  let offset = 0;
  if (status === 416) {
    res.resume();
    // The partial file is as long as the checkpoint, or longer: whole if its hash says so.
    if (range !== null && ctx.have !== null && ctx.have.bytes === range.total && etag === ctx.have.etag) {
      const hash = createHash('sha256');
      await hashFile(partial, hash);
      return { size: range.total, sha256: await checked(hash, sha256, ctx), resumedAt: range.total };
    }
    return 'restart';
  }
  if (status === 206) {
    if (range === null || range.start !== ctx.resumeFrom) {
      res.destroy();
      return 'restart';
    }
    offset = ctx.resumeFrom;
    say(`resuming ${shown} at ${offset} of ${range.total} bytes`);
  } else if (ctx.have !== null && ctx.have.bytes > 0) {
    say(`${shown}: the checkpoint is not the one the partial download came from; starting over`);
  }
  // The answer's length says the total; without one (a proxy that re-chunks) there is no bar, and messages say `?`.
  const length = Number(res.headers['content-length'] ?? Number.NaN);
  const total: number | '?' = Number.isSafeInteger(length) && length >= 0 ? offset + length : '?';
  const hash = createHash('sha256');
  if (offset > 0) {
    await hashFile(partial, hash);
  } else {
    // Empty the partial file before naming its new ETag: a crash between the two never pairs old bytes with a new ETag.
    await fs.writeFile(partial, '', { mode: 0o640 });
    await fs.writeFile(etagFile, `${etag}\n`, { mode: 0o640 });
  }
  const progress = byteProgress('download');
  let done = offset;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      done += chunk.length;
      progress.update(done, total === '?' ? 0 : total);
      callback(null, chunk);
    },
  });
  let writeFailed = false;
  const file = createWriteStream(partial, { flags: 'a', flush: true }).on('error', () => (writeFailed = true));
  try {
    await pipeline(res, count, file);
  } catch (err) {
    if (writeFailed) throw err;
    throw new DaemonUnreachableError(`the connection broke after ${done} of ${total} bytes; ${shown}${PartialSuffix} is kept: run the same command again to resume`, { cause: err });
  } finally {
    progress.stop();
  }
  if (!res.complete) throw new DaemonUnreachableError(`the answer ended after ${done} of ${total} bytes; ${shown}${PartialSuffix} is kept: run the same command again to resume`);
  return { size: done, sha256: await checked(hash, sha256, ctx), resumedAt: offset };
}

/** The file's SHA-256 when it equals the ETag's; otherwise the partial download is removed (it cannot be trusted) and this throws. */
async function checked(hash: Hash, expected: string, ctx: ReceiveContext): Promise<string> {
  const actual = hash.digest('hex');
  if (actual === expected) return actual;
  await fs.rm(ctx.partial, { force: true });
  await fs.rm(ctx.etagFile, { force: true });
  throw new Error(`${ctx.shown}: the downloaded file's SHA-256 is ${actual}, not ${expected} as the daemon said; the partial download was removed, run the command again`);
}
