//! migrated-client (placeholder, being written).
