/**
 * An installation of real daemons for failover tests: nodes in their own
 * folders under one root, sharing the FileVault and the tokens file as an
 * installation's nodes do, with short failover timings.
 */
import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DaemonProcess, QuietCheckpoints, type StartOptions } from './daemon-process.js';

/** Short timings so a test fails over in about a second; the rules between them are the production ones. */
export const fastFailover = { heartbeatMs: 100, heartbeatTimeoutMs: 500, leaseTtlMs: 1000, renewMs: 200, safetyMarginMs: 300 };

/** The configuration every node of a test installation shares. */
export function shared(root: string): Record<string, unknown> {
  return {
    paths: { data: 'data', fileVault: path.join(root, 'FileVault') },
    auth: { tokensFile: path.join(root, 'shared', 'tokens.json') },
    failover: fastFailover,
    checkpoint: { events: { ...QuietCheckpoints.events, promotion: true }, coalesceMs: 0 },
  };
}

/** Start node `name` of the installation in `root` (its own folder, the shared vault and tokens). */
export async function node(root: string, name: string, role: 'primary' | 'secondary', failover: Record<string, unknown> = {}, start: Pick<StartOptions, 'env' | 'waitForLease'> = {}): Promise<DaemonProcess> {
  await fs.mkdir(path.join(root, name), { recursive: true });
  const config = { ...shared(root), node: { name, role }, failover: { ...fastFailover, ...failover } };
  return DaemonProcess.start({ dir: path.join(root, name), config, tokenFile: path.join(root, 'a', 'data', 'admin.token'), ...start });
}

/** Samplers not stopped yet: {@link stopSamplers} ends them (an afterEach hook, so a failed test leaves no loop behind). */
const samplers = new Set<() => Promise<unknown>>();

/** Stop every sampler still running. */
export async function stopSamplers(): Promise<void> {
  for (const stop of [...samplers]) await stop();
}

/** Samples `GET /primary` on every node every 50 ms until stopped: the moments when more than one answered 200. */
export function samplePrimaries(nodes: () => DaemonProcess[]): { stop: () => Promise<{ samples: number; doubles: number }> } {
  let running = true;
  let samples = 0;
  let doubles = 0;
  const loop = (async () => {
    while (running) {
      const answers = await Promise.all(nodes().map((d) => d.request('GET', '/primary', { token: null }).then((r) => r.status, () => 0)));
      samples++;
      if (answers.filter((s) => s === 200).length > 1) doubles++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const stop = async (): Promise<{ samples: number; doubles: number }> => {
    running = false;
    samplers.delete(stop);
    await loop;
    return { samples, doubles };
  };
  samplers.add(stop);
  return { stop };
}

/** Template plm 1.0 (indexing `writer`) and space `s`. */
export async function seedSpace(d: DaemonProcess): Promise<void> {
  expect((await d.request('POST', '/api/template', { body: { name: 'plm', version: '1.0', indexes: ['writer'] } })).status).to.equal(201);
  expect((await d.request('POST', '/api/space', { body: { id: 's', template: { name: 'plm', version: '1.0' } } })).status).to.equal(201);
}

/** What the failover tests read of `GET /api/admin/status`. */
export interface StatusView {
  failover: { role: string; epoch: number; standbys: { node: string; lag: number }[] };
}

export async function status(d: DaemonProcess): Promise<StatusView> {
  const res = await d.request('GET', '/api/admin/status');
  expect(res.status, res.text).to.equal(200);
  return (res.body as { data: StatusView }).data;
}

/** The node logged its promotion. */
export const promotedTo = (d: DaemonProcess): boolean => d.lines.some((l) => l.message === 'promoted to primary');
