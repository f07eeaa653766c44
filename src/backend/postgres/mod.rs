//! The PostgreSQL backend (placeholder until the PostgreSQL issue lands).
