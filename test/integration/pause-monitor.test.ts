import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { PauseMonitor, type Pause } from '../../src/log/index.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { waitFor } from '../helpers/wait-for.js';

describe('PauseMonitor', function () {
  it('logs a pause of the main thread with its length and "main thread busy" when synchronous work held it', async function () {
    const { logger, lines } = captureLogger();
    const pauses: Pause[] = [];
    const monitor = new PauseMonitor({ logger, thresholdMs: 300, tickMs: 20, onPause: (p) => pauses.push(p) });
    monitor.start();
    try {
      await delay(100);
      const until = performance.now() + 800;
      while (performance.now() < until) {
        /* synchronous work */
      }
      await waitFor(() => pauses.length > 0, { what: 'the pause to be reported', timeoutMs: 5000 });
    } finally {
      monitor.stop();
    }
    expect(pauses).to.have.length(1);
    expect(pauses[0]!.ms).to.be.at.least(700);
    expect(pauses[0]!.cause).to.equal('main thread busy');
    const logged = lines.filter((l) => l.message === 'the process paused');
    expect(logged).to.have.length(1);
    expect(logged[0]).to.include({ level: 'warn', cause: 'main thread busy' });
    expect(logged[0]!.pausedMs).to.equal(pauses[0]!.ms);
  });

  it('says "process not running" for a process stopped with SIGSTOP', async function () {
    this.timeout(30_000);
    // A child process runs the monitor and prints each pause as a JSON line; it is stopped and continued for real.
    const module = fileURLToPath(new URL('../../src/log/pause-monitor.ts', import.meta.url));
    const script = `
      const { PauseMonitor } = await import(${JSON.stringify(module)});
      const logger = { warn: (message, meta) => console.log(JSON.stringify({ message, ...meta })) };
      new PauseMonitor({ logger, thresholdMs: 300, tickMs: 20 }).start();
      console.log(JSON.stringify({ message: 'ready' }));
      setInterval(() => undefined, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: Array<Record<string, unknown>> = [];
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const part of parts) if (part.trim() !== '') lines.push(JSON.parse(part) as Record<string, unknown>);
    });
    try {
      await waitFor(() => lines.some((l) => l.message === 'ready'), { what: 'the child to start its monitor', timeoutMs: 20_000 });
      await delay(200);
      child.kill('SIGSTOP');
      await delay(800);
      child.kill('SIGCONT');
      await waitFor(() => lines.some((l) => l.message === 'the process paused'), { what: 'the child to report its pause', timeoutMs: 10_000 });
    } finally {
      child.kill('SIGKILL');
    }
    const pause = lines.find((l) => l.message === 'the process paused')!;
    expect(pause.cause).to.equal('process not running');
    expect(pause.pausedMs).to.be.at.least(750);
  });
});
