/** `checkpointd run`: the daemon in the foreground until SIGTERM or SIGINT. */
import { loadConfig } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { Daemon, ShutdownTimeoutMs } from './daemon.js';

/** Run the daemon from `configFile`; resolves when it has stopped. */
export async function runCommand(configFile: string): Promise<void> {
  const config = await loadConfig(configFile);
  const logger = createLogger({ level: config.log.level, node: config.node.name });
  const daemon = await Daemon.start(config, logger);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      const timer = setTimeout(() => {
        logger.error('shutdown took too long; exiting anyway', { timeoutMs: ShutdownTimeoutMs });
        process.exit(1);
      }, ShutdownTimeoutMs);
      timer.unref();
      daemon.stop(signal).then(resolve, (err: unknown) => {
        logger.error('shutdown failed', { err });
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
