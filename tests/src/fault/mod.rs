//! Fault injection for the reliability tests (issue 6): a TCP [`proxy`] that
//! delays, stalls, cuts or half-closes connections at a byte or message,
//! [`pause`] points that hold a daemon at a named migration step so a kill or
//! a stop lands deterministically, process [`signals`], and the [`report`]
//! the fault matrix writes (rendered into `docs/reliability.md`).

pub mod pause;
pub mod proxy;
pub mod report;
pub mod signals;

pub use proxy::{Action, Direction, FaultProxy, Rule, Trigger, REMOTE_PROGRAM};
