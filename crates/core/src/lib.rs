//! migrated-core (placeholder, being written).
