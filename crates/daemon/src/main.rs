//! `migrated` (being written: config and systemd pieces are in the library).

fn main() {}
