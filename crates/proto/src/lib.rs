//! migrated-proto (placeholder, being written).
