//! SeaORM entities, one per table. The schema itself is created by the
//! `migration` crate; these only describe it to the query builder, in the
//! database's own types (`NUMERIC` as `Decimal`, `BIGINT` as `i64`, …).
//! Conversion to fsmeta's model, and the checks that a stored row obeys it,
//! live in `super::rows`.

pub(super) mod client_records;
pub(super) mod delegations;
pub(super) mod epoch_records;
pub(super) mod ext_records;
pub(super) mod files;
pub(super) mod leases;
pub(super) mod locks;
pub(super) mod nodes;
pub(super) mod opens;
pub(super) mod server_state;
pub(super) mod waiters;
