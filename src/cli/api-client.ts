/**
 * The HTTP client of the client commands (`status`, `checkpoint …`,
 * `switchover`, `pause`, `resume`). The daemon is found from `--url` (else
 * CHECKPOINTD_URL, else the default port on loopback), the token from
 * `--token-file` (else CHECKPOINTD_TOKEN), so that a token never has to be
 * typed on a command line where `ps` and shell history would keep it; a
 * private CA from `--ca` (else CHECKPOINTD_CA).
 *
 * Two kinds of failure are told apart because scripts act on them
 * differently (main.ts maps them to exit codes): the daemon answered with a
 * problem ({@link ApiProblemError}, carrying the HTTP status), or it could not
 * be reached at all ({@link DaemonUnreachableError}).
 */
import { promises as fs } from 'node:fs';
import http, { STATUS_CODES, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { ConnectTimeoutMs, DefaultDaemonUrl, MaxAnswerBytes } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { inCommandTerms } from './route-advice.js';

/** The environment variable holding the API token. */
export const TokenEnv = 'CHECKPOINTD_TOKEN';
/** The environment variable holding the daemon's URL. */
export const UrlEnv = 'CHECKPOINTD_URL';
/** The environment variable naming the PEM CA bundle for an https daemon (`--ca` wins). */
export const CaEnv = 'CHECKPOINTD_CA';

/** The options every client command shares. */
export interface ClientOptions {
  url: string;
  tokenFile?: string;
  /** PEM CA bundle file for an https URL signed by a private CA. */
  ca?: string;
  json?: boolean;
}

/**
 * The daemon answered with an error (problem+json). `detail` is the API's own
 * text; the message (what the command prints) names `checkpointd` commands
 * where the detail names API routes (route-advice.ts).
 */
export class ApiProblemError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    /** The answer's body, parsed when it was JSON (printed as is with `--json`). */
    readonly problem: unknown,
  ) {
    super(inCommandTerms(detail));
    this.name = 'ApiProblemError';
  }
}

/** No answer from the daemon: refused, unknown host, TLS failure, timeout, or the connection broke. */
export class DaemonUnreachableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DaemonUnreachableError';
  }
}

/** A request: a JSON body, extra headers, which statuses are answers (2xx unless told), and cancellation. */
export interface SendOptions {
  body?: unknown;
  /** A file sent as the body instead of JSON (`checkpoint import`): streamed, never held in memory. */
  upload?: { stream: Readable; contentType: string; length: number };
  headers?: Record<string, string>;
  accept?: (status: number) => boolean;
  signal?: AbortSignal;
}

const TlsCodes = /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|EPROTO$)/;

/** Why a connection failed, in words that suggest the fix. */
function unreachableReason(err: NodeJS.ErrnoException, host: string): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is checkpointd running, and is --url or CHECKPOINTD_URL right?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host ${host} not found`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `no route or no answer (${err.code})`;
    case 'ECONNRESET':
      return 'the connection was closed before an answer came';
  }
  if (err.code !== undefined && TlsCodes.test(err.code)) return `TLS failed: ${err.message} (for a private CA, pass its PEM bundle with --ca FILE or ${CaEnv})`;
  return err.message;
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > MaxAnswerBytes) {
      res.destroy();
      throw new Error(`the daemon's answer is larger than ${MaxAnswerBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The token: from `--token-file` when given (it wins), else CHECKPOINTD_TOKEN; surrounding whitespace trimmed. */
async function findToken(tokenFile: string | undefined): Promise<string> {
  let token: string;
  let from: string;
  if (tokenFile !== undefined) {
    try {
      token = await fs.readFile(tokenFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read the token file ${tokenFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    from = `the token file ${tokenFile}`;
  } else {
    const env = process.env[TokenEnv];
    if (env === undefined) {
      throw new ConfigError(`no API token: set ${TokenEnv} (export ${TokenEnv}=$(cat FILE)) or pass --token-file FILE; a collection-admin token is needed`);
    }
    token = env;
    from = TokenEnv;
  }
  token = token.trim();
  if (token === '') throw new ConfigError(`${from} is empty; it must hold an API token`);
  if (/\s/.test(token)) throw new ConfigError(`${from} holds more than one token-like word; it must hold the token alone`);
  return token;
}

/** Talks to one daemon with one token. */
export class ApiClient {
  private constructor(
    /** The daemon's base URL, without a trailing slash. */
    readonly base: URL,
    private readonly token: string,
    private readonly ca: Buffer | undefined,
  ) {}

  /** A client from the shared options; throws ConfigError (exit 2) for a bad URL, a missing token or an unreadable CA file. */
  static async open(options: ClientOptions): Promise<ApiClient> {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new ConfigError(`--url ${JSON.stringify(options.url)} is not a URL; write it like ${DefaultDaemonUrl}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new ConfigError(`--url must be an http:// or https:// URL, not ${base.protocol}`);
    if (base.username !== '' || base.password !== '') throw new ConfigError('--url must not hold credentials; the token comes from CHECKPOINTD_TOKEN or --token-file');
    base.search = '';
    base.hash = '';
    let ca: Buffer | undefined;
    if (options.ca !== undefined && options.ca !== '') {
      try {
        ca = await fs.readFile(options.ca);
      } catch (err) {
        throw new ConfigError(`cannot read the CA file ${options.ca} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`the CA file ${options.ca} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    }
    return new ApiClient(base, await findToken(options.tokenFile), ca);
  }

  /** The full URL of API path `apiPath` (which starts with `/api/`), under any path prefix in the base URL. */
  url(apiPath: string): URL {
    const url = new URL(this.base.href);
    url.pathname = url.pathname.replace(/\/+$/, '') + apiPath;
    return url;
  }

  /**
   * Send a request. Resolves once the headers of an accepted answer arrive
   * (the caller reads or streams the body); any other status is read as a
   * problem and thrown as {@link ApiProblemError}.
   */
  async send(method: string, apiPath: string, options: SendOptions = {}): Promise<IncomingMessage> {
    const url = this.url(apiPath);
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json', ...options.headers, authorization: `Bearer ${this.token}` };
    let payload: string | undefined;
    if (options.body !== undefined) {
      payload = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    if (options.upload !== undefined) {
      headers['content-type'] = options.upload.contentType;
      headers['content-length'] = String(options.upload.length);
    }
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const requestOptions: https.RequestOptions = { method, headers, agent: false, ...(options.signal === undefined ? {} : { signal: options.signal }) };
      const onResponse = (answer: IncomingMessage) => resolve(answer);
      const req = url.protocol === 'https:' ? https.request(url, { ...requestOptions, ...(this.ca === undefined ? {} : { ca: this.ca }) }, onResponse) : http.request(url, requestOptions, onResponse);
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no connection within ${ConnectTimeoutMs / 1000} s`), { code: 'ETIMEDOUT' })), ConnectTimeoutMs);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.name === 'AbortError') reject(err);
        else reject(new DaemonUnreachableError(`cannot reach the daemon at ${this.base.origin}: ${unreachableReason(err, url.hostname)}`, { cause: err }));
      });
      const upload = options.upload;
      if (upload === undefined) req.end(payload);
      else {
        // An early answer (a refusal) ends the request; the rest of the file is not sent.
        upload.stream.on('error', (err) => req.destroy(err));
        upload.stream.pipe(req);
      }
    });
    const status = res.statusCode ?? 0;
    if ((options.accept ?? ((s) => s >= 200 && s < 300))(status)) return res;
    const text = await readText(res).catch(() => '');
    const problem = parseJson(text);
    const detail = (problem as { detail?: unknown } | undefined)?.detail;
    const title = STATUS_CODES[status] ?? 'error';
    throw new ApiProblemError(status, typeof detail === 'string' && detail !== '' ? detail : `the daemon answered ${status} ${title}`, problem ?? (text === '' ? null : text));
  }

  /** A request whose answer is JSON: the parsed body, or undefined for an empty one (204). */
  async json(method: string, apiPath: string, options: SendOptions = {}): Promise<unknown> {
    const res = await this.send(method, apiPath, options);
    let text: string;
    try {
      text = await readText(res);
    } catch (err) {
      throw new DaemonUnreachableError(`the connection to ${this.base.origin} broke while reading the answer (${(err as Error).message})`, { cause: err });
    }
    if (text === '') return undefined;
    const body = parseJson(text);
    if (body === undefined) throw new Error(`the daemon's answer to ${method} ${apiPath} is not JSON (is --url the checkpointd API?)`);
    return body;
  }
}
