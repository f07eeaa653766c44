//! The behaviour suite every backend must pass (feature `conformance`).
//!
//! Semantics live here once; each backend's test file is a few lines:
//!
//! ```ignore
//! struct Fresh;
//! #[async_trait::async_trait]
//! impl fsmeta::conformance::Harness for Fresh {
//!     async fn create(&self) -> Option<Box<dyn fsmeta::conformance::TestStore>> { /* … */ }
//! }
//! fsmeta::conformance_tests!(Fresh);
//! ```
//!
//! A check panics (like `assert!`) on the first behaviour that differs from
//! the contract, with a message that names it.
//!
//! One file per semantic area (files, locks, queries, isolation, round trips,
//! validation, arbiter, recovery, nodes, persistence, pages, SMB locks; shared sample data
//! and helpers in `sample`); every check is re-exported here, so
//! `fsmeta::conformance::<check>` names each one.

mod arbiter;
mod clients;
mod clients_recovery;
mod delegations;
mod durable;
mod ext;
mod files;
mod isolation;
mod leases;
pub mod load;
mod locks;
mod nodes;
mod opens;
mod pages;
mod persistence;
#[cfg(feature = "postgres")]
pub mod postgres;
mod queries;
mod reclaim;
mod recovery;
mod roundtrip;
mod sample;
mod sessions;
mod smb;
mod takeover;
mod validation;
mod waiters;

pub use arbiter::*;
pub use clients::*;
pub use clients_recovery::*;
pub use delegations::*;
pub use durable::*;
pub use ext::*;
pub use files::*;
pub use isolation::*;
pub use leases::*;
pub use locks::*;
pub use nodes::*;
pub use opens::*;
pub use pages::*;
pub use persistence::*;
pub use queries::*;
pub use reclaim::*;
pub use recovery::*;
pub use roundtrip::*;
pub use sample::*;
pub use sessions::*;
pub use smb::*;
pub use takeover::*;
pub use validation::*;
pub use waiters::*;

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Error, MetadataStore, Result};

/// Makes fresh, empty stores for the checks.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new, empty store, independent of every other one it made (checks run in
    /// parallel). `None` skips the check: only for a backend whose server is not
    /// reachable when the environment does not require it.
    async fn create(&self) -> Option<Box<dyn TestStore>>;
}

/// One store under test.
#[async_trait]
pub trait TestStore: Send + Sync {
    /// A handle to the store. Checks drop their handles before [`TestStore::reopen`].
    fn store(&self) -> Arc<dyn MetadataStore>;

    /// Drops every handle the fixture holds, closing the store, and opens the
    /// same store again (same path, same database). Only persistent backends
    /// support it; they run [`persistence_tests!`](crate::persistence_tests).
    async fn reopen(&mut self) -> Result<()> {
        Err(Error::Invalid(
            "this backend keeps nothing across reopen".into(),
        ))
    }

    /// Removes what the store left behind (a schema, a directory). Called after a check passed.
    async fn teardown(self: Box<Self>) {}
}

/// Generates one `#[tokio::test]` per conformance check, each on a fresh store
/// from the given [`Harness`] expression.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_each!($harness;
            files_put_get_upsert, file_delete_missing_is_not_found, list_files_by_share,
            locks_put_get_upsert, lock_delete_missing_is_not_found, list_locks_filters_are_anded,
            list_locks_by_epoch_below, delete_locks_by_client_counts, delete_locks_by_file_counts,
            epoch_starts_at_zero_and_increments, advance_server_epoch_raises_never_lowers,
            clean_shutdown_flag_round_trips,
            commit_publishes_file_and_lock_together, rollback_discards_file_and_lock,
            drop_discards_file_and_lock, failed_transact_discards_everything,
            bulk_deletes_roll_back, uncounted_deletes_are_seen_and_roll_back, epoch_increment_rolls_back, reads_own_writes_in_get,
            reads_own_writes_in_list, writes_then_bulk_deletes_commit_as_made, uncommitted_writes_are_invisible, reads_are_repeatable,
            lost_update_is_a_conflict, write_skew_is_prevented, concurrent_epoch_increments_are_exact,
            concurrent_read_modify_write_loses_nothing, overwrite_moves_index_entries,
            overwrite_keeps_entries_equal_across_indexes, ids_with_separators_round_trip,
            prefix_ids_stay_apart, integer_extremes_round_trip,
            timestamp_extremes_round_trip, lock_id_validation, file_validation,
            query_validation, timestamp_validation,
            arbiter_denies_conflicts_and_changes_nothing, arbiter_applies_share_reservations,
            arbiter_upgrades_and_downgrades_sub_ranges, arbiter_merges_same_type_neighbours,
            release_range_splits_and_trims, arbiter_handles_u64_edges, test_lock_writes_nothing,
            recovery_cycle, concurrent_acquisitions_never_double_grant,
            node_state_round_trips, nodes_recover_independently, simultaneous_node_recoveries_stay_apart,
            pages_walk_everything,
            reclaim_compares_ranges_by_meaning, reclaim_is_idempotent_and_says_why,
            reclaim_stamps_only_the_nodes_own_epoch, acquire_rejects_a_foreign_lock_id,
            acquire_with_an_own_lock_id_replaces_posix_style,
            share_reservations_survive_byte_range_requests,
            ext_put_get_upsert, ext_delete_reports_existence, ext_tables_are_independent,
            ext_scan_prefix_boundaries, ext_scan_ranges_in_key_order, ext_scan_pages_with_cursor,
            ext_reads_own_writes_in_scans, ext_uncommitted_writes_are_invisible,
            ext_atomic_with_files_and_locks, ext_phantom_in_scanned_range_conflicts,
            ext_lost_update_is_a_conflict, ext_extremes_round_trip, ext_validation,
            ext_tables_lists_non_empty_tables,
            windows_zero_byte_locks_overlap_by_ms_fsa, windows_locks_stack_and_never_merge,
            unlock_exact_removes_exactly_one, windows_ranges_near_2_pow_64,
            cross_protocol_locks_conflict_both_directions, check_io_follows_smb_rules,
            windows_flavor_round_trips, smbtorture_lock_cases,
            clients_every_field_round_trips, clients_put_list_upsert, clients_delete_reports_existence,
            clients_queries_and_indexes, clients_atomic_and_serializable, clients_pages_and_digest,
            clients_validation,
            reclaim_needs_a_record_of_a_dead_epoch, reclaim_complete_once_and_end_of_grace,
            restart_during_grace_keeps_the_recovery_set,
            partitioned_client_cannot_reclaim_after_a_second_restart,
            clients_reclaim_through_the_taker, courteous_expiry_revokes_only_on_conflict,
            open_records_round_trip_every_field, open_store_put_get_overwrite_delete,
            open_queries_find_exactly_their_opens, share_mode_decision_table,
            legacy_share_reservations_deny_opens, close_open_removes_open_and_its_locks,
            open_validation, lease_records_round_trip_every_field,
            lease_queries_find_exactly_their_leases, granted_open_records_lease_breaks,
            denied_open_breaks_handle_caching, conflicting_opens_recall_delegations,
            revoked_delegations_are_tombstones_until_grace_ends, lease_validation,
            disconnect_keeps_durable_and_closes_others,
            reconnect_consumes_by_create_guid_and_by_file,
            expire_durable_removes_expired_and_keeps_active,
            concurrent_reconnects_exactly_one_wins,
            open_states_are_carried_by_verify_digest_and_copy,
            waiters_round_trip_every_field, waiter_validation, waiters_queue_in_fifo_order,
            waiters_fairness_rules, waiters_wake_on_release, waiters_no_wake_on_unrelated_release,
            waiters_removal, waiters_cap_per_file, waiters_deadlock_of_two, waiters_deadlock_of_three,
            sessions_stamp_epochs_and_fence_restarts, require_lock_guards_host_writes,
            declare_dead_takes_over_and_runs_grace,
        );
    };
}

/// Generates the reopen checks for a persistent backend (fjall, PostgreSQL).
#[macro_export]
macro_rules! persistence_tests {
    ($harness:expr) => {
        $crate::__conformance_each!($harness;
            reopen_keeps_files_locks_and_indexes, reopen_keeps_rolled_back_writes_out,
            reopen_keeps_epoch_and_flag, recovery_survives_reopen, nodes_survive_reopen,
            ext_records_survive_reopen, clients_survive_reopen, waiters_survive_reopen,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_each {
    ($harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let harness = $harness;
                let Some(mut fixture) = $crate::conformance::Harness::create(&harness).await else {
                    return;
                };
                $crate::conformance::$check(&mut *fixture).await;
                fixture.teardown().await;
            }
        )*
    };
}
