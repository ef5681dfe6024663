//! Guest consoles (`virsh console`, `virDomainOpenConsole`): the byte stream
//! a driver hands the daemon, and the one-client-per-device rule.
//!
//! libvirt lets one client at a time hold a character device
//! (`src/conf/virchrdev.c`, `virChrdevOpen`): a second open is refused
//! unless it passes `VIR_DOMAIN_CONSOLE_FORCE`, which ends the first
//! session. [`ConsoleLocks`] is that rule; a driver claims the device's
//! host path (so `console0` and `serial0`, which share one pty, share one
//! claim) and puts the [`ConsoleClaim`] in the [`Console`] it returns. The
//! claim is released when the console is dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// `VIR_DOMAIN_CONSOLE_FORCE`: take the console over from another client.
pub const CONSOLE_FORCE: u32 = 1 << 0;
/// `VIR_DOMAIN_CONSOLE_SAFE`: only open when exclusive access is guaranteed
/// (it always is here).
pub const CONSOLE_SAFE: u32 = 1 << 1;

/// An open console: the device's output and input, and the claim that
/// keeps other clients out.
pub struct Console {
    /// What the guest writes to the device.
    pub output: Pin<Box<dyn AsyncRead + Send>>,
    /// What the client types, to the guest.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// Exclusive use of the device until dropped.
    pub claim: ConsoleClaim,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

/// The console sessions of one driver, by device path.
#[derive(Debug, Default, Clone)]
pub struct ConsoleLocks {
    held: Arc<Mutex<HashMap<String, Holder>>>,
}

#[derive(Debug)]
struct Holder {
    generation: u64,
    ended: CancellationToken,
}

impl ConsoleLocks {
    /// Claims the device at `path` for one client.
    ///
    /// # Errors
    /// [`Error::OperationFailed`] (`VIR_ERR_OPERATION_FAILED`, libvirt's
    /// "Active console session exists for this domain") when another client
    /// holds it and `force` is false. With `force` the holder's session
    /// ends ([`ConsoleClaim::ended`]) and this client gets the device.
    pub fn claim(&self, path: &str, force: bool) -> Result<ConsoleClaim> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = match held.get(path) {
            Some(_) if !force => {
                return Err(Error::OperationFailed {
                    operation: "virDomainOpenConsole",
                    reason: "Active console session exists for this domain".into(),
                });
            }
            Some(holder) => {
                holder.ended.cancel();
                holder.generation + 1
            }
            None => 0,
        };
        let ended = CancellationToken::new();
        held.insert(
            path.to_owned(),
            Holder {
                generation,
                ended: ended.clone(),
            },
        );
        Ok(ConsoleClaim {
            locks: self.clone(),
            path: path.to_owned(),
            generation,
            ended,
        })
    }
}

/// One client's hold on a console device; see [`ConsoleLocks::claim`].
#[derive(Debug)]
pub struct ConsoleClaim {
    locks: ConsoleLocks,
    path: String,
    generation: u64,
    ended: CancellationToken,
}

impl ConsoleClaim {
    /// Resolves when another client took the console over with
    /// [`CONSOLE_FORCE`].
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }
}

impl Drop for ConsoleClaim {
    fn drop(&mut self) {
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A session that was taken over must not release its successor's claim.
        if held
            .get(&self.path)
            .is_some_and(|h| h.generation == self.generation)
        {
            held.remove(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[tokio::test]
    async fn one_client_per_device_unless_forced() {
        let locks = ConsoleLocks::default();
        let first = locks.claim("/dev/pts/9", false).expect("free device");
        let busy = locks.claim("/dev/pts/9", false).expect_err("held");
        assert_eq!(busy.code(), ErrorCode::OperationFailed);
        assert!(busy.to_string().contains("Active console session exists"));
        // Another device is independent.
        let other = locks.claim("/dev/pts/10", false).expect("other device");

        let second = locks.claim("/dev/pts/9", true).expect("forced");
        first.ended().await;
        // The old session going away leaves the new one in place.
        drop(first);
        locks.claim("/dev/pts/9", false).expect_err("still held");
        drop(second);
        locks.claim("/dev/pts/9", false).expect("released");
        drop(other);
    }
}
