/**
 * The network file system the two-node end-to-end suite runs on, proved for
 * real: one folder on a private sshd, mounted twice with sshfs (mount A for
 * one node, mount B for the other), and what each option set in
 * test/helpers/sshfs.ts means for a reader on B of what A wrote.
 *
 * - SafeOptions: every read and listing through B asks the server, so a lease
 *   renewed through A (write a temp file, fsync, rename over) is read with its
 *   new content at B's next read, and a file created through A is listed.
 * - CachingOptions: B keeps reading what it read before. That is the hazard
 *   the daemon must detect; how long it lasts is not asserted.
 * - DefaultOptions: reads are fresh, but sshfs caches B's directory listing
 *   (dir_cache, 20 s on sshfs 3.7.3), so a file created through A is missing
 *   from it for a while although B can open it by name.
 *
 * Skipped, with the reason printed, when the machine cannot run sshd and
 * sshfs (see sshfsAvailable); .ci/run installs what is needed.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/daemon-process.js';
import { CachingOptions, DefaultOptions, SafeOptions, SshServer, sshfsAvailable, type SshfsMount } from '../helpers/sshfs.js';

/** How long a test reads through B to record what it sees (a window to observe staleness in, not a wait for a condition). */
const ObserveMs = 2_000;

/** The pause between two reads in that window. */
const ObserveIntervalMs = 50;

/** How many renewals test (a) checks. */
const Renewals = 20;

/** The lease text of term `n`: all terms the same length, so the file size does not give a renewal away. */
function lease(n: number): string {
  return `holder=a term=${String(n).padStart(6, '0')}\n`;
}

/** An atomic renewal, as a lease holder does it: write a temp file, fsync it, rename it over the lease. */
async function renew(dir: string, name: string, content: string): Promise<void> {
  const temp = path.join(dir, `${name}.tmp`);
  const handle = await fs.open(temp, 'w');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, path.join(dir, name));
}

/** Call `read` every ObserveIntervalMs for up to ObserveMs, or until `done` says so; every value seen, in order. */
async function observe<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T[]> {
  const seen: T[] = [];
  const deadline = Date.now() + ObserveMs;
  for (;;) {
    const value = await read();
    seen.push(value);
    if (done(value) || Date.now() >= deadline) return seen;
    await new Promise((resolve) => setTimeout(resolve, ObserveIntervalMs));
  }
}

describe('sshfs: one folder on a private sshd, mounted twice (mount A, mount B)', function () {
  this.timeout(60_000);
  let root: string | null = null;
  let server: SshServer | null = null;
  let mounts: SshfsMount[] = [];

  before(async function () {
    const reason = await sshfsAvailable();
    if (reason !== null) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
    root = await tempDir('cpd-sshfs-');
    server = await SshServer.start();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const m of mounts) if (m.stderr !== '') console.log(`      sshfs ${m.mountPoint}: ${m.stderr}`);
      if (server !== null && server.stderr !== '') console.log(`      sshd: ${server.stderr}`);
    }
    const leftover = mounts;
    mounts = [];
    for (const m of leftover) await m.unmount();
  });

  after(async function () {
    // stop() unmounts whatever a failed test left mounted, and throws if a mount would not go: then the folder stays,
    // since removing it recursively would descend into the mount.
    await server?.stop();
    server = null;
    if (root !== null) await fs.rm(root, { recursive: true, force: true });
    root = null;
  });

  /** A new folder on the server, mounted at a/ and at b/ with `options`. */
  async function twoMounts(name: string, options: readonly string[]): Promise<{ remote: string; a: string; b: string }> {
    const base = path.join(root!, name);
    const [remote, a, b] = ['remote', 'a', 'b'].map((d) => path.join(base, d)) as [string, string, string];
    for (const dir of [remote, a, b]) await fs.mkdir(dir, { recursive: true });
    mounts.push(await server!.mount(remote, a, options));
    mounts.push(await server!.mount(remote, b, options));
    return { remote, a, b };
  }

  it('with SafeOptions, B reads every lease renewal A renamed into place at its next read', async function () {
    const { a, b } = await twoMounts('safe-lease', SafeOptions);
    await renew(a, 'lease', lease(0));
    expect(await fs.readFile(path.join(b, 'lease'), 'utf8')).to.equal(lease(0));
    const seen: string[] = [];
    for (let term = 1; term <= Renewals; term++) {
      await renew(a, 'lease', lease(term));
      seen.push(await fs.readFile(path.join(b, 'lease'), 'utf8'));
    }
    expect(seen).to.deep.equal(Array.from({ length: Renewals }, (_, i) => lease(i + 1)));
  });

  it('with SafeOptions, B lists a file A just created, and finds a name it found missing a moment before', async function () {
    const { a, b } = await twoMounts('safe-listing', SafeOptions);
    await fs.writeFile(path.join(a, 'segment-0'), '0');
    expect(await fs.readdir(b)).to.deep.equal(['segment-0']);
    await fs.writeFile(path.join(a, 'segment-1'), '1');
    expect((await fs.readdir(b)).sort()).to.deep.equal(['segment-0', 'segment-1']);

    const missing = await fs.stat(path.join(b, 'segment-2')).then(
      () => 'found',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(missing).to.equal('ENOENT');
    await fs.writeFile(path.join(a, 'segment-2'), '2');
    expect(await fs.readFile(path.join(b, 'segment-2'), 'utf8')).to.equal('2');
  });

  it('with CachingOptions, B goes on reading the lease it read once after A renewed it (a stale read)', async function () {
    const { remote, a, b } = await twoMounts('caching', CachingOptions);
    await renew(a, 'lease', lease(1));
    expect(await fs.readFile(path.join(b, 'lease'), 'utf8')).to.equal(lease(1));
    await renew(a, 'lease', lease(2));
    // The renewal is on the server …
    expect(await fs.readFile(path.join(remote, 'lease'), 'utf8')).to.equal(lease(2));
    // … and B answers from its caches.
    const seen = await observe(() => fs.readFile(path.join(b, 'lease'), 'utf8'), (text) => text === lease(2));
    const stale = seen.filter((text) => text === lease(1)).length;
    console.log(`      B read the lease ${seen.length} times in up to ${ObserveMs} ms after the renewal: ${stale} old, ${seen.length - stale} new`);
    expect(seen.every((text) => text === lease(1) || text === lease(2)), `unexpected content: ${JSON.stringify(seen)}`).to.equal(true);
    expect(stale).to.be.greaterThan(0);
  });

  it("with DefaultOptions, B's listing lacks a file A created after B listed the folder, though B can open it by name", async function () {
    const { remote, a, b } = await twoMounts('default', DefaultOptions);
    await fs.writeFile(path.join(a, 'segment-0'), '0');
    expect(await fs.readdir(b)).to.deep.equal(['segment-0']);
    await fs.writeFile(path.join(a, 'segment-1'), '1');
    expect((await fs.readdir(remote)).sort()).to.deep.equal(['segment-0', 'segment-1']);

    const listings = await observe(
      async () => (await fs.readdir(b)).sort(),
      (names) => names.includes('segment-1'),
    );
    const without = listings.filter((names) => !names.includes('segment-1')).length;
    console.log(`      B listed the folder ${listings.length} times in up to ${ObserveMs} ms after A created segment-1: ${without} without it`);
    expect(without).to.be.greaterThan(0);
    // Only the listing is cached: a lookup by name asks the server.
    expect(await fs.readFile(path.join(b, 'segment-1'), 'utf8')).to.equal('1');
  });
});
