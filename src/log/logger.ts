/**
 * The winston logger: one JSON object per line on stdout, every field passed
 * through the secret scrubber first.
 */
import winston from 'winston';
import { redact } from './redact.js';

export type Logger = winston.Logger;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

const scrub = winston.format((info) => {
  for (const key of Object.keys(info)) {
    (info as Record<string, unknown>)[key] = redact(info[key]);
  }
  return info;
});

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  level: LogLevel;
  /** Node name stamped on every line. */
  node?: string;
  /** Where lines go; stdout unless a test or the CLI says otherwise. */
  stream?: NodeJS.WritableStream;
}

/** A JSON-lines logger at `level`. */
export function createLogger(options: LoggerOptions): Logger {
  return winston.createLogger({
    level: options.level,
    defaultMeta: options.node === undefined ? {} : { node: options.node },
    format: winston.format.combine(scrub(), winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stdout })],
  });
}

/** A logger that drops everything, for library code run without a daemon. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
