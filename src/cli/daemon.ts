/**
 * The daemon: wires configuration, logging, the FileVault, the store and the
 * API together, and takes them down again in order. `checkpointd run` is a
 * thin shell around it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildServer, Metrics, TokenStore, type ApiContext } from '../api/index.js';
import { Catalogue, Checkpointer, loadStartBase, replayRestore, StandbyPreloader, type StartBase } from '../checkpoint/index.js';
import { InFlightGraceMs, PreloadIntervalMs, readCertificateAuthorities, readServerCertificate, StaleTempMs, type Config } from '../config/index.js';
import { listCountedJournalFiles } from '../journal/index.js';
import { PauseMonitor, type Logger } from '../log/index.js';
import { Engine, EngineDivergedError, engineUnusable, Store } from '../store/index.js';
import { FailoverManager, LeaseFile, watchLeaseFromStart, type LeaseWatcher } from '../failover/index.js';
import { AutoCheckpointer, eventTrigger } from '../triggers/index.js';
import { checkVaultMount, InstallationFile, installationId, PidLock, removeTempFiles, setTempOwner, VaultPaths, writeFileAtomic } from '../vault/index.js';
import { ConfigError } from '../errors.js';
import { Version } from '../version.js';

/** Name of the file the first admin token is written to, inside paths.data. */
export const AdminTokenFile = 'admin.token';
/** Node-local cache of checkpoint files' SHA-256s, inside paths.data. */
export const CheckpointHashCache = 'checkpoint-sha256.json';
/** During a shutdown, how often keep-alive connections whose request has been answered are closed. */
const IdleReapMs = 50;

/** A running checkpointd. */
export class Daemon {
  private serving = false;
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly config: Config,
    readonly logger: Logger,
    readonly store: Store,
    readonly tokens: TokenStore,
    readonly checkpointer: Checkpointer,
    private readonly autoHolder: { auto: AutoCheckpointer | null },
    readonly failover: FailoverManager,
    private readonly app: FastifyInstance,
    private readonly lock: PidLock,
    readonly url: string,
    private readonly pauses: PauseMonitor,
  ) {}

  /** Automatic checkpoints, while this node is the primary. */
  get auto(): AutoCheckpointer | null {
    return this.autoHolder.auto;
  }

  /**
   * Read `api.tls`'s certificate and key again and serve them to new
   * connections (open ones keep theirs): a renewed certificate without a
   * restart. False when TLS is off. A file that cannot be used throws a
   * ConfigError and the certificate served stays as it was.
   */
  async reloadTls(): Promise<boolean> {
    const tls = this.config.api.tls;
    if (tls === null) return false;
    const certificate = await readServerCertificate(this.config.file, tls);
    // Fastify made an https.Server because api.tls is set.
    (this.app.server as HttpsServer).setSecureContext({ cert: certificate.cert, key: certificate.key });
    this.logger.info('TLS certificate reloaded', { cert: tls.cert, names: certificate.names, validTo: certificate.validTo });
    return true;
  }

  /** Start: lock the data folder, recover the journal, listen, take the configured role. */
  static async start(config: Config, logger: Logger): Promise<Daemon> {
    const startedAt = new Date().toISOString();
    // The PEM files first: one that cannot be used stops the start (status 2) before anything is locked.
    const certificate = config.api.tls === null ? null : await readServerCertificate(config.file, config.api.tls);
    const ca = config.failover.tls.ca === null ? null : await readCertificateAuthorities(config.file, config.failover.tls.ca);
    const lock = await PidLock.acquire(path.join(config.paths.data, 'checkpointd.pid'));
    let earlyWatcher: LeaseWatcher | null = null;
    // From the start: a long checkpoint load is where a large heap pauses first.
    const pauseSink: { metrics?: Metrics } = {};
    const pauses = new PauseMonitor({ logger, onPause: (pause) => pauseSink.metrics?.paused(pause) });
    pauses.start();
    try {
      const vault = new VaultPaths(config.paths.fileVault);
      await vault.ensure();
      const mount = await checkMount(config, vault, logger);
      // Before any temp file is made: temp names say which node made them (see removeTempFiles).
      setTempOwner(config.node.name);
      await removeSmallFileTemps(config, vault, logger);
      const tokens = await TokenStore.open(config.auth.tokensFile, logger);
      if (!tokens.exists) await bootstrapAdminToken(config, tokens, logger);
      const installation = await installationId(vault.root);
      const catalogue = new Catalogue(vault.checkpoint, logger, path.join(config.paths.data, CheckpointHashCache));
      await catalogue.init();
      // The storage engine under paths.data: reused when it follows this installation's journal, else rebuilt.
      const engineDir = path.join(config.paths.data, 'engine');
      const scratchDir = path.join(config.paths.data, 'scratch');
      await fs.rm(scratchDir, { recursive: true, force: true });
      await fs.mkdir(scratchDir, { recursive: true });
      const openEngine = async (dir: string, fresh: boolean): Promise<{ engine: Engine; base: StartBase | null }> => {
        if (fresh) Engine.remove(dir);
        let engine = Engine.open({ dir, cacheBytes: config.store.cacheSize, logger });
        try {
          const files = await listCountedJournalFiles(vault.journal);
          const unusable = engineUnusable(engine, installation, files);
          if (unusable === null && engine.appliedSeq > 0) return { engine, base: null };
          if (unusable !== null) {
            logger.warn('the data folder does not follow this journal; rebuilding it from the newest checkpoint', { reason: unusable, appliedSeq: engine.appliedSeq });
            engine.close();
            Engine.remove(dir);
            engine = Engine.open({ dir, cacheBytes: config.store.cacheSize, logger });
          }
          engine.setInstallation(installation);
          // The newest verified collection checkpoint of this installation that the journal reaches back to.
          const base = await loadStartBase(catalogue, installation, files[0]?.firstSeq ?? null, logger, engine);
          return { engine, base };
        } catch (err) {
          engine.close();
          throw err;
        }
      };
      // Watch the lease from now on: a node starting while the primary is dead counts that silence during its load.
      const early = await watchLeaseFromStart(vault.failover, config.failover, logger);
      earlyWatcher = early.watcher;
      // Every node starts by following the journal; the failover manager makes it the writer once it holds an epoch.
      const openFollower = (engine: Engine): Promise<Store> =>
        Store.open({
          journalDir: vault.journal,
          sync: config.journal.sync,
          groupCommitMs: config.journal.groupCommitMs,
          syncIntervalMs: config.journal.syncIntervalMs,
          logger,
          engine,
          readOnly: true,
          replayRestore: (op, engine, seq, epoch) => replayRestore(catalogue, op, engine, seq, epoch),
        });
      // The primary prunes journal files that a newer checkpoint covers: one may vanish between the listing and
      // its replay here. The newest checkpoint then covers it: start again from there (a few times at most).
      const openFromNewest = async (dir: string, fresh: boolean): Promise<{ base: StartBase | null; store: Store }> => {
        for (let attempt = 1; ; attempt++) {
          const { engine, base } = await openEngine(dir, fresh || attempt > 1);
          try {
            return { base, store: await openFollower(engine) };
          } catch (err) {
            engine.close();
            const e = err as NodeJS.ErrnoException;
            const pruned = e.code === 'ENOENT' && typeof e.path === 'string' && path.resolve(path.dirname(e.path)) === path.resolve(vault.journal);
            if (attempt >= 3 || !(pruned || err instanceof EngineDivergedError)) throw err;
            logger.info('a journal file was pruned while this node replayed it, or the data folder applied void records; starting again from the newest checkpoint', { error: e.message, attempt });
          }
        }
      };
      const { base, store } = await openFromNewest(engineDir, false);
      const checkpointer = new Checkpointer({ catalogue, store, logger, node: config.node.name, compression: config.checkpoint.compression, directWrites: config.checkpoint.directWrites, maxDiskRate: config.checkpoint.maxDiskRate, installation, scratchDir });
      const autoHolder: { auto: AutoCheckpointer | null } = { auto: null };
      let publicUrl = config.api.publicUrl ?? '';
      // Health routes ask the daemon whether it serves; it exists only once the server listens.
      const holder: { daemon?: Daemon } = {};
      const failoverStatus = (): ReturnType<FailoverManager['status']> | null => holder.daemon?.failover.status() ?? null;
      const metrics = new Metrics({ node: config.node.name, store, catalogue, installation, failover: failoverStatus, version: Version });
      metrics.watch(checkpointer);
      pauseSink.metrics = metrics;
      const ctx: ApiContext = {
        config,
        logger,
        store,
        tokens,
        metrics,
        checkpointer,
        auto: () => autoHolder.auto,
        failover: failoverStatus,
        failoverManager: () => holder.daemon?.failover ?? null,
        startedAt,
        version: Version,
        role: () => (holder.daemon?.failover.role === 'primary' ? 'primary' : 'secondary'),
        serving: () => holder.daemon?.serving ?? false,
        publicUrl: () => publicUrl,
      };
      const app = buildServer(ctx, certificate);
      const crash = lock.tookOverStale ? 'no clean-shutdown mark (stale pid lock)' : store.recovery.scan.cut !== null ? 'torn journal tail' : null;
      if (crash !== null) logger.warn('the last run did not end cleanly', { evidence: crash });
      const failover = new FailoverManager({
        node: config.node.name,
        configuredRole: config.node.role,
        config: config.failover,
        dir: vault.failover,
        store,
        server: app.server,
        url: () => publicUrl,
        logger,
        newestCheckpoint: () => autoHolder.auto?.status().newest?.id ?? null,
        onPrimary: async (_epoch, promoted) => {
          if (promoted) metrics.promoted();
          const auto = new AutoCheckpointer({ checkpointer, store, config: config.checkpoint, journalDir: vault.journal, logger });
          await auto.start();
          autoHolder.auto = auto;
          if (!promoted && crash !== null) auto.event('crash-recovery');
        },
        requestCheckpoint: (event) => autoHolder.auto?.event(event),
        rebuild: async () => (await openFromNewest(`${engineDir}.rebuild`, true)).store,
        early,
        preloader: new StandbyPreloader({
          catalogue,
          installation,
          logger,
          intervalMs: PreloadIntervalMs,
          loaded: base === null ? null : { id: base.entry.id, seq: base.entry.manifest.seq, bytes: base.entry.size, ms: base.ms },
        }),
        heartbeatTls: { ...(ca === null ? {} : { ca }), ...(config.failover.tls.serverName === null ? {} : { serverName: config.failover.tls.serverName }) },
        onClusterTokenRefused: () => metrics.authFailed('cluster_token'),
        onLeaseRenewed: (renewal) => metrics.leaseRenewed(renewal),
        onHeartbeatInterval: (ms) => metrics.heartbeatReceived(ms),
        vaultMayCache: mount.verdict === 'warn',
        vaultDescription: `${vault.root} (${mount.fsType} mounted at ${mount.mountPoint})`,
        onNotPrimary: async () => {
          const auto = autoHolder.auto;
          autoHolder.auto = null;
          await auto?.stop();
        },
      });
      try {
        await app.listen({ host: config.api.host, port: config.api.port });
        const address = app.server.address() as AddressInfo;
        const local = `${certificate === null ? 'http' : 'https'}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
        if (certificate !== null) logger.info('serving HTTPS', { cert: config.api.tls?.cert, names: certificate.names, validTo: certificate.validTo });
        if (publicUrl === '') publicUrl = local;
        const daemon = new Daemon(config, logger, store, tokens, checkpointer, autoHolder, failover, app, lock, local, pauses);
        holder.daemon = daemon;
        await failover.start();
        daemon.serving = true;
        logger.info('listening', { version: Version, nodeVersion: process.version, url: local, port: address.port, publicUrl, role: failover.role, epoch: failover.epoch, seq: store.state.seq, startCheckpoint: base?.entry.id ?? null });
        return daemon;
      } catch (err) {
        failover.stop();
        await autoHolder.auto?.stop();
        await app.close();
        await store.close();
        store.engine.close();
        await failover.release();
        throw err;
      }
    } catch (err) {
      earlyWatcher?.stop();
      pauses.stop();
      await lock.release();
      throw err;
    }
  }

  /** Stop accepting, finish in-flight requests, flush the journal, release the lock. Idempotent. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('shutting down', { reason });
      this.serving = false;
      this.failover.stop();
      const cut = setTimeout(() => {
        this.logger.warn('requests still in flight after the grace period; closing their connections', { graceMs: InFlightGraceMs });
        this.app.server.closeAllConnections();
      }, InFlightGraceMs);
      // The server's close reaps idle keep-alive connections once; one whose request is answered later would
      // otherwise stay open (keepAliveTimeout) and hold the close up.
      const reap = setInterval(() => this.app.server.closeIdleConnections(), IdleReapMs);
      try {
        await this.app.close();
      } finally {
        clearTimeout(cut);
        clearInterval(reap);
      }
      await this.autoHolder.auto?.stop(this.config.checkpoint.events['clean-shutdown'] ? eventTrigger('clean-shutdown') : undefined);
      await this.store.close();
      const seq = this.store.state.seq;
      this.store.engine.close();
      await this.failover.release();
      await this.lock.release();
      this.pauses.stop();
      this.logger.info('stopped', { seq });
    })();
    return this.stopping;
  }
}

/** File systems a FileVault on one host may sit on; any other is taken as shared over a network. */
const LocalFileSystems = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'tmpfs', 'overlay', 'zfs', 'f2fs', 'jfs', 'reiserfs', 'bcachefs', 'ramfs']);

/**
 * The FileVault's mount: one known to cache (attributes, listings, pages) lets
 * a secondary read a stale lease and promote while the primary lives, so it
 * stops the start (status 2) unless failover.allowCachedVault says otherwise.
 */
async function checkMount(config: Config, vault: VaultPaths, logger: Logger): Promise<Awaited<ReturnType<typeof checkVaultMount>>> {
  const report = await checkVaultMount(vault.root, { allowCached: config.failover.allowCachedVault });
  if (report.verdict === 'refuse') {
    throw new ConfigError(`the FileVault mount caches what other nodes write: ${report.problems.join(' ')}`);
  }
  if (config.journal.sync === 'interval' && report.fsType !== '' && !LocalFileSystems.has(report.fsType)) {
    // Acknowledged before the fdatasync: on a network file system the record may sit in this client's cache,
    // unseen by a standby that takes over, or lost with this host.
    logger.warn('journal.sync is "interval" on a network FileVault: commits are acknowledged before they reach the server, so a failover or a crash of this host can lose the last syncIntervalMs of acknowledged commits; use journal.sync "commit" for failover without loss', {
      fileVault: vault.root,
      fsType: report.fsType,
    });
  }
  if (report.verdict === 'warn') {
    logger.warn('the FileVault mount may cache what other nodes write; a secondary then refuses to promote below the seq the last heartbeat reported, but may act on a stale lease', {
      fileVault: vault.root,
      fsType: report.fsType,
      mountPoint: report.mountPoint,
      problems: report.problems,
      unchecked: report.unchecked,
    });
  }
  return report;
}

/**
 * The temp files a crash left beside the small files replaced whole (writeFileAtomic): the installation id
 * and the lease in the FileVault, the tokens file, the hash cache and the first admin token. Only those
 * names go from the tokens file's folder, which may hold other programs' files. Checkpoint temp files are
 * the catalogue's (Catalogue.init).
 */
async function removeSmallFileTemps(config: Config, vault: VaultPaths, logger: Logger): Promise<void> {
  const folders: [string, string[]][] = [
    [vault.root, [InstallationFile]],
    [vault.failover, [LeaseFile]],
    [path.dirname(config.auth.tokensFile), [path.basename(config.auth.tokensFile)]],
    [config.paths.data, [CheckpointHashCache, AdminTokenFile]],
  ];
  for (const [dir, names] of folders) {
    const removed = await removeTempFiles(dir, StaleTempMs, names);
    if (removed.length > 0) logger.warn('removed temp files a crash left behind', { dir, files: removed });
  }
}

async function bootstrapAdminToken(config: Config, tokens: TokenStore, logger: Logger): Promise<void> {
  const token = await tokens.create('admin', 'collection-admin');
  const file = path.join(config.paths.data, AdminTokenFile);
  await writeFileAtomic(file, token + '\n', 0o600);
  logger.warn('created the first admin token; read it from the file, keep it safe, and delete the file once stored elsewhere', { file, tokensFile: config.auth.tokensFile });
}
