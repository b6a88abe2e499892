/**
 * The hostile-input suite: a seeded generator of requests over every route of
 * the API (the table below, checked against src/api/*-routes.ts so that a new
 * route cannot go unfuzzed), sent over raw TCP sockets (node:net) so that no
 * client library tidies up what is sent: traversal and junk path segments,
 * random methods, huge and malformed headers, Content-Length lies, bodies that
 * are random bytes, too big, malformed or 10,000-deep JSON, wrong types and
 * prototype-poisoning keys, bad and overlapping Range headers, Authorization
 * variants (none, wrong scheme, empty, huge, a member token on admin routes, a
 * revoked token), WebSocket upgrades without the cluster token, and crafted
 * checkpoint archives (zip-slip names, zip bombs, lying sizes, duplicate and
 * unlisted entries, a manifest that does not match) placed in the FileVault
 * and then listed, downloaded and restored through the API.
 *
 * The daemon is a healthy standalone primary whose whole world (config, data,
 * FileVault, cwd, TMPDIR) is under one temp folder with canary folders beside
 * it. What must hold: no 5xx answer (but /standby's 503, its documented answer
 * on a node that is not a standby), no request left hanging, the process never
 * exits, the objects written before the fuzz (and every write the fuzz itself
 * got acknowledged) read back identical, also after a restart, no crafted
 * archive is ever restored, and no file appears outside data/ and FileVault/.
 *
 * SOAK_SEED=N repeats a run exactly (the seed is printed first).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { childEnv, CliPath, DaemonProcess } from '../helpers/daemon-process.js';
import { rawCheckpoint, rawZip, type RawEntry } from '../helpers/raw-zip.js';
import type { Suite, SuiteOptions, SuiteReport } from './suite.js';
import { Rng, runSeed } from './workload.js';

const run = promisify(execFile);
const ApiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/api');

/** The daemon's request body limit in this suite: small, so that bodies past it are cheap to send. */
const BodyLimitBytes = 64 * 1024;
/** Node's default limit on the request head (431 beyond). */
const HeaderLimitBytes = 16 * 1024;
/** A request with no answer and no close after this long is a hang. */
const HangMs = 15_000;

// ---------------------------------------------------------------------------
// Seeded randomness

/** The workload's seeded generator, with the choices a fuzzer makes. */
class Dice extends Rng {
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  word(n: number, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }
}

// ---------------------------------------------------------------------------
// The route table

type Access = 'none' | 'any' | 'admin';

/** One route of the API: method, path template (Fastify's `:param`), who may call it. */
interface Route {
  method: string;
  path: string;
  access: Access;
}

/** Every route the daemon serves; {@link sourceRoutes} checks this against the source. */
const Routes: Route[] = [
  ...['/liveness', '/health', '/readiness', '/primary', '/standby', '/metrics'].map((p) => ({ method: 'GET', path: p, access: 'none' as const })),
  { method: 'POST', path: '/api/template', access: 'admin' },
  { method: 'GET', path: '/api/template', access: 'any' },
  { method: 'GET', path: '/api/template/:name/:version', access: 'any' },
  { method: 'POST', path: '/api/space', access: 'admin' },
  { method: 'GET', path: '/api/space', access: 'any' },
  { method: 'GET', path: '/api/space/:id', access: 'any' },
  { method: 'PUT', path: '/api/space/:id/template', access: 'admin' },
  { method: 'PUT', path: '/api/space/:id/object/:key', access: 'any' },
  { method: 'GET', path: '/api/space/:id/object/:key', access: 'any' },
  { method: 'DELETE', path: '/api/space/:id/object/:key', access: 'any' },
  { method: 'GET', path: '/api/space/:id/object', access: 'any' },
  { method: 'POST', path: '/api/space/:id/transaction', access: 'any' },
  { method: 'GET', path: '/api/admin/status', access: 'admin' },
  { method: 'GET', path: '/api/space/:spaceId/checkpoint', access: 'admin' },
  { method: 'POST', path: '/api/space/:spaceId/checkpoint', access: 'admin' },
  { method: 'GET', path: '/api/space/:spaceId/checkpoint/:id', access: 'admin' },
  { method: 'GET', path: '/api/space/:spaceId/checkpoint/:id/download', access: 'admin' },
  { method: 'POST', path: '/api/space/:spaceId/checkpoint/:id', access: 'admin' },
  { method: 'DELETE', path: '/api/space/:spaceId/checkpoint/:id', access: 'admin' },
  { method: 'GET', path: '/api/collection/checkpoint', access: 'admin' },
  { method: 'GET', path: '/api/collection/checkpoint/:id', access: 'admin' },
  { method: 'GET', path: '/api/collection/checkpoint/:id/download', access: 'admin' },
  { method: 'POST', path: '/api/collection/checkpoint/:id', access: 'admin' },
  { method: 'DELETE', path: '/api/collection/checkpoint/:id', access: 'admin' },
  { method: 'POST', path: '/api/admin/checkpoint', access: 'admin' },
  { method: 'POST', path: '/api/admin/failover/switchover', access: 'admin' },
  { method: 'POST', path: '/api/admin/failover/pause', access: 'admin' },
  { method: 'POST', path: '/api/admin/failover/resume', access: 'admin' },
];

/** `METHOD path` of every route registered in src/api/*-routes.ts (a `${x}` in a path expands over `for (const x of [...])`). */
export async function sourceRoutes(): Promise<string[]> {
  const found: string[] = [];
  for (const name of (await fs.readdir(ApiDir)).filter((n) => n.endsWith('-routes.ts'))) {
    const text = await fs.readFile(path.join(ApiDir, name), 'utf8');
    for (const m of text.matchAll(/app\.(get|post|put|delete|patch|head|options)\s*(?:<[^(]*?>)?\(\s*(['`])([^'`]+)\2/g)) {
      const [, method, , template] = m as unknown as [string, string, string, string];
      const variable = /\$\{(\w+)\}/.exec(template);
      if (variable === null) {
        found.push(`${method.toUpperCase()} ${template}`);
        continue;
      }
      const list = new RegExp(`const ${variable[1]} of \\[([^\\]]*)\\]`).exec(text);
      const values = list === null ? [] : [...list[1]!.matchAll(/'([^']*)'/g)].map((v) => v[1]!);
      if (values.length === 0) found.push(`${method.toUpperCase()} ${template}`); // cannot expand: reported as uncovered
      for (const v of values) found.push(`${method.toUpperCase()} ${template.replace(variable[0], v)}`);
    }
  }
  return found;
}

// ---------------------------------------------------------------------------
// Raw HTTP over a socket

/** What came back for one request. */
interface Exchange {
  /** The status of the first response, or null when the server closed without one. */
  status: number | null;
  /** The whole answer (head and body) as latin1 text. */
  text: string;
  hung: boolean;
}

/** Send `bytes` on a new connection and read until the server closes it (every request says `Connection: close`). */
async function exchange(port: number, bytes: Buffer, halfClose: boolean): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const finish = (hung: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      // The final status: past any interim 1xx (100 Continue) heads.
      let at = 0;
      let m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      while (m !== null && m[1]!.startsWith('1')) {
        at = text.indexOf('\r\n\r\n', at) + 4;
        m = at < 4 ? null : /^HTTP\/1\.[01] (\d{3})/.exec(text.slice(at));
      }
      resolve({ status: m === null ? null : Number(m[1]), text, hung });
    };
    const timer = setTimeout(() => finish(true), HangMs);
    socket.on('data', (c: Buffer) => {
      // Keep the head and a little body; a download's bytes are not needed.
      if (received < 256 * 1024) chunks.push(c);
      received += c.length;
    });
    socket.on('error', () => finish(false)); // ECONNRESET after a refusal: the server closed on us
    socket.on('close', () => finish(false));
    socket.on('connect', () => {
      socket.write(bytes, () => {
        if (halfClose) socket.end();
      });
    });
  });
}

/** A request to send. */
interface Outgoing {
  method: string;
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /** Bytes to send instead of building a request (malformed HTTP). */
  raw?: Buffer;
  /** End our side after sending (the server sees EOF): for bodies shorter than their Content-Length. */
  halfClose?: boolean;
  /** The route's template, or a class of junk, for counting. */
  label: string;
}

function serialize(o: Outgoing): Buffer {
  if (o.raw !== undefined) return o.raw;
  const head = [`${o.method} ${o.target} HTTP/1.1`, ...o.headers.map(([k, v]) => `${k}: ${v}`)].join('\r\n') + '\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), o.body ?? Buffer.alloc(0)]);
}

// ---------------------------------------------------------------------------
// Inputs

const JsonCt = 'application/json';
const Versions = ['1.0', '1.1', '2.0'];
const Keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'a.b', 'x~y', 'p@q:r', 'n-1_2'];

/** Path segments meant to escape, confuse a decoder, or be too long. */
function junkSegment(d: Dice): string {
  const forms = [
    '..', '.', '...', '%2e%2e', '%2E%2E', '.%2e', '%2e.', '..%2f..%2f..%2fetc%2fpasswd', '%2f', '%2F..%2F', '%5c', '..%5c..%5c', '..;', '%00', 'a%00b', '%2500',
    '%c0%ae%c0%ae', '%c0%af', '%e0%80%ae', '%ff%fe', '%', '%z', '%zz', '%c0', '%e2%80%ae', '%f0%9f%98%80', '%ef%bb%bf', '%0a', '%0d%0a', '%7f', '%20', '+', '*',
    ';', ',', '@', ':', '~', '$', '!', "'", '(', ')', '%3f', '%23', '%25', 'CON', 'nul', 'aux.txt', '-', '_', '.hidden', 'a..b',
    'x'.repeat(65), 'x'.repeat(257), 'x'.repeat(513), 'x'.repeat(d.pick([600, 2000, 9000])), '%2e'.repeat(200),
    '1', '0', '-1', '1e3', '0x10', '00000000000000000001', '9'.repeat(20), '1.0', String(2 ** 53), 'Infinity', 'NaN', 'null', 'undefined', '__proto__', 'constructor', 'prototype', 'toString',
    'plm', 'fuzz', 'k1',
  ];
  const r = d.next();
  if (r < 0.75) return d.pick(forms);
  if (r < 0.85) return d.word(1 + d.int(20));
  if (r < 0.93) return encodeURIComponent(String.fromCodePoint(...Array.from({ length: 1 + d.int(4) }, () => 0x80 + d.int(0x2ff00)).filter((c) => c < 0xd800 || c > 0xdfff)));
  return [...d.bytes(1 + d.int(6))].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

/** A random JSON value, sometimes big or odd. */
function jsonValue(d: Dice, depth = 0): unknown {
  const r = d.int(depth > 3 ? 6 : 9);
  switch (r) {
    case 0: return null;
    case 1: return d.chance(0.5);
    case 2: return d.pick([0, -0, 1, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 1, 4711]);
    case 3: return d.word(d.int(30));
    case 4: return d.pick(['', '\u0000', '\ud83d\ude00', '\u202e', 'ÿ', '"\\', '\n\r\t']);
    case 5: return d.word(d.int(5), 'PartDoc');
    case 6: return Array.from({ length: d.int(5) }, () => jsonValue(d, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = d.int(5); i > 0; i--) o[d.pick(['type', 'n', 'name', 'x', d.word(3)])] = jsonValue(d, depth + 1);
      if (d.chance(0.5)) o.type = d.pick(['Part', 'Doc', 7, null, ['Part']]);
      return o;
    }
  }
}

/** A value of some JSON type, to put where another type belongs. */
function wrongType(d: Dice): unknown {
  return d.pick<unknown>([null, true, 0, -1, 1.5, '', 'x', [], [1], {}, { a: 1 }, 'x'.repeat(5000), ['plm'], { name: 'plm', version: '1.0' }]);
}

/** Replace, drop or add one field somewhere in `value` (a copy). */
function mutate(d: Dice, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return wrongType(d);
  const copy = structuredClone(value) as Record<string, unknown>;
  const keys = Object.keys(copy);
  const r = d.int(4);
  if (r === 0 || keys.length === 0) copy[d.pick(['extra', 'ID', 'id ', '', '\u0000', 'constructor'])] = wrongType(d);
  else if (r === 1) delete copy[d.pick(keys)];
  else if (r === 2) {
    const k = d.pick(keys);
    copy[k] = mutate(d, copy[k]);
  } else copy[d.pick(keys)] = wrongType(d);
  return Array.isArray(value) ? Object.values(copy) : copy;
}

/** Bodies that are not what any route wants. */
function hostileBody(d: Dice): Buffer {
  const deep = (n: number, open: string, close: string): string => open.repeat(n) + close.repeat(n);
  const forms: (() => string | Buffer)[] = [
    () => d.bytes(d.int(2000)),
    () => Buffer.alloc(BodyLimitBytes + 1 + d.int(BodyLimitBytes), 0x20),
    () => `{"x":"${'y'.repeat(BodyLimitBytes + 10)}"}`,
    () => deep(10_000, '[', ']'),
    () => deep(10_000, '{"a":', '}').replace(/}$/, '1}'),
    () => `{"a":${deep(5000, '[', ']')}}`,
    () => '{"__proto__":{"polluted":true}}',
    () => '{"constructor":{"prototype":{"polluted":true}}}',
    () => '{"ops":[{"op":"put","key":"k1","value":{"__proto__":{"x":1}}}]}',
    () => '{"a":1,"a":2}',
    () => '{"a":1,}',
    () => "{'a':1}",
    () => '{"a":NaN}',
    () => '{"a":Infinity}',
    () => '{"a":1e99999}',
    () => '\ufeff{"a":1}',
    () => '{"a":"\\ud800"}',
    () => '{"a":"\\u0000"}',
    () => '{"a":',
    () => '"',
    () => '',
    () => '   ',
    () => 'null',
    () => '[]',
    () => '123',
    () => 'true',
    () => '"string"',
    () => JSON.stringify(jsonValue(d)),
    () => JSON.stringify(wrongType(d)),
    () => JSON.stringify({ ops: Array.from({ length: 10_001 }, (_, i) => ({ op: 'delete', key: `k${i}` })) }),
    () => JSON.stringify({ ops: [] }),
  ];
  const made = d.pick(forms)();
  return typeof made === 'string' ? Buffer.from(made, 'utf8') : made;
}

/** Range headers: valid, bad syntax, overlapping, reversed, past the end, huge. */
function rangeHeader(d: Dice): string {
  return d.pick([
    'bytes=0-10', 'bytes=5-1', 'bytes=-0', 'bytes=-1', 'bytes=0-', 'bytes=0-0,0-0,1-1', 'bytes=0-100,50-150', 'bytes=10-5,1-2', 'bytes=999999999-',
    'bytes=99999999999999999999999-', 'bytes=-99999999999999999999', 'bytes=0-99999999999999999999', 'bytes=abc', 'bytes=', 'bytes=,', 'bytes=0-1,', 'bytes= 1 - 2',
    'items=0-1', 'bytes 0-1', 'bytes=--1', 'bytes=1--2', 'bytes=0x10-0x20', 'bytes=1.5-2', 'bytes=-', '=0-1', 'bytes==0-1', 'BYTES=0-3',
    `bytes=${Array.from({ length: 500 }, (_, i) => `${i}-${i}`).join(',')}`, `bytes=0-${'9'.repeat(400)}`,
  ]);
}

// ---------------------------------------------------------------------------
// The world: a temp root with canaries around the daemon's folder

/** Every file (not folder) under `dir`, relative to it, with symlinks listed as files. */
async function walk(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(full, base)));
    else out.push(path.relative(base, full));
  }
  return out;
}

/** The space the malformed-HTTP writes go to, whose content the fuzz does not check. */
const Untracked = 'raw';

const CanaryText = 'canary: the fuzz checks that nothing is written here\n';

/** A crafted checkpoint and what it is meant to break. */
interface Crafted {
  id: number;
  what: string;
  bytes: Buffer;
}

/** Store lines that differ from the real `keep` space: a crafted archive restored would show. */
const Lines = Buffer.from('{"key":"evil","value":{"type":"Crafted"}}\n{"key":"k0","value":{"type":"Crafted"}}\n');
const Store = 'space/keep/store/objects.ndjson';

/** Hostile checkpoint archives, each covering the `keep` space with its template, and each wrong in one way. */
function craftedArchives(firstId: number): Crafted[] {
  const out: Crafted[] = [];
  const add = (what: string, make: (id: number) => Buffer): void => {
    const id = firstId + out.length;
    out.push({ id, what, bytes: make(id) });
  };
  // The manifest as a real one would read for Lines (two objects), with the file's id: only the intended flaw remains.
  const setId = (id: number) => (m: Record<string, unknown>): void => {
    m.id = id;
    for (const space of m.spaces as { objects: number }[]) space.objects = 2;
  };
  const entry = (name: string, content = Lines, more: Partial<RawEntry> = {}): RawEntry => ({ name, content, ...more });
  for (const name of ['../canary-before/slipped', '../../slipped', '/tmp/cpd-fuzz-slipped', 'space/keep/store/../../../../../slipped', 'space\\..\\..\\slipped', 'C:/slipped', 'space/keep/store/a\u0000b']) {
    add(`zip-slip entry ${JSON.stringify(name)}`, (id) => rawCheckpoint([entry(Store), entry(name)], { edit: setId(id) }));
  }
  add('zip bomb (20 MiB of zeros in 20 KiB, listed as 1000 bytes)', (id) =>
    rawCheckpoint([{ name: Store, content: Buffer.alloc(1000, 0x20), method: 'deflate', rawData: zlib.deflateRawSync(Buffer.alloc(20 * 1024 * 1024)) }], { edit: setId(id) }),
  );
  add('entry declaring 4 GiB - 1 (manifest agrees)', (id) =>
    rawCheckpoint([entry(Store, Lines, { method: 'deflate', declaredSize: 0xffffffff })], { edit: setId(id), listed: [{ name: Store, content: Lines, size: 0xffffffff }] }),
  );
  add('manifest lists another SHA-256', (id) => rawCheckpoint([entry(Store)], { edit: setId(id), listed: [{ name: Store, content: Buffer.from('other') , size: Lines.length }] }));
  add('manifest lists another size', (id) => rawCheckpoint([entry(Store)], { edit: setId(id), listed: [{ name: Store, content: Lines, size: Lines.length + 7 }] }));
  add('duplicate entry', (id) => rawCheckpoint([entry(Store), entry(Store)], { edit: setId(id), listed: [{ name: Store, content: Lines }] }));
  add('unlisted entry', (id) => rawCheckpoint([entry(Store), entry('space/keep/store/extra.ndjson')], { edit: setId(id), listed: [{ name: Store, content: Lines }] }));
  add('manifest.json not first', (id) => rawCheckpoint([entry(Store)], { edit: setId(id), before: [entry('space/keep/index/a')] }));
  add('manifest with a __proto__ key', (id) => rawCheckpoint([entry(Store)], { edit: (m) => { setId(id)(m); Object.defineProperty(m, '__proto__', { value: { polluted: true }, enumerable: true }); } }));
  add('manifest declaring more than 16 MiB', () => rawZip([{ name: 'manifest.json', content: Buffer.from('{}'), method: 'deflate', declaredSize: 16 * 1024 * 1024 + 1 }]));
  add('CRC-32 that does not match', (id) => rawCheckpoint([entry(Store, Lines, { crc: 1234 })], { edit: setId(id) }));
  add('truncated', (id) => {
    const whole = rawCheckpoint([entry(Store)], { edit: setId(id) });
    return whole.subarray(0, whole.length - 30);
  });
  add('not a ZIP', () => Buffer.from('PK\u0003\u0004 this is not a zip at all'));
  add('empty file', () => Buffer.alloc(0));
  return out;
}

// ---------------------------------------------------------------------------
// The run

/** What the fuzz knows the data to be. */
type Model = Map<string, Map<string, string>>;

interface Counter {
  [key: string]: number;
}

function bump(c: Counter, key: string, by = 1): void {
  c[key] = (c[key] ?? 0) + by;
}

/** Run the suite: `trials` requests. */
export async function runFuzz(options: SuiteOptions): Promise<SuiteReport> {
  const seed = runSeed(options.log);
  const d = new Dice(seed);
  const violations: string[] = [];
  const violate = (v: string): void => {
    if (violations.length < 200) violations.push(v);
    if (violations.length <= 20) options.log(`VIOLATION: ${v}`);
  };

  // The routes in the source must all be in the table.
  const table = new Set(Routes.map((r) => `${r.method} ${r.path}`));
  for (const r of await sourceRoutes()) if (!table.has(r)) violate(`route ${r} (in src/api) is not in the fuzz's route table`);

  const tmpBefore = new Set(await fs.readdir(os.tmpdir()));
  const world = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-fuzz-'));
  const root = path.join(world, 'root');
  const daemonTmp = path.join(world, 'tmp');
  const canaries = ['canary-before', 'canary-after', 'tmp'];
  for (const c of [...canaries, 'root']) await fs.mkdir(path.join(world, c));
  for (const c of canaries.slice(0, 2)) await fs.writeFile(path.join(world, c, 'canary.txt'), CanaryText);
  await fs.writeFile(path.join(world, 'canary.txt'), CanaryText);

  const statusCounts: Counter = {};
  const byRoute: Record<string, Counter> = {};
  const figures: Record<string, number> = { requests: 0, answered: 0, closedWithoutAnswer: 0, fiveXX: 0, hangs: 0, crashes: 0, outsideFiles: 0, rawMalformed: 0, wsUpgrades: 0, wsRefused: 0, craftedPlaced: 0, craftedRestoreAttempts: 0, craftedRestored: 0, acknowledgedWrites: 0, hugeHeaders: 0, hugeBodies: 0, deepJson: 0, rangeRequests: 0, traversalPaths: 0, authVariants: 0, routesInTable: Routes.length, routesCovered: 0 };
  const started = performance.now();
  let daemon: DaemonProcess | null = null;
  try {
    daemon = await DaemonProcess.start({ dir: root, config: { api: { bodyLimitBytes: BodyLimitBytes } }, env: { TMPDIR: daemonTmp, TMP: daemonTmp, TEMP: daemonTmp } });
    const admin = daemon.token;
    const cli = async (args: string[]): Promise<string> => (await run(process.execPath, [CliPath, ...args, '--config', daemon!.configFile], { env: childEnv(), cwd: root })).stdout.trim();
    const member = await cli(['token', 'create', '--name', 'fuzz-member', '--role', 'member']);
    const revoked = await cli(['token', 'create', '--name', 'fuzz-revoked', '--role', 'member']);
    // Revoke as an operator does: remove its entry from the tokens file (the daemon re-reads a changed file).
    const tokensFile = path.join(root, 'data', 'tokens.json');
    const tokens = JSON.parse(await fs.readFile(tokensFile, 'utf8')) as { tokens: { name: string }[] };
    tokens.tokens = tokens.tokens.filter((t) => t.name !== 'fuzz-revoked');
    await fs.writeFile(`${tokensFile}.new`, JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 });
    await fs.rename(`${tokensFile}.new`, tokensFile);

    const ok = async (method: string, p: string, body?: unknown): Promise<unknown> => {
      const res = await daemon!.request(method, p, body === undefined ? {} : { body });
      if (res.status >= 300) throw new Error(`setup ${method} ${p}: ${res.status} ${res.text}`);
      return res.body;
    };
    await ok('POST', '/api/template', { name: 'plm', version: '1.0', indexes: ['type'] });
    await ok('POST', '/api/template', { name: 'plm', version: '1.1', indexes: ['type'] });
    await ok('POST', '/api/space', { id: 'keep', template: { name: 'plm', version: '1.0' } });
    await ok('POST', '/api/space', { id: 'fuzz', template: { name: 'plm', version: '1.0' } });
    // Malformed HTTP writes here; the server may act on some of them (Node accepts "Transfer-Encoding: gzip, chunked", say) without the fuzz modelling it.
    await ok('POST', '/api/space', { id: Untracked, template: { name: 'plm', version: '1.0' } });
    const known = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      const value = { type: i % 2 === 0 ? 'Part' : 'Doc', n: i, text: `known ${i} \u00e9\u4e2d\ud83d\ude00`, nested: { list: [i, String(i), null, true] } };
      await ok('PUT', `/api/space/keep/object/k${i}`, value);
      known.set(`k${i}`, JSON.stringify(value));
    }
    // A restore of keep from a genuine checkpoint (allowed: keep is the same in all of them) moves its updatedSeq only.
    const spaceShape = (body: unknown): string => {
      const { id, template, objectCount } = ((body as { data?: Record<string, unknown> }).data ?? {});
      return JSON.stringify({ id, template, objectCount });
    };
    const keepSpace = spaceShape(await ok('GET', '/api/space/keep'));
    const baseline = ((await ok('POST', '/api/admin/checkpoint', { description: 'fuzz baseline' })) as { data: { id: number } }).data.id;
    const genuine = new Set<number>([baseline]);

    const checkpointDir = path.join(root, 'FileVault', 'checkpoint');
    const crafted = craftedArchives(100);
    for (const c of crafted) await fs.writeFile(path.join(checkpointDir, `Checkpoint-${String(c.id).padStart(9, '0')}`), c.bytes);
    figures.craftedPlaced = crafted.length;
    const craftedIds = new Set(crafted.map((c) => c.id));
    options.log(`daemon up (pid ${daemon.child.pid}), ${crafted.length} crafted checkpoints placed, ${Routes.length} routes; ${options.trials} requests`);

    // Every crafted archive once, in order: is it listed, and what do a download and both restores answer?
    const listed = new Set((((await ok('GET', '/api/collection/checkpoint')) as { data: { data: { id: number } }[] }).data).map((e) => e.data.id));
    for (const c of crafted) {
      const answers: string[] = [];
      for (const [method, p] of [['GET', `/api/collection/checkpoint/${c.id}/download`], ['POST', `/api/collection/checkpoint/${c.id}`], ['POST', `/api/space/keep/checkpoint/${c.id}`]] as const) {
        const res = await daemon.request(method, p);
        bump(figures, 'craftedChecks');
        const detail = method === 'POST' && res.status !== 404 ? ` (${String((res.body as { detail?: unknown }).detail).slice(0, 160)})` : '';
        answers.push(`${method === 'GET' ? 'download' : p.includes('space') ? 'space restore' : 'restore'} ${res.status}${detail}`);
        if (res.status >= 500) violate(`${res.status} for ${method} ${p} (${c.what}): ${res.text.slice(0, 300)}`);
        if (method === 'POST') {
          bump(figures, 'craftedRestoreAttempts');
          if (res.status < 300) {
            bump(figures, 'craftedRestored');
            violate(`crafted checkpoint ${c.id} (${c.what}) was restored: ${res.status}`);
          }
        }
      }
      options.log(`crafted ${c.id} ${c.what}: ${listed.has(c.id) ? 'listed' : 'not listed'}, ${answers.join(', ')}`);
    }

    const model: Model = new Map([['keep', new Map(known)], ['fuzz', new Map<string, string>()]]);
    const port = Number(new URL(daemon.url).port);

    /** Read every space and object back; the model becomes what the daemon has (after a restore, which legitimately rolls data back). */
    const rebaseline = async (): Promise<void> => {
      model.clear();
      const spaces = (await ok('GET', '/api/space')) as { data: { data: { id: string } }[] };
      for (const s of spaces.data) {
        if (s.data.id === Untracked) continue;
        const objects = (await daemon!.query(`/api/space/${s.data.id}/object`)).body as { data: { key: string; data: unknown }[] };
        model.set(s.data.id, new Map(objects.data.map((o) => [o.key, JSON.stringify(o.data)])));
      }
    };

    // -- generating one request ------------------------------------------------
    const authHeader = (route: Route): [string, string][] => {
      const r = d.next();
      if (r < 0.62) return [['Authorization', `Bearer ${admin}`]];
      if (r < 0.75) return [['Authorization', `Bearer ${member}`]];
      bump(figures, 'authVariants');
      return d.pick<() => [string, string][]>([
        () => [],
        () => [['Authorization', '']],
        () => [['Authorization', 'Bearer']],
        () => [['Authorization', 'Bearer ']],
        () => [['Authorization', `Bearer  ${admin}`]],
        () => [['Authorization', `bearer ${admin}`]],
        () => [['Authorization', `Basic ${Buffer.from(`admin:${admin}`).toString('base64')}`]],
        () => [['Authorization', admin]],
        () => [['Authorization', `Bearer ${revoked}`]],
        () => [['Authorization', `Bearer ${admin.slice(0, -1)}${admin.endsWith('A') ? 'B' : 'A'}`]],
        () => [['Authorization', `Bearer ${admin}x`]],
        () => [['Authorization', `Bearer cpd_${'A'.repeat(d.pick([10, 511, 600, 8000]))}`]],
        () => [['Authorization', `Bearer ${'\u00e9\u00ff'.repeat(20)}`]],
        () => [['Authorization', `Bearer ${admin}`], ['Authorization', `Bearer ${member}`]],
        () => [['Authorization', `Bearer ${member}`], ['Authorization', `Bearer ${admin}`]],
        () => [['Authorization', `Bearer ${route.access === 'admin' ? member : admin}`]],
      ])();
    };

    const craftedOrGenuineId = (forDelete: boolean): string => {
      const r = d.next();
      if (r < 0.35 && !forDelete) return String(d.pick([...craftedIds]));
      if (r < 0.6 && genuine.size > 0) return String(d.pick([...genuine]));
      if (r < 0.7) return String(999_000 + d.int(1000));
      return junkSegment(d);
    };

    const fill = (route: Route, method: string, careful = false): { target: string; params: Record<string, string>; junk: boolean } => {
      const mutating = method !== 'GET' && method !== 'HEAD';
      const params: Record<string, string> = {};
      let junk = false;
      route.path.replace(/:(\w+)/g, (_m, name: string) => {
        let value: string;
        if (!careful && d.chance(0.2)) {
          value = junkSegment(d);
          junk = true;
        } else if (name === 'id' && route.path.includes('checkpoint')) value = careful && genuine.size > 0 ? String(d.pick([...genuine])) : craftedOrGenuineId(method === 'DELETE');
        else if (name === 'id' || name === 'spaceId') {
          const spaces = [...model.keys()].filter((s) => !(mutating && s === 'keep' && !route.path.includes('checkpoint')));
          value = d.pick(spaces.length > 0 ? spaces : ['fuzz']);
        } else if (name === 'key') value = d.pick(Keys);
        else if (name === 'name') value = d.pick(['plm', 'fz']);
        else if (name === 'version') value = d.pick(Versions);
        else value = junkSegment(d);
        params[name] = value;
        return value;
      });
      // Restoring keep from a checkpoint is allowed (keep is the same in every genuine one); writing to it is not.
      if (mutating && params.id === 'keep' && !route.path.includes('checkpoint')) params.id = 'fuzz';
      return { target: route.path.replace(/:(\w+)/g, (_m, name: string) => params[name] ?? ''), params, junk };
    };

    const validBody = (route: Route, params: Record<string, string>): unknown => {
      switch (`${route.method} ${route.path}`) {
        case 'POST /api/template':
          return { name: d.pick(['plm', 'fz', d.word(4)]), version: d.pick(Versions), indexes: d.chance(0.5) ? ['type'] : d.pick([[], ['n'], ['type', 'n']]) };
        case 'POST /api/space':
          return { id: d.chance(0.2) ? d.pick(['keep', 'fuzz']) : `s${d.word(4)}`, template: { name: 'plm', version: d.pick(Versions) } };
        case 'PUT /api/space/:id/template':
          return { version: d.pick(Versions) };
        case 'PUT /api/space/:id/object/:key':
          return jsonValue(d);
        case 'POST /api/space/:id/transaction': {
          const objects = model.get(params.id ?? '') ?? new Map<string, string>();
          const ops = Array.from({ length: 1 + d.int(4) }, () =>
            d.chance(0.7) || objects.size === 0 ? { op: 'put', key: d.pick(Keys), value: jsonValue(d) } : { op: 'delete', key: d.pick([...objects.keys()]) },
          );
          return { ops };
        }
        case 'POST /api/space/:spaceId/checkpoint':
        case 'POST /api/admin/checkpoint':
          return d.pick<unknown>([undefined, { description: `fuzz ${d.word(5)}` }, {}]);
        case 'POST /api/admin/failover/switchover':
          return d.pick<unknown>([undefined, {}, { candidate: d.word(5) }]);
        default:
          return undefined;
      }
    };

    let round: Route[] = [];
    const nextRoute = (): Route => {
      if (round.length === 0) {
        round = [...Routes];
        for (let i = round.length - 1; i > 0; i--) {
          const j = d.int(i + 1);
          [round[i], round[j]] = [round[j]!, round[i]!];
        }
      }
      return round.pop()!;
    };

    /**
     * A request on `route` as a well-behaved client sends it: its method, no junk in the path, the admin token, a
     * valid body. Late in the run, for the routes no request has reached with an answer below 400 yet, so that a
     * route whose handler rejects good requests shows, whatever the seed drew for it.
     */
    const carefulRequest = (route: Route): { out: Outgoing; route: Route; params: Record<string, string>; seen?: Buffer } => {
      const { target, params } = fill(route, route.method, true);
      const headers: [string, string][] = [['Host', '127.0.0.1'], ['Connection', 'close']];
      if (route.access !== 'none') headers.push(['Authorization', `Bearer ${admin}`]);
      const sent = validBody(route, params);
      const body = sent === undefined ? undefined : Buffer.from(JSON.stringify(sent), 'utf8');
      if (body !== undefined) headers.push(['Content-Type', JsonCt], ['Content-Length', String(body.length)]);
      return { out: { method: route.method, target, headers, ...(body === undefined ? {} : { body }), halfClose: false, label: `${route.method} ${route.path}` }, route, params, ...(body === undefined ? {} : { seen: body }) };
    };

    /** A request on a route; `seen` is the body as the server reads it (its Content-Length), undefined when it never ends. */
    const routeRequest = (): { out: Outgoing; route: Route; params: Record<string, string>; seen?: Buffer } => {
      // Writes weigh three times: they are what could corrupt data. The others come in turns (each turn a shuffled
      // round of the table), so that every route gets its share: drawn at random, a route could get half of it, and
      // the few whose valid request is rare (a restore of a genuine checkpoint) go unanswered below 400 in some seeds.
      const route = d.chance(0.15) ? d.pick(Routes.filter((r) => r.path.startsWith('/api/space/:id/') && r.method !== 'GET')) : nextRoute();
      const method = d.chance(0.88) ? route.method : d.pick(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT', 'PROPFIND', 'get', 'X'.repeat(40)]);
      const { target: base, params, junk } = fill(route, method);
      if (junk) bump(figures, 'traversalPaths');
      let target = base;
      if (d.chance(0.1)) target += `?${d.pick(['type=Part', 'type=Part&type=Doc', 'n=1', 'nope=1', `token=${admin}`, 'a[b]=1', '__proto__[x]=1', '%zz=1', 'type=%00', `x=${'y'.repeat(9000)}`, '&&&', '=', 'type'])}`;
      const headers: [string, string][] = [['Host', '127.0.0.1'], ['Connection', 'close'], ...(route.access === 'none' && d.chance(0.7) ? [] : authHeader(route))];
      let sent: unknown;
      let body: Buffer | undefined;
      const r = d.next();
      if (r < 0.55) {
        sent = validBody(route, params);
        if (sent !== undefined && d.chance(0.15)) sent = mutate(d, sent);
        if (sent !== undefined) body = Buffer.from(JSON.stringify(sent), 'utf8');
      } else if (r < 0.85) {
        body = hostileBody(d);
        if (body.length > BodyLimitBytes) bump(figures, 'hugeBodies');
        if (body[0] === 0x5b && body.length >= 20_000) bump(figures, 'deepJson');
      }
      let ct = body === undefined ? null : JsonCt;
      if (d.chance(0.12)) {
        ct = d.pick([null, '', 'text/plain', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'APPLICATION/JSON', 'application/jsonx', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json, text/plain', '*/*', ';;;', 'application/json; boundary=' + 'x'.repeat(3000)]);
      }
      if (ct !== null) headers.push(['Content-Type', ct]);
      if (d.chance(0.03)) headers.push(['Content-Type', d.pick(['text/plain', JsonCt])]);
      let halfClose = false;
      let seen = body;
      if (body !== undefined) {
        const lie = d.chance(0.06);
        if (lie && d.chance(0.5)) {
          headers.push(['Content-Length', String(body.length + 1 + d.int(100))]); // more than is sent, then EOF: the server must not wait forever
          halfClose = true;
          seen = undefined;
        } else if (lie) {
          const length = Math.max(0, body.length - 1 - d.int(10)); // less than is sent: the rest is a next request
          headers.push(['Content-Length', String(length)]);
          seen = body.subarray(0, length);
        } else headers.push(['Content-Length', String(body.length)]);
      } else if (d.chance(0.05)) {
        headers.push(['Content-Length', '0']);
      }
      if (route.path.endsWith('download') || d.chance(0.05)) {
        bump(figures, 'rangeRequests');
        headers.push(['Range', rangeHeader(d)]);
        if (d.chance(0.2)) headers.push(['If-Range', d.pick(['"x"', 'W/"x"', new Date(0).toUTCString(), '*'])]);
        if (d.chance(0.1)) headers.push(['If-None-Match', d.pick(['*', '"abc"', ', ,', 'x'.repeat(5000)])]);
      }
      if (d.chance(0.03)) {
        bump(figures, 'hugeHeaders');
        headers.push(['X-Huge', 'h'.repeat(d.pick([8000, HeaderLimitBytes - 200, HeaderLimitBytes + 10, 64 * 1024]))]);
      }
      if (d.chance(0.02)) for (let i = 0; i < d.pick([100, 2100]); i++) headers.push([`X-Many-${i}`, 'v']);
      return { out: { method, target, headers, ...(body === undefined ? {} : { body }), halfClose, label: `${method} ${route.path}` }, route, params, ...(seen === undefined ? {} : { seen }) };
    };

    /** A request for a path that no route has, meant to escape or confuse the router. */
    const junkPathRequest = (): Outgoing => {
      bump(figures, 'traversalPaths');
      const parts = Array.from({ length: 1 + d.int(6) }, () => (d.chance(0.6) ? junkSegment(d) : d.pick(['api', 'space', 'checkpoint', 'collection', 'admin', 'object', 'FileVault', 'data', 'etc', 'passwd', 'tokens.json', 'admin.token'])));
      const target = d.pick([
        `/${parts.join('/')}`,
        `/api/${parts.join('/')}`,
        `/api/space/${parts.join('/')}`,
        `//${parts.join('//')}`,
        `/api/space/fuzz/object/${parts.join('%2f')}`,
        `/api/collection/checkpoint/${parts.join('/')}/download`,
        `/${'a/'.repeat(2000)}`,
        `/api/space/${'x'.repeat(9000)}`,
        '*',
        `http://127.0.0.1:${port}/api/space`,
        `http://evil.example/../../etc/passwd`,
        '/api/space?' + '&'.repeat(5000),
        '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
        '/api/../../../../etc/passwd',
        '/api/space/..%2f..%2f..%2fdata%2ftokens.json',
        '/api/space/fuzz/object/..%252f..%252fetc',
      ]);
      return { method: d.pick(['GET', 'GET', 'PUT', 'DELETE', 'POST', 'HEAD']), target, headers: [['Host', '127.0.0.1'], ['Connection', 'close'], ['Authorization', `Bearer ${admin}`]], label: 'junk path' };
    };

    /** Bytes that are not quite HTTP, for the server's parser. */
    const malformedRequest = (): Outgoing => {
      bump(figures, 'rawMalformed');
      const auth = `Authorization: Bearer ${admin}\r\n`;
      const forms: (() => string | Buffer)[] = [
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\nX-Bad: a\u0000b\r\n\r\n`,
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\n${auth}Bad Header: x\r\nConnection: close\r\n\r\n`,
        () => `GET /api/sp\u0000ace HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        () => `GET /api/space\u0001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        () => `GET /api/space/${'\u00e9'}x HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"a":1}`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{"a":1}`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{"a":1}\r\n0\r\n\r\n`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: -1\r\nConnection: close\r\n\r\n{"a":1}`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 99999999999999999999\r\nConnection: close\r\n\r\n{"a":1}`,
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\nX-Huge: ${'h'.repeat(HeaderLimitBytes + 100)}\r\n\r\n`,
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'A'.repeat(HeaderLimitBytes * 2)}\r\nConnection: close\r\n\r\n`,
        () => `GET /${'a'.repeat(HeaderLimitBytes + 100)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\u0000\r\nConnection: close\r\n\r\n`,
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n ${admin}\r\nConnection: close\r\n\r\n`,
        () => `GET /api/space HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n`,
        () => `GET /api/space\r\n\r\n`,
        () => `GET\r\n\r\n`,
        () => ` / HTTP/1.1\r\n\r\n`,
        () => `GET /api/space HTTP/1.1\nHost: x\n${auth.replace('\r', '')}Connection: close\n\n`,
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\nGET /liveness HTTP/1.1\r\n\r\n`,
        () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
        () => '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
        () => d.bytes(1 + d.int(3000)),
        () => `GET /api/space HTTP/1.1\r\n${'X: y\r\n'.repeat(3000)}\r\n`,
        () => `POST /api/admin/checkpoint HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
        () => `DELETE /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 4\r\nConnection: close\r\n\r\nnull`,
      ];
      // Requests that promise more body than they send: the client then closes its side, and the server must answer or close.
      const unfinished: (() => string)[] = [
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffff\r\n{"a":1}\r\n0\r\n\r\n`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\n{"a":1}\r\n`,
        () => `PUT /api/space/raw/object/k1 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{"a":`,
        () => `GET /api/space HTTP/1.1\r\nHost: x\r\n${auth}X-Cut: `,
      ];
      const cut = d.chance(0.15);
      const made = cut ? d.pick(unfinished)() : d.pick(forms)();
      // Random bytes may be the start of a request line ("B"): the server waits for the rest as for any slow client, until
      // its request timeout (30 s, past HangMs), so the fuzz ends its side for them, as for the unfinished requests.
      const bytes = typeof made !== 'string';
      return { method: '', target: '', headers: [], raw: bytes ? made : Buffer.from(made, 'latin1'), label: 'malformed HTTP', halfClose: cut || bytes || d.chance(0.5) };
    };

    /** A WebSocket upgrade without the cluster token (the fuzz never knows it: a peer must be refused before any frame). */
    const upgradeRequest = (): Outgoing => {
      bump(figures, 'wsUpgrades');
      const auth = d.pick([[], [['Authorization', `Bearer ${admin}`]], [['Authorization', 'Bearer cpdc_wrong']], [['Authorization', '']], [['Authorization', 'Bearer ' + 'x'.repeat(10_000)]]] as [string, string][][]);
      return {
        method: 'GET',
        target: d.pick(['/api/failover', '/api/failover?token=x', '/api/failover/', '/api/space', '/nope', '/api/%66ailover']),
        headers: [['Host', '127.0.0.1'], ['Connection', 'Upgrade'], ['Upgrade', d.pick(['websocket', 'h2c', 'WebSocket'])], ['Sec-WebSocket-Version', d.pick(['13', '8', 'x'])], ['Sec-WebSocket-Key', d.pick(['dGhlIHNhbXBsZSBub25jZQ==', '', 'x'])], ...auth],
        label: 'websocket upgrade',
      };
    };

    /**
     * A crafted checkpoint read, downloaded (with a Range, maybe) or restored by an admin: never a 5xx, never
     * restored. Or a genuine checkpoint downloaded with a hostile Range.
     */
    const checkpointRequest = (): ReturnType<typeof routeRequest> => {
      const download = genuine.size > 0 && d.chance(0.4);
      const id = String(download ? d.pick([...genuine]) : d.pick([...craftedIds]));
      const route = d.pick(Routes.filter((r) => r.path.includes(download ? 'checkpoint/:id/download' : 'checkpoint/:id')));
      const params: Record<string, string> = { id, spaceId: 'keep' };
      const target = route.path.replace(':spaceId', 'keep').replace(':id', id);
      const headers: [string, string][] = [['Host', '127.0.0.1'], ['Connection', 'close'], ['Authorization', `Bearer ${admin}`]];
      if (route.path.endsWith('download') && (download || d.chance(0.5))) {
        bump(figures, 'rangeRequests');
        headers.push(['Range', rangeHeader(d)]);
      }
      const method = route.method === 'DELETE' ? 'GET' : route.method; // crafted files stay in place for the next attempt
      return { out: { method, target, headers, label: `${download ? 'genuine' : 'crafted'}: ${method} ${route.path}` }, route, params };
    };

    // -- sending, checking, counting ------------------------------------------
    const covered = new Set<string>();
    const applyWrite = (route: Route, params: Record<string, string>, seen: Buffer | undefined, status: number, label: string): void => {
      const key = `${route.method} ${route.path}`;
      if (!['POST /api/space/:id/transaction', 'PUT /api/space/:id/object/:key', 'DELETE /api/space/:id/object/:key', 'POST /api/space'].includes(key)) return;
      // What the daemon acknowledged is the body as it read it: it must be JSON without prototype keys.
      let sent: unknown;
      if (seen !== undefined && seen.length > 0) {
        const text = seen.toString('utf8').replace(/^\ufeff/, '');
        try {
          sent = JSON.parse(text);
        } catch {
          return void violate(`${label}: a body that is not JSON was acknowledged (${status}): ${JSON.stringify(text.slice(0, 100))}`);
        }
        if (/"(__proto__|prototype)"\s*:/.test(text)) violate(`${label}: a body with a prototype key was acknowledged (${status}): ${JSON.stringify(text.slice(0, 100))}`);
      }
      let space: string | undefined;
      try {
        space = params.id === undefined ? undefined : decodeURIComponent(params.id);
      } catch {
        space = undefined;
      }
      if (key === 'POST /api/space/:id/transaction' || key === 'PUT /api/space/:id/object/:key' || key === 'DELETE /api/space/:id/object/:key') {
        const objects = space === undefined ? undefined : model.get(space);
        if (objects === undefined) {
          violate(`${label} was acknowledged (${status}) for space ${JSON.stringify(space)}, which the fuzz does not know to exist`);
          return;
        }
        if (space === 'keep') violate(`${label} changed the keep space (${status}), which the fuzz never writes to`);
        bump(figures, 'acknowledgedWrites');
        if (key === 'PUT /api/space/:id/object/:key') {
          if (sent === undefined) return void violate(`${label}: an empty or unfinished body was stored (${status})`);
          objects.set(decodeURIComponent(params.key!), JSON.stringify(sent));
        } else if (key === 'DELETE /api/space/:id/object/:key') objects.delete(decodeURIComponent(params.key!));
        else {
          if (sent === undefined) return void violate(`${label}: an empty or unfinished transaction body was applied (${status})`);
          for (const op of (sent as { ops: { op: string; key: string; value?: unknown }[] }).ops) {
            if (op.op === 'put') objects.set(op.key, JSON.stringify(op.value));
            else objects.delete(op.key);
          }
        }
      } else if (key === 'POST /api/space') {
        const id = (sent as { id?: unknown } | undefined)?.id;
        if (typeof id !== 'string') return void violate(`${label}: a space was created from a hostile body (${status})`);
        model.set(id, new Map());
      }
    };

    for (let i = 0; i < options.trials; i++) {
      if (daemon.exit !== null) {
        bump(figures, 'crashes');
        violate(`the daemon exited (${JSON.stringify(daemon.exit)}) after ${i} requests; stderr: ${daemon.stderr.slice(-500)}`);
        break;
      }
      const r = d.next();
      let routed: ReturnType<typeof routeRequest> | null = null;
      let out: Outgoing;
      // The last tenth of the run: half its route requests for a route nothing reached yet (carefulRequest).
      const unreached = i >= options.trials * 0.9 && r < 0.36 ? Routes.filter((route) => !covered.has(`${route.method} ${route.path}`)) : [];
      if (unreached.length > 0) {
        routed = carefulRequest(d.pick(unreached));
        out = routed.out;
        bump(figures, 'carefulRequests');
      } else if (r < 0.72 || r >= 0.95) {
        routed = r < 0.72 ? routeRequest() : checkpointRequest();
        out = routed.out;
      } else if (r < 0.82) out = junkPathRequest();
      else if (r < 0.91) out = malformedRequest();
      else out = upgradeRequest();
      const res = await exchange(port, serialize(out), out.halfClose === true);
      bump(figures, 'requests');
      const outcome = res.hung ? 'hang' : res.status === null ? 'closed' : String(res.status);
      bump(statusCounts, outcome);
      byRoute[out.label] ??= {};
      bump(byRoute[out.label]!, outcome);
      if (res.hung) {
        bump(figures, 'hangs');
        violate(`no answer and no close within ${HangMs} ms: ${out.label} ${JSON.stringify(serialize(out).subarray(0, 600).toString('latin1'))}`);
        continue;
      }
      if (res.status === null) {
        bump(figures, 'closedWithoutAnswer');
        continue;
      }
      bump(figures, 'answered');
      // The one 5xx a healthy standalone primary gives by design: /standby answers 503 on a node that is not a standby.
      if (res.status === 503 && routed?.route.path === '/standby' && (out.method === 'GET' || out.method === 'HEAD')) bump(figures, 'standby503');
      else if (res.status >= 500) {
        bump(figures, 'fiveXX');
        violate(`${res.status} for ${out.label}: ${JSON.stringify(serialize(out).subarray(0, 300).toString('latin1'))} → ${JSON.stringify(res.text.slice(0, 600))}`);
      }
      if (out.label === 'websocket upgrade') {
        if (res.status === 101) violate(`a WebSocket upgrade without the cluster token was accepted: ${out.target}`);
        else bump(figures, 'wsRefused');
      }
      if (routed !== null) {
        const { route, params, seen } = routed;
        if (res.status < 400) covered.add(`${route.method} ${route.path}`);
        // What the daemon ran: the route of the method actually sent on this path (a PUT sent on the GET
        // object route is a write, a POST on the GET checkpoint route is a restore), or none.
        const ran = Routes.find((r) => r.method === out.method && r.path === route.path);
        const restore = ran !== undefined && ran.method === 'POST' && /checkpoint\/:id$/.test(ran.path);
        if (restore && craftedIds.has(Number(params.id))) {
          bump(figures, 'craftedRestoreAttempts');
          if (res.status < 300) {
            bump(figures, 'craftedRestored');
            violate(`crafted checkpoint ${params.id} (${crafted.find((c) => c.id === Number(params.id))!.what}) was restored: ${res.status}`);
          }
        }
        if (res.status >= 200 && res.status < 300 && ran !== undefined) {
          if (restore) await rebaseline();
          else applyWrite(ran, params, seen, res.status, out.label);
          if (ran.method === 'POST' && (ran.path.endsWith('/checkpoint') || ran.path === '/api/admin/checkpoint')) {
            const m = /"id":(\d+)/.exec(res.text);
            if (m !== null) genuine.add(Number(m[1]));
          }
          if (ran.method === 'DELETE' && ran.path.includes('checkpoint')) genuine.delete(Number(params.id));
        }
      } else if (out.label === 'junk path' && res.status >= 200 && res.status < 300 && out.method !== 'GET' && out.method !== 'HEAD') {
        // A junk path that happened to name a real route and change something: take the daemon's state as it is now.
        bump(figures, 'junkPathChanges');
        await rebaseline();
      }

      if ((i + 1) % 1000 === 0) {
        const live = await daemon.request('GET', '/liveness', { token: null }).catch(() => null);
        if (live?.status !== 200) violate(`/liveness answered ${live?.status ?? 'nothing'} after ${i + 1} requests`);
        options.log(`${i + 1} requests: ${JSON.stringify(statusCounts)}`);
      }
    }
    figures.routesCovered = covered.size;

    // -- after: the data, the crafted files, the files on disk -----------------
    const verify = async (when: string): Promise<void> => {
      const keepNow = await daemon!.query('/api/space/keep/object');
      const objects = new Map(((keepNow.body as { data?: { key: string; data: unknown }[] }).data ?? []).map((o) => [o.key, JSON.stringify(o.data)]));
      for (const [k, v] of known) if (objects.get(k) !== v) violate(`${when}: known object keep/${k} is ${objects.get(k) ?? 'missing'}, was ${v}`);
      for (const k of objects.keys()) if (!known.has(k)) violate(`${when}: keep has an object ${k} nobody wrote`);
      const space = spaceShape((await daemon!.request('GET', '/api/space/keep')).body);
      if (space !== keepSpace) violate(`${when}: the keep space changed: ${space} (was ${keepSpace})`);
      for (const [id, expected] of model) {
        if (id === 'keep') continue;
        const res = await daemon!.query(`/api/space/${encodeURIComponent(id)}/object`);
        if (res.status !== 200) {
          violate(`${when}: space ${id} answers ${res.status}`);
          continue;
        }
        const now = new Map((res.body as { data: { key: string; data: unknown }[] }).data.map((o) => [o.key, JSON.stringify(o.data)]));
        for (const [k, v] of expected) if (now.get(k) !== v) violate(`${when}: acknowledged ${id}/${k} reads ${now.get(k) ?? 'missing'}, expected ${v}`);
        for (const k of now.keys()) if (!expected.has(k)) violate(`${when}: ${id}/${k} exists but no acknowledged write made it`);
      }
      for (const c of crafted) {
        const now = await fs.readFile(path.join(checkpointDir, `Checkpoint-${String(c.id).padStart(9, '0')}`)).catch(() => null);
        if (now === null || !now.equals(c.bytes)) violate(`${when}: crafted checkpoint ${c.id} (${c.what}) was changed or removed`);
      }
    };
    await verify('after the fuzz');
    daemon = await daemon.restart();
    await verify('after a restart');

    const log = daemon.stdout + daemon.stderr;
    for (const [name, secret] of [['admin', admin], ['member', member], ['revoked', revoked]] as const) if (log.includes(secret)) violate(`the log holds the ${name} token`);
  } catch (err) {
    // The run itself broke (the daemon did not start, say): nothing to inspect but the error.
    await daemon?.kill('SIGKILL');
    await fs.rm(world, { recursive: true, force: true });
    throw err;
  } finally {
    await daemon?.kill('SIGTERM');
  }

  // Every file under the world is the daemon's own (data/, FileVault/, its config) or an untouched canary.
  for (const f of await walk(world)) {
    const own = f === path.join('root', 'config.json') || f.startsWith(path.join('root', 'data') + path.sep) || f.startsWith(path.join('root', 'FileVault') + path.sep);
    const canary = f === 'canary.txt' || canaries.some((c) => f === path.join(c, 'canary.txt'));
    if (canary && (await fs.readFile(path.join(world, f), 'utf8')) !== CanaryText) violate(`canary ${f} was changed`);
    if (!own && !canary) {
      bump(figures, 'outsideFiles');
      violate(`a file outside the daemon's folders: ${f}`);
    }
  }
  const tmpNew = (await fs.readdir(os.tmpdir())).filter((n) => !tmpBefore.has(n) && path.join(os.tmpdir(), n) !== world);
  figures.tmpNewEntries = tmpNew.length;
  if (tmpNew.length > 0) options.log(`new entries in ${os.tmpdir()} during the run (other processes share it; the daemon's TMPDIR was ${daemonTmp} and stayed empty unless reported above): ${tmpNew.slice(0, 20).join(', ')}`);
  if (violations.length === 0) await fs.rm(world, { recursive: true, force: true });
  else options.log(`kept ${world} for inspection`);

  const wall = (performance.now() - started) / 1000;
  figures.seconds = Math.round(wall);
  options.log(`by route and outcome: ${JSON.stringify(byRoute)}`);
  for (const [k, n] of Object.entries(statusCounts)) figures[`status_${k}`] = n;
  const classes: Counter = {};
  for (const [k, n] of Object.entries(statusCounts)) bump(classes, /^\d/.test(k) ? `${k[0]}xx` : k, n);
  const summary =
    `seed ${seed}: ${figures.requests} requests over ${Routes.length} routes (${figures.routesCovered} answered below 400 at least once) + junk paths, raw malformed HTTP (${figures.rawMalformed}), WebSocket upgrades (${figures.wsUpgrades}); ` +
    `outcomes ${JSON.stringify(classes)}; ${figures.craftedPlaced} crafted checkpoints, ${figures.craftedRestoreAttempts} restore attempts, ${figures.craftedRestored} restored; ` +
    `${figures.acknowledgedWrites} acknowledged writes checked; 5xx ${figures.fiveXX} (besides ${figures.standby503 ?? 0} 503s of /standby, its answer on a primary), hangs ${figures.hangs}, crashes ${figures.crashes}, files outside ${figures.outsideFiles}; ${violations.length} violations`;
  return { summary, violations, figures };
}

/** The hostile-input suite: `npm run soak -- fuzz` sends 10,000 requests. */
export const fuzzSuite: Suite = { soakTrials: 10_000, run: runFuzz };
