/**
 * `checkpointd checkpoint list|create|get|restore|delete`: the vendor
 * checkpoint API from the command line (download is in checkpoint-download.ts).
 * With `--space` a command uses the space's routes, otherwise the collection's.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { RestorePollMs } from '../config/index.js';
import { ConfigError } from '../errors.js';
import type { ApiClient } from './api-client.js';
import { formatBytes, formatTable, formatTime, writeJson } from './format.js';
import { byteProgress, type ProgressStream } from './progress.js';

/** The `data` of a checkpoint resource, as the API answers it. */
export interface CheckpointData {
  id: number;
  scope: string;
  spaces: string[];
  trigger: string;
  time: string;
  size: number;
  sha256: string;
  seq: number;
  description: string;
}

/** A checkpoint resource (the vendor checkpoint API's shape). */
export interface CheckpointResource {
  href: string;
  data: CheckpointData;
}

/** Options shared by the checkpoint commands. */
export interface CheckpointCommandOptions {
  space?: string;
  json?: boolean;
}

const segment = (text: string): string => encodeURIComponent(text);

/** The API path of checkpoint `id`: under the space with `space`, else the collection route. */
function checkpointPath(id: string, space?: string): string {
  return space === undefined ? `/api/collection/checkpoint/${segment(id)}` : `/api/space/${segment(space)}/checkpoint/${segment(id)}`;
}

function spacesText(data: CheckpointData): string {
  const text = data.spaces.join(',');
  return text.length > 30 ? `${text.slice(0, 29)}…` : text;
}

/** `checkpoint list [--space ID]`: a table of id, scope, spaces, trigger, time, size, description. */
export async function listCommand(client: ApiClient, options: CheckpointCommandOptions): Promise<void> {
  const body = (await client.json('GET', options.space === undefined ? '/api/collection/checkpoint' : `/api/space/${segment(options.space)}/checkpoint`)) as { data: CheckpointResource[] };
  if (options.json === true) return writeJson(body);
  if (body.data.length === 0) {
    process.stdout.write(options.space === undefined ? 'no checkpoints\n' : `no checkpoint covers space ${options.space}\n`);
    return;
  }
  const rows = body.data.map(({ data }) => [String(data.id), data.scope, spacesText(data), data.trigger, formatTime(data.time), formatBytes(data.size), data.description]);
  process.stdout.write(formatTable(['ID', 'SCOPE', 'SPACES', 'TRIGGER', 'TIME', 'SIZE', 'DESCRIPTION'], rows));
}

function summary(data: CheckpointData): string {
  const spaces = data.scope === 'collection' ? `${data.spaces.length} space${data.spaces.length === 1 ? '' : 's'}` : `space ${data.spaces.join(', ')}`;
  return `checkpoint ${data.id} (${data.scope} scope, ${spaces}, seq ${data.seq}, ${formatBytes(data.size)})`;
}

/** `checkpoint create [--space ID] [--description TEXT]`: a space checkpoint, or a collection one (POST /api/admin/checkpoint). */
export async function createCommand(client: ApiClient, options: CheckpointCommandOptions & { description?: string }): Promise<void> {
  const body = options.description === undefined ? {} : { description: options.description };
  const answer = (await client.json('POST', options.space === undefined ? '/api/admin/checkpoint' : `/api/space/${segment(options.space)}/checkpoint`, { body })) as CheckpointResource;
  if (options.json === true) return writeJson(answer);
  process.stdout.write(`created ${summary(answer.data)}\n`);
}

/**
 * `checkpoint import FILE`: send a checkpoint file made elsewhere to the
 * daemon, which verifies it and publishes it under a fresh id, never over an
 * existing checkpoint (POST /api/admin/checkpoint/import).
 */
export async function importCommand(client: ApiClient, file: string, options: CheckpointCommandOptions): Promise<void> {
  let size: number;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new ConfigError(`${file} is not a file; give the checkpoint file to import`);
    size = stat.size;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the checkpoint file to import`);
  }
  const progress = byteProgress('upload');
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  let sent = 0;
  stream.on('data', (chunk) => progress.update((sent += chunk.length), size));
  let answer: CheckpointResource & { imported?: { originalId: number; installation: string | null; otherInstallation: boolean } };
  try {
    answer = (await client.json('POST', '/api/admin/checkpoint/import', { upload: { stream, contentType: 'application/zip', length: size } })) as typeof answer;
  } finally {
    progress.stop();
    stream.destroy();
  }
  if (options.json === true) return writeJson(answer);
  const from = answer.imported === undefined ? '' : ` (id ${answer.imported.originalId} ${answer.imported.otherInstallation ? `in installation ${answer.imported.installation ?? 'unknown'}` : 'in this installation'})`;
  process.stdout.write(`imported ${file}${from} as ${summary(answer.data)}\n`);
}

/** `checkpoint get ID`: one checkpoint as `label: value` lines. */
export async function getCommand(client: ApiClient, id: string, options: CheckpointCommandOptions): Promise<void> {
  const answer = (await client.json('GET', checkpointPath(id, options.space))) as CheckpointResource;
  if (options.json === true) return writeJson(answer);
  const d = answer.data;
  const rows: [string, string][] = [
    ['id', String(d.id)],
    ['scope', d.scope],
    ['spaces', d.spaces.join(', ') || '(none)'],
    ['trigger', d.trigger],
    ['time', d.time],
    ['seq', String(d.seq)],
    ['size', `${formatBytes(d.size)} (${d.size} bytes)`],
    ['sha256', d.sha256],
    ['description', d.description],
    ['href', answer.href],
  ];
  process.stdout.write(rows.map(([label, value]) => `${`${label}:`.padEnd(13)}${value}`).join('\n') + '\n');
}

/**
 * While a restore's POST waits, draw how far the daemon has read the
 * checkpoint (`data.checkpoints.restoring` of GET /api/admin/status). Only on
 * a terminal. The daemon reports `totalBytes` 0 until it has opened the file,
 * then the uncompressed bytes of the entries it reads, the same in every
 * report: the bar starts at the first report with a total and keeps that
 * total. `stop(size)` after a successful answer draws the bar full at that
 * total; a restore shorter than one poll, which no report saw, is drawn full
 * at the checkpoint file's `size`.
 */
function watchRestore(client: ApiClient, id: number, stream: ProgressStream): { stop(fileSize?: number): Promise<void> } {
  const controller = new AbortController();
  const { signal } = controller;
  const progress = byteProgress('restore', stream);
  const loop = (async () => {
    while (!signal.aborted) {
      try {
        const status = (await client.json('GET', '/api/admin/status', { signal })) as { data?: { checkpoints?: { restoring?: { id: number; doneBytes: number; totalBytes: number } | null } } };
        const restoring = status.data?.checkpoints?.restoring;
        if (restoring?.id === id && restoring.totalBytes > 0) progress.update(restoring.doneBytes, restoring.totalBytes);
      } catch {
        // The restore's own answer says what went wrong; a missed poll only skips a frame.
      }
      await sleep(RestorePollMs, undefined, { signal }).catch(() => undefined);
    }
  })();
  return {
    async stop(fileSize) {
      controller.abort();
      await loop;
      if (fileSize !== undefined && fileSize > 0) progress.finish(fileSize);
      progress.stop();
    },
  };
}

/**
 * `checkpoint restore ID [--space ID]`: with `--space` only that space comes
 * back (POST /api/space/ID/checkpoint/CID); otherwise what the checkpoint
 * holds, everything for a collection checkpoint (POST /api/collection/checkpoint/CID).
 * The progress bar goes to `stream` (stderr) when it is a terminal.
 */
export async function restoreCommand(client: ApiClient, id: string, options: CheckpointCommandOptions, stream: ProgressStream = process.stderr): Promise<void> {
  const watch = stream.isTTY === true && /^\d+$/.test(id) ? watchRestore(client, Number(id), stream) : null;
  let answer: CheckpointResource & { restored: { scope: string; spaces: string[]; seq: number } };
  try {
    answer = (await client.json('POST', checkpointPath(id, options.space))) as typeof answer;
  } catch (err) {
    await watch?.stop();
    throw err;
  }
  await watch?.stop(answer.data.size);
  if (options.json === true) return writeJson(answer);
  const { restored } = answer;
  const what = restored.scope === 'collection' ? `the whole collection (${restored.spaces.length} space${restored.spaces.length === 1 ? '' : 's'})` : `space${restored.spaces.length === 1 ? '' : 's'} ${restored.spaces.join(', ')}`;
  process.stdout.write(`restored ${what} from checkpoint ${answer.data.id}, journaled at seq ${restored.seq}\n`);
}

/** `checkpoint delete ID`: the API answers 204; `--json` prints `{"id":N,"deleted":true}`. */
export async function deleteCommand(client: ApiClient, id: string, options: CheckpointCommandOptions): Promise<void> {
  await client.json('DELETE', checkpointPath(id, options.space));
  if (options.json === true) return writeJson({ id: Number(id), deleted: true });
  process.stdout.write(`deleted checkpoint ${id}\n`);
}
