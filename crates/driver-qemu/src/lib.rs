//! migrated-driver-qemu (placeholder, being written).
