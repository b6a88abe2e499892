/** What every route needs from the running node. */
import type { Checkpointer } from '../checkpoint/index.js';
import type { Config, NodeRole } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { Store } from '../store/index.js';
import type { FailoverManager, FailoverStatus } from '../failover/index.js';
import type { AutoCheckpointer } from '../triggers/index.js';
import type { Metrics } from './metrics.js';
import type { TokenStore } from './token-store.js';

/** The running node as the API sees it. */
export interface ApiContext {
  config: Config;
  logger: Logger;
  store: Store;
  tokens: TokenStore;
  /** This daemon's Prometheus registry and the hooks that count its events. */
  metrics: Metrics;
  checkpointer: Checkpointer;
  /** Automatic checkpoints (null where this node does not write: a secondary). */
  auto(): AutoCheckpointer | null;
  /** The failover role machine's view (null while starting). */
  failover(): FailoverStatus | null;
  /** The failover role machine (null while starting). */
  failoverManager(): FailoverManager | null;
  /** The node's current role. */
  role(): NodeRole;
  /** False while starting or shutting down: health answers 503. */
  serving(): boolean;
  /** Base of every href: `api.publicUrl`, or where the server listens. */
  publicUrl(): string;
  /** When the daemon started (ISO 8601). */
  startedAt: string;
  /** checkpointd's version (package.json). */
  version: string;
}

/** `publicUrl` + `/api/` + the path segments, each percent-encoded. */
export function href(ctx: ApiContext, ...segments: string[]): string {
  return `${ctx.publicUrl()}/api/${segments.map(encodeURIComponent).join('/')}`;
}
