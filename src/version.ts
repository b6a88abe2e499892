/**
 * The version of checkpointd that is running: the `version` of its own
 * package.json, read once at start. The package root is one folder above this
 * file under tsx (`src/version.ts`) and two above it in the build, which
 * esbuild lays out as `dist/cli/main.js` and `dist/chunks/*.js` (in the
 * repository, or a global install under `lib/node_modules/checkpointd/`): the
 * nearer of the two that is checkpointd's, so no build step has to write the
 * number anywhere.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  const candidates = [new URL('../package.json', import.meta.url), new URL('../../package.json', import.meta.url)];
  const reasons: string[] = [];
  for (const file of candidates) {
    let pkg: { name?: unknown; version?: unknown };
    try {
      pkg = JSON.parse(readFileSync(file, 'utf8')) as typeof pkg;
    } catch (err) {
      reasons.push(`${fileURLToPath(file)}: ${(err as Error).message}`);
      continue;
    }
    if (pkg.name === 'checkpointd' && typeof pkg.version === 'string') return pkg.version;
    reasons.push(`${fileURLToPath(file)} is not checkpointd's package.json`);
  }
  throw new Error(`cannot read checkpointd's package.json (${reasons.join('; ')}); reinstall checkpointd`);
}

/** checkpointd's version (package.json), as `--version`, status, the start-up log line and `checkpointd_build_info` show it. */
export const Version = readVersion();
