/**
 * Fencing: may this node acknowledge now? The one rule, and the protocol
 * that makes it safe (docs/ARCHITECTURE.md "Failover protocol"; docs/OPERATIONS.md
 * "Durability and the journal").
 *
 * 1. Lease (lease-file.ts, lease-holder.ts, lease-watcher.ts). The primary
 *    rewrites FileVault/failover/lease.json every renewMs. It may acknowledge
 *    only while its last successful renewal STARTED less than
 *    leaseTtlMs - safetyMarginMs ago on its own monotonic clock, and while no
 *    higher epoch is claimed or named in the lease. Once that lapses, it is
 *    fenced for good in that epoch.
 * 2. Claim (epochs.ts). A node serves only in an epoch it claimed by creating
 *    epoch-N with O_EXCL: among racers exactly one wins. A candidate claims
 *    N+1 only after seeing the lease of epoch N unchanged for leaseTtlMs on
 *    its own clock (measured over time it actually read the file: a paused
 *    process has observed nothing), or released by its holder — a restarting
 *    primary included. The claim is conditional on the epoch read; after it,
 *    the new primary checks again that no higher claim exists before it takes
 *    the lease. leaseTtlMs > leaseTtlMs - safetyMarginMs, so the old primary
 *    has stopped acknowledging before any successor can claim.
 * 3. Seal and journal per epoch (journal-files.ts). The new primary applies
 *    the journal to its last good record and opens its own epoch's file right
 *    after it, created with O_EXCL; no file is ever written by two epochs. The
 *    next file's first seq seals the older file: what a superseded epoch adds
 *    after it (a write that hung on NFS and landed late), or in a file it
 *    rolled to afterwards, is void by rule — never acknowledged (step 1 fenced
 *    its writer first), ignored by start-up, followers, promotion and
 *    checkpoints, logged once, never a reason to refuse a start. A record
 *    written while its node lost the lease is neither acknowledged nor shown
 *    to reads or checkpoints.
 * 4. Never seal below what is known. The seal is never lower than the seq the
 *    primary's last heartbeat reported durable: a candidate whose view of the
 *    vault shows less waits for it (bounded) and otherwise refuses to promote
 *    (failover-manager.ts).
 * 5. Stale reads. A client cache of the vault (attributes, listings, pages)
 *    can show an old lease or hide a new journal file: the daemon refuses such
 *    a mount at start-up unless told otherwise (vault/mount-check.ts), and
 *    rule 4 keeps a stale listing from dropping acknowledged records.
 *
 * This file holds rule 1 as the store asks it, before every commit and again
 * before every acknowledgement.
 */
import type { Instant } from '../clock.js';
import { FencedError } from '../errors.js';
import type { LeaseHolder } from './lease-holder.js';

/** What the rule reads: the node's role, its lease holder, and why it was fenced (if it was). */
export interface FenceState {
  role: () => 'primary' | 'secondary' | 'fenced';
  holder: () => LeaseHolder | null;
  fencedBecause: () => string | null;
}

/** The answer to "may this node acknowledge now?". */
export class Fence {
  constructor(private readonly state: FenceState) {}

  /** Why this node must not acknowledge at `at` (now unless given), or null when it may: the primary, holding a lease valid then. */
  reason(at?: Instant): string | null {
    const holder = this.state.holder();
    if (this.state.role() === 'primary' && holder !== null && holder.valid(at)) return null;
    return this.state.fencedBecause() ?? holder?.lostReason ?? 'this node does not hold the lease';
  }

  /** Throws FencedError naming `what` happened to the commit when this node must not acknowledge now. */
  check(what: string): void {
    const reason = this.reason();
    if (reason !== null) throw new FencedError(`this node is fenced (${reason}); the commit was ${what}; retry on the primary`);
  }
}
