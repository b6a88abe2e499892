/** `checkpointd status`: what the daemon says about itself (GET /api/admin/status), as lines a person reads. */
import { Version } from '../version.js';
import type { ApiClient } from './api-client.js';
import { formatBytes, formatTime, writeJson } from './format.js';

/** Options of `status`. */
export interface StatusCommandOptions {
  json?: boolean;
}

// The answer is read loosely: a newer or older daemon may add or lack a field, and status must still print.
type Loose = Record<string, unknown> | undefined;
const obj = (value: unknown): Loose => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined);
const num = (value: unknown): number | undefined => (typeof value === 'number' ? value : undefined);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
/** `3 spaces`, `1 space`, `? spaces` when the answer lacks the number. */
const count = (value: unknown, noun: string): string => `${num(value) ?? '?'} ${noun}${num(value) === 1 ? '' : 's'}`;

function nodeLine(data: Loose): string {
  const node = obj(data?.node);
  return `${str(node?.name) ?? '?'} (${str(node?.role) ?? '?'}), pid ${num(node?.pid) ?? '?'}, started ${str(node?.startedAt) ?? '?'}`;
}

/** The daemon's version, and this command's when they differ (a node not upgraded yet, or this host's CLI). */
function versionLine(data: Loose): string {
  const daemon = str(data?.version);
  if (daemon === undefined) return `? (the daemon does not say; this command is ${Version})`;
  return daemon === Version ? daemon : `${daemon} (this checkpointd command: ${Version})`;
}

function failoverLines(failover: Loose): string[] {
  if (failover === undefined) return ['still starting'];
  const lines = [`epoch ${num(failover.epoch) ?? '?'}, automatic promotion ${failover.paused === true ? 'PAUSED' : 'on'}`];
  if (typeof failover.fencedBecause === 'string') lines.push(`FENCED: ${failover.fencedBecause}`);
  const lease = obj(failover.lease);
  if (lease !== undefined) lines.push(`lease held by ${str(lease.holder) ?? '?'} at ${str(lease.url) ?? '?'} (epoch ${num(lease.epoch) ?? '?'}${lease.released === true ? ', released' : ''})`);
  const standbys = Array.isArray(failover.standbys) ? failover.standbys.map(obj) : [];
  if (failover.role === 'primary') {
    lines.push(standbys.length === 0 ? 'standbys: none connected' : `standbys: ${standbys.map((s) => `${str(s?.node) ?? '?'} (lag ${num(s?.lag) ?? '?'})`).join(', ')}`);
  }
  const standby = obj(failover.standby);
  if (standby !== undefined) {
    lines.push(`following: applied seq ${num(standby.appliedSeq) ?? '?'}, ${standby.caughtUp === true ? 'caught up' : 'NOT caught up'}${num(standby.lag) === undefined ? '' : `, lag ${num(standby.lag)}`}`);
  }
  return lines;
}

function checkpointLines(checkpoints: Loose): string[] {
  if (checkpoints === undefined) return ['?'];
  if (typeof checkpoints.error === 'string') return [`ERROR: ${checkpoints.error}`];
  const newest = obj(checkpoints.newest);
  const lines = [
    count(checkpoints.count, 'checkpoint') +
      (newest === undefined
        ? ''
        : `; newest ${num(newest.id) ?? '?'} (${str(newest.scope) ?? '?'}, ${str(newest.trigger) ?? '?'}, ${formatTime(str(newest.time) ?? '?')}, seq ${num(newest.seq) ?? '?'}, ${formatBytes(num(newest.size) ?? 0)})`),
  ];
  const unreadable = Array.isArray(checkpoints.unreadable) ? checkpoints.unreadable.map(obj) : [];
  for (const u of unreadable) lines.push(`UNUSABLE ${num(u?.id) ?? '?'}: ${str(u?.problem) ?? '?'}`);
  const auto = obj(checkpoints.automatic);
  if (auto !== undefined) {
    const failure = obj(auto.lastFailure);
    lines.push(`automatic: ${str(auto.state) ?? '?'}${failure === undefined ? '' : `, last failure ${formatTime(str(failure.time) ?? '?')}: ${str(failure.error) ?? '?'} (retry at ${formatTime(str(failure.retryAt) ?? '?')})`}`);
  }
  const restoring = obj(checkpoints.restoring);
  if (restoring !== undefined) {
    const total = num(restoring.totalBytes) ?? 0;
    lines.push(`restoring checkpoint ${num(restoring.id) ?? '?'}: ${total > 0 ? Math.floor((100 * (num(restoring.doneBytes) ?? 0)) / total) : 0}% read`);
  }
  return lines;
}

/** The status as `label: value` lines. */
function render(body: unknown): string {
  const data = obj(obj(body)?.data);
  const journal = obj(data?.journal);
  const sections: [string, string[]][] = [
    ['node', [nodeLine(data)]],
    ['version', [versionLine(data)]],
    ['seq', [`${num(data?.seq) ?? '?'} (journal sync ${str(journal?.sync) ?? '?'}, last durable ${num(journal?.lastDurableSeq) ?? '?'})`]],
    ['store', [`${count(data?.spaces, 'space')}, ${count(data?.templates, 'template')}`]],
    ['checkpoints', checkpointLines(obj(data?.checkpoints))],
    ['failover', failoverLines(obj(data?.failover))],
  ];
  const width = Math.max(...sections.map(([label]) => label.length)) + 2;
  return sections.flatMap(([label, lines]) => lines.map((line, i) => `${(i === 0 ? `${label}:` : '').padEnd(width)}${line}`)).join('\n') + '\n';
}

/** Print the daemon's status. */
export async function statusCommand(client: ApiClient, options: StatusCommandOptions): Promise<void> {
  const body = await client.json('GET', '/api/admin/status');
  if (options.json === true) writeJson(body);
  else process.stdout.write(render(body));
}
