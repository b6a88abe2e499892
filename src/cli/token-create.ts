/** `checkpointd token create`: add a token to the tokens file and print only the token. */
import { TokenStore, type Role } from '../api/index.js';
import { loadCommandConfig } from '../config/index.js';

/** Options of `token create`. */
export interface TokenCreateOptions {
  /** `--config`; undefined: CHECKPOINTD_CONFIG, else the default path. */
  config?: string;
  name: string;
  role: string;
}

/** Create the token and write it (alone) to stdout. */
export async function tokenCreateCommand(options: TokenCreateOptions): Promise<void> {
  const config = await loadCommandConfig(options.config);
  const tokens = await TokenStore.open(config.auth.tokensFile);
  const token = await tokens.create(options.name, options.role as Role);
  process.stdout.write(token + '\n');
}
