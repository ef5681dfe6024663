//! migrated-daemon (placeholder, being written).
