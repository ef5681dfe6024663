//! Errors (being written).

/// Placeholder until the real error type lands.
#[derive(Debug)]
pub struct Error;

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
