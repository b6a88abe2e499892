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
import { promises as fs, openSync, writeSync, fdatasyncSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/log/index.js';
import { Store } from '../src/store/index.js';

const DurationMs = Number(process.env.BENCH_MS ?? 3000);
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

async function engineRates(dir: string): Promise<number[]> {
  const store = await Store.open({ journalDir: path.join(dir, 'journal'), sync: 'commit', groupCommitMs: 0, syncIntervalMs: 1000, logger: silentLogger() });
  await store.commit({ type: 'template.load', template: { name: 'plm', version: '1.0', indexes: ['type'] } });
  await store.commit({ type: 'space.create', id: 's', template: { name: 'plm', version: '1.0' } });
  const rates: number[] = [];
  for (const writers of Writers) {
    rates.push(await run(writers, (w, i) => store.commit({ type: 'commit', space: 's', ops: [{ op: 'put', key: `w${writers}-${w}-${i}`, value: { type: 'Part', w, i } }] })));
  }
  await store.close();
  return rates;
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
        const res = await fetch(`${url}/api/space/s/object/w${writers}-${w}-${i}`, { method: 'PUT', headers, body: JSON.stringify({ type: 'Part', w, i }) });
        await res.arrayBuffer();
        if (res.status !== 201) throw new Error(`PUT answered ${res.status}`);
      }));
    }
    return rates;
  } finally {
    child.kill('SIGTERM');
  }
}

/** Print the commit benchmark. */
export async function commitBench(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-bench-'));
  try {
    console.log(`commit benchmark: ${DurationMs} ms per measurement, folder ${dir} (${os.cpus().length} cores, node ${process.version})`);
    const raw = rawFsyncRate(dir);
    console.log(`reference  raw write+fdatasync, 1 writer: ${raw.toFixed(0)} /s`);
    const engine = await engineRates(path.join(dir, 'engine'));
    const http = await httpRates(await fs.mkdtemp(path.join(dir, 'http-')));
    console.log('\nwriters | engine commits/s | x raw  | HTTP PUTs/s | x raw');
    console.log('------- | ---------------- | ------ | ----------- | -----');
    Writers.forEach((w, i) => {
      console.log(`${String(w).padStart(7)} | ${engine[i]!.toFixed(0).padStart(16)} | ${(engine[i]! / raw).toFixed(2).padStart(6)} | ${http[i]!.toFixed(0).padStart(11)} | ${(http[i]! / raw).toFixed(2).padStart(5)}`);
    });
    const target = engine[2]! / raw;
    console.log(`\ntarget: at 64 writers group commit >= 10x the raw single-writer fsync rate: engine ${target.toFixed(1)}x ${target >= 10 ? 'MET' : 'NOT MET'}; HTTP ${(http[2]! / raw).toFixed(1)}x`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
