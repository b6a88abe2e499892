/**
 * Failover (DESIGN.md "Failover"): the primary's lease in
 * `FileVault/failover/lease.json` and the epoch claims beside it. The lease
 * rules are described at the top of lease.ts, the epoch claims at the top of
 * epochs.ts.
 */
export {
  LeaseFile,
  LeaseFormatError,
  LeaseHolder,
  LeaseWatcher,
  readLease,
  writeLease,
  type Lease,
  type LeaseHolderOptions,
  type LeaseWatcherOptions,
} from './lease.js';
export { claimEpoch, epochFileName, highestEpoch, parseEpochFileName, readEpochClaim, type EpochClaim } from './epochs.js';
export { clusterToken, FailoverManager, leasePollMs, type FailoverManagerOptions, type FailoverStatus, type Role } from './failover-manager.js';
export { HeartbeatClient, HeartbeatPath, HeartbeatServer, type Handover, type Heartbeat, type HeartbeatAck, type HeartbeatTls, type StandbyInfo } from './heartbeat.js';
