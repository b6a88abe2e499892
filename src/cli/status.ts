/** `checkpointd status`: what the daemon says about itself (GET /api/admin/status), as lines a person reads. */
import { Version } from '../version.js';
import type { ApiClient } from './api-client.js';
import { formatBytes, formatTable, formatTime, writeJson } from './format.js';

/** Options of `status`. */
export interface StatusCommandOptions {
  json?: boolean;
  /** One row per node the daemon knows of (as `patronictl list`), instead of its own status. */
  cluster?: boolean;
}

// The answer is read loosely: a newer or older daemon may add or lack a field, and status must still print.
type Loose = Record<string, unknown> | undefined;
const obj = (value: unknown): Loose => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined);
const num = (value: unknown): number | undefined => (typeof value === 'number' ? value : undefined);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
/** Milliseconds for people: `850 ms`, `11.6 s`. */
const ago = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
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
  if (lease !== undefined) {
    const renewed = failover.role === 'primary' ? ago(num(failover.leaseRenewedAgoMs)) : undefined;
    const unchanged = failover.role === 'secondary' ? ago(num(failover.leaseUnchangedMs)) : undefined;
    lines.push(
      `lease held by ${str(lease.holder) ?? '?'} at ${str(lease.url) ?? '?'} (epoch ${num(lease.epoch) ?? '?'}${lease.released === true ? ', released' : ''}` +
        `${renewed === undefined ? '' : `, renewed ${renewed} ago`}${unchanged === undefined ? '' : `, unchanged for ${unchanged}`})`,
    );
  }
  const standbys = Array.isArray(failover.standbys) ? failover.standbys.map(obj) : [];
  if (failover.role === 'primary') {
    lines.push(standbys.length === 0 ? 'standbys: none connected' : `standbys: ${standbys.map((s) => `${str(s?.node) ?? '?'} (lag ${num(s?.lag) ?? '?'})`).join(', ')}`);
  }
  const standby = obj(failover.standby);
  if (standby !== undefined) {
    const applied = `following: applied seq ${num(standby.appliedSeq) ?? '?'}`;
    if (standby.primarySilent === true) {
      // Caught up with the FileVault's journal says nothing about a primary that may have more: no lag to show.
      const read = ago(num(standby.lastCaughtUpAgoMs));
      lines.push(`${applied}, ${read === undefined ? 'NOT caught up with the journal' : `read the journal to its end ${read} ago`}; the primary is SILENT (no heartbeat for ${ago(num(failover.heartbeatSilentMs)) ?? '?'}): lag unknown`);
    } else {
      lines.push(`${applied}, ${standby.caughtUp === true ? 'caught up' : 'NOT caught up'}${num(standby.lag) === undefined ? '' : `, lag ${num(standby.lag)}`}`);
    }
    const followError = obj(standby.followError);
    if (followError !== undefined) lines.push(`FOLLOWING FAILS (${num(followError.attempts) ?? '?'} attempts, ${ago(num(followError.failingForMs)) ?? '?'}): ${str(followError.error) ?? '?'}`);
    if (typeof standby.promotionRefused === 'string') lines.push(`PROMOTION REFUSED: ${standby.promotionRefused}`);
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

/** The journal files start-up did not read: a line only while their check has not found them clean. */
function olderJournalSection(older: Loose): [string, string[]][] {
  if (older === undefined || older.state === 'verified') return [];
  const files = `${count(older.files, 'older journal file')} (below seq ${num(older.belowSeq) ?? '?'})`;
  if (older.state === 'checking') return [['journal', [`checking ${files} in the background`]]];
  return [['journal', [`${String(older.state).toUpperCase()}: ${files}: ${str(older.error) ?? '?'}`]]];
}

/** The status as `label: value` lines. */
function render(body: unknown): string {
  const data = obj(obj(body)?.data);
  const journal = obj(data?.journal);
  const sections: [string, string[]][] = [
    ['node', [nodeLine(data)]],
    ['version', [versionLine(data)]],
    [
      'seq',
      [
        journal?.writing === false
          ? `${num(data?.seq) ?? '?'} (applied from the FileVault's journal, durable there)`
          : `${num(data?.seq) ?? '?'} (journal sync ${str(journal?.sync) ?? '?'}, last durable ${num(journal?.lastDurableSeq) ?? '?'})`,
      ],
    ],
    ['store', [`${count(data?.spaces, 'space')}, ${count(data?.templates, 'template')}`]],
    ...olderJournalSection(obj(journal?.olderFiles)),
    ['checkpoints', checkpointLines(obj(data?.checkpoints))],
    ['failover', failoverLines(obj(data?.failover))],
  ];
  const width = Math.max(...sections.map(([label]) => label.length)) + 2;
  return sections.flatMap(([label, lines]) => lines.map((line, i) => `${(i === 0 ? `${label}:` : '').padEnd(width)}${line}`)).join('\n') + '\n';
}

/** The cluster view: one row per node the daemon knows of. */
function renderCluster(body: unknown): string {
  const failover = obj(obj(obj(body)?.data)?.failover);
  const members = Array.isArray(failover?.members) ? failover.members.map(obj) : [];
  if (members.length === 0) return 'the daemon is still starting: it knows of no node yet\n';
  const rows = members.map((m) => [
    `${str(m?.node) ?? '?'}${m?.self === true ? ' *' : ''}`,
    str(m?.url) ?? '?',
    str(m?.role) ?? '?',
    String(num(m?.epoch) ?? '?'),
    str(m?.state) ?? '?',
    String(num(m?.lag) ?? '?'),
    m?.self === true && failover?.role !== 'secondary' ? '' : `${ago(num(m?.lastHeartbeatAgoMs)) ?? 'never'}${num(m?.lastHeartbeatAgoMs) === undefined ? '' : ' ago'}`,
    String(num(m?.newestCheckpoint) ?? '-'),
  ]);
  const note = failover?.role === 'secondary' ? '\n(* the node asked. A secondary knows the primary and itself; ask the primary for every standby.)\n' : '\n(* the node asked)\n';
  return formatTable(['NODE', 'URL', 'ROLE', 'EPOCH', 'STATE', 'LAG', 'HEARTBEAT', 'CHECKPOINT'], rows) + note;
}

/** Print the daemon's status, or with `cluster` the nodes it knows of. */
export async function statusCommand(client: ApiClient, options: StatusCommandOptions): Promise<void> {
  const body = await client.json('GET', '/api/admin/status');
  if (options.json === true) writeJson(body);
  else process.stdout.write(options.cluster === true ? renderCluster(body) : render(body));
}
