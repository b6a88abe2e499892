/**
 * The heartbeat channel (docs/ARCHITECTURE.md "Failover protocol"): the primary serves WebSocket
 * `/api/failover` and sends every connected secondary a heartbeat every
 * `heartbeatMs` (epoch, seq, newest checkpoint id); each secondary answers
 * with the seq it has applied, which is its lag, and echoes the beat's send
 * time, which is the round trip (on the primary's clock alone; it includes
 * the secondary's applying the journal up to the beat). Secondaries present the
 * cluster token; a wrong or missing one is refused (401) and logged.
 *
 * A secondary connects to the URL the lease names and reconnects with backoff
 * whenever the connection drops or the lease names another holder. It only
 * remembers when it last heard a heartbeat, on its own monotonic clock; what
 * silence means is the failover manager's decision, together with the lease.
 *
 * When the primary serves HTTPS the channel is wss on the same server, and the
 * secondary always verifies the primary's certificate: a certificate it cannot
 * verify is a connection that fails (logged once per cause, retried with the
 * backoff), never one it accepts. Such a failure alone never promotes anyone:
 * the live primary still renews the lease.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { timingSafeEqual, createHash } from 'node:crypto';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { HeartbeatHandshakeTimeoutMs, HeartbeatReconnectMaxMs, HeartbeatReconnectMinMs } from '../config/index.js';
import type { Logger } from '../log/index.js';

/** The path of the heartbeat WebSocket. */
export const HeartbeatPath = '/api/failover';

/** What the primary sends. */
export interface Heartbeat {
  type: 'heartbeat';
  node: string;
  epoch: number;
  seq: number;
  checkpoint: number | null;
  /** The lease counter the primary last wrote (already in the file when the beat is sent): a secondary times how late its own reads show it. */
  leaseCounter?: number;
  /** The primary's monotonic clock (ms) when it sent the beat; the answer echoes it, which times the round trip. */
  sent?: number;
}

/**
 * Sent by a primary that has just released its lease (switchover, clean
 * stop): read the lease now rather than at the next poll. It grants nothing
 * by itself; the lease file decides.
 */
export interface Handover {
  type: 'handover';
  node: string;
  /** The successor it named. */
  to: string;
}

/** What a secondary answers. */
export interface HeartbeatAck {
  type: 'ack';
  node: string;
  epoch: number;
  seq: number;
  /** The `sent` of the heartbeat answered. */
  sent?: number;
  /** The secondary's API base URL (its api.publicUrl), for the cluster view. */
  url?: string;
  /** The newest checkpoint the secondary could start from (verified, if it verifies them), for the cluster view. */
  checkpoint?: number | null;
}

/** A connected secondary as the primary sees it. */
export interface StandbyInfo {
  node: string;
  appliedSeq: number;
  /** Records the standby is behind the primary's seq at its last answer. */
  lag: number;
  /** Milliseconds since its last answer. */
  lastAckAgoMs: number;
  /** From sending a heartbeat to its answer (the secondary applies the journal before answering); null: none timed yet. */
  roundTripMs: number | null;
  address: string;
  /** What it said in its last answer: its URL, the epoch it follows, its newest checkpoint (null: not said). */
  url: string | null;
  epoch: number | null;
  checkpoint: number | null;
}

/** A WebSocket message as text, whatever form `ws` handed it over in. */
function textOf(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

function sameToken(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** Options for {@link HeartbeatServer}. */
export interface HeartbeatServerOptions {
  server: Server;
  token: () => string;
  heartbeatMs: number;
  logger: Logger;
  /** The beat to send now (null: send none, this node is not the primary). */
  beat: () => Heartbeat | null;
  /** Called when a connection is refused for a wrong or missing cluster token. */
  onRefused?: () => void;
}

/** The primary's end: accepts secondaries and beats. */
export class HeartbeatServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  private readonly standbys = new Map<
    WebSocket,
    { node: string; appliedSeq: number; lastAck: number; address: string; seqAtAck: number; roundTripMs: number | null; url: string | null; epoch: number | null; checkpoint: number | null }
  >();
  private timer: NodeJS.Timeout | null = null;
  private readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

  constructor(private readonly options: HeartbeatServerOptions) {
    this.onUpgrade = (req, socket, head) => this.upgrade(req, socket, head);
    options.server.on('upgrade', this.onUpgrade);
    this.timer = setInterval(() => this.send(), options.heartbeatMs);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = req.socket.remoteAddress ?? 'unknown';
    if (new URL(req.url ?? '/', 'http://x').pathname !== HeartbeatPath) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const auth = req.headers.authorization ?? '';
    const presented = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
    if (presented === '' || !sameToken(presented, this.options.token())) {
      this.options.logger.warn('refused a failover connection: wrong or missing cluster token', { address });
      this.options.onRefused?.();
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.standbys.set(ws, { node: 'unknown', appliedSeq: 0, lastAck: performance.now(), address, seqAtAck: 0, roundTripMs: null, url: null, epoch: null, checkpoint: null });
      ws.on('message', (data) => this.ack(ws, textOf(data)));
      ws.on('close', () => this.standbys.delete(ws));
      ws.on('error', () => this.standbys.delete(ws));
      this.send(ws);
    });
  }

  private ack(ws: WebSocket, text: string): void {
    let msg: Partial<HeartbeatAck>;
    try {
      msg = JSON.parse(text) as Partial<HeartbeatAck>;
    } catch {
      return;
    }
    const entry = this.standbys.get(ws);
    if (entry === undefined || msg.type !== 'ack' || typeof msg.seq !== 'number' || typeof msg.node !== 'string') return;
    entry.node = msg.node;
    entry.appliedSeq = msg.seq;
    if (typeof msg.url === 'string' && /^https?:\/\//.test(msg.url) && msg.url.length <= 2048) entry.url = msg.url;
    if (typeof msg.epoch === 'number' && Number.isSafeInteger(msg.epoch)) entry.epoch = msg.epoch;
    if (msg.checkpoint === null || (typeof msg.checkpoint === 'number' && Number.isSafeInteger(msg.checkpoint))) entry.checkpoint = msg.checkpoint;
    entry.lastAck = performance.now();
    entry.seqAtAck = this.options.beat()?.seq ?? msg.seq;
    // Both ends of the round trip are on this node's monotonic clock; an echo from the future is junk.
    if (typeof msg.sent === 'number' && msg.sent >= 0 && msg.sent <= entry.lastAck) entry.roundTripMs = entry.lastAck - msg.sent;
  }

  private send(only?: WebSocket): void {
    const beat = this.options.beat();
    if (beat === null) return;
    const text = JSON.stringify({ ...beat, sent: performance.now() } satisfies Heartbeat);
    for (const ws of only === undefined ? this.standbys.keys() : [only]) if (ws.readyState === WebSocket.OPEN) ws.send(text);
  }

  /** Tell the successor `to` that the lease was just released for it. */
  handover(from: string, to: string): void {
    const text = JSON.stringify({ type: 'handover', node: from, to } satisfies Handover);
    for (const [ws, s] of this.standbys) if (ws.readyState === WebSocket.OPEN && s.node === to) ws.send(text);
  }

  /** The connected secondaries and their lag. */
  standbyInfo(): StandbyInfo[] {
    const now = performance.now();
    return [...this.standbys.values()].map((s) => ({
      node: s.node,
      appliedSeq: s.appliedSeq,
      lag: Math.max(0, s.seqAtAck - s.appliedSeq),
      lastAckAgoMs: Math.round(now - s.lastAck),
      roundTripMs: s.roundTripMs === null ? null : Math.round(s.roundTripMs * 1000) / 1000,
      address: s.address,
      url: s.url,
      epoch: s.epoch,
      checkpoint: s.checkpoint,
    }));
  }

  /** Stop beating and drop every connection. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.options.server.off('upgrade', this.onUpgrade);
    for (const ws of this.standbys.keys()) ws.terminate();
    this.standbys.clear();
    this.wss.close();
  }
}

/** Options for {@link HeartbeatClient}. */
export interface HeartbeatClientOptions {
  node: string;
  token: () => string;
  logger: Logger;
  /** Called with each heartbeat; returns the seq and epoch this node has applied, and its newest checkpoint, which it answers. */
  onBeat: (beat: Heartbeat) => Promise<{ seq: number; epoch: number; checkpoint?: number | null }>;
  /** This node's API base URL, sent in each answer (the primary's cluster view shows it). */
  url?: () => string;
  /** Called when the primary says it just released the lease. */
  onHandover?: (message: Handover) => void;
  /** Called with the time between two heartbeats on one connection, on this node's monotonic clock: the pace the primary keeps (metrics). */
  onInterval?: (ms: number) => void;
  /** Silence counts from this moment (performance.now()) until the first heartbeat; default: construction. */
  silentSince?: number;
  /** How a wss connection verifies the primary's certificate. */
  tls?: HeartbeatTls;
}

/** How the client verifies the primary's certificate over wss; by default the system's authorities and the URL's host. */
export interface HeartbeatTls {
  /** PEM certificate authorities to trust instead of the system's (`failover.tls.ca`). */
  ca?: Buffer;
  /** The name the certificate must hold when it is not the host in the lease's URL (`failover.tls.serverName`). */
  serverName?: string;
}

/**
 * What to do about a failed connection if TLS failed it, or null when it is
 * not a TLS failure (a primary that is down or unreachable is the failover
 * manager's business, judged by silence).
 */
function tlsFix(error: Error, tls: HeartbeatTls): string | null {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return tls.serverName === undefined
      ? "the primary's certificate does not name the host of the URL in the lease: give the primary an api.publicUrl whose host its certificate names, or set failover.tls.serverName here"
      : "the primary's certificate does not name failover.tls.serverName: set it to a name the certificate holds";
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return "the primary's certificate is outside its validity dates: renew it (and check both clocks)";
  if (/CERT|UNABLE_TO|SIGNATURE|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH|CRL/.test(code)) {
    return tls.ca === undefined
      ? "the system's certificate authorities do not vouch for the primary's certificate: set failover.tls.ca to the CA that signed it"
      : "failover.tls.ca does not vouch for the primary's certificate: set it to the CA that signed it (or give the primary a certificate that CA signed)";
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code === 'EPROTO') {
    return 'the TLS handshake failed: check that the primary serves HTTPS (api.tls) on the port in its URL and that both ends share a TLS version';
  }
  return null;
}

/** The secondary's end: stays connected to the primary the lease names. */
export class HeartbeatClient {
  private ws: WebSocket | null = null;
  private url: string | null = null;
  private lastBeat: number;
  private backoffMs = HeartbeatReconnectMinMs;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;
  private refusedLogged = false;
  /** The code of the TLS failure last logged, so a retry that fails the same way says nothing new. */
  private tlsLogged: string | null = null;
  /** The last heartbeat received. */
  last: Heartbeat | null = null;

  constructor(private readonly options: HeartbeatClientOptions) {
    this.lastBeat = options.silentSince ?? performance.now();
  }

  /** Milliseconds since the last heartbeat (or since `silentSince`, or since this client started). */
  silentForMs(): number {
    return performance.now() - this.lastBeat;
  }

  /** Connect to the primary at `baseUrl` (its API base); a new URL drops the old connection. */
  target(baseUrl: string | null): void {
    if (this.closed || baseUrl === this.url) return;
    this.url = baseUrl;
    this.backoffMs = HeartbeatReconnectMinMs;
    this.ws?.terminate();
    this.ws = null;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    if (baseUrl !== null) this.connect();
  }

  private connect(): void {
    if (this.closed || this.url === null) return;
    const url = `${this.url.replace(/^http/, 'ws')}${HeartbeatPath}`;
    const tls = this.options.tls ?? {};
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.options.token()}` },
      handshakeTimeout: HeartbeatHandshakeTimeoutMs,
      // Always verified, never switchable: an unverified primary could feed this node false heartbeats.
      rejectUnauthorized: true,
      ...(tls.ca === undefined ? {} : { ca: tls.ca }),
      ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
    });
    this.ws = ws;
    // The first beat of a connection is sent as it opens, off the primary's beat; intervals count from the second.
    let previous: number | null = null;
    let beats = 0;
    ws.on('open', () => {
      this.backoffMs = HeartbeatReconnectMinMs;
      this.refusedLogged = false;
      this.tlsLogged = null;
      this.options.logger.info('heartbeat connected', { url });
    });
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode === 401 && !this.refusedLogged) {
        this.refusedLogged = true;
        this.options.logger.error('the primary refused the cluster token; check failover.clusterTokenFile on both nodes', { url });
      }
      ws.terminate();
    });
    ws.on('message', (data) => {
      let beat: Heartbeat | Handover;
      try {
        beat = JSON.parse(textOf(data)) as Heartbeat | Handover;
      } catch {
        return;
      }
      if (beat.type === 'handover') {
        this.options.onHandover?.(beat);
        return;
      }
      if (beat.type !== 'heartbeat') return;
      this.lastBeat = performance.now();
      beats += 1;
      if (previous !== null) this.options.onInterval?.(this.lastBeat - previous);
      if (beats >= 2) previous = this.lastBeat;
      this.last = beat;
      this.options.onBeat(beat).then(
        ({ seq, epoch, checkpoint }) => {
          const ack: HeartbeatAck = { type: 'ack', node: this.options.node, seq, epoch, sent: beat.sent, ...(this.options.url === undefined ? {} : { url: this.options.url() }), ...(checkpoint === undefined ? {} : { checkpoint }) };
          if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(ack));
        },
        (err: unknown) => this.options.logger.warn('applying the journal after a heartbeat failed', { error: (err as Error).message }),
      );
    });
    ws.on('error', (err) => {
      const fix = tlsFix(err, tls);
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
      if (fix === null || this.tlsLogged === code) return;
      this.tlsLogged = code;
      this.options.logger.warn('the heartbeat cannot connect over TLS; retrying', { url, code, reason: err.message, fix });
    });
    ws.on('close', () => {
      if (this.ws !== ws || this.closed) return;
      this.ws = null;
      this.retry = setTimeout(() => this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, HeartbeatReconnectMaxMs);
    });
  }

  /** Disconnect for good. */
  close(): void {
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    this.ws?.terminate();
    this.ws = null;
  }
}
