/**
 * `npm run bench -- layout`: the space file's objects table, format 2 (a
 * rowid table and a unique index on the key: what the engine writes) against
 * format 1 (a WITHOUT ROWID table keyed by the key: what the first engine
 * builds wrote), the reference, measured in the same run on the same
 * operations: files made by SpaceFile.create, the format-1 one converted
 * (test/helpers/space-file-format-1.ts), both driven with the statements
 * SpaceFile prepares.
 *
 * For each value size (BENCH_LAYOUT_VALUE_BYTES, default 200, 1000 and
 * 60000; about BENCH_LAYOUT_MIB of JSON each, default 256): a load of
 * scrambled keys as PUTs make it (a lookup, then an upsert; transactions of
 * 100), a pass that rewrites every object, lookups of keys that are not there
 * and of keys that are (the lookup a PUT makes to answer 200 or 201) with a
 * 2 MiB page cache, a scan in key order (an unfiltered query; then through a
 * memory map, as an export reads), and the file's size. Ratios are format 1's time (or size) over format 2's:
 * above 1, format 2 is faster (or smaller).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpaceFile } from '../src/store/index.js';
import { toSpaceFileFormat1 } from '../test/helpers/space-file-format-1.js';
import { fmt, keyOf, MiB } from './shared.js';

const PageCacheKiB = 64 * 1024;
const LookupCacheKiB = 2 * 1024;
const Lookups = 2000;

interface Figures {
  loadMs: number;
  rewriteMs: number;
  missUs: number;
  hitUs: number;
  scanMs: number;
  mappedScanMs: number;
  fileMiB: number;
}

function run(file: string, count: number, valueBytes: number): Figures {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('mmap_size = 0');
    db.pragma(`cache_size = -${PageCacheKiB}`);
    const get = db.prepare<[string], string>('SELECT value FROM objects WHERE key = ?').pluck();
    const put = db.prepare('INSERT INTO objects (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    const pad = 'x'.repeat(valueBytes);
    const batch = db.transaction((from: number, to: number, round: number) => {
      for (let i = from; i < to; i++) {
        const key = keyOf(i);
        get.get(key);
        put.run(key, JSON.stringify({ type: 'Part', round, pad }));
      }
    });
    const pass = (round: number): number => {
      const started = performance.now();
      for (let i = 0; i < count; i += 100) batch(i, Math.min(count, i + 100), round);
      db.pragma('wal_checkpoint(TRUNCATE)');
      return performance.now() - started;
    };
    const loadMs = pass(1);
    const rewriteMs = pass(2);
    db.pragma(`cache_size = -${LookupCacheKiB}`);
    const lookups = (suffix: string): number => {
      const started = performance.now();
      for (let i = 0; i < Lookups; i++) get.get(keyOf((i * 7919) % count) + suffix);
      return ((performance.now() - started) * 1000) / Lookups;
    };
    const missUs = lookups('~');
    const hitUs = lookups('');
    db.pragma(`cache_size = -${PageCacheKiB}`);
    const page = db.prepare<[string], { key: string; text: string }>('SELECT key, value AS text FROM objects WHERE key > ? ORDER BY key LIMIT 1000');
    const started = performance.now();
    let after = '';
    let rows = 0;
    for (;;) {
      const got = page.all(after);
      rows += got.length;
      if (got.length < 1000) break;
      after = got.at(-1)!.key;
    }
    if (rows !== count) throw new Error(`scan read ${rows} rows of ${count}`);
    const scanMs = performance.now() - started;
    // The same through a memory map, as `checkpointd export` reads (SpaceFileOptions.mapBytes).
    db.pragma('mmap_size = 2147483648');
    const mappedStarted = performance.now();
    after = '';
    for (;;) {
      const got = page.all(after);
      if (got.length < 1000) break;
      after = got.at(-1)!.key;
    }
    const mappedScanMs = performance.now() - mappedStarted;
    db.pragma('mmap_size = 0');
    return { loadMs, rewriteMs, missUs, hitUs, scanMs, mappedScanMs, fileMiB: statSync(file).size / MiB };
  } finally {
    db.close();
  }
}

export async function layoutBench(): Promise<void> {
  const sizes = (process.env.BENCH_LAYOUT_VALUE_BYTES ?? '200,1000,60000').split(',').map(Number);
  const dataMiB = Number(process.env.BENCH_LAYOUT_MIB ?? 256);
  const root = mkdtempSync(path.join(os.tmpdir(), 'cpd-bench-layout-'));
  console.log(`\n## Space file layout: format 2 (rowid table + key index) against format 1 (WITHOUT ROWID), ${fmt(dataMiB)} MiB of JSON per value size\n`);
  console.log('| value bytes | objects | load | rewrite | lookup, missing key | lookup, present key | scan in key order | the same, mapped (export) | file size |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  try {
    for (const valueBytes of sizes) {
      const count = Math.max(1000, Math.round((dataMiB * MiB) / (valueBytes + 40)));
      const figures: Figures[] = [];
      for (const format of [1, 2]) {
        const file = path.join(root, `format-${format}-${valueBytes}.sqlite`);
        SpaceFile.create(file, 's', { name: 'plm', version: '1.0', indexes: [] }, 1, { cacheKiB: PageCacheKiB }).close();
        if (format === 1) toSpaceFileFormat1(file);
        figures.push(run(file, count, valueBytes));
        for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
      }
      const [one, two] = figures as [Figures, Figures];
      const cell = (a: number, b: number, unit: string, digits: number): string => `${fmt(a, digits)} / ${fmt(b, digits)} ${unit} (**${fmt(a / b, 2)}×**)`;
      console.log(
        `| ${fmt(valueBytes)} | ${fmt(count)} | ${cell(one.loadMs / 1000, two.loadMs / 1000, 's', 1)} | ${cell(one.rewriteMs / 1000, two.rewriteMs / 1000, 's', 1)} | ` +
          `${cell(one.missUs, two.missUs, 'µs', 1)} | ${cell(one.hitUs, two.hitUs, 'µs', 1)} | ${cell(one.scanMs, two.scanMs, 'ms', 0)} | ${cell(one.mappedScanMs, two.mappedScanMs, 'ms', 0)} | ${cell(one.fileMiB, two.fileMiB, 'MiB', 0)} |`,
      );
    }
    console.log('\nEach cell: format 1 / format 2 (format 1 over format 2: above 1, format 2 is faster or smaller).');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
