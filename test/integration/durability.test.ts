import { expect } from 'chai';
import { DaemonProcess } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait-for.js';

interface Ledger {
  acked: Map<string, unknown>;          // key -> value of every acknowledged put
  ackedTx: Map<string, string[]>;       // tx id -> keys, acknowledged
  triedTx: Map<string, string[]>;       // tx id -> keys, sent (acknowledged or not)
  maxSeq: number;
}

// Writers loop until stopped; each records only what the daemon acknowledged.
async function writer(d: DaemonProcess, client: number, round: number, ledger: Ledger, stop: { now: boolean }): Promise<void> {
  for (let i = 0; !stop.now; i++) {
    try {
      if (i % 3 === 2) {
        const id = `r${round}-c${client}-t${i}`;
        const keys = ['a', 'b', 'c'].map((s) => `${id}-${s}`);
        ledger.triedTx.set(id, keys);
        const res = await d.request('POST', '/api/space/s/transaction', { body: { ops: keys.map((key) => ({ op: 'put', key, value: { tx: id } })) } });
        if (res.status === 200) {
          ledger.ackedTx.set(id, keys);
          ledger.maxSeq = Math.max(ledger.maxSeq, (res.body as { seq: number }).seq);
        }
      } else {
        const key = `r${round}-c${client}-p${i}`;
        const value = { type: 'Part', client, i, round };
        const res = await d.request('PUT', `/api/space/s/object/${key}`, { body: value });
        if (res.status === 201) {
          ledger.acked.set(key, value);
          ledger.maxSeq = Math.max(ledger.maxSeq, (res.body as { seq: number }).seq);
        }
      }
    } catch {
      return; // the connection died with the daemon: this write was not acknowledged
    }
  }
}

async function crashUnderLoad(d: DaemonProcess, round: number, ledger: Ledger, clients: number, ackTarget: number): Promise<void> {
  const stop = { now: false };
  const before = ledger.acked.size + ledger.ackedTx.size;
  const writers = Array.from({ length: clients }, (_, c) => writer(d, c, round, ledger, stop));
  await waitFor(() => ledger.acked.size + ledger.ackedTx.size - before >= ackTarget, { what: `${ackTarget} acknowledged writes`, timeoutMs: 30_000, intervalMs: 5 });
  await d.kill('SIGKILL'); // while writes are in flight
  stop.now = true;
  await Promise.all(writers);
  expect(d.exit?.signal).to.equal('SIGKILL');
}

async function check(d: DaemonProcess, ledger: Ledger): Promise<void> {
  const status = (await d.request('GET', '/api/admin/status')).body as { data: { seq: number } };
  expect(status.data.seq).to.be.at.least(ledger.maxSeq);
  const all = (await d.query('/api/space/s/object')).body as { data: { key: string; data: unknown }[] };
  const present = new Map(all.data.map((o) => [o.key, o.data]));
  const lost = [...ledger.acked.entries()].filter(([k, v]) => JSON.stringify(present.get(k)) !== JSON.stringify(v)).map(([k]) => k);
  expect(lost, `acknowledged puts missing after restart: ${lost.slice(0, 5).join(', ')}`).to.deep.equal([]);
  for (const [id, keys] of ledger.ackedTx) {
    for (const k of keys) expect(present.get(k), `acknowledged transaction ${id} lost ${k}`).to.deep.equal({ tx: id });
  }
  for (const [id, keys] of ledger.triedTx) {
    const found = keys.filter((k) => present.has(k)).length;
    expect([0, keys.length], `transaction ${id} is partial: ${found} of ${keys.length} keys`).to.include(found);
  }
}

describe('durability: SIGKILL under concurrent writes (real daemon)', function () {
  this.timeout(120_000);
  let d: DaemonProcess;

  before(async function () {
    d = await DaemonProcess.start();
    await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['type'] } });
    await d.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } });
  });
  after(async function () {
    await d.cleanup();
  });

  it('keeps every acknowledged write and no partial transaction across two crashes', async function () {
    const ledger: Ledger = { acked: new Map(), ackedTx: new Map(), triedTx: new Map(), maxSeq: 0 };
    await crashUnderLoad(d, 1, ledger, 16, 600);
    d = await DaemonProcess.start({ dir: d.dir });
    await check(d, ledger);

    // Commits made after recovery land on top of the recovered journal, and survive the next crash too.
    await crashUnderLoad(d, 2, ledger, 16, 600);
    d = await DaemonProcess.start({ dir: d.dir });
    await check(d, ledger);
    expect(ledger.acked.size + ledger.ackedTx.size).to.be.at.least(1200);
  });

  it('keeps everything across a clean SIGTERM restart', async function () {
    const put = await d.request('PUT', '/api/space/s/object/clean', { body: { type: 'Part', ok: true } });
    expect(put.status).to.equal(201);
    await d.kill('SIGTERM');
    expect(d.exit?.code).to.equal(0);
    d = await DaemonProcess.start({ dir: d.dir });
    expect(((await d.request('GET', '/api/space/s/object/clean')).body as { data: unknown }).data).to.deep.equal({ type: 'Part', ok: true });
    expect(d.lines.some((l) => l.message === 'journal replayed')).to.equal(true);
  });
});
