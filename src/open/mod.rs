//! Opens, leases, oplocks and delegations: the state an SMB3 or NFSv4 server
//! grants besides byte-range locks, committed with them.
//!
//! Three record families ([`OpenRecord`] through [`OpenStore`];
//! [`LeaseRecord`] and [`DelegationRecord`] through [`LeaseStore`]) and the
//! policy over them, written once over the traits:
//!
//! - [`open_file`] decides an open by the share-mode rules and, granting it,
//!   records the lease/oplock breaks and delegation recalls it requires, in
//!   the caller's transaction; [`close_open`] removes it.
//! - [`ack_break`] records a break's acknowledgement; [`revoke_delegation`]
//!   leaves a tombstone that [`reclaim_delegation`] refuses and
//!   [`drop_revoked_delegations`] clears at the end of grace.
//! - [`disconnect_open`], [`reconnect_open`] and [`expire_durable`]: SMB
//!   durable and persistent handles.
//!
//! # Share modes (as built)
//!
//! MS-FSA 2.1.5.1.2.1 and NFSv4 (RFC 8881 §9.7) agree once SMB's
//! `ShareAccess` is stored as its complement, `deny`. For a request R and
//! each stored open O of the same file:
//!
//! | case | decision |
//! | --- | --- |
//! | R or O has no read, write or delete access (attributes only) | no conflict |
//! | R and O are NFSv4/NLM opens of the same client and owner | no conflict (an OPEN upgrade) |
//! | `R.access ∩ O.deny ≠ ∅` | conflict |
//! | `O.access ∩ R.deny ≠ ∅` | conflict |
//! | otherwise (SMB opens of one client included) | no conflict |
//! | a lock record of another owner with `share_reservation` DenyRead / DenyWrite / DenyAll, and R's access has read / write / either | conflict (legacy data) |
//!
//! Any conflict denies R: nothing of it is written, and the conflicts come
//! back as stored. The `share_reservation` field of lock records keeps its
//! meaning for locks (the byte-range arbiter still checks it) and is read
//! here so that data written before opens existed keeps denying; new code
//! writes opens only, never a reservation.
//!
//! # Breaks and recalls (as built)
//!
//! A lease is the requester's own when its client and key are the
//! request's (`open.lease_key`): it is never broken. For every other lease
//! or oplock on the file, by the state it caches now (its break target while
//! a break runs):
//!
//! | outcome of R | lease holds | recorded break |
//! | --- | --- | --- |
//! | granted | W (lease) | to its state without W (RWH → RH, RW → R) |
//! | granted | W (oplock: exclusive or batch) | to level II (R) |
//! | granted | no W | none |
//! | denied, the lease's open conflicts | H (lease) | to its state without H (RWH → RW, RH → R) |
//! | denied, the lease's open conflicts | H (batch oplock) | to level II (R) |
//!
//! A break sets `breaking`, `break_to`, `break_started_at` (a break already
//! running keeps its start and lowers its target to what both allow) and
//! raises the lease epoch; the leases come back in [`Open`] so the server
//! sends the breaks. [`ack_break`] sets the acknowledged state (at most the
//! target) and clears the break.
//!
//! | delegation of another client | granted R | recorded |
//! | --- | --- | --- |
//! | write | any open | `recalled` |
//! | read | access has write, or deny has read | `recalled` |
//! | read | otherwise | none |
//! | already recalled or revoked | any | none (not sent again) |
//!
//! # Durable handles
//!
//! [`disconnect_open`] keeps a durable or persistent open (with its locks
//! and lease) as disconnected and closes any other; [`reconnect_open`]
//! consumes a disconnected one by `CreateGuid` or by file and client, so one
//! reconnect of many wins (the others read the write and conflict);
//! [`expire_durable`] removes durable ones past `disconnected_at +
//! timeout`, with their locks, in bulk. Persistent handles never expire by
//! time.

mod breaks;
mod durable;
mod model;
mod share;
mod store;

pub use breaks::{
    DelegationReclaim, ack_break, drop_revoked_delegations, reclaim_delegation, return_delegation,
    revoke_delegation,
};
pub use durable::{
    Disconnect, Reconnect, disconnect_open, durable_expiry, expire_durable, reconnect_open,
};
pub use model::{
    DelegationRecord, DelegationType, DurableState, LOCK_SEQUENCE_ENTRIES, LeaseKey, LeaseRecord,
    LeaseState, MAX_LOCK_SEQUENCE_ENTRY, OpenProtocol, OpenRecord, ShareMask,
};
pub use share::{Open, OpenRequest, ShareConflict, close_open, open_file, share_modes_conflict};
pub use store::{DelegationQuery, LeaseQuery, LeaseStore, OpenQuery, OpenStore};
