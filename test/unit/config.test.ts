import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/errors.js';
import {
  DefaultApiHost,
  DefaultCheckpointCompression,
  parseCompression,
  DefaultApiPort,
  DefaultBodyLimitBytes,
  DefaultGroupCommitMs,
  DefaultJournalSync,
  DefaultLogLevel,
  DefaultSyncIntervalMs,
  loadConfig,
  type Config,
} from '../../src/config/index.js';
import { configSchema, sectionSchemas } from '../../src/config/schema.js';
import { validateConfigFile } from '../../src/config/validate-file.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The failover section a file that sets nothing gets, for a FileVault at `vault`. */
const defaultFailover = (vault: string): Config['failover'] => ({
  clusterTokenFile: path.join(vault, 'failover', 'cluster.token'),
  heartbeatMs: 500,
  heartbeatTimeoutMs: 2000,
  leaseTtlMs: 5000,
  renewMs: 1000,
  safetyMarginMs: 1000,
  onRoleChange: null,
  tls: { ca: null, serverName: null },
  allowCachedVault: false,
});

/** The checkpoint section a file that sets nothing gets. */
const defaultCheckpoint: Config['checkpoint'] = {
  compression: parseCompression(DefaultCheckpointCompression),
  directWrites: true,
  maxDiskRate: null,
  journalThreshold: 256 * 1024 * 1024,
  watch: { usePolling: true, intervalMs: 500 },
  events: {
    'space-created': true,
    'space-upgraded': true,
    'template-loaded': true,
    'restore-done': true,
    promotion: true,
    'clean-shutdown': true,
    'crash-recovery': true,
  },
  schedule: null,
  coalesceMs: 1000,
  retention: { keepLast: 7, keepWithinMs: null },
  retry: { minMs: 1000, maxMs: 300_000 },
};
const defaultConfigFile = path.join(repoRoot, 'config', 'default.json');

describe('loadConfig', () => {
  let tmp: string;
  /** Folder of the configuration file, so that it differs from both tmp and the cwd. */
  let confDir: string;

  beforeEach(async () => {
    tmp = await realpath(await mkdtemp(path.join(tmpdir(), 'checkpointd-config-')));
    confDir = path.join(tmp, 'etc');
    await mkdir(confDir);
  });

  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  async function writeConfig(content: unknown): Promise<string> {
    const file = path.join(confDir, 'checkpointd.json');
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return file;
  }

  /** The ConfigError loading `file` throws; fails the test if it loads or throws anything else. */
  async function loadError(file: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
    let config: Config;
    try {
      config = await loadConfig(file, env);
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      const message = (error as ConfigError).message;
      expect(message, 'one line').not.to.include('\n');
      expect(message).to.match(new RegExp(`^config ${escape(path.resolve(file))}: `));
      return message;
    }
    expect.fail(`expected a ConfigError, got ${JSON.stringify(config)}`);
  }

  async function problemWith(content: unknown): Promise<string> {
    const file = await writeConfig(content);
    return (await loadError(file)).slice(`config ${file}: `.length);
  }

  it('fills every missing key from the defaults', async () => {
    const file = await writeConfig({});
    const config = await loadConfig(file, {});
    expect(config).to.deep.equal({
      file,
      node: { name: hostname(), role: 'primary' },
      api: { host: DefaultApiHost, port: DefaultApiPort, publicUrl: null, bodyLimitBytes: DefaultBodyLimitBytes, tls: null },
      paths: { data: path.join(confDir, 'data'), fileVault: path.join(confDir, 'FileVault') },
      auth: { tokensFile: path.join(confDir, 'data', 'tokens.json') },
      journal: { sync: DefaultJournalSync, groupCommitMs: DefaultGroupCommitMs, syncIntervalMs: DefaultSyncIntervalMs },
      store: { cacheSize: 256 * 1024 * 1024 },
      checkpoint: defaultCheckpoint,
      failover: defaultFailover(path.join(confDir, 'FileVault')),
      log: { level: DefaultLogLevel },
    } satisfies Config);
  });

  it('keeps every value the file sets', async () => {
    const file = await writeConfig({
      $comment: 'second node',
      node: { name: 'node-b.example_1', role: 'secondary' },
      api: { host: '0.0.0.0', port: 0, publicUrl: 'https://cp.example.com/base/', bodyLimitBytes: '2MiB', tls: { cert: 'tls/cert.pem', key: '/etc/checkpointd/key.pem' } },
      paths: { data: path.join(tmp, 'data'), fileVault: path.join(tmp, 'vault') },
      auth: { tokensFile: path.join(tmp, 'secret', 'tokens.json') },
      journal: { sync: 'interval', groupCommitMs: 5, syncIntervalMs: 250 },
      store: { cacheSize: 256 * 1024 * 1024 },
      checkpoint: {
        compression: 'deflate:9',
        directWrites: false,
        maxDiskRate: '32MiB',
        journalThreshold: '64MiB',
        watch: { usePolling: false, intervalMs: 250 },
        events: { 'clean-shutdown': false, promotion: false },
        schedule: '0 30 2 * * *',
        coalesceMs: 250,
        retention: { keepLast: 3, keepWithin: '1d12h' },
        retry: { minMs: 100, maxMs: 2000 },
      },
      failover: { clusterTokenFile: '../shared/cluster.token', heartbeatMs: 250, heartbeatTimeoutMs: 1000, leaseTtlMs: 3000, renewMs: 500, safetyMarginMs: 500, onRoleChange: '/usr/local/bin/vip-move', tls: { ca: '../shared/ca.pem', serverName: 'cp.example.com' }, allowCachedVault: true },
      log: { level: 'debug' },
    });
    const config = await loadConfig(file, {});
    expect(config).to.deep.equal({
      file,
      node: { name: 'node-b.example_1', role: 'secondary' },
      api: { host: '0.0.0.0', port: 0, publicUrl: 'https://cp.example.com/base', bodyLimitBytes: 2 * 1024 * 1024, tls: { cert: path.join(confDir, 'tls', 'cert.pem'), key: '/etc/checkpointd/key.pem' } },
      paths: { data: path.join(tmp, 'data'), fileVault: path.join(tmp, 'vault') },
      auth: { tokensFile: path.join(tmp, 'secret', 'tokens.json') },
      journal: { sync: 'interval', groupCommitMs: 5, syncIntervalMs: 250 },
      store: { cacheSize: 256 * 1024 * 1024 },
      checkpoint: {
        compression: { method: 'deflate', level: 9 },
        directWrites: false,
        maxDiskRate: 32 * 1024 * 1024,
        journalThreshold: 64 * 1024 * 1024,
        watch: { usePolling: false, intervalMs: 250 },
        events: { ...defaultCheckpoint.events, 'clean-shutdown': false, promotion: false },
        schedule: '0 30 2 * * *',
        coalesceMs: 250,
        retention: { keepLast: 3, keepWithinMs: 36 * 3_600_000 },
        retry: { minMs: 100, maxMs: 2000 },
      },
      failover: {
        clusterTokenFile: path.join(path.dirname(confDir), 'shared', 'cluster.token'),
        heartbeatMs: 250,
        heartbeatTimeoutMs: 1000,
        leaseTtlMs: 3000,
        renewMs: 500,
        safetyMarginMs: 500,
        onRoleChange: '/usr/local/bin/vip-move',
        tls: { ca: path.join(path.dirname(confDir), 'shared', 'ca.pem'), serverName: 'cp.example.com' },
        allowCachedVault: true,
      },
      log: { level: 'debug' },
    } satisfies Config);
  });

  it('reads the automatic-checkpoint settings and refuses bad ones with the key named', async () => {
    const checkpoint = async (section: unknown): Promise<Config['checkpoint']> => (await loadConfig(await writeConfig({ checkpoint: section }), {})).checkpoint;
    expect((await checkpoint({ journalThreshold: null })).journalThreshold).to.equal(null);
    expect((await checkpoint({ journalThreshold: 8192 })).journalThreshold).to.equal(8192);
    expect((await checkpoint({ schedule: '*/5 * * * * *' })).schedule).to.equal('*/5 * * * * *');
    expect((await checkpoint({ retention: { keepWithin: '2w' } })).retention.keepWithinMs).to.equal(14 * 86_400_000);
    expect(await problemWith({ checkpoint: { journalThreshold: '10 parsecs' } })).to.include('"checkpoint.journalThreshold" must be a size');
    expect(await problemWith({ checkpoint: { journalThreshold: 100 } })).to.include('"checkpoint.journalThreshold" must be a size of at least 4096 bytes');
    expect((await checkpoint({ maxDiskRate: '25 MiB' })).maxDiskRate).to.equal(25 * 1024 * 1024);
    expect((await checkpoint({ maxDiskRate: 2_000_000 })).maxDiskRate).to.equal(2_000_000);
    expect((await checkpoint({ maxDiskRate: null })).maxDiskRate).to.equal(null);
    expect(await problemWith({ checkpoint: { maxDiskRate: 'fast' } })).to.include('"checkpoint.maxDiskRate" must be a size');
    expect(await problemWith({ checkpoint: { maxDiskRate: '512KiB' } })).to.include('"checkpoint.maxDiskRate" must be a size a second of at least 1MiB');
    const cron = await problemWith({ checkpoint: { schedule: '61 * * * *' } });
    expect(cron).to.match(/^"checkpoint\.schedule" must be a cron expression like "0 0 3 \* \* \*".*got "61 \* \* \* \*"/);
    expect(await problemWith({ checkpoint: { schedule: 'every day' } })).to.include('"checkpoint.schedule" must be a cron expression');
    expect(await problemWith({ checkpoint: { retention: { keepWithin: 'a week' } } })).to.include('"checkpoint.retention.keepWithin" must be a duration');
    expect(await problemWith({ checkpoint: { retention: { keepLast: 0 } } })).to.include('"checkpoint.retention.keepLast" must be an integer from 1');
    expect(await problemWith({ checkpoint: { events: { 'space-deleted': true } } })).to.include('unknown key "checkpoint.events.space-deleted"; known keys under "checkpoint.events": space-created');
    expect(await problemWith({ checkpoint: { events: { promotion: 'yes' } } })).to.include('"checkpoint.events.promotion" must be true or false');
    expect(await problemWith({ checkpoint: { retry: { minMs: 5000, maxMs: 1000 } } })).to.include('"checkpoint.retry.maxMs" (1000) must not be below "checkpoint.retry.minMs" (5000)');
  });

  it('refuses failover timings that could fence a healthy primary or promote past a live one', async () => {
    expect(await problemWith({ failover: { heartbeatMs: 1000, heartbeatTimeoutMs: 1000 } })).to.include('"failover.heartbeatTimeoutMs" (1000) must be longer than "failover.heartbeatMs" (1000)');
    expect(await problemWith({ failover: { renewMs: 3000, safetyMarginMs: 2000, leaseTtlMs: 5000 } })).to.include('must be shorter than "failover.leaseTtlMs" (5000)');
    expect(await problemWith({ failover: { leaseTtlMs: 'long' } })).to.include('"failover.leaseTtlMs" must be an integer');
  });

  it('reads failover.allowCachedVault (false unless set) and refuses a value that is not true or false, naming the key', async () => {
    expect((await loadConfig(await writeConfig({}), {})).failover.allowCachedVault).to.equal(false);
    expect((await loadConfig(await writeConfig({ failover: { allowCachedVault: true } }), {})).failover.allowCachedVault).to.equal(true);
    expect((await loadConfig(await writeConfig({ failover: { allowCachedVault: false } }), {})).failover.allowCachedVault).to.equal(false);
    expect(await problemWith({ failover: { allowCachedVault: 'yes' } })).to.equal(
      '"failover.allowCachedVault" must be true or false (true: start on a FileVault mount that caches, with a warning), got "yes"',
    );
    expect(await problemWith({ failover: { allowCachedVault: 1 } })).to.match(/^"failover\.allowCachedVault" must be true or false .*, got 1$/);
    expect(await problemWith({ failover: { allowCachedVault: null } })).to.match(/^"failover\.allowCachedVault" must be true or false .*, got null$/);
  });

  it('reads checkpoint.compression as store or deflate with a level, and refuses anything else', async () => {
    expect((await loadConfig(await writeConfig({ checkpoint: { compression: 'store' } }), {})).checkpoint.compression).to.deep.equal({ method: 'store' });
    expect((await loadConfig(await writeConfig({ checkpoint: { compression: 'deflate' } }), {})).checkpoint.compression).to.deep.equal({ method: 'deflate', level: 6 });
    expect((await loadConfig(await writeConfig({ checkpoint: { compression: 'deflate:1' } }), {})).checkpoint.compression).to.deep.equal({ method: 'deflate', level: 1 });
    for (const bad of ['zstd', 'deflate:0', 'deflate:10', 7]) {
      expect(await problemWith({ checkpoint: { compression: bad } })).to.include('"checkpoint.compression"');
    }
  });

  it('resolves relative paths against the config file folder, not the current directory', async () => {
    const file = await writeConfig({ paths: { data: 'd', fileVault: '../shared/vault' }, auth: { tokensFile: 'keys/t.json' } });
    const config = await loadConfig(path.relative(process.cwd(), file), {});
    expect(config.file).to.equal(file);
    expect(config.paths).to.deep.equal({ data: path.join(confDir, 'd'), fileVault: path.join(tmp, 'shared', 'vault') });
    expect(config.auth.tokensFile).to.equal(path.join(confDir, 'keys', 't.json'));
  });

  it('creates the data, FileVault and tokens folders when they are missing', async () => {
    const file = await writeConfig({
      paths: { data: 'a/b/data', fileVault: 'c/d/vault' },
      auth: { tokensFile: 'e/f/tokens.json' },
    });
    await loadConfig(file, {});
    for (const folder of ['a/b/data', 'c/d/vault', 'e/f']) {
      expect((await stat(path.join(confDir, folder))).isDirectory(), folder).to.equal(true);
    }
    expect(existsSync(path.join(confDir, 'e/f/tokens.json')), 'the tokens file itself is not created').to.equal(false);
  });

  it('takes api.port from CHECKPOINTD_PORT over the file', async () => {
    const file = await writeConfig({ api: { port: 9000 } });
    expect((await loadConfig(file, { CHECKPOINTD_PORT: '9123' })).api.port).to.equal(9123);
    expect((await loadConfig(file, { CHECKPOINTD_PORT: '0' })).api.port).to.equal(0);
    expect((await loadConfig(file, { CHECKPOINTD_PORT: '' })).api.port, 'empty counts as unset').to.equal(9000);
  });

  it('refuses a CHECKPOINTD_PORT that is not an integer from 0 to 65535, naming it and its value', async () => {
    const file = await writeConfig({});
    for (const value of ['abc', '65536', '-1', '80.5', ' 80']) {
      expect(await loadError(file, { CHECKPOINTD_PORT: value })).to.equal(
        `config ${file}: environment variable CHECKPOINTD_PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`,
      );
    }
  });

  it('takes paths.data from CHECKPOINTD_DATA, relative to the current directory, and the default tokens file follows it', async () => {
    const file = await writeConfig({ paths: { data: 'from-file' } });
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      const config = await loadConfig(file, { CHECKPOINTD_DATA: 'env-data' });
      expect(config.paths.data).to.equal(path.join(tmp, 'env-data'));
      expect(config.auth.tokensFile).to.equal(path.join(tmp, 'env-data', 'tokens.json'));
      expect((await stat(path.join(tmp, 'env-data'))).isDirectory()).to.equal(true);
      expect(existsSync(path.join(confDir, 'from-file')), 'the file setting is not used').to.equal(false);
    } finally {
      process.chdir(cwd);
    }
  });

  it('keeps an explicit auth.tokensFile when CHECKPOINTD_DATA moves the data folder', async () => {
    const file = await writeConfig({ auth: { tokensFile: 'private/tokens.json' } });
    const config = await loadConfig(file, { CHECKPOINTD_DATA: path.join(tmp, 'elsewhere') });
    expect(config.paths.data).to.equal(path.join(tmp, 'elsewhere'));
    expect(config.auth.tokensFile).to.equal(path.join(confDir, 'private', 'tokens.json'));
  });

  it('takes paths.fileVault from CHECKPOINTD_VAULT', async () => {
    const file = await writeConfig({ paths: { fileVault: 'from-file' } });
    const config = await loadConfig(file, { CHECKPOINTD_VAULT: path.join(tmp, 'nfs', 'vault') });
    expect(config.paths.fileVault).to.equal(path.join(tmp, 'nfs', 'vault'));
    expect((await stat(config.paths.fileVault)).isDirectory()).to.equal(true);
  });

  it('names a misspelt nested key and the known keys of its section', async () => {
    expect(await problemWith({ api: { prot: 8080 } })).to.equal(
      'unknown key "api.prot"; known keys under "api": host, port, publicUrl, bodyLimitBytes, tls',
    );
  });

  it('resolves api.tls and failover.tls.ca against the file\'s folder and refuses half a TLS setting, naming the missing file', async () => {
    const config = await loadConfig(await writeConfig({ api: { tls: { cert: 'tls/node.crt', key: 'tls/node.key' } }, failover: { tls: { ca: '../ca.crt' } } }), {});
    expect(config.api.tls).to.deep.equal({ cert: path.join(confDir, 'tls', 'node.crt'), key: path.join(confDir, 'tls', 'node.key') });
    expect(config.failover.tls).to.deep.equal({ ca: path.join(path.dirname(confDir), 'ca.crt'), serverName: null });
    expect(await problemWith({ api: { tls: { cert: 'node.crt' } } })).to.equal(
      '"api.tls.key" is missing: HTTPS needs both "api.tls.cert" and "api.tls.key" (set "api.tls" to null for plain HTTP), got only "api.tls.cert"',
    );
    expect(await problemWith({ api: { tls: { key: 'node.key' } } })).to.match(/^"api\.tls\.cert" is missing/);
    expect(await problemWith({ api: { tls: { cert: 'a', key: 'b', ca: 'c' } } })).to.equal('unknown key "api.tls.ca"; known keys under "api.tls": cert, key');
    expect(await problemWith({ api: { tls: 'node.pem' } })).to.equal('"api.tls" must be an object with "cert" and "key" (paths of PEM files), or null for plain HTTP, got "node.pem"');
    expect(await problemWith({ failover: { tls: { ca: '' } } })).to.match(/^"failover\.tls\.ca" must be a non-empty path/);
    expect(await problemWith({ api: { publicUrl: 'http://a:8470', tls: { cert: 'c', key: 'k' } } })).to.equal(
      '"api.publicUrl" must be an https URL while "api.tls" is set (this node answers only TLS), got "http://a:8470"',
    );
  });

  it('names an unknown top-level key and the known top-level keys', async () => {
    expect(await problemWith({ nodes: {} })).to.equal(
      'unknown key "nodes"; known top-level keys: node, api, paths, auth, journal, store, checkpoint, failover, log, $comment',
    );
  });

  it('allows "$comment" at the top level only', async () => {
    const file = await writeConfig({ $comment: 'a note for the operator' });
    await loadConfig(file, {});
    expect(await problemWith({ log: { $comment: 'no' } })).to.equal('unknown key "log.$comment"; known keys under "log": level');
  });

  it('names the key and what it expects when a value has the wrong type or range', async () => {
    const cases: [unknown, string][] = [
      [{ api: { port: 'abc' } }, '"api.port" must be an integer from 0 to 65535, got "abc"'],
      [{ api: { port: 65536 } }, '"api.port" must be an integer from 0 to 65535, got 65536'],
      [{ api: { port: 80.5 } }, '"api.port" must be an integer from 0 to 65535, got 80.5'],
      [{ api: { host: '' } }, '"api.host" must be a non-empty host name or address, got ""'],
      [{ api: [1] }, '"api" must be an object, got [1]'],
      [{ node: { name: 'two words' } }, '"node.name" must be a name of 1 to 64 letters, digits, ".", "_" or "-", or null for the host name, got "two words"'],
      [{ node: { name: 'x'.repeat(65) } }, `"node.name" must be a name of 1 to 64 letters, digits, ".", "_" or "-", or null for the host name, got "${'x'.repeat(56)}...`],
      [{ paths: { data: 7 } }, '"paths.data" must be a non-empty path, got 7'],
      [{ auth: { tokensFile: false } }, '"auth.tokensFile" must be a non-empty path, or null, got false'],
      [{ journal: { groupCommitMs: 1001 } }, '"journal.groupCommitMs" must be an integer from 0 to 1000, got 1001'],
      [{ journal: { syncIntervalMs: 0 } }, '"journal.syncIntervalMs" must be an integer from 1 to 60000, got 0'],
      [{ api: { bodyLimitBytes: true } }, '"api.bodyLimitBytes" must be a size of at least 1024 bytes (an integer or a string like "64MiB"), got true'],
      [{ $comment: 5 }, '"$comment" must be a string, got 5'],
    ];
    for (const [content, expected] of cases) {
      expect(await problemWith(content), JSON.stringify(content)).to.equal(expected);
    }
  });

  it('lists the allowed values when an enum value is wrong', async () => {
    expect(await problemWith({ journal: { sync: 'always' } })).to.equal(
      '"journal.sync" must be one of "commit", "interval", got "always"',
    );
    expect(await problemWith({ node: { role: 'leader' } })).to.equal(
      '"node.role" must be one of "primary", "secondary", got "leader"',
    );
    expect(await problemWith({ log: { level: 'verbose' } })).to.equal(
      '"log.level" must be one of "error", "warn", "info", "debug", got "verbose"',
    );
  });

  it('refuses a file whose top-level value is not an object', async () => {
    expect(await problemWith('[1, 2]')).to.equal('must hold a JSON object at the top level, got an array');
    expect(await problemWith('null')).to.equal('must hold a JSON object at the top level, got null');
    expect(await problemWith('"api"')).to.equal('must hold a JSON object at the top level, got string "api"');
  });

  it('reads api.bodyLimitBytes as a size and refuses one under 1024 bytes', async () => {
    const file = await writeConfig({ api: { bodyLimitBytes: '512 KiB' } });
    expect((await loadConfig(file, {})).api.bodyLimitBytes).to.equal(512 * 1024);
    expect(await problemWith({ api: { bodyLimitBytes: 1023 } })).to.equal(
      '"api.bodyLimitBytes" must be a size of at least 1024 bytes (an integer or a string like "64MiB"), got 1023',
    );
    expect(await problemWith({ api: { bodyLimitBytes: '1000B' } })).to.equal(
      '"api.bodyLimitBytes" must be a size of at least 1024 bytes (an integer or a string like "64MiB"), got "1000B"',
    );
    expect(await problemWith({ api: { bodyLimitBytes: 'lots' } })).to.equal(
      '"api.bodyLimitBytes" must be a size in bytes: an integer or a string like "64MiB", "512 KiB" or "1GB", got "lots"',
    );
  });

  it('accepts api.publicUrl as an absolute http(s) URL and removes the trailing slash', async () => {
    for (const [given, expected] of [
      ['http://127.0.0.1:8470/', 'http://127.0.0.1:8470'],
      ['https://cp.example.com', 'https://cp.example.com'],
      ['https://proxy.example.com/checkpointd/', 'https://proxy.example.com/checkpointd'],
    ]) {
      const file = await writeConfig({ api: { publicUrl: given } });
      expect((await loadConfig(file, {})).api.publicUrl).to.equal(expected);
    }
  });

  it('refuses an api.publicUrl that is relative, not http(s), or has a query or fragment', async () => {
    for (const url of ['/api', 'cp.example.com', 'ftp://cp.example.com', 'https://cp.example.com/?a=1', 'https://cp.example.com/#top', '']) {
      expect(await problemWith({ api: { publicUrl: url } }), url).to.equal(
        `"api.publicUrl" must be an absolute http or https URL without query or fragment, or null, got ${JSON.stringify(url)}`,
      );
    }
  });

  it('reports invalid JSON with the line and column of the mistake', async () => {
    expect(await problemWith('{\n  "api": {\n    "port": }\n}\n')).to.equal(
      "not valid JSON (Unexpected token '}' at position 25, line 3 column 13)",
    );
    expect(await problemWith('{\n  "log": {"level": "info"},\n}')).to.equal(
      'not valid JSON (Expected double-quoted property name at position 30, line 3 column 1)',
    );
  });

  it('reports a truncated file at its end', async () => {
    expect(await problemWith('{\n  "api": {"port": \n')).to.equal(
      'not valid JSON (Unexpected end of JSON input at position 21, line 3 column 1)',
    );
    expect(await problemWith('{\n  "api": {\n')).to.equal(
      "not valid JSON (Expected property name or '}' at position 13, line 3 column 1)",
    );
    expect(await problemWith('')).to.equal('not valid JSON (Unexpected end of JSON input at position 0, line 1 column 1)');
  });

  it('accepts a file that starts with a byte-order mark', async () => {
    const file = await writeConfig('\uFEFF{"log": {"level": "warn"}}');
    expect((await loadConfig(file, {})).log.level).to.equal('warn');
  });

  it('reports a missing file with the OS reason', async () => {
    const file = path.join(confDir, 'missing.json');
    expect(await loadError(file)).to.equal(`config ${file}: cannot read the file (ENOENT: no such file or directory)`);
  });

  it('names the key, the path and the OS reason when a folder cannot be created under a regular file (ENOTDIR)', async () => {
    await writeFile(path.join(tmp, 'plain'), 'not a folder');
    const file = await writeConfig({ paths: { data: '../plain/data' } });
    expect(await loadError(file)).to.equal(
      `config ${file}: "paths.data" folder ${path.join(tmp, 'plain', 'data')} cannot be created (ENOTDIR: not a directory)`,
    );
  });

  it('names the key when a regular file stands where the FileVault folder should be', async () => {
    await writeFile(path.join(tmp, 'vault'), 'not a folder');
    const file = await writeConfig({ paths: { fileVault: '../vault' } });
    expect(await loadError(file)).to.equal(
      `config ${file}: "paths.fileVault" folder ${path.join(tmp, 'vault')} cannot be created (EEXIST: file already exists)`,
    );
  });

  it('names the environment variable when the folder it gives cannot be created', async () => {
    await writeFile(path.join(tmp, 'plain'), 'not a folder');
    const file = await writeConfig({});
    expect(await loadError(file, { CHECKPOINTD_DATA: path.join(tmp, 'plain', 'data') })).to.equal(
      `config ${file}: "paths.data" (from CHECKPOINTD_DATA) folder ${path.join(tmp, 'plain', 'data')} cannot be created (ENOTDIR: not a directory)`,
    );
  });

  it('refuses an auth.tokensFile that is a folder', async () => {
    await mkdir(path.join(confDir, 'tokens'));
    const file = await writeConfig({ auth: { tokensFile: 'tokens' } });
    expect(await loadError(file)).to.equal(
      `config ${file}: "auth.tokensFile" ${path.join(confDir, 'tokens')} is a folder, not a file (EISDIR)`,
    );
  });
});

describe('config/default.json', () => {
  let tmp: string;

  beforeEach(async () => {
    tmp = await realpath(await mkdtemp(path.join(tmpdir(), 'checkpointd-default-config-')));
  });

  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('loads cleanly as a standalone primary on 127.0.0.1:8470 with the documented defaults', async () => {
    const varExisted = existsSync(path.join(repoRoot, 'var'));
    const config = await loadConfig(defaultConfigFile, {
      CHECKPOINTD_DATA: path.join(tmp, 'data'),
      CHECKPOINTD_VAULT: path.join(tmp, 'FileVault'),
    });
    expect(config).to.deep.equal({
      file: defaultConfigFile,
      node: { name: hostname(), role: 'primary' },
      api: { host: '127.0.0.1', port: 8470, publicUrl: null, bodyLimitBytes: DefaultBodyLimitBytes, tls: null },
      paths: { data: path.join(tmp, 'data'), fileVault: path.join(tmp, 'FileVault') },
      auth: { tokensFile: path.join(tmp, 'data', 'tokens.json') },
      journal: { sync: DefaultJournalSync, groupCommitMs: DefaultGroupCommitMs, syncIntervalMs: DefaultSyncIntervalMs },
      store: { cacheSize: 256 * 1024 * 1024 },
      checkpoint: defaultCheckpoint,
      failover: defaultFailover(path.join(tmp, 'FileVault')),
      log: { level: DefaultLogLevel },
    } satisfies Config);
    if (!varExisted) expect(existsSync(path.join(repoRoot, 'var')), 'no ./var created in the repository').to.equal(false);
  });

  it('keeps data and FileVault under ./var of the repository', async () => {
    const raw = JSON.parse(await readFile(defaultConfigFile, 'utf8')) as { paths: Record<string, string> };
    expect(raw.paths).to.deep.equal({ data: '../var/data', fileVault: '../var/FileVault' });
  });

  it('lists every key explicitly, so that it documents itself', async () => {
    const raw = JSON.parse(await readFile(defaultConfigFile, 'utf8')) as Record<string, Record<string, unknown>>;
    expect(Object.keys(raw)).to.have.members(Object.keys(configSchema.properties as object));
    for (const [section, schema] of Object.entries(sectionSchemas)) {
      expect(Object.keys(raw[section] ?? {}), section).to.have.members(Object.keys(schema.properties as object));
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('config/primary.example.json and config/secondary.example.json', () => {
  const read = async (name: string): Promise<Record<string, Record<string, unknown>>> =>
    JSON.parse(await readFile(path.join(repoRoot, 'config', `${name}.example.json`), 'utf8')) as Record<string, Record<string, unknown>>;

  it('are valid configuration files that differ only in the node, its address and the comment', async () => {
    const primary = await read('primary');
    const secondary = await read('secondary');
    for (const file of [primary, secondary]) expect(await validateConfigFile(file)).to.deep.include({ ok: true });
    expect(primary.node).to.deep.equal({ name: 'node-a', role: 'primary' });
    expect(secondary.node).to.deep.equal({ name: 'node-b', role: 'secondary' });
    const strip = (f: Record<string, Record<string, unknown>>): unknown => ({ ...f, $comment: null, node: null, api: { ...f.api, publicUrl: null } });
    expect(strip(primary)).to.deep.equal(strip(secondary));
    expect(primary.paths!.fileVault, 'one shared FileVault').to.equal(secondary.paths!.fileVault);
    expect(primary.auth!.tokensFile, 'one shared tokens file, on the FileVault').to.match(/^\/mnt\/filevault\//);
  });
});
