//! The daemon as a child subreaper.
//!
//! QEMU daemonizes (double-forks), so the processes the QEMU driver starts
//! would be re-parented to PID 1 and their exit would go unnoticed. With
//! `PR_SET_CHILD_SUBREAPER` they are re-parented to the daemon instead, and
//! this module reaps those orphans so they do not linger as zombies.
//!
//! Children the daemon spawned itself are waited for by their owners
//! (tokio/std `Child`). To avoid stealing their exit status, a zombie is reaped
//! here only when it was already a zombie at the previous sweep, i.e. nobody
//! waited for it for a whole [`SWEEP_INTERVAL`].

use std::collections::HashSet;
use std::time::Duration;

/// How often zombie children are looked for.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Marks this process as a child subreaper.
///
/// # Errors
/// The OS error of `prctl` (e.g. on kernels without the feature).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches
    // no memory of ours; the remaining arguments are ignored by the kernel.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs forever, reaping orphaned zombie children every [`SWEEP_INTERVAL`].
pub async fn run() {
    let mut previous = HashSet::new();
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        ticker.tick().await;
        let zombies = zombie_children();
        for pid in zombies.intersection(&previous) {
            reap(*pid);
        }
        previous = zombies;
    }
}

fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`, a live local; WNOHANG makes
    // it return at once if the child is not (or no longer) a zombie.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if rc == pid {
        tracing::info!(pid, status, "reaped orphaned child process");
    }
}

/// PIDs of our children that are zombies, from /proc (no wait call, so it
/// never disturbs a child someone else is about to wait for).
fn zombie_children() -> HashSet<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .is_some_and(|stat| parse_state_and_ppid(&stat) == Some(('Z', me.as_str())))
        })
        .collect()
}

/// Field 3 (state) and field 4 (ppid) of /proc/PID/stat; the command name in
/// field 2 may contain spaces and parentheses, so parse after the last ')'.
fn parse_state_and_ppid(stat: &str) -> Option<(char, &str)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_command_name_parses() {
        let stat = "1234 (qemu (x) y) Z 77 1234 1234 0 -1";
        assert_eq!(parse_state_and_ppid(stat), Some(('Z', "77")));
        assert_eq!(parse_state_and_ppid("garbage"), None);
    }
}
