/**
 * Which configuration file a command reads: `--config FILE` when given, else
 * the file CHECKPOINTD_CONFIG names, else {@link DefaultConfigFile}. An
 * installed `checkpointd run` so finds /etc/checkpointd/checkpointd.json from
 * any working directory, and a file that is not there is named with both ways
 * to point at another.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { DefaultConfigFile } from './defaults.js';
import { loadConfig, type Config } from './load-config.js';

/** Environment variable naming the configuration file when `--config` is not given. */
export const ConfigEnv = 'CHECKPOINTD_CONFIG';

/** The configuration file to read and what named it. */
export interface ConfigFileChoice {
  file: string;
  from: 'option' | 'environment' | 'default';
}

/** `option` (the value of `--config`) wins, then CHECKPOINTD_CONFIG (if not empty), then the default path. */
export function chooseConfigFile(option: string | undefined, env: NodeJS.ProcessEnv = process.env): ConfigFileChoice {
  if (option !== undefined) return { file: option, from: 'option' };
  const named = env[ConfigEnv];
  if (named !== undefined && named !== '') return { file: named, from: 'environment' };
  return { file: DefaultConfigFile, from: 'default' };
}

/** Load the configuration file a command was pointed at (see {@link chooseConfigFile}); a missing one is a ConfigError that says how to name one. */
export async function loadCommandConfig(option: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const choice = chooseConfigFile(option, env);
  if (choice.from !== 'option') {
    const missing = await stat(choice.file).then(
      () => false,
      (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
    );
    if (missing && choice.from === 'default') {
      throw new ConfigError(`no configuration file: ${DefaultConfigFile} does not exist; pass --config FILE, or set ${ConfigEnv}=FILE`);
    }
    if (missing) throw new ConfigError(`config ${path.resolve(choice.file)} (from ${ConfigEnv}): no such file; correct ${ConfigEnv}, or pass --config FILE`);
  }
  return loadConfig(choice.file, env);
}
