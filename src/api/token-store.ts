/**
 * API tokens, stored hashed. A token is `cpd_` + 32 random bytes (base64url);
 * only its SHA-256 reaches the disk (a salted slow hash buys nothing for 256
 * random bits). The file is re-read when it changes on disk, so a token made
 * by `checkpointd token create` works at once without a restart.
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { TokenRecheckMs } from '../config/index.js';
import { BadRequestError, ConfigError, ConflictError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { TokenPrefix } from '../log/index.js';
import { writeFileAtomic } from '../vault/index.js';

/** The roles a token can carry. */
export const Roles = ['collection-admin', 'member'] as const;
/** A token's role: `collection-admin` may do everything, `member` data only. */
export type Role = (typeof Roles)[number];

/** One stored token: never the token itself. */
export interface TokenEntry {
  name: string;
  role: Role;
  hash: string;
  created: string;
}

interface TokenFile {
  version: 1;
  tokens: TokenEntry[];
}

const TokenName = /^[A-Za-z0-9._-]{1,64}$/;

function hashToken(token: string): Buffer {
  // The one-shot form: no Hash object per request.
  return hash('sha256', token, 'buffer');
}

function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (Roles as readonly string[]).includes(value);
}

/** The tokens file, with lookups in constant time per entry. */
export class TokenStore {
  private entries: TokenEntry[] = [];
  private hashes: Buffer[] = [];
  private mtimeMs = 0;
  private checkedAt = 0;
  private revalidatedAt = 0;

  private constructor(readonly file: string, private readonly logger?: Logger) {}

  /** Open `file`; a missing file is an empty store (see {@link exists}). A damaged file is a ConfigError. */
  static async open(file: string, logger?: Logger): Promise<TokenStore> {
    const store = new TokenStore(file, logger);
    await store.reload();
    return store;
  }

  /** True once the file exists on disk. */
  get exists(): boolean {
    return this.mtimeMs > 0;
  }

  /** Number of tokens. */
  get size(): number {
    return this.entries.length;
  }

  /** Re-read the file (SIGHUP, or a change on disk). */
  async reload(): Promise<void> {
    let text: string;
    let mtimeMs: number;
    try {
      const stat = await fs.stat(this.file);
      mtimeMs = stat.mtimeMs;
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.set([], 0);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ConfigError(`tokens file ${this.file} is not valid JSON; restore it, or remove it to start over with a new admin token`);
    }
    const tokens = (parsed as Partial<TokenFile> | null)?.tokens;
    if (!Array.isArray(tokens) || !tokens.every((t: Partial<TokenEntry>) => typeof t?.name === 'string' && isRole(t.role) && typeof t.hash === 'string' && t.hash.startsWith('sha256:'))) {
      throw new ConfigError(`tokens file ${this.file} is not in the expected shape {"version":1,"tokens":[{name, role, hash, created}]}`);
    }
    this.set(tokens, mtimeMs);
  }

  private set(entries: TokenEntry[], mtimeMs: number): void {
    this.entries = entries;
    this.hashes = entries.map((e) => Buffer.from(e.hash.slice('sha256:'.length), 'hex'));
    this.mtimeMs = mtimeMs;
  }

  /** The entry a presented token belongs to, or undefined. Compares every entry in constant time. */
  async verify(token: string): Promise<TokenEntry | undefined> {
    const found = this.lookup(token);
    // A known token is checked against the file too (throttled on its own clock): a token revoked by
    // removing its entry must stop working within TokenRecheckMs, not only after some other lookup fails.
    if (found !== undefined) return (await this.reloadIfChanged('revalidatedAt')) ? this.lookup(token) : found;
    // An unknown one may have just been made by `checkpointd token create`.
    return (await this.reloadIfChanged('checkedAt')) ? this.lookup(token) : undefined;
  }

  /** Re-read the file when its mtime differs from the one loaded, at most once per TokenRecheckMs per `clock`; true when re-read. */
  private async reloadIfChanged(clock: 'checkedAt' | 'revalidatedAt'): Promise<boolean> {
    const now = Date.now();
    if (now - this[clock] < TokenRecheckMs) return false;
    this[clock] = now;
    const stat = await fs.stat(this.file).catch(() => undefined);
    if ((stat?.mtimeMs ?? 0) === this.mtimeMs) return false;
    try {
      await this.reload();
    } catch (err) {
      // A damaged file on disk must not lock everyone out: keep the tokens already known.
      this.logger?.error('tokens file changed but cannot be read; keeping the tokens loaded before', { file: this.file, err });
      return false;
    }
    return true;
  }

  private lookup(token: string): TokenEntry | undefined {
    if (!token.startsWith(TokenPrefix)) return undefined;
    const presented = hashToken(token);
    let match: TokenEntry | undefined;
    for (let i = 0; i < this.hashes.length; i++) {
      const stored = this.hashes[i]!;
      if (stored.length === presented.length && timingSafeEqual(stored, presented)) match = this.entries[i];
    }
    return match;
  }

  /** Make a new token named `name` with `role`, store its hash, and return the token (shown once). */
  async create(name: string, role: Role): Promise<string> {
    if (!TokenName.test(name)) throw new BadRequestError(`token name ${JSON.stringify(name).slice(0, 80)} must be 1-64 characters of letters, digits, '.', '_' or '-'`);
    if (!isRole(role)) throw new BadRequestError(`role ${JSON.stringify(role).slice(0, 80)} must be one of ${Roles.join(', ')}`);
    await this.reload();
    if (this.entries.some((e) => e.name === name)) throw new ConflictError(`a token named ${name} already exists in ${this.file}; pick another name`);
    const token = TokenPrefix + randomBytes(32).toString('base64url');
    const entry: TokenEntry = { name, role, hash: 'sha256:' + hashToken(token).toString('hex'), created: new Date().toISOString() };
    const next = [...this.entries, entry];
    const file: TokenFile = { version: 1, tokens: next };
    await writeFileAtomic(this.file, JSON.stringify(file, null, 2) + '\n', 0o600);
    await this.reload();
    return token;
  }
}
