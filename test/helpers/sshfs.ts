/**
 * A real network file system for end-to-end tests: a private sshd on a
 * loopback port (throwaway keys, its own temporary folder) and sshfs (FUSE)
 * mounts of a folder on it, so that two nodes each see the same folder
 * through their own mount, as two hosts see one NFS/SMB/sshfs share.
 *
 * Each mount runs `sshfs -f` as a child of the test process, so a failed test
 * cannot leave an sshfs daemon behind: {@link SshServer.stop} unmounts every
 * mount it made and kills what is left.
 *
 * What the option sets mean on sshfs 3.7.3 / libfuse 3.14 (Debian 12; `sshfs
 * -h`), as test/e2e/sshfs-mounts.test.ts shows for real:
 * - sshfs caches directory listings and attributes in its own process
 *   (`dir_cache`, 20 s by default; `cache=no` is the old name of
 *   `dir_cache=no`), so under the defaults a file created through one mount
 *   is missing from the other mount's listing for up to 20 s.
 * - The kernel caches names (`entry_timeout`, 1 s by default), attributes
 *   (`attr_timeout`, 1 s), missing names (`negative_timeout`, 0 s) and file
 *   pages: without `kernel_cache` it drops a file's pages at each open, with
 *   it it keeps them, so a reader keeps reading what it read before.
 *   `direct_io` bypasses the page cache altogether.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DaemonProcess, tempDir } from './daemon-process.js';
import { waitFor } from './wait-for.js';
import { accepts } from './tcp.js';

const execFileAsync = promisify(execFile);

/** Where Debian installs the OpenSSH server; sshd must be started by its absolute path. */
const SshdPath = '/usr/sbin/sshd';

/** sshd's privilege-separation folder, which it refuses to start without (the package's service creates it, we do not run the service). */
const SshdRunDir = '/run/sshd';

/** How long {@link SshServer.start} waits for sshd to accept connections. */
const SshdStartMs = 10_000;

/** How long {@link SshServer.mount} waits for the mount to appear. */
const MountMs = 15_000;

/** How long {@link SshfsMount.unmount} waits for the mount to disappear. */
const UnmountMs = 10_000;

/** How long a child gets after SIGTERM before SIGKILL. */
const StopGraceMs = 3_000;

/** No caching anywhere: each read and listing through the mount asks the server. */
export const SafeOptions: readonly string[] = ['dir_cache=no', 'attr_timeout=0', 'entry_timeout=0', 'negative_timeout=0', 'direct_io'];

/** The common speed recipe: kernel page cache kept across opens, names and attributes trusted for 30 s. */
export const CachingOptions: readonly string[] = ['kernel_cache', 'attr_timeout=30', 'entry_timeout=30'];

/** sshfs's own defaults (a 20 s directory and attribute cache in sshfs, 1 s name and attribute caches in the kernel). */
export const DefaultOptions: readonly string[] = [];

/** Null when this machine can run {@link SshServer} and mount with sshfs; else why not, for the suite's skip message. */
export async function sshfsAvailable(): Promise<string | null> {
  const missing: string[] = [];
  if (!(await accessible('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK))) missing.push('/dev/fuse (the FUSE device; in a container, pass --device /dev/fuse)');
  if ((await onPath('sshfs')) === null) missing.push('sshfs (Debian package sshfs)');
  if (!(await accessible(SshdPath, fsConstants.X_OK))) missing.push(`${SshdPath} (Debian package openssh-server)`);
  for (const tool of ['ssh', 'ssh-keygen']) if ((await onPath(tool)) === null) missing.push(`${tool} (Debian package openssh-client)`);
  if ((await onPath('fusermount')) === null && (await onPath('fusermount3')) === null) missing.push('fusermount or fusermount3 (Debian package fuse3)');
  const notes = missing.length > 0 ? [`missing ${missing.join(', ')}; .ci/run installs the packages`] : [];
  // sshd creates /run/sshd, switches users and logs in as root here; a mount needs CAP_SYS_ADMIN or a setuid fusermount.
  if (process.getuid?.() !== 0) notes.push('not running as root (sshd and the mounts are set up as root)');
  return notes.length > 0 ? notes.join('; ') : null;
}

/** A child process (sshd, or the sshfs behind one mount): its stderr and its exit. */
class Child {
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  /** Set when the binary could not be run at all (an 'error' event, not an exit). */
  spawnError: Error | null = null;
  private readonly exited: Promise<void>;

  constructor(private readonly proc: ChildProcess) {
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      proc.on('error', (error) => {
        this.spawnError = error;
        resolve();
      });
      proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      });
    });
  }

  get running(): boolean {
    return this.exit === null && this.spawnError === null;
  }

  /** Resolve once the process has exited, within `ms`; false if it has not. */
  async exitWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const done = await Promise.race([this.exited.then(() => true), timeout]);
    clearTimeout(timer);
    return done;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    if (await this.exitWithin(StopGraceMs)) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/** One sshfs mount of a folder on an {@link SshServer}. */
export class SshfsMount {
  private unmounted = false;

  constructor(
    /** The folder on the server (an absolute path on this machine: the server is local). */
    readonly remoteDir: string,
    /** Where it is mounted (resolved with realpath, as /proc/self/mountinfo names it). */
    readonly mountPoint: string,
    /** The mount options given to {@link SshServer.mount} (without the ssh ones). */
    readonly options: readonly string[],
    private readonly child: Child,
    private readonly onUnmounted: (mount: SshfsMount) => void,
  ) {}

  /** What sshfs (and the ssh it runs) wrote to stderr. */
  get stderr(): string {
    return this.child.stderr;
  }

  /** `fusermount -u` (else `fusermount3 -u`, else `umount -l`), wait until the mount is gone, then until sshfs has exited. */
  async unmount(): Promise<void> {
    if (this.unmounted) return;
    const failures: string[] = [];
    if (await isMounted(this.mountPoint)) {
      const attempts: [string, string[]][] = [
        ['fusermount', ['-u', this.mountPoint]],
        ['fusermount3', ['-u', this.mountPoint]],
        // Lazy: detaches even while a file on the mount is open (a busy mount refuses the two above).
        ['umount', ['-l', this.mountPoint]],
      ];
      for (const [command, args] of attempts) {
        const failure = await runQuietly(command, args);
        if (failure === null) break;
        failures.push(failure);
      }
      try {
        await waitFor(async () => !(await isMounted(this.mountPoint)), { what: `${this.mountPoint} to be unmounted`, timeoutMs: UnmountMs, intervalMs: 50 });
      } catch (e) {
        throw new Error(`unmount ${this.mountPoint}: ${(e as Error).message} (${failures.join('; ')})`);
      }
    }
    // sshfs exits once its mount is gone; one that hangs is killed (its ssh exits with the connection).
    if (!(await this.child.exitWithin(StopGraceMs))) await this.child.stop();
    this.unmounted = true;
    this.onUnmounted(this);
  }
}

/**
 * A private OpenSSH server on 127.0.0.1 and a free port, with throwaway keys
 * in a temporary folder, serving SFTP (internal-sftp) to root with the
 * client key only. Mount folders with {@link SshServer.mount}; {@link stop}
 * unmounts them all, stops sshd and removes the folder.
 */
export class SshServer {
  private readonly mounts = new Set<SshfsMount>();
  private stopped = false;

  private constructor(
    /** Keys, authorized_keys, sshd_config and the pid file; put no mount point in it. */
    readonly dir: string,
    readonly port: number,
    private readonly sshd: Child,
  ) {}

  /** What sshd wrote to stderr (LogLevel ERROR). */
  get stderr(): string {
    return this.sshd.stderr;
  }

  /** The private key sshfs logs in with. */
  get clientKey(): string {
    return path.join(this.dir, 'client_key');
  }

  /** Make keys and a configuration in a new temporary folder, start `sshd -D -e` and wait until it accepts connections. */
  static async start(): Promise<SshServer> {
    const dir = await tempDir('cpd-sshd-');
    try {
      const hostKey = path.join(dir, 'host_key');
      const clientKey = path.join(dir, 'client_key');
      const authorizedKeys = path.join(dir, 'authorized_keys');
      await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'checkpointd-test-host', '-f', hostKey]);
      await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'checkpointd-test-client', '-f', clientKey]);
      await fs.copyFile(`${clientKey}.pub`, authorizedKeys);
      const port = await DaemonProcess.freePort();
      const configFile = path.join(dir, 'sshd_config');
      await fs.writeFile(configFile, sshdConfig(dir, port, hostKey, authorizedKeys));
      await fs.mkdir(SshdRunDir, { recursive: true, mode: 0o755 });
      const sshd = new Child(spawn(SshdPath, ['-D', '-e', '-f', configFile], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }));
      const server = new SshServer(dir, port, sshd);
      try {
        await waitFor(async () => !sshd.running || (await accepts(port)), { what: `sshd to listen on 127.0.0.1:${port}`, timeoutMs: SshdStartMs, intervalMs: 50 });
      } catch (e) {
        await server.stop();
        throw new Error(`${(e as Error).message}\n${sshd.stderr}`);
      }
      if (!sshd.running) {
        await server.stop();
        const why = sshd.spawnError !== null ? sshd.spawnError.message : JSON.stringify(sshd.exit);
        throw new Error(`sshd did not start (${why}); configuration ${configFile}:\n${sshd.stderr}`);
      }
      return server;
    } catch (e) {
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * Mount `remoteDir` (a folder on this machine, served by this sshd) at
   * `mountPoint` (an existing empty folder) with sshfs and the mount
   * `options` (e.g. {@link SafeOptions}); resolves once the kernel lists the
   * mount. The ssh options (this server's key, no host-key check, no
   * prompts) are added here.
   */
  async mount(remoteDir: string, mountPoint: string, options: readonly string[]): Promise<SshfsMount> {
    if (this.stopped) throw new Error('mount: the ssh server is stopped');
    const target = await fs.realpath(mountPoint);
    if (await isMounted(target)) throw new Error(`mount: ${target} is already a mount point`);
    const sshOptions = [`IdentityFile=${this.clientKey}`, 'IdentitiesOnly=yes', 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'BatchMode=yes', 'ConnectTimeout=10', 'LogLevel=ERROR'];
    // -f: stay a child of ours (so a stuck one can be killed); -F /dev/null: no ~/.ssh/config or /etc/ssh/ssh_config.
    const args = [`root@127.0.0.1:${remoteDir}`, target, '-f', '-F', '/dev/null', '-p', String(this.port), '-o', [...sshOptions, ...options].join(',')];
    const child = new Child(spawn('sshfs', args, { stdio: ['ignore', 'ignore', 'pipe'] }));
    const mount = new SshfsMount(remoteDir, target, [...options], child, (m) => this.mounts.delete(m));
    this.mounts.add(mount);
    try {
      await waitFor(async () => !child.running || (await isMounted(target)), { what: `sshfs to mount ${target}`, timeoutMs: MountMs, intervalMs: 50 });
      // sshfs mounts first and connects after (then checks that the remote folder exists): the mount is usable once
      // sshfs answers for its root. If it cannot connect, it unmounts and exits, and this fails (ENOTCONN).
      if (child.running) await fs.stat(target);
      if (!child.running || !(await isMounted(target))) throw new Error('sshfs exited');
    } catch (e) {
      // Its last words name the reason (connection refused, no such file, an unknown option).
      await child.exitWithin(StopGraceMs);
      await mount.unmount();
      const how = child.spawnError !== null ? child.spawnError.message : JSON.stringify(child.exit);
      throw new Error(`mount ${target}: ${(e as Error).message} (sshfs ${args.join(' ')}: ${how}):\n${child.stderr}`);
    }
    return mount;
  }

  /** Unmount every mount still mounted (even when a test failed), stop sshd, remove the folder; throws if a mount would not go. */
  async stop(): Promise<void> {
    this.stopped = true;
    const failures: string[] = [];
    for (const mount of [...this.mounts]) {
      try {
        await mount.unmount();
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    await this.sshd.stop();
    await fs.rm(this.dir, { recursive: true, force: true });
    if (failures.length > 0) throw new Error(`ssh server stop: ${failures.join('; ')}`);
  }
}

/** The sshd_config text for {@link SshServer.start}. */
function sshdConfig(dir: string, port: number, hostKey: string, authorizedKeys: string): string {
  return [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${hostKey}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // authorized_keys sits under /tmp, which is world-writable: StrictModes would refuse it.
    'StrictModes no',
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    'Subsystem sftp internal-sftp',
    'LogLevel ERROR',
    '',
  ].join('\n');
}

/** True when /proc/self/mountinfo lists a mount at `mountPoint` (an absolute, resolved path). */
export async function isMounted(mountPoint: string): Promise<boolean> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with space, tab, newline and backslash written as octal escapes.
  return text.split('\n').some((line) => unescapeMountinfo(line.split(' ')[4] ?? '') === mountPoint);
}

function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Run a command; null when it exits 0, else what went wrong (its stderr). */
async function runQuietly(command: string, args: string[]): Promise<string | null> {
  try {
    await execFileAsync(command, args, { timeout: UnmountMs });
    return null;
  } catch (e) {
    const error = e as Error & { stderr?: string };
    return `${command} ${args.join(' ')}: ${(error.stderr ?? '').trim() || error.message}`;
  }
}

/** The first `name` on PATH that this process may execute, else null. */
async function onPath(name: string): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (await accessible(candidate, fsConstants.X_OK)) return candidate;
  }
  return null;
}

async function accessible(file: string, mode: number): Promise<boolean> {
  try {
    await fs.access(file, mode);
    return true;
  } catch {
    return false;
  }
}

