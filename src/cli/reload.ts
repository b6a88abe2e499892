/**
 * SIGHUP (`systemctl reload`): re-read the configuration file and apply what
 * can change under a running daemon: the log level, the tokens file (a token
 * added by `checkpointd token create` or removed by hand), the TLS
 * certificate at `api.tls` (a renewed one), and `checkpoint.maxDiskRate` (for
 * the checkpoints started after it). Every other setting (ports,
 * paths, role, timings, …) is built into the running parts, so a change to
 * one is named in a "needs a restart" warning and not applied. A file that no
 * longer loads is refused as a whole and the daemon keeps its settings: a
 * typo must not take down a running primary.
 */
import { loadConfig, type Config } from '../config/index.js';
import type { Daemon } from './daemon.js';

/** Settings a reload applies; a change to any other needs a restart. */
export const ReloadableSettings: readonly string[] = ['log.level', 'checkpoint.maxDiskRate'];

/**
 * Reload from `running.file`. `running` is the configuration in force (what
 * the daemon started with, plus earlier reloads' log level); the one now in
 * force is returned. Never throws: every failure is a log line.
 */
export async function reloadConfig(daemon: Daemon, running: Config): Promise<Config> {
  const { logger } = daemon;
  let next: Config;
  try {
    next = await loadConfig(running.file);
  } catch (err) {
    logger.error('configuration reload refused; the daemon keeps running with its current settings', { file: running.file, error: (err as Error).message });
    return running;
  }

  const restart = changedSettings(running, next).filter((key) => !ReloadableSettings.includes(key));
  if (restart.length > 0) {
    logger.warn('configuration changes that need a restart were not applied', { settings: restart, fix: 'restart the daemon to apply them (systemctl restart checkpointd)' });
  }

  const levelBefore = running.log.level;
  const level = next.log.level;
  // Turning logging down waits for the line below, so that line is logged at the more verbose of the two levels.
  const quieter = (logger.levels[level] ?? 0) < (logger.levels[levelBefore] ?? 0);
  if (!quieter) logger.level = level;

  let tokens: number | null = null;
  try {
    await daemon.tokens.reload();
    tokens = daemon.tokens.size;
  } catch (err) {
    // TokenStore.reload changes nothing when it fails: everyone keeps access.
    logger.error('tokens file cannot be read; keeping the tokens loaded before', { file: daemon.tokens.file, error: (err as Error).message });
  }

  let tls = false;
  try {
    tls = await daemon.reloadTls();
  } catch (err) {
    logger.error('TLS certificate cannot be reloaded; serving the one loaded before', { error: (err as Error).message });
  }

  const { maxDiskRate } = next.checkpoint;
  daemon.checkpointer.setMaxDiskRate(maxDiskRate);

  logger.info('reloaded', { file: running.file, logLevel: levelBefore === level ? level : `${levelBefore}→${level}`, tokens, tls, maxDiskRate });
  if (quieter) logger.level = level;
  return { ...running, log: { ...running.log, level }, checkpoint: { ...running.checkpoint, maxDiskRate } };
}

/** Dotted names of the settings whose values differ between `a` and `b` (arrays compare whole). */
export function changedSettings(a: Config, b: Config): string[] {
  const left = flatten(a);
  const right = flatten(b);
  const keys = new Set([...left.keys(), ...right.keys()]);
  return [...keys].filter((key) => left.get(key) !== right.get(key)).sort();
}

function flatten(value: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix === '' ? key : `${prefix}.${key}`, out);
  } else {
    out.set(prefix, JSON.stringify(value) ?? 'undefined');
  }
  return out;
}
