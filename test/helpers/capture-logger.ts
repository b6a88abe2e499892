/** A real logger (createLogger, level debug) whose JSON lines a test reads back, parsed, as they are written. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log/index.js';
import type { LogLine } from './daemon-process.js';

export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', stream }), lines };
}
