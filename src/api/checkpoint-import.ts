/**
 * `POST /api/admin/checkpoint/import`: a checkpoint file made elsewhere (another
 * installation, a copy kept off the FileVault) comes in under a fresh id,
 * never over an existing checkpoint (`checkpointd checkpoint import FILE`).
 * Not part of the vendor checkpoint API; it answers that API's checkpoint
 * resource. The body is the ZIP file itself (`Content-Type: application/zip`
 * or `application/octet-stream`), streamed to a temp file in the checkpoint
 * folder while its size and SHA-256 are measured; the checkpointer verifies it
 * end to end and publishes it. The raw-body parser lives in this plugin's
 * scope alone: every other route still takes JSON only.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { BadRequestError } from '../errors.js';
import { tempPathFor } from '../vault/index.js';
import { requireRole } from './auth.js';
import { checkpointResource } from './checkpoint-routes.js';
import type { ApiContext } from './context.js';
import { LocationHeader, WriteRefusals } from './openapi.js';
import { ImportedCheckpoint } from './schemas.js';

/** The content types a checkpoint file may be sent with. */
const FileTypes = ['application/zip', 'application/octet-stream'];

/** Write `body` to a new file `temp`, fsynced; its size and SHA-256. */
async function receive(body: Readable, temp: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  const handle = await fs.open(temp, 'wx', 0o640);
  try {
    for await (const chunk of body) {
      const bytes = chunk as Buffer;
      hash.update(bytes);
      size += bytes.length;
      await handle.write(bytes);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { size, sha256: hash.digest('hex') };
}

/** Register the import route (in a scope of its own, for its raw-body parser). */
export function checkpointImportRoute(app: FastifyInstance, ctx: ApiContext): void {
  const admin = requireRole(ctx.tokens, ['collection-admin']);
  void app.register(async (scope) => {
    // The body stays a stream: a checkpoint may be many gigabytes, and api.bodyLimitBytes is for JSON.
    scope.addContentTypeParser(FileTypes, (_request, payload, done) => done(null, payload));
    const importCheckpoint = {
      summary: 'Import a checkpoint file under a fresh id, never over an existing checkpoint',
      description:
        'Not part of the vendor checkpoint API. The body is the file (`checkpointd checkpoint import FILE` sends it), streamed to the FileVault: api.bodyLimitBytes does not apply. It is verified end to end and published under a fresh id, atomically.',
      tags: ['checkpoints'],
      operationId: 'importCheckpoint',
      requestBody: { description: 'a checkpoint file (Checkpoint-NNNNNNNNN)', required: true, content: { 'application/zip': {}, 'application/octet-stream': {} } },
      answers: {
        201: { description: 'verified and published under a fresh id', json: ImportedCheckpoint, headers: { Location: LocationHeader } },
        400: 'the body is empty, or JSON rather than a file',
        422: 'the file is not a checkpoint that verifies; nothing was published',
        ...WriteRefusals,
      },
    };
    scope.post('/api/admin/checkpoint/import', { onRequest: admin, schema: importCheckpoint }, async (request, reply) => {
      if (!(request.body instanceof Readable)) {
        throw new BadRequestError('send the checkpoint file as the body, with Content-Type: application/zip (checkpointd checkpoint import FILE does)');
      }
      const temp = tempPathFor(ctx.checkpointer.catalogue.dir, 'import');
      let measured;
      try {
        measured = await receive(request.body, temp);
        if (measured.size === 0) throw new BadRequestError('the request body is empty; send the checkpoint file with Content-Type: application/zip');
      } catch (err) {
        await fs.rm(temp, { force: true });
        throw err;
      }
      // The checkpointer removes the temp file whatever happens from here.
      const entry = await ctx.checkpointer.import(temp, measured);
      const body = checkpointResource(ctx, entry);
      const { manifest } = entry;
      return reply
        .code(201)
        .header('location', body.href)
        .send({ ...body, imported: { originalId: manifest.id, installation: manifest.installation ?? null, otherInstallation: manifest.installation !== ctx.checkpointer.installation } });
    });
  });
}
