/**
 * The version of checkpointd that is running: the `version` of its own
 * package.json, read once at start from one folder above this file. That is
 * the package root whether the code runs from `dist/` (the repository's build,
 * or a global install under `lib/node_modules/checkpointd/`) or from `src/`
 * under tsx, so no build step has to write the number anywhere.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  const file = new URL('../package.json', import.meta.url);
  let pkg: { name?: unknown; version?: unknown };
  try {
    pkg = JSON.parse(readFileSync(file, 'utf8')) as typeof pkg;
  } catch (err) {
    throw new Error(`cannot read checkpointd's package.json at ${fileURLToPath(file)} (${(err as Error).message}); reinstall checkpointd`, { cause: err });
  }
  if (pkg.name !== 'checkpointd' || typeof pkg.version !== 'string') throw new Error(`${fileURLToPath(file)} is not checkpointd's package.json; reinstall checkpointd`);
  return pkg.version;
}

/** checkpointd's version (package.json), as `--version`, status, the start-up log line and `checkpointd_build_info` show it. */
export const Version = readVersion();
