/**
 * `npm run demo`: a two-node installation in a temporary folder, shown step by
 * step to a newcomer. It starts a primary and a secondary on loopback with the
 * shipped failover timings, writes data, makes a checkpoint, kills the primary
 * with SIGKILL, waits for the secondary to take over, reads every write back
 * from it, brings the old primary back as a follower, and removes everything
 * it made. Exit status 0 only when no acknowledged write was lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const Cli = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
/** Objects written before the checkpoint, then after it (those live only in the journal). */
const BeforeCheckpoint = 200;
const AfterCheckpoint = 100;
/** Longest the demo waits for any one step; the whole demo takes about 15 s. */
const StepTimeoutMs = 30_000;

const started = performance.now();
const clock = (): string => `${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s`;
const say = (text: string): void => void process.stdout.write(`${clock()}  ${text}\n`);
const detail = (text: string): void => void process.stdout.write(`         ${text}\n`);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + StepTimeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One node: its folder, configuration, port and process. */
class Node {
  child: ChildProcess | null = null;
  readonly url: string;
  constructor(readonly name: string, readonly dir: string, readonly port: number) {
    this.url = `http://127.0.0.1:${port}`;
  }

  async writeConfig(root: string, role: 'primary' | 'secondary'): Promise<string> {
    await fs.mkdir(this.dir, { recursive: true });
    const file = path.join(this.dir, 'config.json');
    const config = {
      node: { name: this.name, role },
      api: { host: '127.0.0.1', port: this.port },
      paths: { data: 'data', fileVault: path.join(root, 'FileVault') },
      auth: { tokensFile: path.join(root, 'tokens.json') },
      log: { level: 'info' },
    };
    await fs.writeFile(file, JSON.stringify(config, null, 2));
    return file;
  }

  async start(root: string, role: 'primary' | 'secondary'): Promise<void> {
    const config = await this.writeConfig(root, role);
    const log = await fs.open(path.join(this.dir, 'daemon.log'), 'a');
    this.child = spawn(process.execPath, [Cli, 'run', '--config', config], { cwd: this.dir, stdio: ['ignore', log.fd, log.fd] });
    await log.close();
    const child = this.child;
    await until(`${this.name} to answer`, async () => {
      if (child.exitCode !== null) throw new Error(`${this.name} exited with status ${child.exitCode}; see ${path.join(this.dir, 'daemon.log')}`);
      return (await fetch(`${this.url}/health`)).ok ? true : undefined;
    }).catch(async (err: unknown) => {
      process.stdout.write(await fs.readFile(path.join(this.dir, 'daemon.log'), 'utf8').catch(() => ''));
      throw err;
    });
  }

  /** The status code of a health endpoint, or "no answer". */
  async health(endpoint: string): Promise<number | 'no answer'> {
    try {
      return (await fetch(`${this.url}${endpoint}`, { signal: AbortSignal.timeout(1000) })).status;
    } catch {
      return 'no answer';
    }
  }

  async api(token: string, method: string, route: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${this.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }
}

/** Fail with what the daemon answered when a request did not do what the demo needs. */
function expectStatus(res: { status: number; json: Record<string, unknown> }, wanted: number[], what: string): void {
  if (!wanted.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
}

async function demo(root: string): Promise<boolean> {
  const a = new Node('node-a', path.join(root, 'node-a'), await freePort());
  const b = new Node('node-b', path.join(root, 'node-b'), await freePort());
  const nodes = [a, b];
  try {
    say(`A two-node installation in ${root}: both nodes share one FileVault folder (journal, checkpoints, lease).`);
    await a.start(root, 'primary');
    const token = (await fs.readFile(path.join(a.dir, 'data', 'admin.token'), 'utf8')).trim();
    say(`node-a started as the primary on ${a.url}. It made an admin token and stored only its hash.`);
    await b.start(root, 'secondary');
    await until('node-b to follow the journal', async () => ((await b.health('/standby')) === 200 ? true : undefined));
    say(`node-b started as a secondary on ${b.url}: it follows the journal and heartbeats node-a over WebSocket.`);
    detail(`GET /primary: node-a ${await a.health('/primary')}, node-b ${await b.health('/primary')}  (a load balancer sends traffic to the 200)`);

    expectStatus(await a.api(token, 'POST', '/api/template', { name: 'plm', version: '1.0', indexes: ['kind'] }), [201], 'load template');
    expectStatus(await a.api(token, 'POST', '/api/space', { id: 'demo', template: { name: 'plm', version: '1.0' } }), [201], 'create space');
    const written = new Map<string, unknown>();
    const write = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) {
        const key = `part-${String(i).padStart(4, '0')}`;
        const value = { kind: i % 2 === 0 ? 'Part' : 'Assembly', name: `Part number ${i}`, weightKg: i / 10 };
        expectStatus(await a.api(token, 'PUT', `/api/space/demo/object/${key}`, value), [200, 201], `write ${key}`);
        written.set(key, value);
      }
    };
    await write(0, BeforeCheckpoint);
    say(`Wrote ${BeforeCheckpoint} objects to space "demo" on node-a; each was acknowledged only after its journal record was on disk.`);
    const checkpoint = await a.api(token, 'POST', '/api/admin/checkpoint', { description: 'demo: before the crash' });
    expectStatus(checkpoint, [201], 'checkpoint');
    const cp = checkpoint.json.data as { id: string; size: number };
    say(`Made checkpoint ${cp.id} (${cp.size} bytes): a ZIP of the whole collection in FileVault/checkpoint/.`);
    await write(BeforeCheckpoint, BeforeCheckpoint + AfterCheckpoint);
    say(`Wrote ${AfterCheckpoint} more objects: these exist only in the journal, not in any checkpoint.`);

    say('Killing node-a with SIGKILL: no goodbye, no lease release, as in a power cut.');
    const killedAt = performance.now();
    await a.kill('SIGKILL');
    await until('node-b to take over', async () => ((await b.health('/primary')) === 200 ? true : undefined));
    const tookMs = performance.now() - killedAt;
    say(`node-b is the primary ${(tookMs / 1000).toFixed(1)} s later. It waited for both signs of death: no heartbeat for 2 s and`);
    detail('the lease unrenewed for 5 s on its own clock; then it claimed the next epoch, so node-a can never write again.');
    const status = await b.api(token, 'GET', '/api/admin/status');
    const failover = (status.json.data as { failover: { epoch: number } }).failover;
    detail(`GET /primary: node-a ${await a.health('/primary')}, node-b ${await b.health('/primary')}; epoch ${failover.epoch}`);

    let intact = 0;
    for (const [key, value] of written) {
      const res = await b.api(token, 'GET', `/api/space/demo/object/${key}`);
      if (res.status === 200 && JSON.stringify(res.json.data) === JSON.stringify(value)) intact++;
    }
    say(`Read every acknowledged write back from node-b: ${intact} of ${written.size} intact${intact === written.size ? '' : ' — DATA LOST'}.`);
    const query = await b.api(token, 'GET', '/api/space/demo/object?kind=Assembly');
    detail(`The index came along too: ${(query.json.data as unknown[]).length} objects of kind Assembly.`);

    await a.start(root, 'primary');
    await until('node-a to follow node-b', async () => ((await a.health('/standby')) === 200 ? true : undefined));
    say('Restarted node-a: it found a newer epoch in the FileVault and joined as a secondary of node-b.');
    detail(`GET /primary: node-a ${await a.health('/primary')}, node-b ${await b.health('/primary')}`);
    return intact === written.size;
  } finally {
    await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
  }
}

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'checkpointd-demo-'));
let ok = false;
const cleanUp = async (): Promise<void> => {
  await fs.rm(root, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));
try {
  ok = await demo(root);
  say(ok ? 'Done: the takeover lost nothing. Removed the temporary folder.' : 'Done, but writes were lost: that is a bug, please report it.');
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
} finally {
  await cleanUp();
}
process.exitCode = ok ? 0 : 1;
