/**
 * A real HAProxy child process in front of checkpointd nodes, as an
 * installation runs one: it health-checks `GET /primary` on every node (200
 * only where writes go) and sends the traffic to the node that answers 200.
 * Used by the end-to-end failover test and the failover benchmark.
 *
 * Retries: `retry-on conn-failure empty-response 503` with `option redispatch`
 * makes HAProxy resend a request that a node refused (connection refused, no
 * answer, or 503 from a node that is not, or no longer, the primary), on the
 * last retry to another server. Resending a request is not safe for
 * non-idempotent requests in general; here the clients PUT an object by key,
 * which is idempotent (a second PUT of the same value leaves the same state),
 * so a resend can at worst turn the answer 201 into 200. Do not copy this to a
 * front end that carries POSTs which create something on each call.
 *
 * Without `on-marked-down shutdown-sessions`: with it (HAProxy 2.6.12), a
 * request redispatched to the new primary just as the dead server went DOWN
 * was cut after it was sent and `empty-response` sent it again (the new
 * primary committed the same PUT twice). In HTTP mode each request picks its
 * server anyway, so nothing is left talking to a dead or demoted node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, constants as fsConstants } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DaemonProcess } from './daemon-process.js';
import { waitFor } from './wait-for.js';
import { accepts } from './tcp.js';

/** Where Debian installs the binary; a non-root user's PATH often lacks /usr/sbin. */
const DebianHaproxy = '/usr/sbin/haproxy';

/** The health-check interval when {@link HaproxyOptions.checkIntervalMs} is not given. */
const DefaultCheckIntervalMs = 200;

/** How long {@link Haproxy.stop} waits after SIGTERM before SIGKILL. */
const StopGraceMs = 5_000;

/** The name of the one backend in the configuration (as `show stat` reports it). */
const BackendName = 'checkpointd';

/** One checkpointd node behind the proxy. */
export interface HaproxyBackend {
  /** The server name in the configuration and in `show stat` (e.g. the node name). */
  name: string;
  /** The node's base URL, e.g. http://127.0.0.1:4711. */
  url: string;
}

/** Options for {@link Haproxy.start}. */
export interface HaproxyOptions {
  backends: HaproxyBackend[];
  /** Health-check interval per server, in ms (200 unless given). */
  checkIntervalMs?: number;
  /** Where the configuration file and the stats socket go (must exist). */
  dir: string;
  /** Log one line per request to stderr (status, server, timers, retries); off unless given, as a benchmark wants. */
  httpLog?: boolean;
}

/** The state of one server as HAProxy's stats report it (`UP`, `DOWN`, `MAINT`, `UP 1/2`, …). */
export type ServerStates = Record<string, string>;

/** The haproxy binary: the first `haproxy` on PATH, else Debian's /usr/sbin/haproxy. */
export async function haproxyPath(): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'haproxy');
    try {
      await fs.access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return DebianHaproxy;
}

/** True when `haproxy -v` runs and says it is HAProxy. */
export async function haproxyAvailable(): Promise<boolean> {
  const bin = await haproxyPath();
  return new Promise((resolve) => {
    let out = '';
    const child = spawn(bin, ['-v'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0 && out.includes('HAProxy')));
  });
}

/** The configuration text for {@link Haproxy.start}. */
function configText(port: number, statsSocket: string, options: HaproxyOptions): string {
  const inter = options.checkIntervalMs ?? DefaultCheckIntervalMs;
  const servers = options.backends.map((b) => {
    const url = new URL(b.url);
    return `  server ${b.name} ${url.hostname}:${url.port} check inter ${inter} fall 1 rise 1`;
  });
  return [
    // Foreground (-db), no chroot, no user switch: the tests run as root or not.
    'global',
    '  log stderr format raw local0 info',
    `  stats socket ${statsSocket} mode 600 level admin`,
    '',
    'defaults',
    '  mode http',
    '  log global',
    ...(options.httpLog === true ? ['  option httplog'] : []),
    '  option dontlognull',
    '  timeout connect 1s',
    '  timeout client 10s',
    '  timeout server 10s',
    // Idempotent PUTs only: see the comment at the top of this file.
    '  retries 3',
    '  retry-on conn-failure empty-response 503',
    '  option redispatch',
    '',
    'frontend front',
    `  bind 127.0.0.1:${port}`,
    `  default_backend ${BackendName}`,
    '',
    `backend ${BackendName}`,
    '  option httpchk',
    '  http-check send meth GET uri /primary',
    '  http-check expect status 200',
    // Which node answered, for tests that check where a write went.
    '  http-response set-header X-Haproxy-Server %s',
    ...servers,
    '',
  ].join('\n');
}

/** A running (or exited) haproxy in front of some checkpointd nodes. */
export class Haproxy {
  /** What haproxy wrote to stderr (alerts, warnings, server state changes, and request lines with httpLog). */
  stderr = '';
  stdout = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    /** The front end's base URL, http(s)://127.0.0.1:PORT. */
    readonly url: string,
    readonly configFile: string,
    readonly statsSocket: string,
    readonly child: ChildProcess,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      }),
    );
  }

  /** Write the configuration in `dir`, spawn `haproxy -f CONFIG -db` and wait until the front end accepts connections. */
  static async start(options: HaproxyOptions): Promise<Haproxy> {
    if (options.backends.length === 0) throw new Error('haproxy needs at least one backend');
    const port = await DaemonProcess.freePort();
    const statsSocket = path.join(options.dir, 'haproxy.sock');
    return Haproxy.startConfig({ dir: options.dir, text: configText(port, statsSocket, options), url: `http://127.0.0.1:${port}`, statsSocket });
  }

  /**
   * Run a configuration written elsewhere (the documentation's, say): `text`
   * is written to `dir`/haproxy.cfg as is; `url` is its front end (the port
   * must be free), `statsSocket` the `stats socket` path it names; the backend
   * whose servers {@link serverStates} reports must be called `checkpointd`.
   */
  static async startConfig(options: { dir: string; text: string; url: string; statsSocket: string }): Promise<Haproxy> {
    const port = Number(new URL(options.url).port);
    const configFile = path.join(options.dir, 'haproxy.cfg');
    const statsSocket = options.statsSocket;
    await fs.writeFile(configFile, options.text);
    const child = spawn(await haproxyPath(), ['-f', configFile, '-db'], { cwd: options.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const proxy = new Haproxy(options.url, configFile, statsSocket, child);
    // A missing binary is an 'error' event, not an exit.
    const spawnError: { error?: Error } = {};
    child.on('error', (error) => (spawnError.error = error));
    try {
      await waitFor(async () => proxy.exit !== null || spawnError.error !== undefined || (await accepts(port)), { what: `haproxy to listen on port ${port}`, timeoutMs: 10_000, intervalMs: 50 });
    } catch (e) {
      await proxy.stop();
      throw new Error(`${(e as Error).message}\n${proxy.stderr}`);
    }
    if (spawnError.error !== undefined) throw new Error(`could not run haproxy: ${spawnError.error.message}; install the Debian package haproxy`);
    if (proxy.exit !== null) throw new Error(`haproxy exited (${JSON.stringify(proxy.exit)}) before listening:\n${proxy.stderr}\n${proxy.stdout}\nconfiguration ${configFile}:\n${await fs.readFile(configFile, 'utf8')}`);
    return proxy;
  }

  /** Each server's state by name, from `show stat` on the stats socket. */
  async serverStates(): Promise<ServerStates> {
    const csv = await socketCommand(this.statsSocket, 'show stat');
    const lines = csv.split('\n').filter((l) => l.trim() !== '');
    const header = lines.shift();
    if (header?.startsWith('# ') !== true) throw new Error(`unexpected answer to show stat:\n${csv}`);
    const fields = header.slice(2).split(',');
    const [px, sv, st] = ['pxname', 'svname', 'status'].map((f) => fields.indexOf(f));
    const states: ServerStates = {};
    for (const line of lines) {
      const row = line.split(',');
      const server = row[sv!]!;
      if (row[px!] === BackendName && server !== 'FRONTEND' && server !== 'BACKEND') states[server] = row[st!]!;
    }
    return states;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once haproxy has exited. */
  async stop(): Promise<void> {
    if (this.exit !== null || this.child.pid === undefined) return;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), StopGraceMs)));
    const killed = await Promise.race([this.exited.then(() => false), graceOver]);
    clearTimeout(timer);
    if (killed) this.child.kill('SIGKILL');
    await this.exited;
  }
}


/** Send one command to a stats socket (non-interactive mode: haproxy answers and closes). */
async function socketCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = net.connect(socketPath);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(`${command}\n`));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}
