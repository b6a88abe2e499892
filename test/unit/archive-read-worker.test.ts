import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  readCheckpointArchive,
  writeCheckpointArchive,
  type ArchiveFileSource,
  type Compression,
  type ManifestHeader,
} from '../../src/checkpoint/archive/index.js';
import { threadCount } from '../helpers/threads.js';
import { waitFor } from '../helpers/wait-for.js';

const MiB = 1024 * 1024;
/**
 * Rounds of the abort test: a sample in npm test, the full count in npm run
 * test:e2e, which runs this file again with CHECKPOINTD_EXHAUSTIVE=1.
 */
const AbortRounds = process.env.CHECKPOINTD_EXHAUSTIVE === '1' ? { write: 30, read: 40 } : { write: 4, read: 6 };
const header: ManifestHeader = { id: 3, scope: 'space', description: 'reader', time: '2024-01-02T03:04:05.0000000Z', trigger: 'manual', node: 'node-a', epoch: 1, seq: 9 };



/** Text that compresses a little, so deflate has work: `bytes` of lines with random words. */
function lines(bytes: number): Buffer {
  const words = Array.from({ length: 500 }, () => randomBytes(6).toString('base64url'));
  let text = '';
  while (text.length < bytes) text += `{"key":"${words[text.length % 500]}","value":"${words[(text.length * 7) % 500]} ${words[(text.length * 13) % 500]}"}\n`;
  return Buffer.from(text.slice(0, bytes));
}

describe('checkpoint archive: the read worker', function () {
  this.timeout(120_000);
  let dir: string;
  const files = new Map<string, Buffer>([
    ['space/s/store/objects.ndjson', lines(6 * MiB + 321)],
    ['space/s/index/type.ndjson', lines(MiB / 2)],
    ['space/s/index/zero.ndjson', Buffer.alloc(0)],
  ]);
  const sources: ArchiveFileSource[] = [...files].map(([p, data]) => ({ path: p, chunks: () => [data] }));

  before(async function () {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-read-worker-'));
  });
  after(async function () {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function archive(name: string, compression: Compression): Promise<string> {
    const target = path.join(dir, name);
    await writeCheckpointArchive(target, header, null, [{ id: 's', template: { name: 'plm', version: '1.0' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: sources }], { compression });
    return target;
  }

  for (const compression of [{ method: 'store' }, { method: 'deflate', level: 1 }] as Compression[]) {
    it(`hands out chunks a keeping consumer can hold (copies) and a transient one sees as views, the same bytes either way (${compression.method})`, async function () {
      const file = await archive(`both-${compression.method}`, compression);
      for (const transient of [false, true]) {
        const got = new Map<string, Buffer>();
        await readCheckpointArchive(file, {
          async file(entry, data) {
            const kept: Buffer[] = [];
            for await (const chunk of data) kept.push(transient ? Buffer.from(chunk) : chunk);
            got.set(entry.path, Buffer.concat(kept));
          },
          transient,
        });
        for (const [p, data] of files) expect(got.get(p)!.equals(data), `${p}, transient ${transient}`).to.equal(true);
      }
    });
  }

  it('hands a slow consumer every byte of a deflated entry (the inflater then joins what it buffered into chunks larger than a slot)', async function () {
    const file = await archive('slow', { method: 'deflate', level: 1 });
    const got = new Map<string, Buffer>();
    await readCheckpointArchive(file, {
      async file(entry, data) {
        const kept: Buffer[] = [];
        for await (const chunk of data) {
          const until = performance.now() + 5;
          while (performance.now() < until) {
            // A consumer busy parsing: the worker waits for slots while the inflater goes on.
          }
          kept.push(Buffer.from(chunk));
        }
        got.set(entry.path, Buffer.concat(kept));
      },
      transient: true,
    });
    for (const [p, data] of files) expect(got.get(p)!.equals(data), p).to.equal(true);
  });

  it('survives aborts at any moment of reads and writes that inflate and deflate: no crash, no thread left, the file removed', async function () {
    // Node 20 aborts the whole process when a thread is terminated while it creates a zlib stream; the workers
    // are asked to stop instead. This runs reads and writes and aborts them at random moments.
    // Many small entries: the reader makes an inflater, and the writer deflaters, all the time.
    const small: ArchiveFileSource[] = Array.from({ length: 300 }, (_, i) => ({ path: `space/s/index/f${String(i).padStart(3, '0')}.ndjson`, chunks: () => [lines(2000 + i)] }));
    const file = path.join(dir, 'abort');
    await writeCheckpointArchive(file, header, null, [{ id: 's', template: { name: 'plm', version: '1.0' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: small }], { compression: { method: 'deflate', level: 1 } });
    const threads = threadCount();
    let aborted = 0;
    for (let round = 0; round < AbortRounds.write; round++) {
      const controller = new AbortController();
      // Moments spread over the whole write, whatever the count: round r aborts after r/rounds of 40 ms, plus jitter.
      const timer = setTimeout(() => controller.abort(), Math.floor((40 * round) / AbortRounds.write + Math.random() * (40 / AbortRounds.write)));
      const reading = readCheckpointArchive(file, {
        async file(_entry, data) {
          for await (const _chunk of data) {
            // read
          }
        },
        transient: true,
      }, { signal: controller.signal }).then(() => 'done', (e: unknown) => ((e as Error).name === 'AbortError' ? 'aborted' : e));
      const target = path.join(dir, `write-${round}`);
      const writing = writeCheckpointArchive(target, header, null, [{ id: 's', template: { name: 'plm', version: '1.0' }, objects: 0, createdSeq: 0, updatedSeq: 0, files: round % 2 === 0 ? small : sources }], {
        compression: { method: 'deflate', level: 6 },
        signal: controller.signal,
      }).then(() => 'done', (e: unknown) => ((e as Error).name === 'AbortError' ? 'aborted' : e));
      const [read, wrote] = await Promise.all([reading, writing]);
      clearTimeout(timer);
      expect(['done', 'aborted']).to.include(read);
      expect(['done', 'aborted']).to.include(wrote);
      if (wrote === 'aborted') {
        aborted++;
        await fs.access(target).then(() => expect.fail(`${target} left behind`), () => undefined);
      } else await fs.rm(target);
    }
    expect(aborted, 'writes aborted midway').to.be.greaterThan(0);
    // A consumer that gives up right at the end of an entry (as the loader does on a line it refuses): the worker
    // is then starting the next entry's inflater, the moment a terminate() from outside would crash the process.
    for (let round = 0; round < AbortRounds.read; round++) {
      const stopAt = Math.floor(Math.random() * 300);
      let entries = 0;
      const err = await readCheckpointArchive(file, {
        async file(_entry, data) {
          for await (const _chunk of data) {
            // read
          }
          if (entries++ === stopAt) throw new Error('stop here');
        },
        transient: true,
      }).catch((e: unknown) => e);
      expect((err as Error).message).to.equal('stop here');
    }
    await waitFor(() => threadCount() <= threads, { what: 'the worker threads to end', timeoutMs: 10_000 });
  });
});
