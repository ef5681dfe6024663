//! The domain's job: one state-changing call at a time, as libvirt's job
//! condition (`virDomainObjBeginJob`).
//!
//! A client's call waits at most [`JOB_WAIT_TIME`] (libvirt's 30 s) for the
//! call holding the domain and then fails with libvirt's "cannot acquire
//! state change lock (held by monitor=remoteDispatch…)", naming the holder.
//! The driver's own steps (migration phases, the fake reboot) wait without a
//! limit: giving up half-way through a migration would leave the guest in
//! between. `destroy` does not queue at all (see `QemuDriver::stop`).

use std::sync::Mutex as StdMutex;

use migrated_core::job::JOB_WAIT_TIME;
use migrated_core::{Error, Result};
use tokio::sync::{Mutex, MutexGuard};

/// The job of one domain.
#[derive(Default)]
pub(crate) struct JobLock {
    job: Mutex<()>,
    /// libvirt's dispatcher name of the call holding the job, for the
    /// timeout error of the next one.
    holder: StdMutex<&'static str>,
}

/// Holds the domain's job until dropped.
pub(crate) struct JobGuard<'a> {
    _job: MutexGuard<'a, ()>,
}

impl JobLock {
    /// Takes the job for the client call `dispatcher` (libvirt's
    /// `remoteDispatchDomain…` name), waiting at most [`JOB_WAIT_TIME`].
    ///
    /// # Errors
    /// [`Error::JobLockTimeout`] naming the holder when the wait expires.
    pub(crate) async fn acquire(&self, dispatcher: &'static str) -> Result<JobGuard<'_>> {
        match tokio::time::timeout(JOB_WAIT_TIME, self.job.lock()).await {
            Ok(guard) => Ok(self.held(guard, dispatcher)),
            Err(_) => Err(Error::JobLockTimeout {
                blocker: *self.holder.lock().unwrap_or_else(|p| p.into_inner()),
            }),
        }
    }

    /// Takes the job for one of the driver's own steps, however long the
    /// holder takes.
    pub(crate) async fn acquire_unbounded(&self, dispatcher: &'static str) -> JobGuard<'_> {
        let guard = self.job.lock().await;
        self.held(guard, dispatcher)
    }

    /// Takes the job when it is free.
    pub(crate) fn try_acquire(&self, dispatcher: &'static str) -> Option<JobGuard<'_>> {
        let guard = self.job.try_lock().ok()?;
        Some(self.held(guard, dispatcher))
    }

    fn held<'a>(&'a self, guard: MutexGuard<'a, ()>, dispatcher: &'static str) -> JobGuard<'a> {
        *self.holder.lock().unwrap_or_else(|p| p.into_inner()) = dispatcher;
        JobGuard { _job: guard }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_gives_up_after_the_wait_naming_the_holder() {
        let lock = JobLock::default();
        let held = lock.acquire("remoteDispatchDomainCoreDumpWithFormat").await;
        assert!(held.is_ok());
        // Paused time: the 30 s pass at once.
        let err = lock
            .acquire("remoteDispatchDomainSuspend")
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "Timed out during operation: cannot acquire state change lock \
                 (held by monitor=remoteDispatchDomainCoreDumpWithFormat)"
            )
        );
        assert!(lock
            .try_acquire("remoteDispatchDomainDestroyFlags")
            .is_none());
        drop(held);
        assert!(lock
            .try_acquire("remoteDispatchDomainDestroyFlags")
            .is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_runs_once_the_holder_ends_within_the_wait() {
        let lock = std::sync::Arc::new(JobLock::default());
        let held = lock
            .acquire_unbounded("remoteDispatchDomainSaveFlags")
            .await;
        let waiter = {
            let lock = std::sync::Arc::clone(&lock);
            tokio::spawn(async move { lock.acquire("remoteDispatchDomainSuspend").await.map(drop) })
        };
        tokio::time::sleep(JOB_WAIT_TIME / 2).await;
        drop(held);
        assert!(matches!(waiter.await, Ok(Ok(()))));
    }
}
