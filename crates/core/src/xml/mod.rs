//! Domain XML model (being written).
