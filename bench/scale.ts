/**
 * The collection at scale, beside Redis holding the same values in the same
 * run (Debian's `redis-server`, started here on a loopback port with a
 * throwaway folder, and stopped at the end).
 *
 * For each size in BENCH_SIZES_GIB (default `1,10`: GiB of JSON values, the
 * checkpoint benchmark's objects of about 200 bytes in 4 spaces indexed by
 * `type` and `owner`; with BENCH_VALUE_BYTES, e.g. 60000, each object also
 * carries a `notes` text that makes it about that long), both are loaded
 * over their own protocol (ours: HTTP transactions of 1,000 puts, or of as
 * many as fit in 768 KiB; Redis: pipelined SETs of the same JSON text) and
 * measured:
 *
 * - memory per byte of data: the daemon's RSS and V8 heap used, Redis's RSS
 *   and used_memory;
 * - snapshot: a collection checkpoint (time, bytes) against BGSAVE (time,
 *   RDB bytes);
 * - cold start to the first served read after SIGKILL, right after the
 *   snapshot: the daemon's restart (its storage engine intact: it replays
 *   the journal after the engine's seq; the lease its killed process held
 *   runs out meanwhile) against Redis loading its RDB; the time until it
 *   listens is shown apart;
 * - restore: the checkpoint restored over the live collection, time and the
 *   daemon's peak RSS (sampled every 20 ms);
 * - durable writes/s at 64 clients: PUTs of one object with
 *   `journal.sync: commit` against SETs with `appendonly yes`,
 *   `appendfsync always`, for BENCH_WRITE_SECONDS (default 10) each, with
 *   the median and 99th percentile of each one's latency; and,
 *   as the ceiling of any HTTP API here, the same PUTs from the same client
 *   to a Fastify server whose handler does nothing but answer 201.
 *
 * BENCH_DAEMON_LOG names a file every daemon's log lines are appended to.
 *
 * A size is skipped, with the reason, when Redis could not hold it in this
 * machine's memory (about 1.5 bytes of RSS per byte of JSON, measured here)
 * or the disk could not hold both sides' files (about 6 bytes per byte of
 * JSON: our engine and checkpoint and a restore's staged copy, Redis's RDB and
 * append-only file). The daemon runs with Node's default heap limit: its
 * memory is the engine's cache (store.cacheSize), not the data. Needs
 * `redis-server` (`apt-get install redis-server`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { DaemonProcess } from '../test/helpers/daemon-process.js';
import { makeValue } from './dataset.js';
import { elapsed, fmt, keyOf, MiB, prng, stats } from './shared.js';

const GiB = 1024 * MiB;
const Sizes = (process.env.BENCH_SIZES_GIB ?? '1,10').split(',').map(Number);
const WriteSeconds = Number(process.env.BENCH_WRITE_SECONDS ?? 10);
const Spaces = ['s0', 's1', 's2', 's3'];
/** Bytes of each object's JSON (BENCH_VALUE_BYTES); 0: the ~200-byte objects alone. */
const ValueBytes = Number(process.env.BENCH_VALUE_BYTES ?? 0);
/** About what one object's JSON takes. */
const ObjectBytes = ValueBytes > 0 ? ValueBytes : 205;
/** Node options for the daemon (BENCH_DAEMON_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`: the restarted daemon's profile, written when it stops at the end). */
const DaemonNodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
/** A file every daemon's log lines are appended to (BENCH_DAEMON_LOG), to see where a phase's time went; none by default. */
const DaemonLog = process.env.BENCH_DAEMON_LOG ?? null;
const PutsPerTransaction = ValueBytes > 0 ? Math.max(1, Math.floor((768 * 1024) / ValueBytes)) : 1000;
const TransactionsInFlight = 4;
const Clients = 64;
/** Redis's RSS per byte of JSON (1.45× at 0.5 and 2 GiB, measured in issue 23). */
const RedisPerByte = 1.5;
/** Disk bytes both sides' files take per byte of JSON, all at once at worst (see above). */
const DiskPerByte = 6;
const Cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli/main.js');

/** Resident set size of a process, from /proc. */
function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** A minimal RESP client: commands in order, replies matched in order (pipelining allowed). */
class Redis {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly waiting: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const parsed = parseReply(this.buffer, 0);
        if (parsed === null) break;
        this.buffer = this.buffer.subarray(parsed.end);
        const next = this.waiting.shift()!;
        if (parsed.value instanceof Error) next.reject(parsed.value);
        else next.resolve(parsed.value);
      }
    });
    socket.on('error', (err) => {
      for (const w of this.waiting.splice(0)) w.reject(err);
    });
  }

  static async connect(port: number): Promise<Redis> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.setNoDelay(true);
    return new Redis(socket);
  }

  /** Send a command; `write` false queues it without waiting for the reply (the promise still settles). */
  command(...args: string[]): Promise<unknown> {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
    this.socket.write(parts.join(''));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  close(): void {
    this.socket.destroy();
  }
}

function parseReply(buf: Buffer, at: number): { value: unknown; end: number } | null {
  const eol = buf.indexOf('\r\n', at);
  if (eol === -1) return null;
  const line = buf.toString('utf8', at + 1, eol);
  switch (String.fromCharCode(buf[at]!)) {
    case '+':
      return { value: line, end: eol + 2 };
    case '-':
      return { value: new Error(line), end: eol + 2 };
    case ':':
      return { value: Number(line), end: eol + 2 };
    case '$': {
      const n = Number(line);
      if (n === -1) return { value: null, end: eol + 2 };
      if (buf.length < eol + 2 + n + 2) return null;
      return { value: buf.toString('utf8', eol + 2, eol + 2 + n), end: eol + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      const values: unknown[] = [];
      let end = eol + 2;
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, end);
        if (item === null) return null;
        values.push(item.value);
        end = item.end;
      }
      return { value: values, end };
    }
    default:
      throw new Error(`unexpected RESP reply ${JSON.stringify(line)}`);
  }
}

/** `INFO section` as a map. */
async function info(redis: Redis, section: string): Promise<Map<string, string>> {
  const text = String(await redis.command('INFO', section));
  return new Map(text.split('\r\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

interface RedisServer {
  child: ChildProcess;
  port: number;
}

async function startRedis(dir: string, port: number): Promise<RedisServer> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('error', (err) => console.error(`redis-server: ${err.message} (apt-get install redis-server)`));
  return { child, port };
}

/** Time from now until `GET key` answers `expected` (Redis answers LOADING errors while it loads its RDB). */
async function redisFirstRead(port: number, key: string, expected: string, since: number): Promise<number> {
  for (;;) {
    try {
      const redis = await Redis.connect(port);
      try {
        if ((await redis.command('GET', key)) === expected) return performance.now() - since;
      } catch {
        // LOADING: not yet
      } finally {
        redis.close();
      }
    } catch {
      // not listening yet
    }
    await delay(5);
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(base: string, method: string, urlPath: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path: urlPath, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * PUTs/s at `clients` from this process's HTTP client to a Fastify server (in
 * its own process, as the daemon is) whose route answers 201 and does nothing
 * else: what any HTTP API can reach on this machine with this client, beside
 * which the daemon's and Redis's rates read.
 */
async function httpCeiling(clients: number, seconds: number): Promise<number> {
  const port = await DaemonProcess.freePort();
  const fastify = pathToFileURL(createRequire(import.meta.url).resolve('fastify')).href;
  const script =
    `const { default: Fastify } = await import(${JSON.stringify(fastify)});` +
    `const app = Fastify({ logger: false });` +
    `app.put('/api/space/:id/object/:key', async (request, reply) => { reply.code(201); return { key: request.params.key, seq: 1 }; });` +
    `await app.listen({ port: ${port}, host: '127.0.0.1' }); console.log('listening');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the empty Fastify server exited (${code}) before listening`)));
    });
    const base = `http://127.0.0.1:${port}`;
    const headers = { 'content-type': 'application/json', authorization: 'Bearer unused' };
    return await rate(clients, seconds, async (c, i) => {
      const answer = await request(base, 'PUT', `/api/space/s0/object/w-${c}-${i}`, headers, JSON.stringify({ type: 'Part', owner: `c${c}`, i, pad: 'x'.repeat(120) }));
      if (answer.status !== 201) throw new Error(`empty PUT: ${answer.status} ${answer.text}`);
    });
  } finally {
    await stop(child, 'SIGKILL');
  }
}

interface Daemon {
  child: ChildProcess;
  /** performance.now() when it logged that it listens (its state loaded). */
  listeningAt: number;
  url: string;
  headers: Record<string, string>;
}

async function startDaemon(dir: string, port: number): Promise<Daemon> {
  const config = { node: { name: 'bench' }, api: { port }, paths: { data: 'data', fileVault: 'FileVault' }, journal: { sync: 'commit' }, checkpoint: { journalThreshold: null, events: { 'space-created': false, 'space-upgraded': false, 'template-loaded': false, 'restore-done': false, promotion: false, 'clean-shutdown': false, 'crash-recovery': false } }, log: { level: 'info' } };
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  const child = spawn(process.execPath, ['--max-semi-space-size=64', ...DaemonNodeArgs, Cli, 'run', '--config', path.join(dir, 'config.json')], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let listeningAt = 0;
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      if (DaemonLog !== null) appendFileSync(DaemonLog, c);
      out = (out + c).slice(-65536);
      const m = /"message":"listening"[^\n]*"url":"([^"]+)"/.exec(out) ?? /"url":"([^"]+)"[^\n]*"message":"listening"/.exec(out);
      if (m !== null) {
        listeningAt = performance.now();
        resolve(m[1]!);
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`daemon exited (${code ?? signal}) before listening`)));
  });
  child.stdout.removeAllListeners('data');
  if (DaemonLog === null) child.stdout.resume();
  else child.stdout.on('data', (c: string) => appendFileSync(DaemonLog, c));
  const token = (await fs.readFile(path.join(dir, 'data', 'admin.token'), 'utf8')).trim();
  return { child, listeningAt, url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } };
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** Requests per second that `clients` loops of `once` reach in `seconds`. */
async function rate(clients: number, seconds: number, once: (client: number, i: number) => Promise<void>): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < until; i++) {
        await once(c, i);
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

/** The same objects for both: `[space, key, JSON text]` for each, generated space by space. */
function* objects(targetBytes: number): Generator<[string, string, string]> {
  const perSpace = Math.ceil(targetBytes / ObjectBytes / Spaces.length);
  const owners = Math.max(10, Math.floor(perSpace / 4));
  // Long values: notes made of 1 KiB pieces drawn from 256 of seeded random text, so a checkpoint's deflate finds
  // repeats only a kilobyte long.
  const pieces = ValueBytes > 0 ? randomPieces(prng(999), 256, 1024) : [];
  for (const [s, space] of Spaces.entries()) {
    const rand = prng(1000 + s);
    for (let i = 0; i < perSpace; i++) {
      const value = makeValue(rand, owners);
      if (ValueBytes > 0) {
        const notes: string[] = [];
        for (let n = JSON.stringify(value).length + 12; n < ValueBytes; n += 1024) notes.push(pieces[Math.floor(rand() * pieces.length)]!);
        (value as Record<string, unknown>).notes = notes.join('').slice(0, Math.max(0, ValueBytes - JSON.stringify(value).length - 12));
      }
      yield [space, keyOf(i), JSON.stringify(value)];
    }
  }
}

/** `count` strings of `bytes` random lowercase letters and spaces. */
function randomPieces(rand: () => number, count: number, bytes: number): string[] {
  const letters = 'abcdefghijklmnopqrstuvwxyz     ';
  return Array.from({ length: count }, () => Array.from({ length: bytes }, () => letters[Math.floor(rand() * letters.length)]).join(''));
}

async function loadOurs(daemon: Daemon, targetBytes: number, started: number): Promise<{ objects: number; bytes: number; last: [string, string, string] }> {
  const ok = async (r: Promise<{ status: number; text: string }>): Promise<void> => {
    const { status, text } = await r;
    if (status >= 300) throw new Error(`the daemon answered ${status}: ${text}`);
  };
  await ok(request(daemon.url, 'POST', '/api/template', daemon.headers, JSON.stringify({ name: 'plm', version: '1.0', indexes: ['type', 'owner'] })));
  for (const id of Spaces) await ok(request(daemon.url, 'POST', '/api/space', daemon.headers, JSON.stringify({ id, template: { name: 'plm', version: '1.0' } })));
  let count = 0;
  let bytes = 0;
  let batch: string[] = [];
  let batchSpace = Spaces[0]!;
  const queue: Promise<void>[] = [];
  const send = async (): Promise<void> => {
    const body = `{"ops":[${batch.join(',')}]}`;
    batch = [];
    queue.push(ok(request(daemon.url, 'POST', `/api/space/${batchSpace}/transaction`, daemon.headers, body)));
    if (queue.length >= TransactionsInFlight) await queue.shift();
  };
  let nextReport = GiB / 4;
  let last: [string, string, string] = ['', '', ''];
  for (const [space, key, text] of objects(targetBytes)) {
    last = [space, key, text];
    if (space !== batchSpace && batch.length > 0) await send();
    batchSpace = space;
    batch.push(`{"op":"put","key":"${key}","value":${text}}`);
    count++;
    bytes += text.length;
    if (batch.length === PutsPerTransaction) await send();
    if (bytes >= nextReport) {
      console.log(`  checkpointd: ${fmt(bytes / MiB)} MiB of JSON loaded (${elapsed(started)})`);
      nextReport += GiB / 4;
    }
  }
  if (batch.length > 0) await send();
  await Promise.all(queue);
  return { objects: count, bytes, last };
}

async function loadRedis(redis: Redis, targetBytes: number): Promise<void> {
  let inFlight: Promise<unknown>[] = [];
  for (const [space, key, text] of objects(targetBytes)) {
    inFlight.push(redis.command('SET', `${space}:${key}`, text));
    if (inFlight.length === PutsPerTransaction) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  }
  await Promise.all(inFlight);
}

/** Largest RSS of `pid` while `work` runs, sampled every 20 ms. */
async function peakRss<T>(pid: number, work: Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = rssOf(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // the process ended
    }
  }, 20);
  try {
    return { result: await work, peak };
  } finally {
    clearInterval(timer);
  }
}

async function heapUsed(daemon: Daemon): Promise<number> {
  const { text } = await request(daemon.url, 'GET', '/metrics', daemon.headers);
  const m = /^checkpointd_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  return m === null ? NaN : Number(m[1]);
}

async function oneSize(gib: number, root: string): Promise<string[]> {
  const targetBytes = gib * GiB;
  const available = os.totalmem();
  const disk = await fs.statfs(root);
  const free = disk.bavail * disk.bsize;
  const why =
    targetBytes * RedisPerByte > 0.8 * available
      ? `skipped: Redis needs about ${RedisPerByte}× the data in memory (${fmt((targetBytes * RedisPerByte) / GiB, 1)} GiB) and this machine has ${fmt(available / GiB, 1)} GiB`
      : targetBytes * DiskPerByte > free
        ? `skipped: both sides' files need about ${DiskPerByte}× the data on disk (${fmt((targetBytes * DiskPerByte) / GiB, 1)} GiB) and ${root} has ${fmt(free / GiB, 1)} GiB free`
        : null;
  if (why !== null) {
    console.log(`${gib} GiB: ${why}`);
    return [`| ${gib} GiB | ${why} |`];
  }
  const dir = await fs.mkdtemp(path.join(root, `scale-${gib}-`));
  const redisDir = path.join(dir, 'redis');
  await fs.mkdir(redisDir);
  const started = performance.now();
  console.log(`${gib} GiB: loading checkpointd and Redis in ${dir}`);
  const port = await DaemonProcess.freePort();
  let daemon = await startDaemon(dir, port);
  const redisServer = await startRedis(redisDir, await DaemonProcess.freePort());
  let redis: Redis | null = null;
  try {
    const loadStart = performance.now();
    const loaded = await loadOurs(daemon, targetBytes, started);
    const ourLoadS = (performance.now() - loadStart) / 1000;
    const [lastSpace, lastKey, lastText] = loaded.last;
    for (let i = 0; ; i++) {
      try {
        redis = await Redis.connect(redisServer.port);
        break;
      } catch (err) {
        if (i > 200) throw err;
        await delay(25);
      }
    }
    const redisLoadStart = performance.now();
    await loadRedis(redis, targetBytes);
    const redisLoadS = (performance.now() - redisLoadStart) / 1000;
    console.log(`  loaded ${fmt(loaded.objects)} objects, ${fmt(loaded.bytes / MiB)} MiB of JSON: checkpointd ${fmt(ourLoadS, 1)} s, Redis ${fmt(redisLoadS, 1)} s`);

    // Memory.
    await delay(1000);
    const ourRss = rssOf(daemon.child.pid!);
    const ourHeap = await heapUsed(daemon);
    const redisMemory = await info(redis, 'memory');
    const redisRss = rssOf(redisServer.child.pid!);
    const redisUsed = Number(redisMemory.get('used_memory'));

    // Snapshot.
    const checkpointStart = performance.now();
    const created = await request(daemon.url, 'POST', '/api/admin/checkpoint', daemon.headers, JSON.stringify({ description: 'scale bench' }));
    if (created.status !== 201) throw new Error(`checkpoint: ${created.status} ${created.text}`);
    const checkpointS = (performance.now() - checkpointStart) / 1000;
    const { data: checkpoint } = JSON.parse(created.text) as { data: { id: number; size: number } };
    const bgsaveStart = performance.now();
    await redis.command('BGSAVE');
    while ((await info(redis, 'persistence')).get('rdb_bgsave_in_progress') !== '0') await delay(10);
    const bgsaveS = (performance.now() - bgsaveStart) / 1000;
    const rdbBytes = (await fs.stat(path.join(redisDir, 'dump.rdb'))).size;

    // Cold start after SIGKILL, right after the snapshot: ours reopens its engine (the journal after it is empty),
    // Redis its RDB. Both then serve the rest of the run.
    await stop(daemon.child, 'SIGKILL');
    const ourColdStart = performance.now();
    daemon = await startDaemon(dir, port);
    for (;;) {
      const answer = await request(daemon.url, 'GET', `/api/space/${lastSpace}/object/${lastKey}`, daemon.headers);
      if (answer.status === 200) break;
      await delay(5);
    }
    const ourColdS = (performance.now() - ourColdStart) / 1000;
    const ourListeningS = (daemon.listeningAt - ourColdStart) / 1000;
    // A restarted primary serves reads at once and writes once the lease its killed process held has run out.
    while ((await request(daemon.url, 'GET', '/primary', {})).status !== 200) await delay(20);
    const ourWritableS = (performance.now() - ourColdStart) / 1000;
    redis.close();
    await stop(redisServer.child, 'SIGKILL');
    const redisColdStart = performance.now();
    redisServer.child = (await startRedis(redisDir, redisServer.port)).child;
    const redisColdS = (await redisFirstRead(redisServer.port, `${lastSpace}:${lastKey}`, lastText, redisColdStart)) / 1000;
    redis = await Redis.connect(redisServer.port);

    // Restore (peak RSS while the old and new state may both be held).
    const restore = await peakRss(daemon.child.pid!, (async () => {
      const t = performance.now();
      const answer = await request(daemon.url, 'POST', `/api/collection/checkpoint/${checkpoint.id}`, daemon.headers, '{}');
      if (answer.status >= 300) throw new Error(`restore: ${answer.status} ${answer.text}`);
      return (performance.now() - t) / 1000;
    })());

    // Durable writes at 64 clients.
    const ourLatencies: number[] = [];
    const ourWrites = await rate(Clients, WriteSeconds, async (c, i) => {
      const t = performance.now();
      const answer = await request(daemon.url, 'PUT', `/api/space/s0/object/w-${c}-${i}`, daemon.headers, JSON.stringify({ type: 'Part', owner: `c${c}`, i, pad: 'x'.repeat(120) }));
      ourLatencies.push(performance.now() - t);
      if (answer.status !== 201 && answer.status !== 200) throw new Error(`PUT: ${answer.status} ${answer.text}`);
    });
    await redis.command('CONFIG', 'SET', 'appendonly', 'yes');
    await redis.command('CONFIG', 'SET', 'appendfsync', 'always');
    while ((await info(redis, 'persistence')).get('aof_rewrite_in_progress') !== '0') await delay(20);
    const redisClients = await Promise.all(Array.from({ length: Clients }, () => Redis.connect(redisServer.port)));
    const redisLatencies: number[] = [];
    const redisWrites = await rate(Clients, WriteSeconds, async (c, i) => {
      const t = performance.now();
      await redisClients[c]!.command('SET', `w-${c}-${i}`, JSON.stringify({ type: 'Part', owner: `c${c}`, i, pad: 'x'.repeat(120) }));
      redisLatencies.push(performance.now() - t);
    });
    for (const r of redisClients) r.close();
    const ceiling = await httpCeiling(Clients, WriteSeconds);

    const data = loaded.bytes;
    const per = (n: number): string => `${fmt(n / data, 2)}×`;
    console.log(`  memory: checkpointd RSS ${fmt(ourRss / MiB)} MiB (${per(ourRss)}), heap used ${fmt(ourHeap / MiB)} MiB (${per(ourHeap)}); Redis RSS ${fmt(redisRss / MiB)} MiB (${per(redisRss)}), used_memory ${fmt(redisUsed / MiB)} MiB (${per(redisUsed)})`);
    console.log(`  snapshot: checkpoint ${fmt(checkpointS, 1)} s, ${fmt(checkpoint.size / MiB)} MiB; BGSAVE ${fmt(bgsaveS, 1)} s, ${fmt(rdbBytes / MiB)} MiB`);
    console.log(`  cold start to the first served read after SIGKILL: checkpointd ${fmt(ourColdS, 1)} s (listening, its state loaded, after ${fmt(ourListeningS, 1)} s; taking writes after ${fmt(ourWritableS, 1)} s, once the killed process's lease ran out), Redis (RDB) ${fmt(redisColdS, 1)} s`);
    console.log(`  restore: ${fmt(restore.result, 1)} s, peak RSS ${fmt(restore.peak / MiB)} MiB (${per(restore.peak)})`);
    const [ours, theirs] = [stats(ourLatencies), stats(redisLatencies)];
    console.log(
      `  durable writes at ${Clients} clients: checkpointd ${fmt(ourWrites)}/s (p50 / p99 ${fmt(ours.p50, 1)} / ${fmt(ours.p99, 1)} ms), ` +
        `Redis appendfsync always ${fmt(redisWrites)}/s (p50 / p99 ${fmt(theirs.p50, 1)} / ${fmt(theirs.p99, 1)} ms) (${fmt(ourWrites / redisWrites, 2)}×)`,
    );
    console.log(`  the HTTP ceiling: the same PUTs to a Fastify route that only answers 201, ${fmt(ceiling)}/s (${fmt(ceiling / redisWrites, 2)}× Redis; checkpointd reaches ${fmt(ourWrites / ceiling, 2)}× of it)`);
    return [
      `| ${gib} GiB (${fmt(data / MiB)} MiB JSON, ${fmt(loaded.objects)} objects) | RSS ${per(ourRss)}, heap ${per(ourHeap)} / Redis RSS ${per(redisRss)}, used ${per(redisUsed)} | ${fmt(checkpointS, 1)} s, ${fmt(checkpoint.size / MiB)} MiB / ${fmt(bgsaveS, 1)} s, ${fmt(rdbBytes / MiB)} MiB | ${fmt(ourColdS, 1)} s (loaded ${fmt(ourListeningS, 1)} s) / ${fmt(redisColdS, 1)} s | ${fmt(restore.result, 1)} s, peak ${fmt(restore.peak / MiB)} MiB | ${fmt(ourWrites)} / ${fmt(redisWrites)} (${fmt(ourWrites / redisWrites, 2)}×) | ${fmt(ceiling)} (${fmt(ceiling / redisWrites, 2)}×) |`,
    ];
  } finally {
    redis?.close();
    // A daemon run with Node options (a profile) stops cleanly, so that Node writes what they ask for.
    await stop(daemon.child, DaemonNodeArgs.length > 0 ? 'SIGTERM' : 'SIGKILL');
    await stop(redisServer.child, 'SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Print the scale benchmark. */
export async function scaleBench(): Promise<void> {
  const redisVersion = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (redisVersion.error !== undefined) throw new Error(`the scale benchmark needs redis-server (apt-get install redis-server): ${redisVersion.error.message}`);
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-bench-scale-'));
  try {
    console.log(`scale benchmark: ${Sizes.join(', ')} GiB of JSON values (${ValueBytes > 0 ? `objects of about ${fmt(ValueBytes)} bytes` : 'objects of about 200 bytes'}) beside ${redisVersion.stdout.trim().split(' ').slice(0, 3).join(' ')}, ${os.cpus().length} cores, ${fmt(os.totalmem() / GiB, 1)} GiB of memory, node ${process.version}`);
    const rows: string[] = [];
    for (const gib of Sizes) rows.push(...(await oneSize(gib, root)));
    console.log('\n| data | memory per byte of data: checkpointd / Redis | snapshot: checkpoint / BGSAVE | cold start to first read: checkpointd / Redis | restore | durable writes/s at 64 clients: checkpointd / Redis (ratio) | HTTP ceiling: empty handler (/ Redis) |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const row of rows) console.log(row);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}
