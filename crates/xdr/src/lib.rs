//! migrated-xdr (placeholder, being written).
