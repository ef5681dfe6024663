//! Source-side steps: Begin3, Perform3 (and v2 Perform), Confirm3, abort and
//! the settling of a job left waiting after Perform.

use uuid::Uuid;

use super::{lock, Begin3Out, Manager, SourceContext};
use crate::abi::check_abi_stability;
use crate::cookie::{feature, Capability, Cookie};
use crate::domain::DomainRef;
use crate::error::{Error, Result};
use crate::flags::MigrateFlags;
use crate::job::{
    JobHandle, JobOutcome, JobStats, Phase, Postcopy, RecoveryAction, SourceEvent, SourcePhase,
    TimeoutAction,
};
use crate::migration::backend::{BeginOut, DataOut};
use crate::migration::fault::PausePoint;
use crate::migration::request::{MigrateRequest, Role, Step};
use crate::migration::tunnel::TunnelWriter;
use crate::xml::{DomainDef, FormatOptions};

impl Manager {
    fn requested_capabilities(req: &MigrateRequest) -> Vec<Capability> {
        let mut caps = Vec::new();
        if req.has(MigrateFlags::COMPRESSED) {
            caps.push(Capability {
                name: "compression".into(),
                value: if req.compression.is_empty() {
                    "default".into()
                } else {
                    req.compression.join(",")
                },
            });
        }
        if req.has(MigrateFlags::AUTO_CONVERGE) {
            caps.push(Capability {
                name: "auto-converge".into(),
                value: "yes".into(),
            });
        }
        caps
    }

    /// Checks the request, reads the guest and (with CHANGE_PROTECTION) starts the
    /// job that locks it until Confirm.
    async fn begin_inner(
        &self,
        dom: &DomainRef,
        req: &mut MigrateRequest,
        keep_job: bool,
    ) -> Result<(BeginOut, Option<JobHandle>, Uuid)> {
        let support = self.backend.support();
        req.validate(Step::Begin, support)?;
        let resume = req.has(MigrateFlags::POSTCOPY_RESUME);
        let locked = || {
            Error::invalid(if resume {
                format!(
                    "resuming failed post-copy migration of domain {} already in progress",
                    dom.name
                )
            } else {
                format!(
                    "another migration job is already active for domain {}",
                    dom.name
                )
            })
        };
        // A recovery asks the backend first, which tells a post-copy still
        // running (its job holds the guest) from one that failed.
        if !resume && self.registry.is_locked(&dom.uuid) {
            return Err(locked());
        }
        let begin = self.backend.begin(dom, req).await?;
        if resume && self.registry.is_locked(&dom.uuid) {
            return Err(locked());
        }
        req.apply_defaults(support, begin.active);
        req.validate(Step::Begin, support)?;
        req.check_guest_state(begin.active)?;
        let forced = self.backend.forced_flags().difference(req.flags);
        if let Some(name) = forced.names().first() {
            return Err(Error::ArgumentUnsupported {
                what: format!("a migration without flag {name}"),
                driver: support.driver,
            });
        }
        // A recovered post-copy source is paused by the failure; the guest
        // runs on the destination.
        if begin.paused && !resume {
            req.flags |= MigrateFlags::PAUSED;
        }
        let job_id = Uuid::new_v4();
        let job = if keep_job {
            let job = self.registry.start(
                job_id,
                dom,
                Phase::Source(SourcePhase::Begin3 {
                    offline: req.is_offline(),
                }),
            )?;
            if let Err(err) = self.persist(&job, req.flags, None, &job.phase()) {
                self.registry
                    .finish(&dom.uuid, JobOutcome::Failed(err.to_string()));
                return Err(err);
            }
            Some(job)
        } else {
            None
        };
        Ok((begin, job, job_id))
    }

    /// The definition the destination runs: the caller's `destination_xml` after
    /// the ABI check, or the source's migratable definition.
    fn destination_def(begin: &BeginOut, req: &MigrateRequest) -> Result<DomainDef> {
        match &req.dest_xml {
            None => Ok(begin.def.clone()),
            Some(xml) => {
                let dst = DomainDef::parse(xml)?;
                check_abi_stability(&begin.def, &dst).map_err(|m| Error::ConfigUnsupported {
                    reason: format!("destination XML refused: {m}"),
                })?;
                Ok(dst)
            }
        }
    }

    /// Source, Begin3: checks the request (flags, params, contradictions, guest
    /// state, `destination_xml` ABI), and answers the definition and cookie.
    ///
    /// # Errors
    /// The request checks' errors ([`MigrateRequest::validate`]), `NoDomain`,
    /// `OperationInvalid` when another job owns the guest, `ConfigUnsupported`
    /// naming a guest-visible change in `destination_xml`, `XmlError`.
    pub async fn begin3(&self, dom: &DomainRef, mut req: MigrateRequest) -> Result<Begin3Out> {
        let protect = req.has(MigrateFlags::CHANGE_PROTECTION);
        let (begin, job, job_id) = self.begin_inner(dom, &mut req, protect).await?;
        let result = (|| -> Result<Begin3Out> {
            let def = Self::destination_def(&begin, &req)?;
            let xml = def.format(&FormatOptions {
                secure: true,
                inactive: false,
                migratable: true,
            });
            let mut cookie = Cookie::new(&dom.name, dom.uuid, job_id);
            cookie.source = Some(self.config.host.clone());
            cookie.graphics = begin.graphics.clone();
            cookie.lockstate = begin.lockstate.clone();
            cookie.capabilities = Self::requested_capabilities(&req);
            if let Some(nbd) = &begin.nbd {
                cookie.nbd = Some(nbd.clone());
                cookie.require(feature::NBD);
            }
            Ok(Begin3Out {
                cookie: cookie.encode()?,
                xml,
            })
        })();
        match (&result, job) {
            (Ok(_), Some(job)) => {
                lock(&self.sources).insert(
                    dom.uuid,
                    SourceContext {
                        begin,
                        dest_host: None,
                    },
                );
                tracing::info!(job_id = %job.job_id(), dom = %dom.name, "migration job begun");
            }
            (Err(err), Some(job)) => {
                self.end(&job, JobOutcome::Failed(err.to_string()));
            }
            (_, None) => {}
        }
        if result.is_ok() {
            self.pause_point(PausePoint::Begin).await;
        }
        result
    }

    /// Source, Perform3: sends the guest. On success it stays paused here
    /// until Confirm; on failure it runs here again and the job ends.
    ///
    /// # Errors
    /// Request/cookie checks, `InvalidArg` without a data URI, `OperationInvalid`
    /// in the wrong phase, the backend's data-plane errors, `OperationAborted`.
    pub async fn perform3(
        &self,
        dom: &DomainRef,
        mut req: MigrateRequest,
        cookie_in: &[u8],
        tunnel: Option<TunnelWriter>,
    ) -> Result<Vec<u8>> {
        let job = match self.registry.get(&dom.uuid) {
            Some(job) => job,
            None => {
                // No change protection: Begin left no job, so this step starts it.
                let (begin, job, _) = self.begin_inner(dom, &mut req, true).await?;
                let job = job.ok_or_else(|| Error::internal("perform started no job"))?;
                lock(&self.sources).insert(
                    dom.uuid,
                    SourceContext {
                        begin,
                        dest_host: None,
                    },
                );
                job
            }
        };
        if job.role() != Role::Source {
            return Err(Error::invalid(format!(
                "domain {} has an incoming migration job, not an outgoing one",
                dom.name
            )));
        }
        let flags = req.flags;
        let result = self.perform_job(&job, dom, req, cookie_in, tunnel).await;
        if let Err(err) = &result {
            // No Confirm follows a failed Perform (libvirt-wire.md §8.6): a job
            // that never started sending ends here, or the guest stays locked.
            if matches!(job.phase(), Phase::Source(SourcePhase::Begin3 { .. })) {
                if let Err(e) = self.source_step(
                    &job,
                    flags,
                    None,
                    SourceEvent::Confirmed { cancelled: true },
                ) {
                    tracing::warn!(error = %e, "recording the refused perform");
                }
                self.restore_source(&job, dom, flags).await;
                self.end(&job, JobOutcome::Failed(err.to_string()));
            }
        }
        result
    }

    async fn perform_job(
        &self,
        job: &JobHandle,
        dom: &DomainRef,
        mut req: MigrateRequest,
        cookie_in: &[u8],
        tunnel: Option<TunnelWriter>,
    ) -> Result<Vec<u8>> {
        let job = job.clone();
        let cookie = self.decode_cookie(cookie_in, Role::Source)?;
        req.validate(Step::Perform, self.backend.support())?;
        if let Some(c) = &cookie {
            if c.job_id != job.job_id() {
                tracing::warn!(cookie_job = %c.job_id, job_id = %job.job_id(), "cookie names another job id");
            }
        }
        let dest_host = cookie.as_ref().and_then(|c| c.destination.clone());
        let peer = dest_host.as_ref().map(|h| h.uuid);
        let context = lock(&self.sources).get(&dom.uuid).cloned();
        let Some(mut context) = context else {
            return Err(Error::invalid(format!(
                "no migration context for domain {}",
                dom.name
            )));
        };
        context.dest_host = dest_host;
        // The caller's flags for this step get the same driver defaults Begin applied.
        req.apply_defaults(self.backend.support(), context.begin.active);
        // Build the reply's fixed part now: a cookie that cannot be sent must fail
        // before the guest is paused, not after.
        let mut reply = Cookie::new(&dom.name, dom.uuid, job.job_id());
        reply.source = Some(self.config.host.clone());
        reply.destination = context.dest_host.clone();
        if req.has(MigrateFlags::PERSIST_DEST) {
            reply.persistent = Some(self.persistent_xml(&context.begin, &req)?);
            reply.require(feature::PERSISTENT);
        }
        let mut probe = reply.clone();
        probe.statistics = JobStats::default()
            .to_cookie_pairs()
            .into_iter()
            .map(|(k, _)| (k, u64::MAX))
            .collect();
        probe.encode()?;

        let out = match (tunnel, req.uri.clone()) {
            (Some(w), _) => DataOut::Tunnel(w),
            (None, Some(uri)) => DataOut::Direct {
                uri,
                nbd: cookie.as_ref().and_then(|c| c.nbd.clone()),
            },
            (None, None) => {
                return Err(Error::InvalidArg {
                    operation: Step::Perform.api_name(),
                    reason: "no migration URI (Prepare answered none and the caller gave none)"
                        .into(),
                })
            }
        };
        self.source_step(&job, req.flags, peer, SourceEvent::PerformStarted)?;
        self.pause_point(PausePoint::PerformStart).await;
        let dest_hostname = context.dest_host.as_ref().map(|h| h.hostname.clone());
        lock(&self.sources).insert(dom.uuid, context);
        if let Some(bw) = req.bandwidth_mib_s {
            job.set_max_speed_mib_s(bw);
        }
        self.backend
            .relocate_graphics(
                dom,
                &req,
                cookie.as_ref().and_then(|c| c.graphics.as_ref()),
                dest_hostname.as_deref(),
            )
            .await;
        let result = self.run_perform(dom, &req, out, &job).await;
        match result {
            Ok(perform) => {
                self.source_step(&job, req.flags, peer, SourceEvent::PerformSucceeded)?;
                self.pause_point(PausePoint::PerformDone).await;
                reply.capabilities = perform
                    .capabilities
                    .into_iter()
                    .map(|(name, value)| Capability { name, value })
                    .collect();
                reply.statistics = job.stats().to_cookie_pairs();
                reply.require(feature::STATISTICS);
                reply.encode()
            }
            Err(err) => {
                let outcome = if job.is_aborted() {
                    JobOutcome::Cancelled
                } else {
                    JobOutcome::Failed(err.to_string())
                };
                if let Err(j) = self.source_step(&job, req.flags, peer, SourceEvent::PerformFailed)
                {
                    tracing::warn!(error = %j, "recording the failed perform");
                }
                self.restore_source(&job, dom, req.flags).await;
                self.end(&job, outcome);
                Err(err)
            }
        }
    }

    /// Runs the backend's perform under the job's completion timeout.
    async fn run_perform(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: DataOut,
        job: &JobHandle,
    ) -> Result<crate::migration::backend::PerformOut> {
        let perform = self.held_mid_transfer(job, self.backend.perform(dom, req, out, job));
        let Some((timeout, action)) = job.tuning().completion_timeout else {
            return perform.await;
        };
        tokio::pin!(perform);
        tokio::select! {
            r = &mut perform => return r,
            () = tokio::time::sleep(timeout) => {}
        }
        tracing::warn!(job_id = %job.job_id(), ?action, "migration completion timeout");
        match action {
            TimeoutAction::Abort => job.abort(),
            TimeoutAction::Pause => job.request_pause(),
        }
        perform.await
    }

    /// Test builds: holds the transfer at [`PausePoint::PerformMid`] once the
    /// first bytes are out, by no longer polling `perform` until released.
    ///
    /// The progress check follows every poll of `perform` that leaves it
    /// pending, so even a transfer too short for any timer (a small guest
    /// whose first pass skips untouched pages) is held once its first bytes
    /// are reported and it waits for anything.
    async fn held_mid_transfer<T>(
        &self,
        job: &JobHandle,
        perform: impl std::future::Future<Output = T>,
    ) -> T {
        if !crate::migration::fault::requested(&self.config.state_dir, PausePoint::PerformMid)
            && self.config.pause_at != Some(PausePoint::PerformMid)
        {
            return perform.await;
        }
        tokio::pin!(perform);
        let done = std::future::poll_fn(|cx| match perform.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
            std::task::Poll::Pending if job.stats().data_processed > 0 => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        })
        .await;
        match done {
            Some(r) => r,
            None => {
                self.pause_point(PausePoint::PerformMid).await;
                perform.await
            }
        }
    }

    fn persistent_xml(&self, begin: &BeginOut, req: &MigrateRequest) -> Result<String> {
        let def = match &req.persist_xml {
            Some(xml) => {
                let def = DomainDef::parse(xml)?;
                // As libvirt: the next boot's definition may change the
                // virtual hardware (that is what it is for, e.g. more
                // vCPUs), so no ABI check; it must still be this guest, or
                // the running copy would be left without its configuration.
                if def.uuid != begin.def.uuid {
                    return Err(Error::ConfigUnsupported {
                        reason: format!(
                            "persistent XML refused: it names UUID {} instead of {}",
                            def.uuid, begin.def.uuid
                        ),
                    });
                }
                def
            }
            None => begin
                .persistent
                .clone()
                .unwrap_or_else(|| begin.def.clone()),
        };
        Ok(def.format(&FormatOptions {
            secure: true,
            inactive: true,
            migratable: true,
        }))
    }

    /// v2/v1 Perform (no Begin, no Confirm): Perform3, then the source is
    /// confirmed (stopped) right away on success, as libvirt's v2 does
    /// (without a JOB_COMPLETED event, as there).
    ///
    /// # Errors
    /// As [`Manager::perform3`].
    pub async fn perform2(
        &self,
        dom: &DomainRef,
        req: MigrateRequest,
        cookie_in: &[u8],
    ) -> Result<()> {
        self.perform3(dom, req.clone(), cookie_in, None).await?;
        self.confirm(dom, req, &[], false, false).await
    }

    /// Source, Confirm3: `cancelled` = false → stop the guest here (undefine with
    /// UNDEFINE_SOURCE); true → resume it here. Ends the job; a live
    /// migration that completed is announced with a JOB_COMPLETED event
    /// carrying its statistics (libvirt's `qemuMigrationSrcComplete`).
    ///
    /// # Errors
    /// `OperationInvalid` without a source job in a phase that allows it (e.g.
    /// Confirm3 twice), cookie errors, the backend's errors.
    pub async fn confirm3(
        &self,
        dom: &DomainRef,
        req: MigrateRequest,
        cookie_in: &[u8],
        cancelled: bool,
    ) -> Result<()> {
        self.confirm(dom, req, cookie_in, cancelled, true).await
    }

    /// Confirm3's body; `announce` = whether a completed live migration
    /// sends JOB_COMPLETED (v3 does, v2 does not).
    async fn confirm(
        &self,
        dom: &DomainRef,
        req: MigrateRequest,
        cookie_in: &[u8],
        cancelled: bool,
        announce: bool,
    ) -> Result<()> {
        // Confirm's cookie only carries statistics while `cancelled` decides the
        // guest's fate: a bad cookie is reported, but the guest is still settled
        // (refusing would leave it paused and locked on this host).
        let (cookie, cookie_err) = match self.decode_cookie(cookie_in, Role::Source) {
            Ok(c) => (c, None),
            Err(e) => (None, Some(e)),
        };
        let mut req = req;
        let job = match self.registry.get(&dom.uuid) {
            // Offline without change protection: no Perform started a job, so
            // Confirm does (as Perform does for live migrations).
            None if req.is_offline() => {
                let (begin, job, _) = self.begin_inner(dom, &mut req, true).await?;
                let job = job.ok_or_else(|| Error::internal("confirm started no job"))?;
                lock(&self.sources).insert(
                    dom.uuid,
                    SourceContext {
                        begin,
                        dest_host: None,
                    },
                );
                job
            }
            _ => self.registry.expect(&dom.uuid, &dom.name, Role::Source)?,
        };
        if let Some(c) = &cookie {
            job.update_stats(|s| s.merge_cookie_pairs(&c.statistics));
        }
        let peer = cookie
            .as_ref()
            .and_then(|c| c.destination.as_ref())
            .map(|h| h.uuid);
        self.source_step(&job, req.flags, peer, SourceEvent::Confirmed { cancelled })?;
        self.pause_point(PausePoint::Confirm).await;
        lock(&self.held).remove(&dom.uuid);
        let result = self.backend.confirm(dom, &req, cancelled).await;
        if cancelled {
            self.restore_source(&job, dom, req.flags).await;
        }
        let outcome = match (&result, cancelled) {
            (Ok(()), false) => JobOutcome::Completed,
            (Ok(()), true) => JobOutcome::Cancelled,
            (Err(err), _) => JobOutcome::Failed(err.to_string()),
        };
        let guest = job.domain();
        let stats = self.end(&job, outcome);
        // Offline migrations move no job data; libvirt announces none.
        if let Some(stats) = stats.filter(|_| announce && !req.is_offline()) {
            self.announce_completed(guest, &stats);
        }
        result?;
        cookie_err.map_or(Ok(()), Err)
    }

    /// The end of a cancelled or failed migration (Confirm with `cancelled`,
    /// a failed Perform), before the job and its context go: a guest that
    /// ran when the job began runs again, even if an operator paused it
    /// since (libvirt's `qemuMigrationSrcRestoreDomainState`). Nothing for
    /// an offline migration, which never touched the guest, nor for a
    /// post-copy source, whose memory is stale. A failure is only logged,
    /// as libvirt does: the step's own outcome stands.
    async fn restore_source(&self, job: &JobHandle, dom: &DomainRef, flags: MigrateFlags) {
        let ran = lock(&self.sources)
            .get(&dom.uuid)
            .is_some_and(SourceContext::ran_at_begin);
        if !ran || flags.contains(MigrateFlags::OFFLINE) || job.postcopy() == Postcopy::Active {
            return;
        }
        if let Err(e) = self.backend.restore_running(dom).await {
            tracing::warn!(dom = %dom.name, error = %e, "could not resume the guest after the cancelled migration");
        }
    }

    /// ABORT_JOB: a running transfer fails (the source resumes); a job still in
    /// Begin3 simply ends.
    ///
    /// # Errors
    /// `OperationInvalid` without an active job, or once the source has paused
    /// for the final phase (only Confirm decides then).
    pub fn abort_job(&self, dom: &DomainRef) -> Result<()> {
        let job = self
            .registry
            .get(&dom.uuid)
            // libvirt's words (qemuDomainAbortJobFlags), which name no domain.
            .ok_or_else(|| Error::invalid("no job is active on the domain"))?;
        // The source's memory is stale once the destination runs the guest:
        // cancelling now would lose it (libvirt's words).
        if job.postcopy() == Postcopy::Active {
            return Err(Error::invalid("cannot abort migration in post-copy mode"));
        }
        match job.phase() {
            Phase::Source(SourcePhase::Begin3 { .. }) => {
                let flags = MigrateFlags::empty();
                self.source_step(
                    &job,
                    flags,
                    None,
                    SourceEvent::Confirmed { cancelled: true },
                )?;
                self.end(&job, JobOutcome::Cancelled);
                Ok(())
            }
            Phase::Source(SourcePhase::Perform3) | Phase::Destination(_) => {
                job.abort();
                Ok(())
            }
            other => Err(Error::invalid(format!(
                "migration of domain {} cannot be aborted in phase {}",
                dom.name,
                other.name()
            ))),
        }
    }

    /// The client driving the source job `job_id` of `dom` went away (its
    /// connection closed) between steps, so no Confirm will come from it. A
    /// job still in Begin3 ends (nothing was sent); a job in Perform3Done is
    /// held like one recovered after a restart — the guest stays paused here
    /// until the destination's outcome is known ([`Manager::resolve`]). Any
    /// other phase, or another job, is left alone.
    pub fn caller_gone(&self, dom: &DomainRef, job_id: Uuid) {
        let Some(job) = self.registry.get(&dom.uuid) else {
            return;
        };
        if job.job_id() != job_id || job.role() != Role::Source {
            return;
        }
        match job.phase() {
            Phase::Source(SourcePhase::Begin3 { .. }) => {
                tracing::warn!(job_id = %job_id, dom = %dom.name, "client gone after Begin: ending the job");
                if let Err(e) = self.source_step(
                    &job,
                    MigrateFlags::empty(),
                    None,
                    SourceEvent::Confirmed { cancelled: true },
                ) {
                    tracing::warn!(error = %e, "recording the abandoned begin");
                }
                self.end(&job, JobOutcome::Cancelled);
            }
            Phase::Source(SourcePhase::Perform3Done) => match self.journal.get(&job_id) {
                Ok(Some(entry)) => {
                    tracing::warn!(job_id = %job_id, dom = %dom.name, "client gone after Perform: the guest is held paused until the destination's outcome is known");
                    lock(&self.held).insert(dom.uuid, entry);
                }
                Ok(None) | Err(_) => {
                    tracing::error!(job_id = %job_id, "no journal entry for an abandoned Perform3Done job");
                }
            },
            _ => {}
        }
    }

    /// Settles a source job waiting in Perform3Done — one recovered after a
    /// restart, or one whose client went away before Confirm: `peer_runs_guest`
    /// = true → the destination has the guest, stop it here; false → resume it here.
    ///
    /// # Errors
    /// `OperationInvalid` when the guest has no source job in Perform3Done; the
    /// backend's errors.
    pub async fn resolve(&self, dom: &DomainRef, peer_runs_guest: bool) -> Result<()> {
        let job = self.registry.expect(&dom.uuid, &dom.name, Role::Source)?;
        if job.phase() != Phase::Source(SourcePhase::Perform3Done) {
            return Err(Error::invalid(format!(
                "migration of domain {} is in phase {}, not waiting for the peer's outcome",
                dom.name,
                job.phase().name()
            )));
        }
        // A recovered job, or a live one whose client vanished after Perform:
        // the journal has its flags and peer either way.
        let held = lock(&self.held).get(&dom.uuid).cloned();
        let entry = match held {
            Some(entry) => entry,
            None => self.journal.get(&job.job_id())?.ok_or_else(|| {
                Error::internal(format!("no journal entry for job {}", job.job_id()))
            })?,
        };
        let cancelled = !peer_runs_guest;
        let flags = MigrateFlags(entry.flags);
        self.source_step(
            &job,
            flags,
            entry.peer_host,
            SourceEvent::Confirmed { cancelled },
        )?;
        lock(&self.held).remove(&dom.uuid);
        let action = if cancelled {
            RecoveryAction::ResumeSource
        } else {
            RecoveryAction::CompleteSourceCleanup
        };
        let result = self.backend.recover(&entry, action).await;
        self.end(
            &job,
            if cancelled {
                JobOutcome::Cancelled
            } else {
                JobOutcome::Completed
            },
        );
        result
    }
}
