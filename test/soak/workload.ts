/**
 * What the crash and corruption suites share: a seeded random source
 * (SOAK_SEED), and a model of the writes a real daemon acknowledged, with the
 * writers that make them and the read-back that checks a daemon against them.
 *
 * The model keeps, per key, the last acknowledged value and the values sent
 * after it whose answer never came (in flight when the daemon died): after a
 * restart a key must hold its acknowledged value or one of those, never
 * anything else. A transaction puts the same value under two keys, so a
 * partial one shows as a pair that disagrees.
 */
import type { DaemonProcess } from '../helpers/daemon-process.js';

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** `n` characters of base64 alphabet: compresses poorly, so checkpoints take real time. */
  text(n: number): string {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    let out = '';
    for (let i = 0; i < n; i++) out += alphabet[this.int(64)];
    return out;
  }
}

/** The run's seed: SOAK_SEED when set (to replay a failure), else a fresh one; `log` prints it either way. */
export function runSeed(log: (line: string) => void, given?: number): number {
  const env = process.env.SOAK_SEED;
  const seed = given ?? (env !== undefined && env !== '' ? Number(env) : Math.floor(Math.random() * 2 ** 31));
  if (!Number.isSafeInteger(seed)) throw new Error(`SOAK_SEED must be an integer, got ${env}`);
  log(`seed ${seed} (replay with SOAK_SEED=${seed})`);
  return seed;
}

/** A stored value: its group (the indexed field the read-back queries by), a counter and padding. */
export interface Value {
  grp: string;
  n: number;
  pad: string;
}

const same = (a: Value | undefined, b: Value | undefined): boolean => a === b || (a !== undefined && b !== undefined && a.grp === b.grp && a.n === b.n && a.pad === b.pad);
const show = (v: Value | undefined): string => (v === undefined ? 'absent' : `n=${v.n}`);

interface KeyState {
  acked: Value | undefined;
  /** Sent after `acked`, answer never seen. */
  pending: Value[];
  /** Every acknowledged value with its seq, oldest first. */
  history: { seq: number; value: Value | undefined }[];
}

/** The space every suite writes into, and the groups its values fall in. */
export const SpaceId = 's';
const Groups = ['g0', 'g1', 'g2', 'g3', 'big'];

/** Create the template and the space the workload writes to (index on `grp`). */
export async function createSpace(d: DaemonProcess): Promise<void> {
  const t = await d.request('POST', '/api/template', { body: { name: 'soak', version: '1.0', indexes: ['grp'] } });
  if (t.status !== 201) throw new Error(`template: ${t.status} ${t.text}`);
  const s = await d.request('POST', '/api/space', { body: { id: SpaceId, template: { name: 'soak', version: '1.0' } } });
  if (s.status !== 201) throw new Error(`space: ${s.status} ${s.text}`);
}

/** Acknowledged writes by key, and the transactions' key pairs. */
export class WriteModel {
  private readonly keys = new Map<string, KeyState>();
  private readonly pairs: [string, string][] = [];
  private counter = 0;
  private txCounter = 0;
  /** Writes acknowledged, all time. */
  acked = 0;

  constructor(private readonly rng: Rng) {}

  private state(key: string): KeyState {
    let s = this.keys.get(key);
    if (s === undefined) {
      s = { acked: undefined, pending: [], history: [] };
      this.keys.set(key, s);
    }
    return s;
  }

  private value(grp: string, padBytes: number): Value {
    return { grp, n: ++this.counter, pad: this.rng.text(padBytes) };
  }

  /** Load `count` large objects (group `big`, `bytes` each) in transactions of 50: the bulk that makes a checkpoint take tens of ms. */
  async loadBulk(d: DaemonProcess, count: number, bytes: number): Promise<void> {
    for (let start = 0; start < count; start += 50) {
      const ops: { op: 'put'; key: string; value: Value }[] = [];
      for (let i = start; i < Math.min(count, start + 50); i++) ops.push({ op: 'put', key: `big-${i}`, value: this.value('big', bytes) });
      for (const o of ops) this.state(o.key).pending.push(o.value);
      const res = await d.request('POST', `/api/space/${SpaceId}/transaction`, { body: { ops } });
      if (res.status !== 200 && res.status !== 201) throw new Error(`bulk load: ${res.status} ${res.text}`);
      const seq = (res.body as { seq: number }).seq;
      for (const o of ops) this.ack(o.key, o.value, seq);
    }
  }

  private ack(key: string, value: Value, seq: number): void {
    const s = this.state(key);
    const at = s.pending.findIndex((v) => same(v, value));
    // Values sent before this one on the same key were answered before it was sent (one writer per key, one request at a time).
    s.pending.splice(0, at + 1);
    s.acked = value;
    s.history.push({ seq, value });
    this.acked++;
  }

  /** One write by writer `w`: a put on one of its keys, or (one in five) a two-key transaction. Resolves false once the daemon stops answering. */
  async writeOnce(d: DaemonProcess, w: number): Promise<boolean> {
    const grp = `g${w % 4}`;
    try {
      if (this.rng.int(5) === 0) {
        const j = ++this.txCounter;
        const [a, b] = [`t${j}-a`, `t${j}-b`];
        const value = this.value(grp, 200);
        this.pairs.push([a, b]);
        this.state(a).pending.push(value);
        this.state(b).pending.push(value);
        const res = await d.request('POST', `/api/space/${SpaceId}/transaction`, { body: { ops: [{ op: 'put', key: a, value }, { op: 'put', key: b, value }] } });
        if (res.status !== 200 && res.status !== 201) return false;
        const seq = (res.body as { seq: number }).seq;
        this.ack(a, value, seq);
        this.ack(b, value, seq);
        return true;
      }
      const key = `w${w}-${this.rng.int(40)}`;
      const value = this.value(grp, 200);
      this.state(key).pending.push(value);
      const res = await d.request('PUT', `/api/space/${SpaceId}/object/${key}`, { body: value });
      if (res.status !== 200 && res.status !== 201) return false;
      this.ack(key, value, (res.body as { seq: number }).seq);
      return true;
    } catch {
      return false;
    }
  }

  /** `writers` loops writing until `stop()` says so or the daemon stops answering; resolves when all have ended. */
  async writeUntil(d: DaemonProcess, writers: number, stop: () => boolean): Promise<void> {
    await Promise.all(Array.from({ length: writers }, async (_, w) => {
      while (!stop()) if (!(await this.writeOnce(d, w))) return;
    }));
  }

  /** What daemon `d` serves now, by key. */
  static async served(d: DaemonProcess): Promise<Map<string, Value>> {
    const out = new Map<string, Value>();
    for (const g of Groups) {
      const res = await d.query(`/api/space/${SpaceId}/object?grp=${g}`);
      if (res.status !== 200) throw new Error(`read-back of group ${g}: ${res.status} ${res.text.slice(0, 300)}`);
      for (const item of (res.body as { data: { key: string; data: Value }[] }).data) out.set(item.key, item.data);
    }
    return out;
  }

  /**
   * Check `served` against the model: every key holds its acknowledged value
   * or a value in flight at the crash, nothing unknown, no partial
   * transaction. Then adopt what is served (a write in flight that survived
   * is now part of the durable state). Returns the violations, in words.
   */
  checkAndAdopt(served: Map<string, Value>, where: string): string[] {
    const problems: string[] = [];
    for (const [key, s] of this.keys) {
      const got = served.get(key);
      const ok = same(got, s.acked) || (got !== undefined && s.pending.some((v) => same(v, got)));
      if (!ok) problems.push(`${where}: key ${key} holds ${show(got)} but the acknowledged value is ${show(s.acked)}${s.pending.length > 0 ? ` (in flight: ${s.pending.map(show).join(', ')})` : ''}`);
    }
    for (const key of served.keys()) if (!this.keys.has(key)) problems.push(`${where}: key ${key} is served but was never written`);
    for (const [a, b] of this.pairs) {
      if (!same(served.get(a), served.get(b))) problems.push(`${where}: transaction ${a}/${b} is partial (${show(served.get(a))} vs ${show(served.get(b))})`);
    }
    for (const [key, s] of this.keys) {
      const got = served.get(key);
      // A survivor's seq is unknown; this suite never cuts by seq, so the last one known stands in.
      if (!same(got, s.acked)) {
        s.acked = got;
        s.history.push({ seq: s.history.at(-1)?.seq ?? 0, value: got });
      }
      s.pending = [];
    }
    return problems;
  }

  /**
   * Check `served` against the model as it stood at `lastSeq` (the daemon was
   * stopped cleanly, nothing in flight): every key holds the value it was
   * last acknowledged with at or before `lastSeq`. Returns the violations and
   * how many keys had acknowledged writes past `lastSeq` (lost with a cut).
   */
  checkAt(served: Map<string, Value>, lastSeq: number, where: string): { problems: string[]; keysPastCut: number } {
    const problems: string[] = [];
    let keysPastCut = 0;
    for (const [key, s] of this.keys) {
      const got = served.get(key);
      const expected = s.history.filter((h) => h.seq <= lastSeq).at(-1)?.value;
      if ((s.history.at(-1)?.seq ?? 0) > lastSeq) keysPastCut++;
      if (!same(got, expected)) problems.push(`${where}: key ${key} holds ${show(got)}; at seq ${lastSeq} it was ${show(expected)}`);
    }
    for (const key of served.keys()) if (!this.keys.has(key)) problems.push(`${where}: key ${key} is served but was never written`);
    return { problems, keysPastCut };
  }

  /** The seq of the newest acknowledged write. */
  lastAckedSeq(): number {
    let last = 0;
    for (const s of this.keys.values()) last = Math.max(last, s.history.at(-1)?.seq ?? 0);
    return last;
  }
}
