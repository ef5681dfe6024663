//! The migration sequencer: the five steps of libvirt's v3 protocol (and the
//! v2 fallback), written once over two [`Endpoint`]s.
//!
//! A client-managed migration (`virsh migrate`, [`Domain::migrate`](crate::Domain::migrate))
//! runs [`migrate`] over two remote endpoints; a peer-to-peer source daemon
//! runs the same function with its local endpoint as the source. It mirrors
//! `virDomainMigrateVersion3Full` in libvirt's `src/libvirt-domain.c`
//! (libvirt-wire.md §8.2, §8.3, §8.5, §8.6):
//!
//! ```text
//! features   12/12 (OFFLINE) · 7 (CHANGE_PROTECTION) · 13/13 → v3-params · 6/6 → v3 · 3/3 → v2
//! source     Begin3 ──▶ GetState ─────────────────────▶ Perform3 ─────────────────▶ Confirm3
//! dest                           Prepare3 / PrepareTunnel3              Finish3
//! ```
//!
//! # Failure rule
//!
//! After a failure only the steps in its row are still sent
//! ([`cleanup_after`], one `match`):
//!
//! | failure point | Finish sent? | cancelled in Finish | Confirm sent? | cancelled in Confirm |
//! |---|---|---|---|---|
//! | Begin fails | no | — | no | — |
//! | Prepare fails, CHANGE_PROTECTION in use | no | — | yes | 1 |
//! | Prepare fails, no protection | no | — | no | — |
//! | Prepare OK but no URI anywhere (OFFLINE too, as in libvirt) | yes | 1 | yes | 1 |
//! | Perform fails | yes | 1 | **no** | — |
//! | Perform OK, Finish fails / returns nothing | yes | 0 | yes | 1 (source resumes) |
//! | all OK | yes | 0 | yes | 0 (source stops/undefines as flagged) |
//!
//! Error reporting: the first error (Begin, Prepare, Perform) is what the
//! caller sees; Finish's error replaces Perform's only when Perform's was
//! `VIR_ERR_OPERATION_FAILED` from `VIR_FROM_QEMU` and Finish's is from
//! `VIR_FROM_QEMU` with a code other than `VIR_ERR_MIGRATE_FINISH_OK`.
//! Confirm's error is only logged.

use std::future::Future;
use std::time::{Duration, Instant};

use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::error::{ErrorCode, ErrorDomain};
use migrated_core::flags::MigrateFlags;
use migrated_core::migration::MigrateRequest;
use tracing::{info, warn};

use crate::endpoint::{legacy_expressible, DataTarget, Endpoint, Protocol};
use crate::error::{Error, Result};

/// `VIR_DRV_FEATURE_*` numbers the sequencer asks about.
pub mod feature {
    /// Prepare/Perform/Finish (v1).
    pub const MIGRATION_V1: i32 = 1;
    /// Prepare2/Perform/Finish2.
    pub const MIGRATION_V2: i32 = 3;
    /// The source can drive the destination itself.
    pub const MIGRATION_P2P: i32 = 4;
    /// Begin3 … Confirm3.
    pub const MIGRATION_V3: i32 = 6;
    /// CHANGE_PROTECTION for the whole v3 sequence.
    pub const MIGRATE_CHANGE_PROTECTION: i32 = 7;
    /// Offline migration.
    pub const MIGRATION_OFFLINE: i32 = 12;
    /// The *_PARAMS migration procedures.
    pub const MIGRATION_PARAMS: i32 = 13;
}

/// How long one step took, as seen by whoever drives the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTiming {
    /// `begin`, `prepare`, `perform`, `finish` or `confirm`.
    pub step: &'static str,
    /// Wall time of the step's call.
    pub duration: Duration,
}

/// The steps of one run of [`migrate_timed`], in the order they were sent.
pub type Timeline = Vec<StepTiming>;

async fn timed<T>(timeline: &mut Timeline, step: &'static str, f: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    timeline.push(StepTiming {
        step,
        duration: start.elapsed(),
    });
    out
}

/// Where a migration failed, in sequence order ([`cleanup_after`]'s input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePoint {
    /// Begin (or the feature negotiation before it).
    Begin,
    /// Prepare (or GetState between Begin and Prepare).
    Prepare,
    /// Prepare succeeded, but neither it nor the caller named a data URI.
    NoUri,
    /// Perform.
    Perform,
    /// Finish failed or returned no domain.
    Finish,
    /// Nothing failed.
    None,
}

/// What is still sent after a [`FailurePoint`]: `Some(cancelled)` for a step
/// that is sent, `None` for one that is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleanup {
    /// Finish, and its `cancelled` argument.
    pub finish: Option<bool>,
    /// Confirm, and its `cancelled` argument.
    pub confirm: Option<bool>,
}

/// The failure rule of the module doc's table, as one `match`.
pub const fn cleanup_after(point: FailurePoint, protected: bool) -> Cleanup {
    let (finish, confirm) = match (point, protected) {
        (FailurePoint::Begin, _) => (None, None),
        (FailurePoint::Prepare, true) => (None, Some(true)),
        (FailurePoint::Prepare, false) => (None, None),
        (FailurePoint::NoUri, _) => (Some(true), Some(true)),
        (FailurePoint::Perform, _) => (Some(true), None),
        (FailurePoint::Finish, _) => (Some(false), Some(true)),
        (FailurePoint::None, _) => (Some(false), Some(false)),
    };
    Cleanup { finish, confirm }
}

/// What one endpoint answered to the feature queries of [`negotiate`].
#[derive(Debug, Clone, Copy)]
struct Features {
    offline: bool,
    protection: bool,
    params: bool,
    v3: bool,
    v2: bool,
}

/// Asks `ep` every feature [`negotiate`] may need, all at once: the answers
/// do not depend on each other, so one round trip's wait replaces five.
async fn features(ep: &dyn Endpoint, offline: bool) -> Result<Features> {
    let ask = |f: i32| ep.supports_feature(f);
    let (off, protection, params, v3, v2) = tokio::join!(
        async {
            if offline {
                ask(feature::MIGRATION_OFFLINE).await
            } else {
                Ok(true)
            }
        },
        ask(feature::MIGRATE_CHANGE_PROTECTION),
        ask(feature::MIGRATION_PARAMS),
        ask(feature::MIGRATION_V3),
        ask(feature::MIGRATION_V2),
    );
    Ok(Features {
        offline: off?,
        protection: protection?,
        params: params?,
        v3: v3?,
        v2: v2?,
    })
}

/// The protocol both endpoints speak and whether CHANGE_PROTECTION is used,
/// decided in virDomainMigrate3's order (libvirt-wire.md §6). The feature
/// queries to both endpoints are sent concurrently; the decision (and which
/// error wins) is the same as asking them one by one.
///
/// # Errors
/// `VIR_ERR_ARGUMENT_UNSUPPORTED` when OFFLINE or CHANGE_PROTECTION is asked
/// for and a side lacks it; `VIR_ERR_NO_SUPPORT` when the sides share no
/// protocol; any feature query's own error.
pub async fn negotiate(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    req: &MigrateRequest,
) -> Result<(Protocol, bool)> {
    let offline = req.is_offline();
    let (s, d) = tokio::join!(features(src, offline), features(dst, offline));
    let (s, d) = (s?, d?);
    for (side, f) in [("source", &s), ("destination", &d)] {
        if !f.offline {
            return Err(unsupported(format!("offline migration on the {side} host")));
        }
    }
    if req.has(MigrateFlags::CHANGE_PROTECTION) && !s.protection {
        return Err(unsupported(
            "change protection on the source host".to_owned(),
        ));
    }
    let proto = if s.params && d.params {
        Protocol::V3Params
    } else if s.v3 && d.v3 {
        Protocol::V3
    } else if s.v2 && d.v2 {
        Protocol::V2
    } else {
        return Err(migrated_core::Error::NoSupport {
            operation: "virDomainMigrate3",
            driver: "remote",
        }
        .into());
    };
    let protected = proto >= Protocol::V3 && s.protection;
    Ok((proto, protected))
}

fn unsupported(what: String) -> Error {
    migrated_core::Error::ArgumentUnsupported {
        what,
        driver: "remote",
    }
    .into()
}

/// Whether Finish's error replaces Perform's (libvirt-wire.md §8.6).
fn finish_error_wins(perform: &Error, finish: &Error) -> bool {
    let qemu = ErrorDomain::Qemu as i32;
    matches!(perform.libvirt_code(), Some((c, d)) if c == ErrorCode::OperationFailed as i32 && d == qemu)
        && matches!(finish.libvirt_code(), Some((c, d)) if d == qemu && c != ErrorCode::MigrateFinishOk as i32)
}

/// Migrates `dom` from `src` to `dst` and answers the guest on `dst`.
///
/// `req` holds the caller's flags and parameters; CHANGE_PROTECTION is added
/// (or dropped) according to the source's feature 7, PAUSED when the guest is
/// paused, and the destination gets the flags without ABORT_ON_ERROR and
/// AUTO_CONVERGE. See the module doc for the failure rule.
///
/// # Errors
/// The first failing step's error (see the module doc for precedence);
/// `VIR_ERR_ARGUMENT_UNSUPPORTED` for parameters the negotiated protocol
/// cannot carry; `VIR_ERR_INTERNAL_ERROR` when Prepare named no data URI.
pub async fn migrate(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    dom: &DomainRef,
    req: MigrateRequest,
) -> Result<DomainRef> {
    migrate_timed(src, dst, dom, req, &mut Timeline::new()).await
}

/// [`migrate`], recording each step's duration in `timeline`.
///
/// # Errors
/// As [`migrate`].
#[tracing::instrument(skip_all, fields(dom = %dom.name, src = %src.describe(), dst = %dst.describe()))]
pub async fn migrate_timed(
    src: &dyn Endpoint,
    dst: &dyn Endpoint,
    dom: &DomainRef,
    mut req: MigrateRequest,
    timeline: &mut Timeline,
) -> Result<DomainRef> {
    let (proto, protected) = negotiate(src, dst, &req).await?;
    if proto < Protocol::V3Params {
        legacy_expressible(&req)?;
    }
    req.flags = req.flags.difference(MigrateFlags::CHANGE_PROTECTION);
    let prot = if protected {
        MigrateFlags::CHANGE_PROTECTION
    } else {
        MigrateFlags::empty()
    };
    let tunnelled = req.is_tunnelled();
    let offline = req.is_offline();
    let mut src_req = req.clone();
    src_req.flags |= prot;

    // 1. Begin
    let begin = timed(timeline, "begin", src.begin3(proto, dom, &src_req)).await?;

    // 2. GetState, 3. Prepare
    let mut dst_req = req.clone();
    let prepare_start = Instant::now();
    let prepared = async {
        // A post-copy source being recovered is paused by the failure, not
        // by the user: the guest runs on the destination.
        if !req.has(MigrateFlags::POSTCOPY_RESUME)
            && src.get_state(proto, dom).await? == DomainState::Paused
        {
            src_req.flags |= MigrateFlags::PAUSED;
            req.flags |= MigrateFlags::PAUSED;
        }
        dst_req.flags = req.destination_flags();
        dst_req.dest_xml = Some(begin.xml.clone());
        if tunnelled {
            let (cookie, sink) = dst.prepare_tunnel3(proto, &dst_req, &begin.cookie).await?;
            Ok::<_, Error>((cookie, None, Some(sink)))
        } else {
            let out = dst.prepare3(proto, &dst_req, &begin.cookie).await?;
            Ok((out.cookie, out.uri_out, None))
        }
    }
    .await;
    timeline.push(StepTiming {
        step: "prepare",
        duration: prepare_start.elapsed(),
    });
    let (prepare_cookie, uri_out, sink) = match prepared {
        Ok(p) => p,
        Err(err) => {
            let rule = cleanup_after(FailurePoint::Prepare, protected);
            if let Some(cancelled) = rule.confirm {
                let c = confirm(src, proto, dom, &src_req, &begin.cookie, cancelled);
                timed(timeline, "confirm", c).await;
            }
            return Err(err);
        }
    };

    // The data URI: Prepare's answer replaces the caller's.
    let mut failure = FailurePoint::None;
    let mut first_error: Option<Error> = None;
    if let Some(uri) = uri_out {
        src_req.uri = Some(uri.clone());
        dst_req.uri = Some(uri);
    } else if !tunnelled && req.uri.is_none() {
        failure = FailurePoint::NoUri;
        first_error =
            Some(migrated_core::Error::internal("domainMigratePrepare3 did not set uri").into());
    }

    // 4. Perform (skipped offline and after a failure)
    let mut finish_cookie = prepare_cookie.clone();
    if failure == FailurePoint::None && !offline {
        let target = match sink {
            Some(sink) => DataTarget::Tunnel(sink),
            None => DataTarget::Direct,
        };
        let perform = src.perform3(proto, dom, &src_req, &prepare_cookie, target);
        match timed(timeline, "perform", perform).await {
            Ok(cookie) => finish_cookie = cookie,
            Err(err) => {
                warn!(error = %err, "perform failed");
                failure = FailurePoint::Perform;
                first_error = Some(err);
            }
        }
    } else if let Some(sink) = sink {
        if let Err(err) = sink.abort().await {
            warn!(error = %err, "aborting the unused tunnel failed");
        }
    }

    // 5. Finish
    let dname = req.dname.clone().unwrap_or_else(|| dom.name.clone());
    let mut result: Result<DomainRef> = match first_error.take() {
        Some(err) => Err(err),
        None => Err(migrated_core::Error::internal("finish was not sent").into()),
    };
    let mut confirm_cookie = Vec::new();
    if let Some(cancelled) = cleanup_after(failure, protected).finish {
        let finish = dst.finish3(proto, &dname, &dst_req, &finish_cookie, cancelled);
        match timed(timeline, "finish", finish).await {
            Ok(out) if cancelled => {
                warn!(ddom = %out.dom.name, "finish step ignored that migration was cancelled");
            }
            Ok(out) => {
                confirm_cookie = out.cookie;
                result = Ok(out.dom);
            }
            Err(err) => {
                if failure == FailurePoint::None {
                    failure = FailurePoint::Finish;
                    result = Err(err);
                } else if let Err(first) = &result {
                    if finish_error_wins(first, &err) {
                        result = Err(err);
                    }
                }
            }
        }
    }

    // 6. Confirm
    if let Some(cancelled) = cleanup_after(failure, protected).confirm {
        let c = confirm(src, proto, dom, &src_req, &confirm_cookie, cancelled);
        timed(timeline, "confirm", c).await;
    }
    if let Ok(ddom) = &result {
        info!(ddom = %ddom.name, ?proto, "migration completed");
    }
    result
}

/// Confirm, whose error is only logged (the migration's outcome is decided).
async fn confirm(
    src: &dyn Endpoint,
    proto: Protocol,
    dom: &DomainRef,
    req: &MigrateRequest,
    cookie: &[u8],
    cancelled: bool,
) {
    if let Err(err) = src.confirm3(proto, dom, req, cookie, cancelled).await {
        warn!(error = %err, cancelled, "confirm failed: guest {} probably left in 'paused' state on source", dom.name);
    }
}

#[cfg(test)]
mod tests;
