//! DOMAIN_CORE_DUMP (53), DOMAIN_CORE_DUMP_WITH_FORMAT (334) (`virsh dump`)
//! and DOMAIN_SCREENSHOT (211, `virsh screenshot`).
//!
//! The dump calls check what libvirt's public API checks before a driver
//! runs (the exclusive flag pairs, the format number), then hand the file
//! to the driver; the driver reports its progress as a job that GET_JOB_INFO
//! shows (see [`super::migration_jobs`]).
//!
//! A screenshot is a download stream, as libvirtd serves it:
//!
//! ```text
//! reply (MIME type) ──▶ STREAM CONTINUE … the image ──▶ empty CONTINUE (end)
//! client's STREAM OK ──▶ STREAM OK;  client's STREAM ERROR ──▶ acknowledged
//! ```

use bytes::Bytes;
use migrated_core::flags::dump::{self, Format};
use migrated_proto::{
    DomainCoreDumpArgs, DomainCoreDumpWithFormatArgs, DomainScreenshotArgs, DomainScreenshotRet,
};
use migrated_rpc::stream::StreamEvent;
use migrated_rpc::{CallContext, ServerStream, WireError};

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

const DUMP_API: &str = "virDomainCoreDumpWithFormat";

/// DOMAIN_CORE_DUMP: a dump in the ELF (raw) format.
///
/// # Errors
/// As [`core_dump_with_format`].
pub async fn core_dump(session: &Session, args: DomainCoreDumpArgs) -> Result<()> {
    run(
        session,
        &args.dom,
        &args.to,
        0,
        args.flags,
        "virDomainCoreDump",
    )
    .await
}

/// DOMAIN_CORE_DUMP_WITH_FORMAT.
///
/// # Errors
/// `VIR_ERR_INVALID_ARG` for an exclusive flag pair or an unknown format
/// number; the driver's errors (NO_DOMAIN, "domain is not running", a file
/// that cannot be written, a format QEMU lacks, the job-lock error while
/// another job runs, an aborted dump).
pub async fn core_dump_with_format(
    session: &Session,
    args: DomainCoreDumpWithFormatArgs,
) -> Result<()> {
    run(
        session,
        &args.dom,
        &args.to,
        args.dumpformat,
        args.flags,
        DUMP_API,
    )
    .await
}

async fn run(
    session: &Session,
    dom: &migrated_proto::NonnullDomain,
    to: &str,
    format: u32,
    flags: u32,
    api: &'static str,
) -> Result<()> {
    dump::check_exclusive(api, flags).map_err(|e| to_wire_error(&e))?;
    let format = Format::from_wire(api, format).map_err(|e| to_wire_error(&e))?;
    session
        .driver()?
        .driver
        .core_dump(&from_wire_dom(dom), to, format, flags)
        .await
        .map_err(|e| to_wire_error(&e))
}

/// DOMAIN_SCREENSHOT: the driver's image of the screen, sent on the call's
/// stream after the reply naming its MIME type.
///
/// # Errors
/// The driver's: NO_DOMAIN, "domain is not running", "no screens to take
/// screenshot from", "no such screen ID", unknown flags.
pub async fn screenshot(
    session: &Session,
    ctx: &CallContext,
    args: DomainScreenshotArgs,
) -> Result<DomainScreenshotRet> {
    let shot = session
        .driver()?
        .driver
        .screenshot(&from_wire_dom(&args.dom), args.screen, args.flags)
        .await
        .map_err(|e| to_wire_error(&e))?;
    tokio::spawn(send(ctx.open_stream(), Bytes::from(shot.data)));
    Ok(DomainScreenshotRet {
        mime: Some(shot.mime),
    })
}

/// Sends `image`, the end of data, and answers the client's end of the
/// stream.
async fn send(mut stream: ServerStream, image: Bytes) {
    let outcome = async {
        stream.send_data(image).await?;
        stream.send_eof().await?;
        // Bounded: the client sends one final packet (or goes away).
        loop {
            match stream.recv().await {
                Some(StreamEvent::Finish | StreamEvent::Abort(_)) => {
                    return stream.finish_ok().await
                }
                // A download takes no data; anything sent is dropped.
                Some(StreamEvent::Data(_)) => {}
                None => return Ok(()),
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        tracing::debug!(error = %e, "screenshot stream ended with an error");
    }
}
