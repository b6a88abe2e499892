/**
 * A real checkpointd child process for integration tests: its own temporary
 * folder (config, data, FileVault), a free loopback port, JSON log lines
 * collected from stdout, and real signals (SIGKILL where a crash is the point).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait-for.js';

/** The built CLI entry point (npm test builds before mocha runs). */
export const CliPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js');

/** The environment for a child daemon or CLI: the test's own, minus a loader the test runner may have put in NODE_OPTIONS (the built code needs none). */
export function childEnv(): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _loader, ...env } = process.env;
  return env;
}

/** A JSON log line. */
export type LogLine = Record<string, unknown> & { level: string; message: string };

/** An HTTP answer, body parsed when it is JSON. */
export interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

const agent = new http.Agent({ keepAlive: true });
const secureAgent = new https.Agent({ keepAlive: true });

/** How an https request verifies the daemon's certificate (always verified). */
export interface TlsTrust {
  /** PEM certificate authorities to trust. */
  ca: string | Buffer;
  /** The name to expect in the certificate when it is not the URL's host. */
  servername?: string;
}

/**
 * One HTTP request with the path sent verbatim (fetch would resolve `..` and
 * `%2e%2e` itself); an https `base` verifies the certificate with `tls`.
 */
export async function httpRequest(base: string, method: string, urlPath: string, headers: Record<string, string>, body?: string, tls?: TlsTrust): Promise<{ status: number; headers: Headers; text: string }> {
  const url = new URL(base);
  const secure = url.protocol === 'https:';
  const request = secure ? https.request : http.request;
  const trust = secure && tls !== undefined ? { ca: tls.ca, ...(tls.servername === undefined ? {} : { servername: tls.servername }) } : {};
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: urlPath, headers, agent: secure ? secureAgent : agent, ...trust }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: res.statusCode ?? 0, headers: h, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Bytes a raw socket receives for `request` until the server closes it (or 5 s pass). */
export async function rawExchange(port: number, request: Buffer): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false });
    }, 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true });
    });
    socket.on('connect', () => socket.write(request));
  });
}

/** Options for {@link DaemonProcess.start}. */
export interface StartOptions {
  /** Reuse this folder (a restart); a new temp folder otherwise. */
  dir?: string;
  /** Extra configuration merged over the test defaults. */
  config?: Record<string, unknown>;
  /** Extra environment. */
  env?: Record<string, string>;
  /** Where an earlier start wrote the admin token, when not in <dir>/data. */
  tokenFile?: string;
  /** How long to wait for it to listen (15 s unless given; a benchmark's gigabyte takes longer). */
  startTimeoutMs?: number;
  /** For a daemon serving HTTPS (api.tls): the certificate authorities its requests trust. */
  tls?: TlsTrust;
  /** Run the daemon as this user (the test runs as root; permission faults need a user that mode bits bind). */
  user?: ChildUser;
  /**
   * A configured primary restarted after a crash waits its own old lease out
   * (leaseTtlMs) before it serves: by default start() waits until it serves or
   * the lease names another node; false returns once it listens.
   */
  waitForLease?: boolean;
  /** How to start it: another `checkpointd` executable, the file named by CHECKPOINTD_CONFIG (see {@link SpawnOptions}). */
  spawn?: SpawnOptions;
}

/** How {@link DaemonProcess.spawn} starts `checkpointd run`. */
export interface SpawnOptions {
  /** An installed `checkpointd` executable, run as a command (its `#!` line finds node on PATH); the built dist/cli/main.js under this node otherwise. */
  command?: string;
  /** Name the configuration file in CHECKPOINTD_CONFIG instead of passing `--config`. */
  configFromEnv?: boolean;
}

/**
 * A shorter lease than the product's 5 s, so that a daemon restarted after a
 * SIGKILL waits out its old lease in 2 s, not 5 (the same rules; validity
 * 1.5 s is still far above any pause a busy test machine makes).
 */
export const TestLease = { heartbeatMs: 200, heartbeatTimeoutMs: 1000, leaseTtlMs: 2000, renewMs: 300, safetyMarginMs: 500 };

/** What a configured primary logs when it must wait out the lease its previous run left. */
export const WaitingOutLease = 'configured as primary; the lease was not released: taking it once it has not changed for leaseTtlMs';

/** A user and group id to run a child daemon as. */
export interface ChildUser {
  uid: number;
  gid: number;
}

/**
 * Automatic checkpoints off: tests that count checkpoints or ids see only the
 * ones they make. The automatic-checkpoint tests switch on what they test.
 */
export const QuietCheckpoints = {
  journalThreshold: null,
  events: { 'space-created': false, 'space-upgraded': false, 'template-loaded': false, 'restore-done': false, promotion: false, 'clean-shutdown': false, 'crash-recovery': false },
};

/** Make a temp folder for a test. */
export async function tempDir(prefix = 'cpd-it-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && b !== null && typeof b === 'object' ? merge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** A running (or exited) daemon. */
/**
 * For a suite of real daemons: `track` each one it starts, and its folder,
 * and an `after` hook (registered here) SIGKILLs them and removes the folders.
 */
export function suiteDaemons(): { track: (daemon: DaemonProcess) => DaemonProcess; folder: (prefix: string) => Promise<string> } {
  const daemons: DaemonProcess[] = [];
  const folders: string[] = [];
  after(async () => {
    for (const d of daemons) await d.kill('SIGKILL');
    for (const f of folders) await fs.rm(f, { recursive: true, force: true });
  });
  return {
    track: (daemon) => {
      daemons.push(daemon);
      return daemon;
    },
    folder: async (prefix) => {
      const f = await tempDir(prefix);
      folders.push(f);
      return f;
    },
  };
}

export class DaemonProcess {
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  url = '';
  token = '';
  /** How {@link request} verifies an HTTPS daemon's certificate. */
  tls: TlsTrust | undefined;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private exited: Promise<void>;

  private constructor(readonly dir: string, readonly configFile: string, readonly child: ChildProcess) {
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        if (line.trim() === '') continue;
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ level: 'raw', message: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
      this.exit = { code, signal };
      resolve();
    }));
  }

  /** Write the config, spawn `checkpointd run`, wait until it listens and read its admin token. */
  static async start(options: StartOptions = {}): Promise<DaemonProcess> {
    const dir = options.dir ?? (await tempDir());
    const configFile = path.join(dir, 'config.json');
    const config = merge({ node: { name: 'test' }, api: { port: 0 }, paths: { data: 'data', fileVault: 'FileVault' }, checkpoint: QuietCheckpoints, failover: TestLease, log: { level: 'info' } }, options.config ?? {});
    await fs.writeFile(configFile, JSON.stringify(config, null, 2));
    const daemon = DaemonProcess.spawn(dir, configFile, options.env, options.user, options.spawn);
    daemon.tls = options.tls;
    try {
      await waitFor(() => daemon.lines.some((l) => l.message === 'listening') || daemon.exit !== null, { what: 'the daemon to listen', timeoutMs: options.startTimeoutMs ?? 15_000 });
      if (daemon.exit !== null) throw new Error(`daemon exited (${JSON.stringify(daemon.exit)}) before listening:\n${daemon.stderr}\n${daemon.stdout}`);
      daemon.url = String(daemon.lines.find((l) => l.message === 'listening')!.url);
      // The first start logs where it wrote the admin token; later starts find it where the first one put it.
      const logged = daemon.lines.find((l) => typeof l.file === 'string' && String(l.file).endsWith('admin.token'));
      const tokenFile = logged !== undefined ? String(logged.file) : (options.tokenFile ?? path.join(dir, 'data', 'admin.token'));
      daemon.token = (await fs.readFile(tokenFile, 'utf8')).trim();
      if (options.waitForLease !== false && daemon.lines.some((l) => l.message === WaitingOutLease)) {
        const name = daemon.lines.find((l) => l.message === WaitingOutLease)!.node;
        await waitFor(
          async () => {
            if ((await daemon.request('GET', '/primary', { token: null })).status === 200) return true;
            const lease = ((await daemon.request('GET', '/api/admin/status')).body as { data?: { failover?: { lease?: { holder: string } | null } } }).data?.failover?.lease;
            return lease !== null && lease !== undefined && lease.holder !== name;
          },
          { what: 'the restarted primary to wait out its old lease', timeoutMs: 30_000, intervalMs: 50 },
        );
      }
    } catch (err) {
      // A start that fails leaves no process behind (its open pipes would keep the test run from ending).
      await daemon.kill('SIGKILL');
      throw err;
    }
    return daemon;
  }

  /** A free loopback port (for tests that must know the port before the daemon logs it). */
  static async freePort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  /** Spawn without waiting (for start-up failures). */
  static spawn(dir: string, configFile: string, env: Record<string, string> = {}, user?: ChildUser, how: SpawnOptions = {}): DaemonProcess {
    const args = how.configFromEnv === true ? ['run'] : ['run', '--config', configFile];
    const [file, argv] = how.command === undefined ? [process.execPath, [CliPath, ...args]] : [how.command, args];
    const environment = { ...childEnv(), ...(how.configFromEnv === true ? { CHECKPOINTD_CONFIG: configFile } : {}), ...env };
    const child = spawn(file, argv, { cwd: dir, env: environment, stdio: ['ignore', 'pipe', 'pipe'], ...user });
    return new DaemonProcess(dir, configFile, child);
  }

  /** Resolves when the process has exited. */
  async waitExit(): Promise<void> {
    await this.exited;
  }

  /** Send `signal` and wait for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.exit === null) this.child.kill(signal);
    await this.exited;
  }

  /** Start a new daemon on the same folder and configuration. */
  async restart(): Promise<DaemonProcess> {
    await this.kill('SIGTERM');
    return DaemonProcess.start({ dir: this.dir, config: JSON.parse(await fs.readFile(this.configFile, 'utf8')) as Record<string, unknown>, ...(this.tls === undefined ? {} : { tls: this.tls }) });
  }

  /** Load template plm 1.0 (indexing `type`) and create spaces `ids` of it; throws unless each answer is 201. */
  async seedSpaces(ids: readonly string[]): Promise<void> {
    const calls: [string, unknown][] = [['/api/template', { name: 'plm', version: '1.0', indexes: ['type'] }], ...ids.map((id): [string, unknown] => ['/api/space', { id, template: { name: 'plm', version: '1.0' } }])];
    for (const [urlPath, body] of calls) {
      const res = await this.request('POST', urlPath, { body });
      if (res.status !== 201) throw new Error(`POST ${urlPath} answered ${res.status}: ${res.text}`);
    }
  }

  /** An HTTP request with the admin token unless `token` says otherwise (null = none). */
  async request(method: string, urlPath: string, options: { body?: unknown; raw?: string; token?: string | null; headers?: Record<string, string> } = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.token : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    if (options.raw !== undefined) headers['content-type'] ??= 'application/json';
    const res = await httpRequest(this.url, method, urlPath, headers, body, this.tls);
    const text = res.text;
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }

  /**
   * A query (`GET /api/space/ID/object?…`) read to its end: the pages followed
   * by their `next` links, answered as one (the first failing page's answer
   * as it is). `data` holds every page's objects, in order.
   */
  async query(urlPath: string, options: { token?: string | null } = {}): Promise<Answer> {
    const data: unknown[] = [];
    let next: string | undefined = urlPath;
    let last: Answer | undefined;
    while (next !== undefined) {
      last = await this.request('GET', next.startsWith('http') ? new URL(next).pathname + new URL(next).search : next, options);
      if (last.status !== 200) return last;
      const page = last.body as { next?: string; data: unknown[] };
      data.push(...page.data);
      next = page.next;
    }
    const body = last!.body as Record<string, unknown>;
    return { ...last!, body: { href: body.href, data } };
  }

  /** Remove the folder (after the process has exited). */
  async cleanup(): Promise<void> {
    await this.kill('SIGKILL');
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
