/**
 * Durable commits per second with journal.sync=commit at 1, 8 and 64
 * concurrent writers, against the physical limit: a raw write+fdatasync loop
 * of one writer on the same disk, measured in the same run.
 *
 * Two layers are measured: the commit engine in-process (Store.commit: validate,
 * apply, frame, group fsync — what group commit is about) and the whole daemon
 * over HTTP on loopback (what a client sees; on 2 cores the HTTP client and
 * server share the CPU with the journal).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { promises as fs, openSync, writeSync, fdatasyncSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/log/index.js';
import { Store } from '../src/store/index.js';
import { benchEngine } from './shared.js';

const DurationMs = Number(process.env.BENCH_MS ?? 3000);
const Rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const Writers = [1, 8, 64];

function rawFsyncRate(dir: string): number {
  const file = path.join(dir, 'raw.bin');
  const fd = openSync(file, 'w');
  const record = Buffer.alloc(120, 0x61);
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < DurationMs) {
    writeSync(fd, record);
    fdatasyncSync(fd);
    n++;
  }
  const rate = n / ((performance.now() - start) / 1000);
  closeSync(fd);
  return rate;
}

async function run(writers: number, once: (w: number, i: number) => Promise<unknown>): Promise<number> {
  let done = 0;
  const start = performance.now();
  const deadline = start + DurationMs;
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; performance.now() < deadline; i++) {
      await once(w, i);
      done++;
    }
  }));
  return done / ((performance.now() - start) / 1000);
}

async function openEngine(dir: string): Promise<Store> {
  const store = await Store.open({ journalDir: path.join(dir, 'journal'), sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger: silentLogger(), engine: benchEngine(dir) });
  await store.commit({ type: 'template.load', template: { name: 'plm', version: '1.0', indexes: ['type'] } });
  await store.commit({ type: 'space.create', id: 's', template: { name: 'plm', version: '1.0' } });
  return store;
}

async function engineRates(store: Store, round: number): Promise<number[]> {
  const rates: number[] = [];
  for (const writers of Writers) {
    rates.push(await run(writers, (w, i) => store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: `r${round}-w${writers}-${w}-${i}`, value: { type: 'Part', w, i } }] })));
  }
  return rates;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function httpRates(dir: string): Promise<number[]> {
  const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli/main.js');
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ api: { port: 0 }, paths: { data: 'data', fileVault: 'FileVault' }, log: { level: 'info' } }));
  const child = spawn(process.execPath, [cli, 'run', '--config', path.join(dir, 'config.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const tokenFile = path.join(dir, 'data', 'admin.token');
    // Requests log at debug, so info costs nothing per request and gives us the listening line.
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const m = /"message":"listening"[^\n]*"url":"([^"]+)"/.exec(out) ?? /"url":"([^"]+)"[^\n]*"message":"listening"/.exec(out);
        if (m !== null) resolve(m[1]!);
      });
      child.on('exit', () => reject(new Error('daemon exited before listening')));
    });
    const token = (await fs.readFile(tokenFile, 'utf8')).trim();
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    await fetch(`${url}/api/template`, { method: 'POST', headers, body: JSON.stringify({ name: 'plm', version: '1.0', indexes: ['type'] }) });
    await fetch(`${url}/api/space`, { method: 'POST', headers, body: JSON.stringify({ id: 's', template: { name: 'plm', version: '1.0' } }) });
    const rates: number[] = [];
    for (const writers of Writers) {
      rates.push(await run(writers, async (w, i) => {
        const status = await put(url, `/api/space/s/object/w${writers}-${w}-${i}`, headers, JSON.stringify({ type: 'Part', w, i }));
        if (status !== 201) throw new Error(`PUT answered ${status}`);
      }));
    }
    return rates;
  } finally {
    child.kill('SIGTERM');
  }
}

// node:http with keep-alive: undici's fetch costs more CPU per request than the daemon does, on a 2-core machine.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function put(base: string, urlPath: string, headers: Record<string, string>, body: string): Promise<number> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: 'PUT', path: urlPath, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Print the commit benchmark. */
export async function commitBench(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-bench-'));
  try {
    console.log(`commit benchmark: ${Rounds} rounds, ${DurationMs} ms per measurement, folder ${dir} (${os.cpus().length} cores, node ${process.version})`);
    // The disk's own fsync rate drifts from minute to minute on shared machines, so each
    // round measures the reference right before the engine, and ratios are taken per round.
    // Each round starts from an empty store and journal, so rounds measure the same thing.
    const raws: number[] = [];
    const engines: number[][] = [];
    for (let round = 0; round < Rounds; round++) {
      raws.push(rawFsyncRate(dir));
      const store = await openEngine(path.join(dir, `engine-${round}`));
      engines.push(await engineRates(store, round));
      await store.close();
      console.log(`round ${round + 1}: raw ${raws[round]!.toFixed(0)}/s, engine ${engines[round]!.map((r) => r.toFixed(0)).join(' / ')} commits/s at ${Writers.join(' / ')} writers`);
    }
    const raw = median(raws);
    const http = await httpRates(await fs.mkdtemp(path.join(dir, 'http-')));
    const httpRaw = rawFsyncRate(dir);
    console.log(`\nmedians (ratios are medians of per-round ratios; HTTP against a reference taken right after it, ${httpRaw.toFixed(0)}/s)`);
    console.log(`reference: raw write+fdatasync loop, 1 writer, same disk: ${raw.toFixed(0)} /s`);
    console.log('\nwriters | engine commits/s | x raw  | HTTP PUTs/s | x raw');
    console.log('------- | ---------------- | ------ | ----------- | -----');
    const ratios = Writers.map((_, i) => median(engines.map((e, r) => e[i]! / raws[r]!)));
    Writers.forEach((w, i) => {
      const engine = median(engines.map((e) => e[i]!));
      console.log(`${String(w).padStart(7)} | ${engine.toFixed(0).padStart(16)} | ${ratios[i]!.toFixed(2).padStart(6)} | ${http[i]!.toFixed(0).padStart(11)} | ${(http[i]! / httpRaw).toFixed(2).padStart(5)}`);
    });
    const target = ratios[Writers.length - 1]!;
    console.log(`\ntarget: at 64 writers group commit >= 10x the raw single-writer fsync rate: engine ${target.toFixed(1)}x ${target >= 10 ? 'MET' : 'NOT MET'}; HTTP end to end ${(http[Writers.length - 1]! / httpRaw).toFixed(1)}x`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
