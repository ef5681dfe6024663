//! Requests to a running guest's hardware: the ACPI power button for
//! `shutdown` and `reboot`, the NMI, key presses.
//!
//! A reboot is libvirt's "fake reboot" (`qemuDomainReboot`,
//! `qemuProcessFakeReboot` in `src/qemu/qemu_driver.c` / `qemu_process.c`):
//! the power button asks the guest to shut down, and when it does, QEMU
//! resets the machine and lets it run again instead of exiting, so the same
//! QEMU process boots the guest afresh. libvirt starts every QEMU with
//! `-no-shutdown` for this; this driver keeps QEMU's default (exit when the
//! guest shuts down), so a shutdown is what it always was, and switches
//! QEMU's shutdown action to `pause` with `set-action` only while a reboot
//! is asked for:
//!
//! ```text
//! reboot:    fake_reboot = true; set-action shutdown=pause; system_powerdown
//! SHUTDOWN:  (fake_reboot) paused_shutdown = true      no event, no state change
//! STOP:      (paused_shutdown) ignored
//! task:      system_reset (RESET: the reboot event); cont;
//!            set-action shutdown=poweroff; fake_reboot = false
//! RESUME:    (paused_shutdown) running (booted), paused_shutdown = false, no event
//! ```
//!
//! `fake_reboot` is set before QEMU pauses on a shutdown and cleared after
//! it exits on one again, so a guest that shuts down in between is never
//! left paused for good: at worst QEMU exits and the guest is shut off.
//! `shutdown` and `reset` cancel a requested reboot, as in libvirt.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use migrated_core::domain::{running_reason, DomainRef, DomainState, StateReason};
use migrated_core::flags::{self, check_flags};
use migrated_core::keycode::{self, Codeset};
use migrated_core::{Error, Result};
use tracing::{info, warn};
use uuid::Uuid;

use super::registry::Runtime;
use super::{QemuDriver, Shared};
use crate::qmp::commands::{
    Cont, InjectNmi, KeyValue, QueryStatus, RunState, SendKey, SetAction, ShutdownAction,
    StatusInfo, SystemPowerdown, SystemReset,
};
use crate::qmp::Qmp;

/// What the power button is pressed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PowerRequest {
    /// `virDomainShutdownFlags`.
    Shutdown,
    /// `virDomainReboot`.
    Reboot,
}

impl PowerRequest {
    fn api(self) -> &'static str {
        match self {
            PowerRequest::Shutdown => "virDomainShutdownFlags",
            PowerRequest::Reboot => "virDomainReboot",
        }
    }
}

impl QemuDriver {
    /// `shutdown` and `reboot`, as libvirt's `qemuDomainShutdownFlags` and
    /// `qemuDomainReboot`: the ACPI power button, or the guest agent, which
    /// this daemon never has connected (with the button allowed too,
    /// libvirt falls back on it, and so does this). A reboot of a guest
    /// whose `<on_reboot>` is `destroy` or `preserve` is a shutdown.
    ///
    /// # Errors
    /// INVALID_ARG for modes other than the power button and the agent;
    /// OPERATION_INVALID when not running; the agent's errors
    /// ([`Error::GuestAgent`]); QEMU's refusal.
    pub(super) async fn power_button(
        &self,
        dom: &DomainRef,
        flags: u32,
        request: PowerRequest,
    ) -> Result<()> {
        use flags::shutdown::{ACPI_POWER_BTN, GUEST_AGENT};
        // libvirt's QEMU driver knows these two modes only (initctl,
        // signal and paravirt are unknown flags there too).
        check_flags(
            request.api(),
            u64::from(flags),
            u64::from(ACPI_POWER_BTN | GUEST_AGENT),
        )?;
        if flags == GUEST_AGENT {
            return Err(self.agent_unavailable(dom)?);
        }
        let (runtime, def) = self.read(|r| {
            let d = r.get(dom)?;
            let live = d
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            Ok((Arc::clone(&live.runtime), live.def.clone()))
        })?;
        let reboot = request == PowerRequest::Reboot
            && !matches!(def.on_reboot.as_deref(), Some("destroy" | "preserve"));
        let qmp = &runtime.qmp;
        if reboot {
            arm(&runtime)
                .await
                .map_err(|e| e.into_core(request.api()))?;
        } else {
            disarm(&runtime)
                .await
                .map_err(|e| e.into_core(request.api()))?;
        }
        if let Err(e) = qmp.execute(&SystemPowerdown).await {
            if reboot {
                let _ = disarm(&runtime).await;
            }
            return Err(e.into_core(request.api()));
        }
        Ok(())
    }

    /// `inject-nmi` into a running (or paused) guest.
    ///
    /// # Errors
    /// OPERATION_INVALID when not running; QEMU's refusal.
    pub(super) async fn inject_nmi_impl(&self, dom: &DomainRef) -> Result<()> {
        let runtime = self.runtime(dom)?;
        runtime
            .qmp
            .execute(&InjectNmi)
            .await
            .map_err(|e| e.into_core("virDomainInjectNMI"))?;
        Ok(())
    }

    /// `send-key`, as libvirt's `qemuDomainSendKey`: the keycodes become
    /// QEMU key numbers (qnum) first, then QEMU presses them.
    ///
    /// # Errors
    /// INTERNAL_ERROR for a keycode with no key in `codeset` (before the
    /// domain is looked at, as libvirt); NO_DOMAIN; OPERATION_INVALID when
    /// not running; QEMU's refusal.
    pub(super) async fn send_key_impl(
        &self,
        dom: &DomainRef,
        codeset: Codeset,
        holdtime: u32,
        keycodes: &[u32],
    ) -> Result<()> {
        let keys = keycodes
            .iter()
            .map(|&code| {
                keycode::translate(codeset, Codeset::Qnum, code)
                    .map(KeyValue::Number)
                    .ok_or_else(|| {
                        Error::internal(format!(
                            "cannot translate keycode {code} of {codeset} codeset to qnum keycode"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let runtime = self.runtime(dom)?;
        runtime
            .qmp
            .execute(&SendKey {
                keys,
                hold_time: (holdtime > 0).then_some(holdtime),
            })
            .await
            .map_err(|e| e.into_core("virDomainSendKey"))?;
        Ok(())
    }

    /// `reset` cancels a requested reboot (libvirt's `qemuDomainReset`).
    ///
    /// # Errors
    /// QEMU's refusal of `set-action`.
    pub(super) async fn cancel_reboot(&self, runtime: &Runtime) -> Result<()> {
        disarm(runtime)
            .await
            .map_err(|e| e.into_core("virDomainReset"))
    }
}

/// Asks for a fake reboot: the flag first, then QEMU's pause on shutdown.
async fn arm(runtime: &Runtime) -> crate::error::Result<()> {
    runtime.fake_reboot.store(true, Ordering::SeqCst);
    set_shutdown_action(&runtime.qmp, ShutdownAction::Pause).await
}

/// Cancels a requested fake reboot, if any: QEMU exits on shutdown again,
/// then the flag goes.
async fn disarm(runtime: &Runtime) -> crate::error::Result<()> {
    if runtime.fake_reboot.load(Ordering::SeqCst) && !runtime.paused_shutdown.load(Ordering::SeqCst)
    {
        set_shutdown_action(&runtime.qmp, ShutdownAction::Poweroff).await?;
        runtime.fake_reboot.store(false, Ordering::SeqCst);
    }
    Ok(())
}

async fn set_shutdown_action(qmp: &Qmp, shutdown: ShutdownAction) -> crate::error::Result<()> {
    qmp.execute(&SetAction { shutdown }).await.map(|_| ())
}

/// The event task's SHUTDOWN: `true` when it starts a fake reboot (the
/// event is then no shutdown at all: no lifecycle event, no state change).
pub(super) fn on_shutdown(
    shared: &Arc<Shared>,
    runtime: &Arc<Runtime>,
    uuid: Uuid,
    id: i32,
) -> bool {
    if runtime.intent().is_some()
        || !runtime.fake_reboot.load(Ordering::SeqCst)
        || runtime.paused_shutdown.swap(true, Ordering::SeqCst)
    {
        return false;
    }
    tokio::spawn(fake_reboot(
        Arc::clone(shared),
        Arc::clone(runtime),
        uuid,
        id,
    ));
    true
}

/// The event task's STOP: `true` when it is the fake reboot's pause.
pub(super) fn ignores_stop(runtime: &Runtime) -> bool {
    runtime.paused_shutdown.load(Ordering::SeqCst)
}

/// The event task's RESUME: `true` when it ends a fake reboot, which
/// leaves the guest running (booted) with no event (libvirt's
/// `qemuProcessStartCPUs` with reason `BOOTED` on a guest it never showed
/// paused).
pub(super) fn on_resume(shared: &Shared, runtime: &Runtime, uuid: &Uuid, id: i32) -> bool {
    if !runtime.paused_shutdown.swap(false, Ordering::SeqCst) {
        return false;
    }
    shared.force_state(
        uuid,
        id,
        StateReason {
            state: DomainState::Running,
            reason: running_reason::BOOTED,
        },
    );
    true
}

/// The event task's RESET: a reset the guest did on its own cancels a
/// requested reboot (libvirt's `qemuProcessHandleReset`); the fake
/// reboot's own reset does not.
pub(super) fn on_reset(runtime: &Arc<Runtime>) {
    if runtime.fake_reboot.load(Ordering::SeqCst) && !runtime.paused_shutdown.load(Ordering::SeqCst)
    {
        let runtime = Arc::clone(runtime);
        tokio::spawn(async move {
            if let Err(e) = disarm(&runtime).await {
                warn!(error = %e.chain(), "cannot cancel the requested reboot");
            }
        });
    }
}

/// libvirt's `qemuProcessFakeReboot`: QEMU paused in run state `shutdown`;
/// reset the machine and let it run. Under the domain's job lock, so a
/// destroy or a save in progress finishes first. When QEMU refuses, the
/// guest is ended (it shut down; it must not stay paused for good).
async fn fake_reboot(shared: Arc<Shared>, runtime: Arc<Runtime>, uuid: Uuid, id: i32) {
    let job = shared
        .lock()
        .ok()
        .and_then(|reg| reg.domains.get(&uuid).map(|d| Arc::clone(&d.job)));
    let _job = match &job {
        Some(job) => Some(job.acquire_unbounded("remoteDispatchDomainReboot").await),
        None => None,
    };
    if runtime.intent().is_some() {
        // Stopped meanwhile by the driver (destroy, save).
        return;
    }
    let qmp = &runtime.qmp;
    let done = async {
        qmp.execute(&SystemReset).await?;
        qmp.execute(&Cont).await?;
        set_shutdown_action(qmp, ShutdownAction::Poweroff).await
    }
    .await;
    match done {
        Ok(()) => {
            runtime.fake_reboot.store(false, Ordering::SeqCst);
            info!(%uuid, "guest rebooted (reset after its shutdown)");
        }
        Err(e) => {
            warn!(%uuid, error = %e.chain(), "fake reboot failed; ending the guest");
            runtime.guest_shutdown.store(true, Ordering::SeqCst);
            runtime.paused_shutdown.store(false, Ordering::SeqCst);
            if let Err(e) = runtime.process.kill().await {
                warn!(%uuid, error = %e.chain(), "cannot kill qemu");
            }
            shared.finish_stop(&uuid, id);
        }
    }
}

/// After a daemon restart: a reboot asked for before it is forgotten. A
/// QEMU paused on the guest's shutdown for it finishes the reboot now;
/// QEMU exits on shutdowns again. Returns QEMU's run state after.
///
/// # Errors
/// QEMU's refusal of the reset or the resume (the guest stays paused).
pub(super) async fn settle_on_reattach(
    qmp: &Qmp,
    run: StatusInfo,
    name: &str,
) -> crate::error::Result<StatusInfo> {
    // Before a reset, so a guest shutting down meanwhile is not paused.
    if let Err(e) = set_shutdown_action(qmp, ShutdownAction::Poweroff).await {
        warn!(name, error = %e.chain(), "cannot restore qemu's shutdown action");
    }
    if run.status != RunState::Shutdown {
        return Ok(run);
    }
    info!(name, "finishing a reboot asked for before the restart");
    qmp.execute(&SystemReset).await?;
    qmp.execute(&Cont).await?;
    qmp.execute(&QueryStatus).await
}
