//! migrated-rpc (placeholder, being written).
