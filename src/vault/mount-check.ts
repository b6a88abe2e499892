/**
 * The FileVault's mount, checked at start-up. Failover is safe only while each
 * node sees the others' writes at once, and a network file system's client
 * keeps three caches that break that, each its own way:
 *
 * - attributes (NFS `acregmin`…`acdirmax`/`actimeo`, SMB `actimeo`, FUSE
 *   `attr_timeout`, sshfs's directory cache): a secondary reads the lease as
 *   it was, and promotes while the primary lives; a journal file keeps its old
 *   size, and a follower stops short of the newest commits;
 * - names (NFS `lookupcache`, FUSE `entry_timeout`/`negative_timeout`, sshfs
 *   `dir_cache`): a journal file or checkpoint another node just created stays
 *   invisible, or one it removed stays listed;
 * - pages (SMB `cache=strict`/`loose`, FUSE `kernel_cache`/`auto_cache`): a
 *   file's content is read from this node's memory after another rewrote it.
 *
 * The kernel tells a mount's type and options in /proc/self/mountinfo; sshfs
 * keeps its caching options in userspace, so they are read from the command
 * line of the sshfs process serving the mount. Every setting known to cache
 * is named with what to change; the daemon refuses to start on them unless
 * `failover.allowCachedVault` is set. A local file system has one cache that
 * every process shares: nothing to say.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** One mount: a line of /proc/self/mountinfo (proc(5)), escapes undone. */
export interface MountInfo {
  id: number;
  parentId: number;
  /** `major:minor` of the file system, as stat's st_dev. */
  device: string;
  /** The folder of the file system mounted here (not `/` for a bind mount of a subfolder). */
  root: string;
  mountPoint: string;
  /** Per-mount options (`rw`, `relatime`, …). */
  mountOptions: string[];
  /** `shared:N`, `master:N`, … */
  optionalFields: string[];
  fsType: string;
  /** What is mounted: `srv:/export`, `//srv/share`, `/dev/vda`, … */
  source: string;
  /** The file system's own options; NFS and SMB show their caching settings here. */
  superOptions: string[];
}

/** A process's command line, as /proc/<pid>/cmdline holds it. */
export interface CommandLine {
  pid: number;
  argv: readonly string[];
}

/** `ok`: nothing to say; `warn`: start and log; `refuse`: do not start. */
export type VaultMountVerdict = 'ok' | 'warn' | 'refuse';

/** What checkVaultMount found. */
export interface VaultMountReport {
  /** The FileVault's real path, whose mount was judged. */
  vault: string;
  /** File-system type (`nfs4`, `cifs`, `fuse.sshfs`, `ext4`, …); empty when the mount could not be read. */
  fsType: string;
  mountPoint: string;
  source: string;
  /** Every option judged: the mount's, the file system's and, for sshfs, those of its command line. */
  options: string[];
  /** Settings that cache, one sentence each naming the option and what to change. */
  problems: string[];
  /** What could not be checked, one sentence each: a warning, never a refusal. */
  unchecked: string[];
  /** `refuse` when there are problems and caching is not allowed; `warn` when there are problems anyway, or something was unchecked. */
  verdict: VaultMountVerdict;
}

/** What checkVaultMount judges by; the readers are injectable so tests need no real mounts. */
export interface VaultMountCheckOptions {
  /** `failover.allowCachedVault`: problems make a warning instead of a refusal. */
  allowCached: boolean;
  /** Text of /proc/self/mountinfo; read from there when not given. */
  mountinfo?: string;
  /** Command lines of the running processes, for sshfs's options; read from /proc/<pid>/cmdline when not given. */
  processes?: () => Promise<readonly CommandLine[]>;
}

const MountInfoFile = '/proc/self/mountinfo';

/** NFS attribute-cache defaults in seconds (nfs(5)). */
const NfsAttributeDefaults = { acregmin: 3, acregmax: 60, acdirmin: 30, acdirmax: 60 } as const;
/** SMB attribute-cache default in seconds (mount.cifs(8)). */
const CifsActimeoDefault = 1;
/** libfuse's attribute and name timeouts in seconds when the file system sets none; negative_timeout defaults to 0. */
const FuseTimeoutDefault = 1;
/** sshfs's directory-cache timeout in seconds when `dcache_timeout` is not given. */
const SshfsDcacheTimeoutDefault = 20;
/** sshfs options under which it caches nothing that another node could change. */
const SshfsSafeOptions = 'dir_cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0';

/** FUSE types that are local file systems (a block device, an overlay of local folders). */
const LocalFuseTypes = new Set(['fuseblk', 'fuse.fuse-overlayfs']);

const StaleNames = 'a node may not see a journal file another node just created, or still see one it removed';
const StalePages = 'a node may read a lease or journal file from its own memory after another node changed it';
const staleAttributes = (seconds: number): string => `a node may read another node's lease, or a journal file's size, up to ${seconds} s old`;

/** `text` with the kernel's octal escapes (`\040` for a space, `\134` for a backslash, …) undone. */
function unescapeOctal(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

function splitOptions(text: string): string[] {
  return text === '' ? [] : text.split(',').map(unescapeOctal);
}

/** The mounts /proc/self/mountinfo `text` lists, in its order; a line that does not parse is skipped. */
export function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 0 || fields.length < separator + 4) continue;
    const [id, parentId, device, root, mountPoint, mountOptions] = fields;
    if (!/^\d+$/.test(id!) || !/^\d+$/.test(parentId!) || !/^\d+:\d+$/.test(device!)) continue;
    mounts.push({
      id: Number(id),
      parentId: Number(parentId),
      device: device!,
      root: unescapeOctal(root!),
      mountPoint: unescapeOctal(mountPoint!),
      mountOptions: splitOptions(mountOptions!),
      optionalFields: fields.slice(6, separator),
      fsType: unescapeOctal(fields[separator + 1]!),
      source: unescapeOctal(fields[separator + 2]!),
      superOptions: splitOptions(fields.slice(separator + 3).join(' ')),
    });
  }
  return mounts;
}

/**
 * The mount holding the absolute path `file`: the longest mount point that is
 * `file` or one of its parent folders; of mounts stacked on one point, the
 * last listed (the one on top). With `device` (`major:minor` of `file`),
 * only the mounts of that file system count when any does, so a mount hidden
 * under a later one on a parent folder is not taken.
 */
export function findMount(mounts: readonly MountInfo[], file: string, device?: string): MountInfo | null {
  const target = path.resolve(file);
  const holding = mounts.filter((m) => m.mountPoint === '/' || target === m.mountPoint || target.startsWith(`${m.mountPoint}/`));
  const sameDevice = device === undefined ? [] : holding.filter((m) => m.device === device);
  let found: MountInfo | null = null;
  for (const mount of sameDevice.length > 0 ? sameDevice : holding) {
    if (found === null || mount.mountPoint.length >= found.mountPoint.length) found = mount;
  }
  return found;
}

/** The value of the last `name=value` among `options`, or undefined. */
function optionValue(options: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (const option of options) if (option.startsWith(`${name}=`)) value = option.slice(name.length + 1);
  return value;
}

/** The number of seconds `name=N` sets (the last one), or undefined when none does. */
function seconds(options: readonly string[], name: string): number | undefined {
  const value = optionValue(options, name);
  if (value === undefined) return undefined;
  const number = Number(value);
  return value.trim() === '' || Number.isNaN(number) ? undefined : number;
}

/** The `-o` options of a FUSE program's command line (`-o a,b`, `-oa,b`), in order. */
function fuseOptions(argv: readonly string[]): string[] {
  const options: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-o') options.push(...(argv[++i] ?? '').split(',').filter((o) => o !== ''));
    else if (arg.startsWith('-o')) options.push(...arg.slice(2).split(',').filter((o) => o !== ''));
  }
  return options;
}

/** The command line of the sshfs process serving `mountPoint`, or null; when several, the last. */
function sshfsServing(processes: readonly CommandLine[], mountPoint: string): CommandLine | null {
  let found: CommandLine | null = null;
  for (const candidate of processes) {
    const [program, ...args] = candidate.argv;
    if (program === undefined || path.basename(program) !== 'sshfs') continue;
    if (args.some((arg) => arg.startsWith('/') && path.resolve(arg) === mountPoint)) found = candidate;
  }
  return found;
}

/** The command lines in /proc/<pid>/cmdline; a process that ends meanwhile, or cannot be read, is left out. */
async function readProcesses(): Promise<CommandLine[]> {
  const processes: CommandLine[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const text = await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    const argv = text.split('\0');
    if (argv.at(-1) === '') argv.pop();
    if (argv.length > 0) processes.push({ pid: Number(name), argv });
  }
  return processes;
}

/** `major:minor` of the file system holding `file`, or undefined when it cannot be told. */
async function deviceOf(file: string): Promise<string | undefined> {
  try {
    const { dev } = await fs.stat(file, { bigint: true });
    // glibc's encoding of dev_t (gnu_dev_major, gnu_dev_minor).
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    return `${String(major)}:${String(minor)}`;
  } catch {
    return undefined;
  }
}

function reasonOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

/** How a mount's settings are judged: one sentence per setting that caches, one per thing unchecked. */
interface Findings {
  problems: string[];
  unchecked: string[];
  /** Options read from outside mountinfo (sshfs's command line). */
  extraOptions: string[];
}

/** One problem: the FileVault and its mount, then `setting: risk; fix`. */
type Sentence = (setting: string, risk: string, fix: string) => string;

function judgeNfs(options: readonly string[], sentence: Sentence): string[] {
  const problems: string[] = [];
  if (!options.includes('noac')) {
    const actimeo = seconds(options, 'actimeo');
    const cached = (Object.keys(NfsAttributeDefaults) as (keyof typeof NfsAttributeDefaults)[])
      .map((name) => [name, seconds(options, name) ?? actimeo ?? NfsAttributeDefaults[name]] as const)
      .filter(([, value]) => value > 0);
    if (cached.length > 0) {
      const longest = Math.max(...cached.map(([, value]) => value));
      const shown = cached.map(([name, value]) => `${name}=${value}`).join(',');
      problems.push(sentence(`mounted without actimeo=0, caching attributes up to ${longest} s (${shown})`, staleAttributes(longest), 'remount with actimeo=0 (or noac)'));
    }
  }
  const lookupcache = optionValue(options, 'lookupcache');
  if (lookupcache !== 'none') {
    const now = lookupcache === undefined ? 'lookupcache=all, the default' : `lookupcache=${lookupcache}`;
    problems.push(sentence(`mounted without lookupcache=none (it has ${now})`, StaleNames, 'remount with lookupcache=none'));
  }
  if (options.includes('nocto')) {
    problems.push(sentence('mounted with nocto', 'a node opening another node\'s lease or journal file may not look for a newer version of it', 'remount without nocto'));
  }
  return problems;
}

function judgeCifs(options: readonly string[], sentence: Sentence): string[] {
  const problems: string[] = [];
  const direct = options.includes('directio') || options.includes('forcedirectio');
  const cache = optionValue(options, 'cache') ?? (direct ? 'none' : undefined);
  if (cache !== 'none') {
    const now = cache === undefined ? 'cache=strict, the default' : `cache=${cache}`;
    problems.push(sentence(`mounted without cache=none (it has ${now})`, StalePages, 'remount with cache=none'));
  }
  const actimeo = seconds(options, 'actimeo');
  const acregmax = seconds(options, 'acregmax');
  const acdirmax = seconds(options, 'acdirmax');
  const file = acregmax ?? actimeo ?? CifsActimeoDefault;
  const folder = acdirmax ?? actimeo ?? CifsActimeoDefault;
  if (file > 0 || folder > 0) {
    const shown =
      acregmax !== undefined || acdirmax !== undefined ? `acregmax=${file},acdirmax=${folder}` : actimeo !== undefined ? `actimeo=${actimeo}` : `actimeo=${CifsActimeoDefault}, the default`;
    const longest = Math.max(file, folder);
    problems.push(sentence(`mounted without actimeo=0 (it has ${shown}), caching attributes up to ${longest} s`, staleAttributes(longest), 'remount with actimeo=0'));
  }
  return problems;
}

function judgeSshfs(options: readonly string[], sentence: Sentence): string[] {
  const problems: string[] = [];
  for (const flag of ['kernel_cache', 'auto_cache']) {
    if (options.includes(flag)) problems.push(sentence(`mounted by sshfs with ${flag}`, StalePages, `remount without ${flag}`));
  }
  const timeout = (name: string, fallback: number, risk: (s: number) => string): void => {
    const value = seconds(options, name);
    const effective = value ?? fallback;
    if (effective <= 0) return;
    const setting = value === undefined ? `mounted by sshfs without ${name}=0 (libfuse's default is ${fallback} s)` : `mounted by sshfs with ${name}=${value}`;
    problems.push(sentence(setting, risk(effective), `remount with -o ${name}=0`));
  };
  timeout('attr_timeout', FuseTimeoutDefault, staleAttributes);
  timeout('entry_timeout', FuseTimeoutDefault, () => StaleNames);
  timeout('negative_timeout', 0, (s) => `a node may not see a journal file another node just created for ${s} s`);
  // `cache=` is sshfs's older name of `dir_cache=`; the last of either wins.
  const dirCache = options.filter((o) => o.startsWith('dir_cache=') || o.startsWith('cache=')).at(-1);
  if (dirCache === undefined || !dirCache.endsWith('=no')) {
    const ttl = seconds(options, 'dcache_timeout') ?? seconds(options, 'cache_timeout') ?? SshfsDcacheTimeoutDefault;
    const now = dirCache === undefined ? 'on by default' : dirCache;
    problems.push(
      sentence(`mounted by sshfs with its directory cache on (${now}, entries kept ${ttl} s)`, `${StaleNames}, and read attributes up to ${ttl} s old`, 'remount with -o dir_cache=no'),
    );
  }
  return problems;
}

/** The problems and unchecked settings of `mount`, which holds `vault`. */
async function judgeMount(mount: MountInfo, vault: string, anyway: string, processes: () => Promise<readonly CommandLine[]>): Promise<Findings> {
  const on = vault === mount.mountPoint ? '' : ` on ${mount.mountPoint},`;
  const subject = `FileVault ${vault} is${on} ${mount.fsType} from ${mount.source}`;
  const sentence: Sentence = (setting, risk, fix) => `${subject}${on === '' ? '' : ','} ${setting}: ${risk}; ${fix}${anyway}`;
  const options = [...mount.mountOptions, ...mount.superOptions];
  const type = mount.fsType;
  if (type === 'nfs' || type === 'nfs4') return { problems: judgeNfs(options, sentence), unchecked: [], extraOptions: [] };
  if (type === 'cifs' || type === 'smb3') return { problems: judgeCifs(options, sentence), unchecked: [], extraOptions: [] };
  if (type === 'fuse.sshfs') {
    let serving: CommandLine | null;
    let why = `no sshfs process serving ${mount.mountPoint} runs in this node's view of /proc (another mount or PID namespace, /proc mounted with hidepid, or a relative mount point on sshfs's command line)`;
    try {
      serving = sshfsServing(await processes(), mount.mountPoint);
    } catch (error) {
      serving = null;
      why = `the processes could not be listed (${reasonOf(error)})`;
    }
    if (serving === null) {
      const advice = `make sure sshfs runs with -o ${SshfsSafeOptions} and without kernel_cache or auto_cache`;
      return { problems: [], unchecked: [`${subject}: its caching options could not be read: ${why}; ${advice}`], extraOptions: [] };
    }
    const extraOptions = fuseOptions(serving.argv);
    return { problems: judgeSshfs([...options, ...extraOptions], sentence), unchecked: [], extraOptions };
  }
  if ((type === 'fuse' || type.startsWith('fuse.')) && !LocalFuseTypes.has(type)) {
    const problems = ['kernel_cache', 'auto_cache'].filter((flag) => options.includes(flag)).map((flag) => sentence(`mounted with ${flag}`, StalePages, `remount without ${flag}`));
    const gluster = type === 'fuse.glusterfs' ? '; for GlusterFS: attribute-timeout=0,entry-timeout=0,negative-timeout=0' : '';
    const unchecked = `${subject}: a FUSE file system's caching cannot be read from its mount options; make sure it caches neither attributes nor names (libfuse: attr_timeout=0,entry_timeout=0,negative_timeout=0, no kernel_cache or auto_cache${gluster})`;
    return { problems, unchecked: [unchecked], extraOptions: [] };
  }
  return { problems: [], unchecked: [], extraOptions: [] };
}

/**
 * Judge the mount holding the FileVault at `vaultPath` (its real path): its
 * type, and its options that let a node cache what another node writes. The
 * verdict is `refuse` when such options are found and `allowCached` is false,
 * `warn` when they are found and it is true or when the options could not be
 * read, else `ok`.
 */
export async function checkVaultMount(vaultPath: string, options: VaultMountCheckOptions): Promise<VaultMountReport> {
  // A FileVault not made yet (the loader makes it) is judged by its path as written.
  const vault = await fs.realpath(vaultPath).catch(() => path.resolve(vaultPath));
  const anyway = options.allowCached ? '' : ' (or set failover.allowCachedVault to start anyway)';
  const unread = (why: string): VaultMountReport => ({
    vault,
    fsType: '',
    mountPoint: '',
    source: '',
    options: [],
    problems: [],
    unchecked: [`the mount holding FileVault ${vault} could not be judged: ${why}; make sure it caches neither attributes, names nor pages on any node`],
    verdict: 'warn',
  });

  let text = options.mountinfo;
  let device: string | undefined;
  if (text === undefined) {
    try {
      text = await fs.readFile(MountInfoFile, 'utf8');
    } catch (error) {
      return unread(`${MountInfoFile} could not be read (${reasonOf(error)})`);
    }
    device = await deviceOf(vault);
  }
  const mount = findMount(parseMountInfo(text), vault, device);
  if (mount === null) return unread(`no mount in ${MountInfoFile} holds it`);

  const findings = await judgeMount(mount, vault, anyway, options.processes ?? readProcesses);
  const verdict: VaultMountVerdict = findings.problems.length > 0 ? (options.allowCached ? 'warn' : 'refuse') : findings.unchecked.length > 0 ? 'warn' : 'ok';
  return {
    vault,
    fsType: mount.fsType,
    mountPoint: mount.mountPoint,
    source: mount.source,
    options: [...new Set([...mount.mountOptions, ...mount.superOptions, ...findings.extraOptions])],
    problems: findings.problems,
    unchecked: findings.unchecked,
    verdict,
  };
}
