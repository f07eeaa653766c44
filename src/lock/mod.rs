//! The lock family: byte-range locks and share reservations ([`model`]), the
//! [`LockStore`] operations ([`store`]) and the arbiter that decides requests
//! over them ([`arbiter`], with [`reclaim`] for the grace period and
//! [`windows`] for SMB's exact unlock and I/O check).

pub(crate) mod arbiter;
pub(crate) mod model;
mod range;
pub(crate) mod reclaim;
pub(crate) mod store;
pub(crate) mod windows;

pub use model::{
    EnhancedLock, LockExtent, LockFlavor, LockOwner, LockQuery, LockType, PersistedLock,
    ShareReservation,
};
pub use range::ByteRange;
pub use store::LockStore;
