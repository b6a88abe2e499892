/**
 * The sd_notify(3) protocol, for `Type=notify` units: newline-separated
 * `KEY=value` lines in one datagram to the AF_UNIX socket named by
 * `$NOTIFY_SOCKET`. systemd counts the unit as started at `READY=1`, shows
 * `STATUS=` in `systemctl status`, and with `WatchdogSec=` restarts the
 * service when `WATCHDOG=1` stops arriving.
 *
 * Node's dgram module has no AF_UNIX datagram sockets, so this uses the
 * optional native module `unix-dgram`, loaded only when `$NOTIFY_SOCKET` is
 * set. Each message opens a socket, sends and closes it (as libsystemd's
 * sd_notify does), so nothing here keeps the process alive.
 *
 * The watchdog pings come from an ordinary event-loop timer on purpose: a
 * wedged event loop (a runaway synchronous loop, a deadlock on the main
 * thread) stops the pings, and systemd restarts the daemon.
 */
import { getSystemErrorName } from 'node:util';
import { SystemdStatusPollMs } from '../config/index.js';
import type { Logger } from '../log/index.js';

/** Environment variable naming the notification socket (a path, or `@name` for an abstract one). */
export const NotifySocketEnv = 'NOTIFY_SOCKET';
/** Environment variable with the watchdog timeout in microseconds (`WatchdogSec=`). */
export const WatchdogUsecEnv = 'WATCHDOG_USEC';
/** Environment variable naming the process the watchdog settings are meant for. */
export const WatchdogPidEnv = 'WATCHDOG_PID';

/** The part of unix-dgram's socket used here (the module ships no types). */
interface UnixDgramSocket {
  on(event: 'error', listener: (err: Error) => void): void;
  send(buf: Buffer, offset: number, length: number, path: string, callback: (err?: Error) => void): void;
  close(): void;
}

interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): UnixDgramSocket;
}

/**
 * Tells systemd how the daemon is doing. When `$NOTIFY_SOCKET` is unset (not
 * run by systemd as `Type=notify`) every method does nothing.
 */
export class SystemdNotifier {
  private watchdog: NodeJS.Timeout | null = null;
  private statusPoll: NodeJS.Timeout | null = null;
  private lastStatus = '';
  private stoppingSent = false;
  private warnedSend = false;

  private constructor(
    private readonly logger: Logger,
    private readonly module: UnixDgramModule | null,
    private readonly address: string | null,
    /** Watchdog ping interval: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises; null = no watchdog. */
    readonly watchdogMs: number | null,
  ) {}

  /**
   * Read `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `env` and
   * remove them from it, so that child processes (`failover.onRoleChange`)
   * cannot speak for the daemon. If the socket is named but unix-dgram cannot
   * load, log one warning and return a notifier that does nothing.
   */
  static async open(logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<SystemdNotifier> {
    const socket = env[NotifySocketEnv];
    const watchdogUsec = env[WatchdogUsecEnv];
    const watchdogPid = env[WatchdogPidEnv];
    delete env[NotifySocketEnv];
    delete env[WatchdogUsecEnv];
    delete env[WatchdogPidEnv];
    if (socket === undefined || socket === '') return new SystemdNotifier(logger, null, null, null);
    // Abstract socket names start with '@' in the variable and with a NUL byte in the address.
    const address = socket.startsWith('@') ? '\0' + socket.slice(1) : socket;
    let watchdogMs: number | null = null;
    const usec = Number(watchdogUsec);
    if (watchdogUsec !== undefined && Number.isSafeInteger(usec) && usec > 0 && (watchdogPid === undefined || watchdogPid === '' || Number(watchdogPid) === process.pid)) {
      watchdogMs = Math.max(1, Math.floor(usec / 2000));
    }
    let module: UnixDgramModule;
    try {
      // A variable, not a literal: the package is optional and ships no types.
      const name = 'unix-dgram';
      const loaded = (await import(name)) as { default?: UnixDgramModule } & Partial<UnixDgramModule>;
      module = loaded.default ?? (loaded as UnixDgramModule);
    } catch (err) {
      logger.warn(
        `${NotifySocketEnv} is set but the optional module unix-dgram cannot load, so systemd hears no READY=1 and no watchdog pings (a Type=notify unit then times out at start); reinstall checkpointd with optional dependencies and a C++ toolchain (npm install --include=optional), or run the unit as Type=simple without WatchdogSec`,
        { socket, error: (err as Error).message },
      );
      return new SystemdNotifier(logger, null, null, null);
    }
    return new SystemdNotifier(logger, module, address, watchdogMs);
  }

  /** True when messages go somewhere. */
  get active(): boolean {
    return this.module !== null;
  }

  /**
   * The daemon serves: `READY=1` with `status()` as `STATUS=`. Starts the
   * watchdog pings (when systemd asked for them) and re-sends `STATUS=` when
   * `status()` changes (a promotion, say).
   */
  ready(status: () => string): void {
    if (!this.active || this.stoppingSent) return;
    this.lastStatus = status();
    this.send(`READY=1\nSTATUS=${this.lastStatus}`);
    if (this.watchdog === null && this.watchdogMs !== null) {
      this.watchdog = setInterval(() => this.send('WATCHDOG=1'), this.watchdogMs);
      this.watchdog.unref();
    }
    if (this.statusPoll === null) {
      this.statusPoll = setInterval(() => {
        const line = status();
        if (line === this.lastStatus) return;
        this.lastStatus = line;
        this.send(`STATUS=${line}`);
      }, SystemdStatusPollMs);
      this.statusPoll.unref();
    }
  }

  /** A reload (SIGHUP) begins: `RELOADING=1` with the CLOCK_MONOTONIC time systemd ≥ 253 expects. */
  reloading(): void {
    if (!this.active || this.stoppingSent) return;
    // process.hrtime reads CLOCK_MONOTONIC on Linux (libuv's uv_hrtime), the clock systemd compares with.
    this.send(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}\nSTATUS=reloading the configuration`);
  }

  /** The reload is over (applied or refused): `READY=1` again, with the current status. */
  reloaded(status: string): void {
    if (!this.active || this.stoppingSent) return;
    this.lastStatus = status;
    this.send(`READY=1\nSTATUS=${status}`);
  }

  /** A shutdown begins: `STOPPING=1`. Stops the pings and the status updates; nothing else is sent. */
  stopping(): void {
    if (!this.active || this.stoppingSent) return;
    this.stoppingSent = true;
    this.close();
    this.send('STOPPING=1\nSTATUS=shutting down');
  }

  /** Clear the timers. Idempotent. */
  close(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
    if (this.statusPoll !== null) clearInterval(this.statusPoll);
    this.statusPoll = null;
  }

  private send(message: string): void {
    const module = this.module;
    if (module === null || this.address === null) return;
    const fail = (err: Error): void => {
      // One warning: a socket that refuses once refuses every watchdog ping after it.
      if (this.warnedSend) return;
      this.warnedSend = true;
      const abstract = this.address!.startsWith('\0');
      this.logger.warn('cannot send a notification to systemd', {
        socket: abstract ? '@' + this.address!.slice(1) : this.address,
        error: errorName(err),
        ...(abstract
          ? { fix: 'unix-dgram pads socket addresses to their full length, so it cannot reach an abstract socket (@name) bound by its exact name; run under a supervisor whose NOTIFY_SOCKET is a path (systemd uses /run/systemd/notify)' }
          : {}),
      });
    };
    let socket: UnixDgramSocket;
    try {
      socket = module.createSocket('unix_dgram');
    } catch (err) {
      fail(err as Error);
      return;
    }
    socket.on('error', fail);
    const buf = Buffer.from(message, 'utf8');
    try {
      socket.send(buf, 0, buf.length, this.address, (err) => {
        if (err !== undefined) fail(err);
      });
    } finally {
      socket.close();
    }
  }
}

/** unix-dgram's errors carry a negative errno and a message like `send -111`: name it (ECONNREFUSED). */
function errorName(err: Error): string {
  const code = (err as NodeJS.ErrnoException).errno;
  if (typeof code !== 'number' || code >= 0) return err.message;
  try {
    return `${err.message.split(' ')[0]} ${getSystemErrorName(code)}`;
  } catch {
    return err.message;
  }
}
