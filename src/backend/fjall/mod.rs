//! The fjall backend (placeholder until the fjall issue lands).
