//! The storage backends. No backend module knows another.

pub mod memory;

#[cfg(feature = "fjall")]
pub mod fjall;

#[cfg(feature = "postgres")]
pub mod postgres;
