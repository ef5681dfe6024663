//! migrated-driver-test (placeholder, being written).
