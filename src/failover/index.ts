/**
 * Failover (docs/ARCHITECTURE.md "Failover protocol"): the primary's lease in
 * `FileVault/failover/lease.json` and the epoch claims beside it. The whole
 * protocol is stated at the top of fence.ts; the lease file, its holder and
 * its watcher each have a file, the epoch claims epochs.ts.
 */
export { Fence, type FenceState } from './fence.js';
export { LeaseFile, LeaseFormatError, readLease, readLeaseSync, writeLeaseSync, type Lease } from './lease-file.js';
export { HolderState, SharedLeaseState } from './lease-state.js';
export { LeaseHolder, type LeaseHolderOptions, type LeaseRenewal } from './lease-holder.js';
export { LeaseWatcher, type LeaseWatcherOptions } from './lease-watcher.js';
export { MinSamples, VisibilityLag } from './visibility-lag.js';
export { claimEpoch, epochFileName, highestEpoch, parseEpochFileName, readEpochClaim, type EpochClaim } from './epochs.js';
export { clusterToken, FailoverManager, leasePollMs, watchLeaseFromStart, type EarlyWatch, type FailoverManagerOptions, type FailoverStatus, type Role } from './failover-manager.js';
export { HeartbeatClient, HeartbeatPath, HeartbeatServer, type Handover, type Heartbeat, type HeartbeatAck, type HeartbeatTls, type StandbyInfo } from './heartbeat.js';
