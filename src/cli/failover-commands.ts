/**
 * `checkpointd switchover|pause|resume`: POST /api/admin/failover/…. A
 * switchover goes to the primary; with no standby connected it answers 409
 * (exit 7), and so does a secondary (status names the lease holder).
 */
import type { ApiClient } from './api-client.js';
import { writeJson } from './format.js';

/** Options of `switchover`. */
export interface SwitchoverCommandOptions {
  /** The standby to hand over to; the least lagging one otherwise. */
  candidate?: string;
  json?: boolean;
}

/** Options of `pause` and `resume`. */
export interface PauseCommandOptions {
  json?: boolean;
}

/** Hand the primary role to a standby now (the lease is released, no waiting for its TTL). */
export async function switchoverCommand(client: ApiClient, options: SwitchoverCommandOptions): Promise<void> {
  const body = options.candidate === undefined ? {} : { candidate: options.candidate };
  const answer = (await client.json('POST', '/api/admin/failover/switchover', { body })) as { data: { from: string; to: string } };
  if (options.json === true) return writeJson(answer);
  process.stdout.write(`switched over: ${answer.data.from} handed the primary role to ${answer.data.to}\n`);
}

/** Turn automatic promotion off (`pause`) or on again (`resume`) for the whole installation. */
export async function pauseCommand(client: ApiClient, action: 'pause' | 'resume', options: PauseCommandOptions): Promise<void> {
  const answer = (await client.json('POST', `/api/admin/failover/${action}`)) as { data: { paused: boolean } };
  if (options.json === true) return writeJson(answer);
  process.stdout.write(answer.data.paused ? 'automatic promotion paused: no secondary will promote itself until `checkpointd resume`\n' : 'automatic promotion resumed\n');
}
