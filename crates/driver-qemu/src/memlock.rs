//! The locked-memory limit (`RLIMIT_MEMLOCK`) of a running QEMU, raised for
//! a zero-copy migration as libvirt's `qemuDomainSetMaxMemLock` does.
//!
//! With `zero-copy-send` the kernel pins the guest pages queued on the
//! multifd sockets (`MSG_ZEROCOPY`) and charges them to QEMU's
//! `RLIMIT_MEMLOCK`; past the limit each send fails with `ENOBUFS` and QEMU
//! fails the migration ("Process can't lock enough memory for using
//! MSG_ZEROCOPY"), the guest running on. How much is pinned at once cannot
//! be known, so [`raise`] lifts the limit (soft and hard) to the guest's
//! whole memory before the migration and [`restore`] puts the old one back
//! after it, as libvirt does. A limit that is already high enough is left
//! alone (libvirt: someone else manages it), and so is the limit of a QEMU
//! with `CAP_IPC_LOCK` in its effective set, which the kernel does not
//! apply to it (`mm_account_pinned_pages`): a daemon running as root
//! without `CAP_SYS_RESOURCE`, as in some containers, could not raise it,
//! yet its QEMU can pin all it needs.

use std::io;

use rustix::process::{prlimit, Pid, Resource, Rlimit};
use rustix::thread::CapabilityFlags;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// A QEMU's locked-memory limit before [`raise`] changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the old limit is put back with `restore`"]
pub struct Saved {
    pid: i32,
    limit: Rlimit,
}

/// Lets QEMU `pid` lock `bytes` of memory, for a zero-copy migration of a
/// guest of that size. Returns the old limit when it changed it, `None`
/// when the limit already allows `bytes` or does not apply to the process.
///
/// # Errors
/// [`Error::Process`] when the limit cannot be read or raised (`EPERM`
/// without `CAP_SYS_RESOURCE`); the caller refuses the migration then, as
/// libvirt does ("cannot limit locked memory of process …").
pub fn raise(pid: i32, bytes: u64) -> Result<Option<Saved>> {
    let failed = |action, source: io::Error| Error::Process {
        action,
        pid,
        source,
    };
    let raw = Pid::from_raw(pid).ok_or_else(|| {
        failed(
            "raise the locked-memory limit of",
            io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let current = get(pid).map_err(|e| failed("read the locked-memory limit of", e))?;
    if allows(current, bytes) {
        return Ok(None);
    }
    let exempt = rustix::thread::capabilities(Some(raw))
        .map(|sets| sets.effective.contains(CapabilityFlags::IPC_LOCK))
        .map_err(|e| failed("read the capabilities of", e.into()))?;
    if exempt {
        info!(
            pid,
            limit = ?current.current,
            "qemu holds CAP_IPC_LOCK: its locked-memory limit does not bind zero-copy sends"
        );
        return Ok(None);
    }
    let wanted = Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    prlimit(Some(raw), Resource::Memlock, wanted)
        .map_err(|e| failed("raise the locked-memory limit of", e.into()))?;
    info!(pid, from = ?current.current, to = bytes, "raised qemu's locked-memory limit for a zero-copy migration");
    Ok(Some(Saved {
        pid,
        limit: current,
    }))
}

/// Puts back the limit [`raise`] replaced. Best effort: a QEMU that is
/// gone has no limit left to restore.
pub fn restore(saved: Saved) {
    let Saved { pid, limit } = saved;
    let Some(raw) = Pid::from_raw(pid) else {
        return;
    };
    match prlimit(Some(raw), Resource::Memlock, limit) {
        Ok(_) => info!(pid, to = ?limit.current, "restored qemu's locked-memory limit"),
        Err(e) => warn!(pid, error = %e, "could not restore qemu's locked-memory limit"),
    }
}

/// Whether the soft limit (the one the kernel enforces) is at least `bytes`.
fn allows(limit: Rlimit, bytes: u64) -> bool {
    limit.current.map_or(true, |soft| soft >= bytes)
}

/// The `RLIMIT_MEMLOCK` of `pid` (`None`: unlimited).
fn get(pid: i32) -> io::Result<Rlimit> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: with a null new limit prlimit only reads, into `old`, which is
    // a valid, writable `rlimit` for the duration of the call.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_MEMLOCK, std::ptr::null(), &mut old) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok(Rlimit {
        current: finite(old.rlim_cur),
        maximum: finite(old.rlim_max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_soft_limit_below_the_guest_needs_raising() {
        let limit = |soft, hard| Rlimit {
            current: soft,
            maximum: hard,
        };
        assert!(allows(limit(None, None), 1 << 30));
        assert!(allows(limit(Some(1 << 30), Some(1 << 30)), 1 << 30));
        assert!(!allows(limit(Some(8 << 20), None), 1 << 30));
    }

    #[test]
    fn the_limit_of_this_process_reads_and_an_equal_one_is_left_alone() {
        let pid = i32::try_from(std::process::id()).expect("pid fits");
        let now = get(pid).expect("read our own limit");
        let bytes = now.current.unwrap_or(u64::MAX);
        // Already allowed: nothing is changed, so nothing to restore.
        assert_eq!(raise(pid, bytes).expect("no change needed"), None);
        assert_eq!(get(pid).expect("read again"), now);
    }
}
