//! Helpers shared by the QEMU test files.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use migrated_driver_qemu::command::find_emulator;

/// Whether QEMU is installed; prints the loud skip line otherwise, and
/// fails when `CI` is set (CI must run these tests).
pub fn qemu_available() -> bool {
    if find_emulator(None).is_ok() {
        return true;
    }
    eprintln!("SKIPPED: qemu-system-x86_64 not found");
    assert!(
        std::env::var_os("CI").is_none(),
        "qemu-system-x86_64 is required when CI is set"
    );
    false
}

/// Polls `probe` until it yields a value, for at most `limit`.
pub async fn wait_until<T, F, Fut>(limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills, when dropped, every QEMU whose pidfile is under the given runtime
/// directories: guests outlive their driver by design, so a test that fails
/// half-way would otherwise leave them running.
pub struct Reaper(pub Vec<PathBuf>);

impl Reaper {
    /// Guards `<dir>/run/qemu/*.pid` for each of `dirs`.
    pub fn new(dirs: &[&Path]) -> Self {
        Self(dirs.iter().map(|d| d.join("run").join("qemu")).collect())
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for dir in &self.0 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "pid") {
                    let pid = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok());
                    if let Some(pid) = pid.filter(|&p| p > 1) {
                        // SAFETY: kill(2) has no memory-safety preconditions.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
    }
}
