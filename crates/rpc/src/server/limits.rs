//! Server-wide connection limits (`max_clients`, `max_anonymous_clients`).
//!
//! A slot is an RAII guard: dropping it (however the connection task ends)
//! gives the slot back, so no code path can leak a count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters for open connections and connections still in a TLS handshake.
#[derive(Debug)]
pub(crate) struct Limits {
    max_clients: usize,
    max_anonymous: usize,
    clients: Arc<AtomicUsize>,
    anonymous: Arc<AtomicUsize>,
}

/// One taken slot; released on drop.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(counter.clone()))
}

impl Limits {
    pub(crate) fn new(max_clients: usize, max_anonymous: usize) -> Self {
        Self {
            max_clients,
            max_anonymous,
            clients: Arc::new(AtomicUsize::new(0)),
            anonymous: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A client slot, or `None` when `max_clients` connections are open.
    pub(crate) fn try_client(&self) -> Option<Slot> {
        take(&self.clients, self.max_clients)
    }

    /// A handshake slot, or `None` when `max_anonymous_clients` handshakes run.
    pub(crate) fn try_anonymous(&self) -> Option<Slot> {
        take(&self.anonymous, self.max_anonymous)
    }

    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_returned_on_drop() {
        let limits = Limits::new(2, 1);
        let a = limits.try_client();
        let b = limits.try_client();
        assert!(a.is_some() && b.is_some());
        assert!(limits.try_client().is_none());
        drop(a);
        assert_eq!(limits.clients(), 1);
        assert!(limits.try_client().is_some());
        let h = limits.try_anonymous();
        assert!(h.is_some());
        assert!(limits.try_anonymous().is_none());
        drop(h);
        assert!(limits.try_anonymous().is_some());
    }
}
