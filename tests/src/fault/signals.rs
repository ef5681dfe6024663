//! Signals to processes the test started (daemons, clients).

/// Sends `sig` to `pid`; false when the process is gone.
pub fn send(pid: u32, sig: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) only sends a signal; the pid belongs to a child the test spawned.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Freezes a process (SIGSTOP): it answers nothing, keepalive included.
pub fn stop(pid: u32) -> bool {
    send(pid, libc::SIGSTOP)
}

/// Thaws a process stopped by [`stop`].
pub fn resume(pid: u32) -> bool {
    send(pid, libc::SIGCONT)
}
