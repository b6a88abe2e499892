/**
 * `checkpointd run`: the daemon in the foreground, as systemd runs it.
 *
 * Signals: SIGTERM or SIGINT stop it cleanly (Daemon.stop: stop accepting,
 * answer the requests in flight, the clean-shutdown checkpoint if configured,
 * release the lease) and exit 0, or exit 1 after ShutdownTimeoutMs whatever
 * is left; a second SIGTERM or SIGINT ends it at once. SIGHUP reloads the
 * configuration (see reload.ts). Under systemd (`Type=notify`) it reports
 * READY=1 once serving, RELOADING=1/READY=1 around a reload, STOPPING=1 at a
 * shutdown, and pings the watchdog (see systemd-notify.ts).
 */
import { loadCommandConfig, ShutdownTimeoutMs } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { Daemon } from './daemon.js';
import { reloadConfig } from './reload.js';
import { SystemdNotifier } from './systemd-notify.js';

/** Run the daemon from the configuration `--config` names (undefined: CHECKPOINTD_CONFIG, else the default path); resolves when it has stopped. */
export async function runCommand(configOption: string | undefined): Promise<void> {
  const config = await loadCommandConfig(configOption);
  const logger = createLogger({ level: config.log.level, node: config.node.name });
  const notifier = await SystemdNotifier.open(logger);

  // SIGHUP's default action ends the process. One listener from here to the end: removing the last one would
  // give the signal back its default action for a moment, and a reload asked right at READY=1 would then end the
  // daemon. One that arrives during start-up is held and reloads once serving.
  let daemon: Daemon | null = null;
  let hupDuringStart = false;
  let running = config;
  let stopping = false;
  let reloading: Promise<void> | null = null;
  let reloadAgain = false;
  // One reload at a time; SIGHUPs that arrive during one make one more after it.
  const reload = async (serving: Daemon): Promise<void> => {
    try {
      do {
        reloadAgain = false;
        notifier.reloading();
        running = await reloadConfig(serving, running);
        notifier.reloaded(statusLine(serving));
      } while (reloadAgain && !stopping);
    } catch (err) {
      logger.error('reload failed', { err });
    } finally {
      reloading = null;
    }
  };
  const onHup = (): void => {
    if (daemon === null) hupDuringStart = true;
    else if (stopping) return;
    else if (reloading !== null) reloadAgain = true;
    else reloading = reload(daemon);
  };
  // Stays installed through the shutdown, so a late SIGHUP does not end the process mid-stop.
  process.on('SIGHUP', onHup);
  try {
    daemon = await Daemon.start(config, logger);
  } catch (err) {
    process.off('SIGHUP', onHup);
    throw err;
  }
  const started: Daemon = daemon;
  notifier.ready(() => statusLine(started));
  if (hupDuringStart) onHup();

  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      stopping = true;
      notifier.stopping();
      const timer = setTimeout(() => {
        logger.error('shutdown took too long; exiting anyway', { timeoutMs: ShutdownTimeoutMs });
        process.exit(1);
      }, ShutdownTimeoutMs);
      timer.unref();
      started.stop(signal).then(resolve, (err: unknown) => {
        logger.error('shutdown failed', { err });
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  notifier.close();
}

/** The `STATUS=` line `systemctl status` shows: role, epoch and where the API is. */
function statusLine(daemon: Daemon): string {
  const { role, epoch } = daemon.failover;
  const paused = daemon.failover.status().paused ? ', automatic promotion paused' : '';
  return `${role}, epoch ${epoch}, serving on ${daemon.url}${paused}`;
}
