//! Destination-side steps: Prepare3 (direct, tunnelled, offline) and Finish3.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use uuid::Uuid;

use super::{lock, record, Finish3Out, Manager, Prepare3Out};
use crate::cookie::{feature, Capability, Cookie, Nbd};
use crate::domain::DomainRef;
use crate::error::{Error, Result};
use crate::flags::MigrateFlags;
use crate::job::{
    DestinationEvent, DestinationPhase, JobHandle, JobOutcome, JobRegistry, Journal, Phase,
};
use crate::migration::backend::{Incoming, MigrationBackend};
use crate::migration::fault::PausePoint;
use crate::migration::request::{MigrateRequest, Role, Step};
use crate::migration::tunnel::TunnelReader;
use crate::migration::uri::DataUri;
use crate::xml::DomainDef;

impl Manager {
    /// Destination, Prepare3 (and PrepareTunnel3 with `tunnel`, Prepare2 with an
    /// empty cookie): creates the incoming guest and answers where to send data.
    ///
    /// # Errors
    /// Request checks, cookie errors (size, garbage, same host), `InvalidArg`
    /// without a definition, `OperationInvalid` when a job already owns the
    /// guest, and the backend's errors (e.g. `DomainExists`). Nothing is left
    /// behind on error.
    pub async fn prepare3(
        &self,
        req: MigrateRequest,
        cookie_in: &[u8],
        tunnel: Option<TunnelReader>,
    ) -> Result<Prepare3Out> {
        let support = self.backend.support();
        req.validate(Step::Prepare, support)?;
        let cookie = self.decode_cookie(cookie_in, Role::Destination)?;
        let xml = req.dest_xml.as_deref().ok_or_else(|| Error::InvalidArg {
            operation: Step::Prepare.api_name(),
            reason: "no domain XML for the incoming guest".into(),
        })?;
        let mut def = DomainDef::parse(xml)?;
        if let Some(c) = &cookie {
            if c.uuid != def.uuid {
                return Err(Error::MigrateCookie {
                    reason: format!(
                        "cookie is for guest {} but the definition is for {}",
                        c.uuid, def.uuid
                    ),
                });
            }
        }
        let source_name = def.name.clone();
        if let Some(dname) = &req.dname {
            def.name = dname.clone();
        }
        let incoming = match (req.is_offline(), tunnel, req.is_tunnelled()) {
            (true, _, _) => Incoming::Offline,
            (false, Some(reader), _) => Incoming::Tunnel(reader),
            (false, None, true) => {
                return Err(Error::InvalidArg {
                    operation: Step::Prepare.api_name(),
                    reason: "a tunnelled migration must use PREPARE_TUNNEL3".into(),
                })
            }
            (false, None, false) => {
                self.direct_incoming(&req, cookie.as_ref().and_then(|c| c.nbd.clone()))?
            }
        };
        let job_id = cookie.as_ref().map_or_else(Uuid::new_v4, |c| c.job_id);
        let peer = cookie
            .as_ref()
            .and_then(|c| c.source.as_ref())
            .map(|h| h.uuid);
        let dom = DomainRef {
            name: def.name.clone(),
            uuid: def.uuid,
            id: DomainRef::INACTIVE_ID,
        };
        let job = self.registry.start(
            job_id,
            &dom,
            Phase::Destination(DestinationPhase::Prepare3 {
                offline: req.is_offline(),
            }),
        )?;
        lock(&self.failed_incoming).remove(&dom.name);
        if let Err(err) = self.persist(&job, req.flags, peer, &job.phase()) {
            self.registry
                .finish(&dom.uuid, JobOutcome::Failed(err.to_string()));
            return Err(err);
        }
        lock(&self.incoming).insert(dom.uuid, def.clone());
        match self.backend.prepare(def, &req, incoming, &job).await {
            Ok(mut out) => {
                out.uri_out = out.uri_out.map(|u| self.reachable_uri(u));
                let mut reply = Cookie::new(source_name, dom.uuid, job_id);
                reply.source = cookie.and_then(|c| c.source);
                reply.destination = Some(self.config.host.clone());
                reply.graphics = self.backend.incoming_graphics(&dom).await;
                reply.capabilities = out
                    .capabilities
                    .into_iter()
                    .map(|(name, value)| Capability { name, value })
                    .collect();
                if let Some(nbd) = out.nbd {
                    reply.nbd = Some(nbd);
                    reply.require(feature::NBD);
                }
                match reply.encode() {
                    Ok(bytes) => {
                        self.pause_point(PausePoint::Prepare).await;
                        tracing::info!(job_id = %job_id, dom = %dom.name, uri_out = ?out.uri_out, "incoming migration prepared");
                        tokio::spawn(
                            IncomingWatch {
                                registry: Arc::clone(&self.registry),
                                journal: self.journal.clone(),
                                backend: Arc::clone(&self.backend),
                                incoming: Arc::clone(&self.incoming),
                                failed: Arc::clone(&self.failed_incoming),
                                prepare_timeout: self.config.prepare_timeout,
                            }
                            .run(job.clone(), req.clone()),
                        );
                        Ok(Prepare3Out {
                            cookie: bytes,
                            uri_out: out.uri_out,
                        })
                    }
                    Err(err) => {
                        self.cancel_incoming(&job, &req).await;
                        Err(err)
                    }
                }
            }
            Err(err) => {
                self.end(&job, JobOutcome::Failed(err.to_string()));
                Err(err)
            }
        }
    }

    /// Kills a prepared incoming guest after a local failure.
    async fn cancel_incoming(&self, job: &JobHandle, req: &MigrateRequest) {
        let dom = job.domain();
        if let Err(err) = self.destination_step(
            job,
            req.flags,
            None,
            DestinationEvent::FinishStarted { cancelled: true },
        ) {
            tracing::warn!(job_id = %job.job_id(), error = %err, "recording the cancelled incoming job");
        }
        if let Err(err) = self.backend.finish(&dom, req, None, true, job).await {
            tracing::warn!(job_id = %job.job_id(), error = %err, "cleaning up incoming guest failed");
        }
        self.end(job, JobOutcome::Cancelled);
    }

    /// A listener bound to a wildcard address is announced under this host's
    /// name, as libvirt's Prepare does (`tcp:<hostname>:<port>`).
    fn reachable_uri(&self, uri: String) -> String {
        match DataUri::parse(&uri) {
            Ok(DataUri {
                host,
                port: Some(port),
            }) if host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified()) =>
            {
                DataUri::format_libvirt(&self.config.host.hostname, port)
            }
            _ => uri,
        }
    }

    fn direct_incoming(&self, req: &MigrateRequest, nbd: Option<Nbd>) -> Result<Incoming> {
        let mut listen_address = req
            .listen_address
            .clone()
            .unwrap_or_else(|| self.config.listen_address.clone());
        let mut port_range = self.config.port_range.clone();
        if let Some(uri) = &req.uri {
            let parsed = DataUri::parse(uri)?;
            if req.listen_address.is_none() {
                listen_address = parsed.host;
            }
            if let Some(port) = parsed.port {
                port_range = port..=port;
            }
        }
        Ok(Incoming::Direct {
            listen_address,
            port_range,
            nbd,
        })
    }

    /// Destination, Finish3 (and Finish2): `cancelled` = false → verify the data,
    /// define the persistent config (PERSIST_DEST), start the guest (unless
    /// PAUSED); true → kill the incoming guest and answer
    /// [`Error::MigrateFinishOk`] as stock libvirt does.
    ///
    /// `dname` is the guest's name on this host (the client fills in the source
    /// name when the user gave none).
    ///
    /// # Errors
    /// `OperationInvalid` without a prepared job (Finish3 without Prepare3),
    /// cookie errors, the backend's errors (checksum mismatch…); the incoming
    /// guest is gone after any error.
    pub async fn finish3(
        &self,
        dname: &str,
        req: MigrateRequest,
        cookie_in: &[u8],
        cancelled: bool,
    ) -> Result<Finish3Out> {
        let cookie = self.decode_cookie(cookie_in, Role::Destination);
        let job = match &cookie {
            Ok(Some(c)) => self.registry.get(&c.uuid),
            Ok(None) | Err(_) => self.registry.find_destination_by_name(dname),
        }
        .filter(|j| j.role() == Role::Destination);
        let Some(job) = job else {
            // The stream may have failed first and taken the incoming guest
            // with it; Finish then gets the answer it would have got.
            let failed = lock(&self.failed_incoming).remove(dname);
            return Err(match failed {
                Some(_) if cancelled => Error::MigrateFinishOk,
                Some(reason) => Error::OperationFailed {
                    operation: "migration",
                    reason: format!("incoming migration of domain {dname} failed: {reason}"),
                },
                None => Error::invalid(format!(
                    "no incoming migration job is active for domain {dname}"
                )),
            });
        };
        let cookie = match cookie {
            Ok(c) => c,
            Err(err) => {
                // The source resumes after a failed Finish, so the incoming copy
                // must go now, not linger paused and locked.
                self.cancel_incoming(&job, &req).await;
                return Err(err);
            }
        };
        let peer = cookie
            .as_ref()
            .and_then(|c| c.source.as_ref())
            .map(|h| h.uuid);
        let dom = job.domain();
        if let Err(err) = self.destination_step(
            &job,
            req.flags,
            peer,
            DestinationEvent::FinishStarted { cancelled },
        ) {
            // Lost the race with the stream-failure cleanup: already cancelled.
            if cancelled && job.phase() == Phase::Destination(DestinationPhase::Finish3Cancelled) {
                // Answer once the incoming guest is really gone.
                job.ended().await;
                return Err(Error::MigrateFinishOk);
            }
            return Err(err);
        }
        if cancelled {
            if let Err(err) = self.backend.finish(&dom, &req, None, true, &job).await {
                tracing::warn!(job_id = %job.job_id(), error = %err, "cleaning up incoming guest failed");
            }
            self.end(&job, JobOutcome::Cancelled);
            return Err(Error::MigrateFinishOk);
        }
        let result = async {
            let persistent = if req.has(MigrateFlags::PERSIST_DEST) {
                let xml = req
                    .persist_xml
                    .clone()
                    .or_else(|| cookie.as_ref().and_then(|c| c.persistent.clone()))
                    .or_else(|| req.dest_xml.clone());
                let def = match xml {
                    Some(xml) => Some(DomainDef::parse(&xml)?),
                    // Offline without a persistent definition in the cookie or
                    // params: the one Prepare received is the config.
                    None => lock(&self.incoming).get(&dom.uuid).cloned(),
                };
                def.map(|mut def| {
                    def.name = dom.name.clone();
                    def
                })
            } else {
                None
            };
            if let Some(c) = &cookie {
                job.update_stats(|s| s.merge_cookie_pairs(&c.statistics));
            }
            self.backend
                .finish(&dom, &req, persistent, false, &job)
                .await
        }
        .await;
        match result {
            Ok(running) => {
                job.set_domain(running.clone());
                self.destination_step(&job, req.flags, peer, DestinationEvent::FinishSucceeded)?;
                let mut reply = Cookie::new(
                    cookie.as_ref().map_or(dname, |c| c.name.as_str()),
                    dom.uuid,
                    job.job_id(),
                );
                reply.destination = Some(self.config.host.clone());
                reply.statistics = job.stats().to_cookie_pairs();
                reply.require(feature::STATISTICS);
                self.pause_point(PausePoint::Finish).await;
                self.end(&job, JobOutcome::Completed);
                tracing::info!(job_id = %job.job_id(), dom = %running.name, "incoming migration finished");
                Ok(Finish3Out {
                    dom: running,
                    cookie: reply.encode()?,
                })
            }
            Err(err) => {
                if let Err(j) =
                    self.destination_step(&job, req.flags, peer, DestinationEvent::FinishFailed)
                {
                    tracing::warn!(error = %j, "recording the failed finish");
                }
                self.end(&job, JobOutcome::Failed(err.to_string()));
                Err(err)
            }
        }
    }
}

/// Removes an incoming guest whose data stream failed for good, or that
/// waited for Finish longer than the prepare timeout without receiving data
/// (an abandoned Prepare, live or offline), without waiting for Finish
/// (whose caller may be gone). Finish, if it comes, then gets the answer from
/// `failed`.
struct IncomingWatch {
    registry: Arc<JobRegistry>,
    journal: Journal,
    backend: Arc<dyn MigrationBackend>,
    incoming: Arc<Mutex<HashMap<Uuid, DomainDef>>>,
    failed: Arc<Mutex<HashMap<String, String>>>,
    prepare_timeout: Option<Duration>,
}

/// Completes once `job` has stayed in Prepare3 for `timeout` without its
/// received-data counter moving and without its data plane saying the
/// stream flows; pends forever once Finish3 has started (Finish then owns
/// the job).
async fn prepare_idle(job: &JobHandle, timeout: Duration) {
    let waiting = |job: &JobHandle| {
        matches!(
            job.phase(),
            Phase::Destination(DestinationPhase::Prepare3 { .. })
        )
    };
    let mut seen = job.stats().data_processed;
    let mut idle_since = Instant::now();
    loop {
        tokio::time::sleep_until(idle_since + timeout).await;
        if !waiting(job) {
            return std::future::pending().await;
        }
        let now = job.stats().data_processed;
        if now == seen && !job.is_receiving() {
            return;
        }
        // Data arrived meanwhile: a transfer in progress, not an abandoned
        // Prepare. Look again one period after this check.
        seen = now;
        idle_since = Instant::now();
    }
}

/// Failed incoming names remembered for a late Finish; older ones are dropped.
const MAX_FAILED_INCOMING: usize = 1024;

impl IncomingWatch {
    async fn run(self, job: JobHandle, req: MigrateRequest) {
        let idle = async {
            match self.prepare_timeout {
                Some(timeout) => {
                    prepare_idle(&job, timeout).await;
                    timeout
                }
                None => std::future::pending().await,
            }
        };
        let mut abort = job.abort_signal();
        let reason = tokio::select! {
            failure = job.transfer_failure() => match failure {
                Some(reason) => reason,
                None => return,
            },
            // ABORT_JOB or DESTROY on the destination: not every data plane
            // watches the job between Prepare and Finish (QEMU receives on
            // its own), so the incoming guest goes from here.
            () = abort.aborted() => "the incoming migration was aborted on the destination".to_owned(),
            timeout = idle => format!(
                "no Finish3 within {} s of Prepare3 without data received: the incoming migration was abandoned",
                timeout.as_secs()
            ),
        };
        let moved = job.transition(
            |p| match p {
                Phase::Destination(d) => d
                    .advance(DestinationEvent::FinishStarted { cancelled: true })
                    .map(Phase::Destination),
                other => Ok(other),
            },
            |p| record(&self.journal, &job, req.flags, None, p),
        );
        if moved.is_err() {
            // Finish already runs and handles the failure itself.
            return;
        }
        let dom = job.domain();
        tracing::warn!(job_id = %job.job_id(), dom = %dom.name, %reason, "incoming migration failed or abandoned before Finish3; removing the incoming guest");
        if let Err(err) = self.backend.finish(&dom, &req, None, true, &job).await {
            tracing::warn!(job_id = %job.job_id(), error = %err, "cleaning up incoming guest failed");
        }
        {
            let mut failed = lock(&self.failed);
            if failed.len() >= MAX_FAILED_INCOMING {
                failed.clear();
            }
            failed.insert(dom.name.clone(), reason.clone());
        }
        lock(&self.incoming).remove(&dom.uuid);
        self.registry.finish(&dom.uuid, JobOutcome::Failed(reason));
        if let Err(err) = self.journal.remove(&job.job_id()) {
            tracing::warn!(job_id = %job.job_id(), error = %err, "could not remove journal entry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobRegistry;

    fn prepared() -> JobHandle {
        JobRegistry::new()
            .start(
                Uuid::new_v4(),
                &DomainRef {
                    name: "idle".into(),
                    uuid: Uuid::new_v4(),
                    id: DomainRef::INACTIVE_ID,
                },
                Phase::Destination(DestinationPhase::Prepare3 { offline: false }),
            )
            .expect("job")
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_prepare_without_data_times_out_after_the_timeout() {
        let job = prepared();
        let start = Instant::now();
        prepare_idle(&job, TIMEOUT).await;
        assert_eq!(start.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn data_arriving_keeps_the_prepare_alive() {
        let job = prepared();
        let start = Instant::now();
        let feeder = {
            let job = job.clone();
            async move {
                // 12 reports, 4 s apart: 48 s of transfer, longer than the timeout.
                for i in 1..=12u64 {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    job.update_stats(|s| s.data_processed = i << 20);
                }
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            () = prepare_idle(&job, TIMEOUT) => {}
            () = feeder => unreachable!("the feeder never ends"),
        }
        // Timed out only once the data stopped (at 48 s), one period later at most.
        let took = start.elapsed();
        assert!(took > Duration::from_secs(48), "{took:?}");
        assert!(took <= Duration::from_secs(48) + 2 * TIMEOUT, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_said_to_flow_keeps_the_prepare_alive_until_it_stops() {
        let job = prepared();
        job.set_receiving(true);
        let start = Instant::now();
        let stopper = {
            let job = job.clone();
            async move {
                // Flowing for 5 timeouts without a byte counted, then stopped.
                tokio::time::sleep(5 * TIMEOUT).await;
                job.set_receiving(false);
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            () = prepare_idle(&job, TIMEOUT) => {}
            () = stopper => unreachable!("the stopper never ends"),
        }
        let took = start.elapsed();
        assert!(took > 5 * TIMEOUT, "{took:?}");
        assert!(took <= 7 * TIMEOUT, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_finish_is_never_timed_out() {
        let job = prepared();
        job.transition(
            |p| match p {
                Phase::Destination(d) => d
                    .advance(DestinationEvent::FinishStarted { cancelled: false })
                    .map(Phase::Destination),
                other => Ok(other),
            },
            |_| Ok(()),
        )
        .expect("finish started");
        let done = tokio::time::timeout(10 * TIMEOUT, prepare_idle(&job, TIMEOUT)).await;
        assert!(done.is_err(), "finish owns the job: no timeout");
    }
}
