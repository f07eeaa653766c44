//! Timestamps: microseconds since the Unix epoch.

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch (UTC). Every backend stores it exactly.
///
/// Any `i64` can be held, but only instants in the years 1 to 9999
/// ([`Timestamp::MIN_VALID`]..=[`Timestamp::MAX_VALID`]) are accepted by a store:
/// that is what PostgreSQL's `TIMESTAMPTZ` and RFC 3339 can represent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 0001-01-01T00:00:00Z, the earliest instant a store accepts.
    pub const MIN_VALID: Timestamp = Timestamp(-62_135_596_800_000_000);
    /// 9999-12-31T23:59:59.999999Z, the latest instant a store accepts.
    pub const MAX_VALID: Timestamp = Timestamp(253_402_300_799_999_999);

    /// The current time (the system clock, truncated to microseconds).
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(since_epoch)
    }

    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// True for instants in the years 1 to 9999.
    pub fn is_valid(self) -> bool {
        (Self::MIN_VALID..=Self::MAX_VALID).contains(&self)
    }
}
