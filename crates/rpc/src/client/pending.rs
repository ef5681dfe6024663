//! Calls waiting for their REPLY: `serial → oneshot` (STYLE.md: one reader
//! task completes them, no hand-rolled "pass the buck" loop).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::header::Message;

#[derive(Debug, Default)]
struct State {
    waiting: HashMap<u32, oneshot::Sender<Message>>,
    closed: bool,
}

/// The pending-call map of one client connection.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    state: Mutex<State>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain map operations cannot leave it inconsistent on panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `serial`; fails once the connection is closed.
    pub(crate) fn register(self: &Arc<Self>, serial: u32) -> Result<Waiter> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        state.waiting.insert(serial, tx);
        Ok(Waiter {
            serial,
            rx,
            pending: self.clone(),
        })
    }

    /// Delivers a reply; `false` when nobody waits for that serial.
    pub(crate) fn complete(&self, msg: Message) -> bool {
        let tx = self.lock().waiting.remove(&msg.header.serial);
        match tx {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    /// Fails every waiting call and refuses new ones.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        // Dropping the senders wakes the waiters with a closed error.
        state.waiting.clear();
    }

    fn forget(&self, serial: u32) {
        self.lock().waiting.remove(&serial);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// One registered call; dropping it (e.g. on timeout) unregisters it.
#[derive(Debug)]
pub(crate) struct Waiter {
    serial: u32,
    rx: oneshot::Receiver<Message>,
    pending: Arc<Pending>,
}

impl Waiter {
    /// Waits for the reply.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection ends first.
    pub(crate) async fn wait(mut self) -> Result<Message> {
        (&mut self.rx).await.map_err(|_| Error::Closed)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.pending.forget(self.serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{Header, MessageStatus, MessageType};

    fn reply(serial: u32) -> Message {
        Message::new(
            Header {
                prog: 1,
                vers: 1,
                proc_: 1,
                type_: MessageType::Reply,
                serial,
                status: MessageStatus::Ok,
            },
            bytes::Bytes::new(),
        )
    }

    #[tokio::test]
    async fn replies_reach_their_own_serial_and_dropped_waiters_unregister() {
        let pending = Arc::new(Pending::default());
        let a = pending.register(0).expect("open");
        let b = pending.register(1).expect("open");
        assert!(pending.complete(reply(1)));
        assert_eq!(b.wait().await.expect("reply").header.serial, 1);
        assert!(!pending.complete(reply(7)));
        drop(a);
        assert_eq!(pending.len(), 0);
    }

    #[tokio::test]
    async fn close_fails_waiters_and_refuses_new_calls() {
        let pending = Arc::new(Pending::default());
        let a = pending.register(0).expect("open");
        pending.close();
        assert!(matches!(a.wait().await, Err(Error::Closed)));
        assert!(matches!(pending.register(1), Err(Error::Closed)));
    }
}
