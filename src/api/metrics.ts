/**
 * The node's Prometheus metrics, served at `/metrics` (metrics-routes.ts). One
 * prom-client Registry per daemon, never prom-client's global one, so that no
 * library and no second daemon in the same process can mix its series in.
 *
 * Figures the node already keeps are read when scraped (gauges with a
 * `collect()`): role, epoch, lease, heartbeats and lag from the failover
 * status; checkpoints from the catalogue; journal bytes from the journal
 * folder. Events are counted where they happen, through the hooks the daemon
 * wires up: a checkpoint made or failed, a restore, a promotion, an HTTP
 * request, a refused token.
 *
 * A scrape never fails because the FileVault does not answer: each read of it
 * waits at most {@link ScrapeVaultWaitMs}; `checkpointd_vault_readable` then says 0
 * and the checkpoint figures are those of the last read that worked.
 *
 * Labels stay few and bounded: routes are Fastify's templates (never the raw
 * URL), triggers are folded into kinds, methods outside the usual ones are
 * `other`, and no token, key or space id is ever a label.
 */
import { promises as fs } from 'node:fs';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type LabelValues } from 'prom-client';
import { isOwnCollection, type Catalogue, type CatalogueEntry, type Checkpointer, type CheckpointScope, type CreateRequest, type RestoreResult } from '../checkpoint/index.js';
import type { FailoverStatus, LeaseRenewal, Role } from '../failover/index.js';
import { ScrapeVaultWaitMs } from '../config/index.js';
import type { Pause } from '../log/index.js';
import type { Store } from '../store/index.js';
import { AuthFailures, type AuthFailure } from './auth.js';

/** Prefix of every metric, prom-client's process metrics included. */
export const MetricPrefix = 'checkpointd_';

const Roles: readonly Role[] = ['primary', 'secondary', 'fenced'];
const Scopes: readonly CheckpointScope[] = ['collection', 'space'];
/** The `trigger` label: a checkpoint's trigger folded into a few kinds (`event:space-created` → `event`). */
const TriggerKinds = ['manual', 'journal-threshold', 'schedule', 'event', 'other'] as const;
const Methods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
/** Checkpoints take from milliseconds (an empty space) to many minutes (hundreds of gigabytes). */
const CheckpointBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Lease renewals and heartbeats: their period (renewMs 1 s, heartbeatMs 0.5 s by default) when all is well, up to the lease's validity (4 s) and past it. */
const PaceBuckets = [0.1, 0.25, 0.5, 0.75, 1, 1.1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 10];
/** Requests: prom-client's defaults, plus long downloads. */
const RequestBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];

/** The `trigger` label of a checkpoint trigger. */
export function triggerKind(trigger: string): (typeof TriggerKinds)[number] {
  if (trigger.startsWith('event:')) return 'event';
  return (TriggerKinds as readonly string[]).includes(trigger) ? (trigger as (typeof TriggerKinds)[number]) : 'other';
}

/** Options for {@link Metrics}. */
export interface MetricsOptions {
  /** This node's name (the `node` label of its own standby lag). */
  node: string;
  store: Store;
  catalogue: Catalogue;
  /** The FileVault's installation id: only its collection checkpoints count as "newest". */
  installation: string;
  /** The failover role machine's view (null while starting). */
  failover: () => FailoverStatus | null;
  /** checkpointd's version (the `version` label of `checkpointd_build_info`). */
  version: string;
}

/** What the last reads of the FileVault found. */
interface VaultView {
  readable: boolean;
  /** Usable checkpoints by scope (null: never read). */
  counts: Map<CheckpointScope, number> | null;
  /** The newest collection checkpoint of this installation. */
  newest: CatalogueEntry | null;
  journalBytes: number | null;
}

/** `work`'s answer, or `fallback` once `ms` have passed (work must not reject). */
async function within<T>(work: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A gauge read at scrape time: `read` sets its samples afresh each time
 * (labels that are gone disappear); a sample it does not set is left out
 * rather than shown as 0, and a `read` that throws leaves the gauge empty.
 */
function pulled<T extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly T[],
  read: (set: (value: number | null | undefined, labels?: LabelValues<T>) => void) => void,
): Gauge<T> {
  return new Gauge<T>({
    name: MetricPrefix + name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      if (labelNames.length === 0) this.remove();
      try {
        read((value, labels) => {
          if (value === null || value === undefined || !Number.isFinite(value)) return;
          if (labels === undefined) this.set(value);
          else this.set(labels, value);
        });
      } catch {
        // A figure that cannot be read is left out; the scrape goes on.
      }
    },
  });
}

/** The registry of one daemon and the hooks that count its events. */
export class Metrics {
  /** Every metric of this daemon. */
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly requestSeconds: Histogram<'method' | 'route'>;
  private readonly authFailures: Counter<'reason'>;
  private readonly checkpointSeconds: Histogram<'scope' | 'trigger'>;
  private readonly checkpointFailures: Counter<'scope' | 'trigger'>;
  private readonly restores: Counter<'scope'>;
  private readonly failovers: Counter;
  private readonly leaseRenewalSeconds: Histogram;
  private readonly heartbeatIntervalSeconds: Histogram;
  private readonly pauses: Counter<'cause'>;
  private readonly view: VaultView = { readable: false, counts: null, newest: null, journalBytes: null };
  /** A catalogue read still running from an earlier scrape (one at a time). */
  private listing: Promise<CatalogueEntry[] | null> | null = null;

  constructor(private readonly options: MetricsOptions) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: MetricPrefix });
    // prom-client's totals of active handles, requests and resources are gauges named `_total`, which
    // Prometheus reserves for counters (`promtool check metrics` refuses them); they are the sums of the
    // per-type gauges beside them (`nodejs_active_handles{type}`, …), so they go.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(`${MetricPrefix}${name}`);
    const failover = (): FailoverStatus | null => options.failover();

    // The usual build-info gauge: always 1, its labels say what runs (a dashboard joins on them; an alert finds mixed versions).
    new Gauge({
      name: `${MetricPrefix}build_info`,
      help: 'Always 1; the labels say which checkpointd version and which Node.js version this process runs.',
      labelNames: ['version', 'node_version'],
      registers: [registry],
    }).set({ version: options.version, node_version: process.version }, 1);

    pulled(registry, 'role', 'This node\'s role: 1 for the role it has, 0 for the others.', ['role'], (set) => {
      const role = failover()?.role;
      if (role !== undefined) for (const r of Roles) set(r === role ? 1 : 0, { role: r });
    });
    pulled(registry, 'epoch', 'Fencing epoch this node writes (primary) or follows (secondary).', [], (set) => set(failover()?.epoch));
    pulled(registry, 'lease_age_seconds', 'Primary: since its last successful lease renewal started. Secondary: since it last saw the lease change.', [], (set) => {
      const f = failover();
      const ms = f?.leaseRenewedAgoMs ?? f?.leaseUnchangedMs;
      set(ms === null || ms === undefined ? null : ms / 1000);
    });
    pulled(registry, 'promotion_paused', '1 while automatic promotion is paused for the installation (checkpointd pause).', [], (set) => {
      const paused = failover()?.paused;
      set(paused === undefined ? null : Number(paused));
    });
    pulled(registry, 'heartbeat_age_seconds', 'Secondary: since the last heartbeat from the primary.', [], (set) => {
      const ms = failover()?.heartbeatSilentMs;
      set(ms === null || ms === undefined ? null : ms / 1000);
    });
    pulled(registry, 'heartbeat_round_trip_seconds', 'Primary: from sending a heartbeat to the standby\'s answer (which comes after it applied the journal up to it), the latest.', ['node'], (set) => {
      for (const s of failover()?.standbys ?? []) if (s.roundTripMs !== null) set(s.roundTripMs / 1000, { node: s.node });
    });
    pulled(registry, 'standbys', 'Primary: standbys connected to its heartbeat.', [], (set) => {
      const f = failover();
      set(f?.role === 'primary' ? f.standbys.length : null);
    });
    pulled(registry, 'standby_lag_records', 'Journal records a standby has not applied yet: on the primary one per connected standby, on a secondary its own (as of the last heartbeat).', ['node'], (set) => {
      const f = failover();
      for (const s of f?.standbys ?? []) set(s.lag, { node: s.node });
      if (f?.standby?.lag !== null && f?.standby?.lag !== undefined) set(f.standby.lag, { node: options.node });
    });
    pulled(registry, 'standby_follow_failing_seconds', 'Secondary: how long applying the journal has been failing (a read error, a record that does not apply; retried with backoff), 0 while it works.', [], (set) => {
      const standby = failover()?.standby;
      set(standby === null || standby === undefined ? null : (standby.followError?.failingForMs ?? 0) / 1000);
    });
    pulled(registry, 'vault_visibility_lag_seconds', 'Secondary: how late its reads of the FileVault show the lease renewals the primary announced in its heartbeats (median of recent samples, or the oldest unseen one); absent while unknown.', [], (set) => {
      const ms = failover()?.standby?.visibilityLag?.leaseMs;
      set(ms === null || ms === undefined ? null : ms / 1000);
    });
    pulled(registry, 'journal_seq', 'Last journal sequence number this node has applied.', [], (set) => set(options.store.state.seq));
    pulled(registry, 'journal_older_files_damaged', '1 when the background check of the journal files start-up did not read found damage (status data.journal.olderFiles names it), else 0.', [], (set) =>
      set(Number(options.store.olderJournal.status().state === 'damaged')),
    );
    pulled(registry, 'journal_since_checkpoint_bytes', 'Journal bytes written after the newest collection checkpoint (what checkpoint.journalThreshold compares).', [], (set) => set(this.view.journalBytes));
    pulled(registry, 'vault_readable', `1 if the FileVault's checkpoint folder answered the last scrape within ${ScrapeVaultWaitMs / 1000} s, else 0 (the checkpoint figures are then the last ones read).`, [], (set) =>
      set(Number(this.view.readable)),
    );
    pulled(registry, 'checkpoints', 'Usable checkpoints in the FileVault, by scope.', ['scope'], (set) => {
      for (const [scope, n] of this.view.counts ?? []) set(n, { scope });
    });
    pulled(registry, 'checkpoints_unusable', 'Checkpoint files found that cannot be used: unreadable (no valid manifest), damaged (content failed to verify) or changed (another file under an id first seen with other content).', ['problem'], (set) => {
      set(options.catalogue.unreadable.size, { problem: 'unreadable' });
      set(options.catalogue.damaged.size, { problem: 'damaged' });
      set(options.catalogue.changed.size, { problem: 'changed' });
    });
    pulled(registry, 'checkpoint_newest_size_bytes', 'Size of the newest collection checkpoint of this installation.', [], (set) => set(this.view.newest?.size));
    pulled(registry, 'checkpoint_last_success_timestamp_seconds', 'When the newest collection checkpoint of this installation was finished (unix seconds; its file\'s mtime, so it survives restarts and is the same on every node).', [], (set) =>
      set(this.view.newest === null ? null : this.view.newest.writtenAt / 1000),
    );

    this.checkpointSeconds = new Histogram({
      name: `${MetricPrefix}checkpoint_duration_seconds`,
      help: 'Time to make a checkpoint this process made, from its start to its publication; by scope and trigger kind.',
      labelNames: ['scope', 'trigger'],
      buckets: CheckpointBuckets,
      registers: [registry],
    });
    this.checkpointFailures = new Counter({
      name: `${MetricPrefix}checkpoint_failures_total`,
      help: 'Checkpoints that failed after they started (disk full, FileVault gone, ...); earlier checkpoints are kept.',
      labelNames: ['scope', 'trigger'],
      registers: [registry],
    });
    this.restores = new Counter({ name: `${MetricPrefix}restores_total`, help: 'Restores this process completed, by scope.', labelNames: ['scope'], registers: [registry] });
    this.leaseRenewalSeconds = new Histogram({
      name: `${MetricPrefix}lease_renewal_interval_seconds`,
      help: 'Primary: time between the starts of two successful lease renewals (renewMs when all is well; the lease lapses past leaseTtlMs - safetyMarginMs).',
      buckets: PaceBuckets,
      registers: [registry],
    });
    this.heartbeatIntervalSeconds = new Histogram({
      name: `${MetricPrefix}heartbeat_interval_seconds`,
      help: "Secondary: time between two heartbeats from the primary on one connection (failover.heartbeatMs when all is well; a pause of either process lengthens it; past heartbeatTimeoutMs the heartbeat counts as silent).",
      buckets: PaceBuckets,
      registers: [registry],
    });
    this.pauses = new Counter({
      name: `${MetricPrefix}process_pauses_total`,
      help: 'Pauses of the main event loop of a second or more, by likely cause (logged at warn with their length).',
      labelNames: ['cause'],
      registers: [registry],
    });
    this.failovers = new Counter({ name: `${MetricPrefix}failovers_total`, help: 'Times this process took over as primary from another node (failover or switchover).', registers: [registry] });
    this.requests = new Counter({
      name: `${MetricPrefix}http_requests_total`,
      help: 'HTTP requests answered, by method, route template (unmatched: no route) and status.',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    this.requestSeconds = new Histogram({
      name: `${MetricPrefix}http_request_duration_seconds`,
      help: 'Time to answer an HTTP request, by method and route template.',
      labelNames: ['method', 'route'],
      buckets: RequestBuckets,
      registers: [registry],
    });
    this.authFailures = new Counter({
      name: `${MetricPrefix}auth_failures_total`,
      help: 'Requests refused by authentication (401) or role (403), and heartbeat connections refused for the cluster token, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    // Counters start at 0 for every label value known ahead, so that rate() and alerts see the first event.
    for (const scope of Scopes) {
      this.restores.inc({ scope }, 0);
      for (const trigger of TriggerKinds) this.checkpointFailures.inc({ scope, trigger }, 0);
    }
    for (const reason of AuthFailures) this.authFailures.inc({ reason }, 0);
  }

  /** The exposition's content type (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Read the FileVault (bounded) and render every metric. */
  async scrape(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  /** Count `checkpointer`'s checkpoints made and failed, and its restores, from now on. */
  watch(checkpointer: Checkpointer): void {
    checkpointer.onCreated((entry) => this.checkpointCreated(entry, checkpointer.durationOf(entry.id)));
    checkpointer.onFailed((request) => this.checkpointFailed(request));
    checkpointer.onRestored((result) => this.restored(result));
  }

  /** A checkpoint was published; `durationMs` as the checkpointer measured it. */
  checkpointCreated(entry: CatalogueEntry, durationMs: number | null): void {
    if (durationMs !== null) this.checkpointSeconds.observe({ scope: entry.manifest.scope, trigger: triggerKind(entry.manifest.trigger) }, durationMs / 1000);
    if (isOwnCollection(entry, this.options.installation) && (this.view.newest === null || entry.manifest.seq >= this.view.newest.manifest.seq)) this.view.newest = entry;
  }

  /** A checkpoint failed after it started. */
  checkpointFailed(request: CreateRequest): void {
    this.checkpointFailures.inc({ scope: request.scope, trigger: triggerKind(request.trigger) });
  }

  /** A restore completed. */
  restored(result: RestoreResult): void {
    this.restores.inc({ scope: result.scope });
  }

  /** The primary renewed its lease. */
  leaseRenewed(renewal: LeaseRenewal): void {
    this.leaseRenewalSeconds.observe(renewal.intervalMs / 1000);
  }

  /** A secondary received a heartbeat `ms` after the one before. */
  heartbeatReceived(ms: number): void {
    this.heartbeatIntervalSeconds.observe(ms / 1000);
  }

  /** The main event loop paused for a second or more. */
  paused(pause: Pause): void {
    this.pauses.inc({ cause: pause.cause });
  }

  /** This node took over as primary from another. */
  promoted(): void {
    this.failovers.inc();
  }

  /** An authentication or role check refused a request, or the heartbeat refused a cluster token. */
  authFailed(reason: AuthFailure): void {
    this.authFailures.inc({ reason });
  }

  /** An HTTP request was answered. `route` is the route template (undefined: no route matched); never the URL. */
  requestAnswered(method: string, route: string | undefined, status: number, ms: number): void {
    const labels = { method: Methods.has(method) ? method : 'other', route: route ?? 'unmatched' };
    this.requests.inc({ ...labels, status: String(status) });
    if (Number.isFinite(ms) && ms >= 0) this.requestSeconds.observe(labels, ms / 1000);
  }

  /** Re-read the checkpoint folder and the journal folder, each waiting at most {@link ScrapeVaultWaitMs}. */
  private async refresh(): Promise<void> {
    const { catalogue } = this.options;
    const [readable, entries] = await Promise.all([
      within(fs.readdir(catalogue.dir).then(() => true, () => false), ScrapeVaultWaitMs, false),
      within(this.list(), ScrapeVaultWaitMs, null),
    ]);
    this.view.readable = readable;
    if (entries !== null) {
      const counts = new Map<CheckpointScope, number>(Scopes.map((s) => [s, 0]));
      for (const e of entries) counts.set(e.manifest.scope, (counts.get(e.manifest.scope) ?? 0) + 1);
      this.view.counts = counts;
      const own = entries.filter((e) => isOwnCollection(e, this.options.installation));
      this.view.newest = own.sort((a, b) => a.manifest.seq - b.manifest.seq || a.id - b.id).at(-1) ?? null;
    }
    this.view.journalBytes = await within(this.journalBytesAfter(this.view.newest?.manifest.seq ?? 0), ScrapeVaultWaitMs, null);
  }

  /** The catalogue's checkpoints (null: the folder cannot be read); a read still running from an earlier scrape is shared. */
  private list(): Promise<CatalogueEntry[] | null> {
    this.listing ??= this.options.catalogue
      .list()
      .then(
        (entries) => entries,
        () => null,
      )
      .finally(() => {
        this.listing = null;
      });
    return this.listing;
  }

  /**
   * Bytes in the journal files that begin after `seq` (the journal rolls to a
   * new file at each collection checkpoint; see triggers/journal-watcher.ts);
   * null when the journal folder cannot be read.
   */
  private async journalBytesAfter(seq: number): Promise<number | null> {
    try {
      let bytes = 0;
      for (const file of await this.options.store.journalFiles()) {
        if (file.firstSeq <= seq) continue;
        // A file pruned since the listing counts for nothing.
        bytes += await fs.stat(file.path).then(
          (s) => s.size,
          (err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT') return 0;
            throw err;
          },
        );
      }
      return bytes;
    } catch {
      return null;
    }
  }
}
