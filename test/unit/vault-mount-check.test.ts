import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkVaultMount, findMount, parseMountInfo, type CommandLine, type VaultMountReport } from '../../src/vault/index.js';

/** The root and proc lines every fake mountinfo starts with. */
const base = ['22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard', '23 22 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw'];

/** A mountinfo text of the base lines and one more: `type` from `source` on `mountPoint` with super options `options`. */
function mountinfo(type: string, source: string, options: string, mountPoint = '/mnt/vault'): string {
  return [...base, `40 22 0:50 / ${mountPoint.replaceAll(' ', '\\040')} rw,relatime shared:100 - ${type} ${source} ${options}`].join('\n') + '\n';
}

const AnywayHint = '(or set failover.allowCachedVault to start anyway)';

/** checkVaultMount of /mnt/vault on `text`, caching not allowed, with no processes running unless given. */
function check(text: string, processes: CommandLine[] = [], allowCached = false): Promise<VaultMountReport> {
  return checkVaultMount('/mnt/vault', { allowCached, mountinfo: text, processes: async () => processes });
}

describe('the FileVault mount check', function () {
  describe('reading /proc/self/mountinfo', function () {
    it('reads every field, undoing the kernel\'s octal escapes in paths and options', function () {
      const text = [
        '36 35 98:0 /mnt1 /mnt/my\\040vault\\134x rw,noatime master:1 shared:7 - nfs4 srv:/export\\040a rw,vers=4.2,context=a\\054b,lookupcache=none',
        '37 36 0:60 / /mnt/plain rw - tmpfs tmpfs rw',
      ].join('\n');
      expect(parseMountInfo(text)).to.deep.equal([
        {
          id: 36,
          parentId: 35,
          device: '98:0',
          root: '/mnt1',
          mountPoint: '/mnt/my vault\\x',
          mountOptions: ['rw', 'noatime'],
          optionalFields: ['master:1', 'shared:7'],
          fsType: 'nfs4',
          source: 'srv:/export a',
          superOptions: ['rw', 'vers=4.2', 'context=a,b', 'lookupcache=none'],
        },
        { id: 37, parentId: 36, device: '0:60', root: '/', mountPoint: '/mnt/plain', mountOptions: ['rw'], optionalFields: [], fsType: 'tmpfs', source: 'tmpfs', superOptions: ['rw'] },
      ]);
    });

    it('skips lines that are not mounts (blank, cut short, no separator)', function () {
      const text = ['', '36 35 98:0 / /a rw shared:1 nfs4 srv:/x rw', '37 36 0:60 / /b rw - tmpfs', 'x 36 0:60 / /c rw - tmpfs tmpfs rw', base[0]].join('\n');
      expect(parseMountInfo(text).map((m) => m.mountPoint)).to.deep.equal(['/']);
    });

    it('finds a FileVault with a space in its path under its escaped mount point', async function () {
      const report = await checkVaultMount('/mnt/my vault/cp', { allowCached: false, mountinfo: mountinfo('xfs', '/dev/sdb1', 'rw', '/mnt/my vault') });
      expect(report).to.include({ vault: '/mnt/my vault/cp', fsType: 'xfs', mountPoint: '/mnt/my vault', verdict: 'ok' });
    });
  });

  describe('finding the mount that holds a path', function () {
    const mounts = parseMountInfo(
      [
        ...base,
        '40 22 0:50 / /mnt/vault rw - nfs4 old:/export rw',
        '41 22 0:51 / /mnt/vault rw - nfs4 new:/export rw',
        '42 41 0:52 / /mnt/vault/journal rw - tmpfs tmpfs rw',
        '43 22 0:53 / /mnt rw - tmpfs tmpfs rw',
      ].join('\n'),
    );
    const sourceFor = (file: string, device?: string): string | undefined => findMount(mounts, file, device)?.source;

    it('takes the longest mount point that is the path or one of its folders', function () {
      expect(sourceFor('/mnt/vault/journal/000001.log')).to.equal('tmpfs');
      expect(sourceFor('/mnt/vault/checkpoint')).to.equal('new:/export');
      expect(sourceFor('/etc/checkpointd')).to.equal('/dev/vda');
    });

    it('takes the last of mounts stacked on one point: the one on top', function () {
      expect(sourceFor('/mnt/vault')).to.equal('new:/export');
    });

    it('matches on path-component boundaries only: /mnt/vault2 is not under /mnt/vault', function () {
      expect(findMount(mounts, '/mnt/vault2')?.mountPoint).to.equal('/mnt');
      expect(findMount(mounts, '/mnt/vault/journal2')?.mountPoint).to.equal('/mnt/vault');
    });

    it('prefers the mounts of the path\'s own device, so a mount hidden under a later one on a parent folder is not taken', function () {
      // /mnt (0:53) was mounted after /mnt/vault, hiding it: a file the daemon stats there is on 0:53.
      expect(sourceFor('/mnt/vault/x', '0:53')).to.equal('tmpfs');
      expect(sourceFor('/mnt/vault/x', '0:51')).to.equal('new:/export');
      expect(sourceFor('/mnt/vault/x', '9:9'), 'an unknown device falls back to the paths').to.equal('new:/export');
    });
  });

  describe('NFS', function () {
    it('refuses the default mount, which caches attributes and lookups, naming the mount and what to change', async function () {
      const report = await check(mountinfo('nfs4', 'srv:/export', 'rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,local_lock=none,addr=10.0.0.1'));
      expect(report).to.include({ fsType: 'nfs4', mountPoint: '/mnt/vault', source: 'srv:/export', verdict: 'refuse' });
      expect(report.options).to.include.members(['relatime', 'vers=4.2', 'hard']);
      expect(report.problems).to.deep.equal([
        `FileVault /mnt/vault is nfs4 from srv:/export mounted without actimeo=0, caching attributes up to 60 s (acregmin=3,acregmax=60,acdirmin=30,acdirmax=60): a node may read another node's lease, or a journal file's size, up to 60 s old; remount with actimeo=0 (or noac) ${AnywayHint}`,
        `FileVault /mnt/vault is nfs4 from srv:/export mounted without lookupcache=none (it has lookupcache=all, the default): a node may not see a journal file another node just created, or still see one it removed; remount with lookupcache=none ${AnywayHint}`,
      ]);
      expect(report.unchecked).to.deep.equal([]);
    });

    it('passes actimeo=0 as the kernel shows it (all four timeouts 0) with lookupcache=none', async function () {
      const report = await check(mountinfo('nfs4', 'srv:/export', 'rw,vers=4.2,acregmin=0,acregmax=0,acdirmin=0,acdirmax=0,hard,lookupcache=none,addr=10.0.0.1'));
      expect(report).to.include({ verdict: 'ok' });
      expect(report.problems).to.deep.equal([]);
    });

    it('passes noac, or actimeo=0 as written, with lookupcache=none', async function () {
      expect((await check(mountinfo('nfs', 'srv:/export', 'rw,sync,vers=3,noac,lookupcache=none'))).verdict).to.equal('ok');
      expect((await check(mountinfo('nfs', 'srv:/export', 'rw,vers=3,actimeo=0,lookupcache=none'))).verdict).to.equal('ok');
    });

    it('names each caching setting that is left: a non-zero timeout, lookupcache=pos, nocto', async function () {
      const report = await check(mountinfo('nfs4', 'srv:/export', 'rw,acregmin=0,acregmax=0,acdirmin=0,acdirmax=5,lookupcache=pos,nocto'));
      expect(report.verdict).to.equal('refuse');
      expect(report.problems).to.have.length(3);
      expect(report.problems[0]).to.include('caching attributes up to 5 s (acdirmax=5)').and.include('remount with actimeo=0');
      expect(report.problems[1]).to.include('mounted without lookupcache=none (it has lookupcache=pos)');
      expect(report.problems[2]).to.include('mounted with nocto').and.include('remount without nocto');
    });
  });

  describe('SMB (cifs, smb3)', function () {
    it('refuses cache=strict (the default) and a 1 s attribute cache', async function () {
      const report = await check(mountinfo('cifs', '//srv/share', 'rw,vers=3.1.1,cache=strict,username=cp,uid=0,noforceuid,gid=0,noforcegid,addr=10.0.0.1,file_mode=0755,dir_mode=0755,soft,nounix,serverino,mapposix,rsize=4194304,wsize=4194304,bsize=1048576,echo_interval=60,actimeo=1,closetimeo=1'));
      expect(report.verdict).to.equal('refuse');
      expect(report.problems).to.deep.equal([
        `FileVault /mnt/vault is cifs from //srv/share mounted without cache=none (it has cache=strict): a node may read a lease or journal file from its own memory after another node changed it; remount with cache=none ${AnywayHint}`,
        `FileVault /mnt/vault is cifs from //srv/share mounted without actimeo=0 (it has actimeo=1), caching attributes up to 1 s: a node may read another node's lease, or a journal file's size, up to 1 s old; remount with actimeo=0 ${AnywayHint}`,
      ]);
    });

    it('passes cache=none with actimeo=0', async function () {
      expect((await check(mountinfo('cifs', '//srv/share', 'rw,vers=3.1.1,cache=none,actimeo=0'))).verdict).to.equal('ok');
      expect((await check(mountinfo('smb3', '//srv/share', 'rw,vers=3.1.1,cache=none,actimeo=0'))).verdict).to.equal('ok');
    });

    it('says which default it assumes when an option is not shown, and reads separate acregmax and acdirmax', async function () {
      const defaults = await check(mountinfo('smb3', '//srv/share', 'rw,vers=3.1.1'));
      expect(defaults.problems[0]).to.include('(it has cache=strict, the default)');
      expect(defaults.problems[1]).to.include('(it has actimeo=1, the default)');
      const split = await check(mountinfo('cifs', '//srv/share', 'rw,cache=loose,acdirmax=30,acregmax=0'));
      expect(split.problems[0]).to.include('(it has cache=loose)');
      expect(split.problems[1]).to.include('(it has acregmax=0,acdirmax=30), caching attributes up to 30 s');
    });
  });

  describe('sshfs', function () {
    const sshfsLine = mountinfo('fuse.sshfs', 'cp@srv:/export', 'rw,user_id=0,group_id=0,allow_other');
    const sshfs = (...args: string[]): CommandLine => ({ pid: 4242, argv: ['sshfs', 'cp@srv:/export', '/mnt/vault', ...args] });

    it('reads the options of the sshfs process serving the mount and refuses the caching ones', async function () {
      const processes = [
        { pid: 1, argv: ['/sbin/init'] },
        { pid: 4243, argv: ['ssh', '-x', '-a', '-oClearAllForwardings=yes', 'srv', '-s', 'sftp'] },
        sshfs('-o', 'reconnect,kernel_cache,attr_timeout=30,entry_timeout=30'),
      ];
      const report = await check(sshfsLine, processes);
      expect(report).to.include({ fsType: 'fuse.sshfs', source: 'cp@srv:/export', verdict: 'refuse' });
      expect(report.options).to.include.members(['allow_other', 'reconnect', 'kernel_cache', 'attr_timeout=30']);
      expect(report.problems).to.deep.equal([
        `FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs with kernel_cache: a node may read a lease or journal file from its own memory after another node changed it; remount without kernel_cache ${AnywayHint}`,
        `FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs with attr_timeout=30: a node may read another node's lease, or a journal file's size, up to 30 s old; remount with -o attr_timeout=0 ${AnywayHint}`,
        `FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs with entry_timeout=30: a node may not see a journal file another node just created, or still see one it removed; remount with -o entry_timeout=0 ${AnywayHint}`,
        `FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs with its directory cache on (on by default, entries kept 20 s): a node may not see a journal file another node just created, or still see one it removed, and read attributes up to 20 s old; remount with -o dir_cache=no ${AnywayHint}`,
      ]);
    });

    it('passes sshfs options that cache nothing', async function () {
      const report = await check(sshfsLine, [sshfs('-o', 'reconnect', '-o', 'cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0,dir_cache=no')]);
      expect(report.problems).to.deep.equal([]);
      expect(report.unchecked).to.deep.equal([]);
      expect(report.verdict).to.equal('ok');
    });

    it('counts libfuse\'s and sshfs\'s defaults when an option is absent, and reads -oOPTS and cache= as the older dir_cache=', async function () {
      const bare = await check(sshfsLine, [sshfs()]);
      expect(bare.problems.map((p) => p.split(': ')[0])).to.deep.equal([
        'FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs without attr_timeout=0 (libfuse\'s default is 1 s)',
        'FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs without entry_timeout=0 (libfuse\'s default is 1 s)',
        'FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs with its directory cache on (on by default, entries kept 20 s)',
      ]);
      const compact = await check(sshfsLine, [sshfs('-oattr_timeout=0,entry_timeout=0,negative_timeout=5,auto_cache,dir_cache=no,cache=yes,dcache_timeout=60')]);
      expect(compact.problems.map((p) => p.split(': ')[0]!.replace('FileVault /mnt/vault is fuse.sshfs from cp@srv:/export mounted by sshfs ', ''))).to.deep.equal([
        'with auto_cache',
        'with negative_timeout=5',
        'with its directory cache on (cache=yes, entries kept 60 s)',
      ]);
    });

    it('finds the process by the mount point, not by another sshfs mount', async function () {
      const other: CommandLine = { pid: 7, argv: ['/usr/bin/sshfs', 'cp@srv:/export', '/mnt/vault2', '-o', 'kernel_cache'] };
      const here: CommandLine = { pid: 8, argv: ['/usr/bin/sshfs', 'cp@srv:/export', '/mnt/vault/', '-o', 'dir_cache=no,attr_timeout=0,entry_timeout=0'] };
      expect((await check(sshfsLine, [other, here])).verdict).to.equal('ok');
    });

    it('warns, without refusing, when the sshfs process cannot be found or the processes cannot be listed', async function () {
      const missing = await check(sshfsLine, [{ pid: 7, argv: ['sshfs', 'cp@srv:/export', '/elsewhere'] }]);
      expect(missing).to.include({ verdict: 'warn' });
      expect(missing.problems).to.deep.equal([]);
      expect(missing.unchecked).to.have.length(1);
      expect(missing.unchecked[0]).to.match(/^FileVault \/mnt\/vault is fuse\.sshfs from cp@srv:\/export: its caching options could not be read: no sshfs process serving \/mnt\/vault runs/);
      expect(missing.unchecked[0]).to.include('make sure sshfs runs with -o dir_cache=no,attr_timeout=0,entry_timeout=0,negative_timeout=0 and without kernel_cache or auto_cache');
      const unlisted = await checkVaultMount('/mnt/vault', {
        allowCached: false,
        mountinfo: sshfsLine,
        processes: () => Promise.reject(Object.assign(new Error('no /proc'), { code: 'ENOENT' })),
      });
      expect(unlisted).to.include({ verdict: 'warn' });
      expect(unlisted.unchecked[0]).to.include('the processes could not be listed (ENOENT)');
    });
  });

  describe('other FUSE file systems', function () {
    it('warns that a FUSE file system\'s caching cannot be read, with GlusterFS\'s own options', async function () {
      const report = await check(mountinfo('fuse.glusterfs', 'srv:/vol', 'rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072'));
      expect(report).to.include({ verdict: 'warn' });
      expect(report.problems).to.deep.equal([]);
      expect(report.unchecked).to.deep.equal([
        'FileVault /mnt/vault is fuse.glusterfs from srv:/vol: a FUSE file system\'s caching cannot be read from its mount options; make sure it caches neither attributes nor names (libfuse: attr_timeout=0,entry_timeout=0,negative_timeout=0, no kernel_cache or auto_cache; for GlusterFS: attribute-timeout=0,entry-timeout=0,negative-timeout=0)',
      ]);
    });

    it('refuses kernel_cache or auto_cache when the mount options show it', async function () {
      const report = await check(mountinfo('fuse.rclone', 'remote:', 'rw,user_id=0,group_id=0,kernel_cache'));
      expect(report.verdict).to.equal('refuse');
      expect(report.problems).to.have.length(1);
      expect(report.problems[0]).to.include('mounted with kernel_cache').and.include('remount without kernel_cache');
    });
  });

  describe('local file systems', function () {
    for (const [type, source, options] of [
      ['ext4', '/dev/sdb1', 'rw,errors=remount-ro'],
      ['tmpfs', 'tmpfs', 'rw,size=1024k'],
      ['xfs', '/dev/sdc', 'rw,attr2,inode64,noquota'],
      ['btrfs', '/dev/sdd', 'rw,space_cache=v2,subvolid=5,subvol=/'],
      ['overlay', 'overlay', 'rw,lowerdir=/a,upperdir=/b,workdir=/c'],
      ['zfs', 'tank/vault', 'rw,xattr,noacl'],
      ['fuseblk', '/dev/sde1', 'rw,user_id=0,group_id=0,allow_other'],
    ]) {
      it(`has nothing to say about ${type}`, async function () {
        const report = await check(mountinfo(type!, source!, options!));
        expect(report).to.deep.include({ fsType: type, problems: [], unchecked: [], verdict: 'ok' });
      });
    }
  });

  describe('the verdict', function () {
    const caching = mountinfo('nfs4', 'srv:/export', 'rw,vers=4.2');

    it('refuses on a setting that caches unless caching is allowed, and then warns with the same problems', async function () {
      const refused = await check(caching);
      const allowed = await check(caching, [], true);
      expect(refused.verdict).to.equal('refuse');
      expect(allowed.verdict).to.equal('warn');
      expect(allowed.problems).to.deep.equal(refused.problems.map((p) => p.replace(` ${AnywayHint}`, '')));
      for (const problem of allowed.problems) expect(problem).not.to.include('allowCachedVault');
    });

    it('warns about what it could not read even when caching is allowed, and is ok on a safe mount either way', async function () {
      const fuse = mountinfo('fuse.glusterfs', 'srv:/vol', 'rw');
      expect((await check(fuse, [], true)).verdict).to.equal('warn');
      const safe = mountinfo('nfs4', 'srv:/export', 'rw,noac,lookupcache=none');
      expect((await check(safe, [], false)).verdict).to.equal('ok');
      expect((await check(safe, [], true)).verdict).to.equal('ok');
    });

    it('names the mount point when the FileVault is a folder below it', async function () {
      const report = await checkVaultMount('/mnt/vault/checkpointd', { allowCached: false, mountinfo: caching });
      expect(report).to.include({ vault: '/mnt/vault/checkpointd', mountPoint: '/mnt/vault' });
      expect(report.problems[1]).to.match(/^FileVault \/mnt\/vault\/checkpointd is on \/mnt\/vault, nfs4 from srv:\/export, mounted without lookupcache=none/);
    });

    it('warns when no mount holds the FileVault', async function () {
      const report = await check('');
      expect(report).to.include({ fsType: '', verdict: 'warn' });
      expect(report.unchecked).to.deep.equal([
        'the mount holding FileVault /mnt/vault could not be judged: no mount in /proc/self/mountinfo holds it; make sure it caches neither attributes, names nor pages on any node',
      ]);
    });
  });

  describe('on this machine', function () {
    let dir: string;
    beforeEach(async function () {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cpd-mount-check-'));
    });
    afterEach(async function () {
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('reads the real /proc/self/mountinfo for the real path of a temp folder: ok on a local file system', async function () {
      if (process.platform !== 'linux') this.skip();
      const vault = path.join(dir, 'FileVault');
      await fs.mkdir(vault);
      await fs.symlink(vault, path.join(dir, 'link'));
      const report = await checkVaultMount(path.join(dir, 'link'), { allowCached: false });
      expect(report.vault).to.equal(await fs.realpath(vault));
      expect(report.vault === report.mountPoint || report.vault.startsWith(report.mountPoint === '/' ? '/' : `${report.mountPoint}/`)).to.equal(true);
      expect(report.fsType).not.to.equal('');
      expect(report, `the temp folder is on ${report.fsType}`).to.deep.include({ problems: [], unchecked: [], verdict: 'ok' });
    });
  });
});
