//! `virsh save` / `virsh restore`: the migration stream into a file and back.
//!
//! Save pauses the guest, writes a [`SaveHeader`] (domain XML, whether it
//! ran), hands QEMU a descriptor (`getfd`) and runs `migrate fd:`: either the
//! file itself, or a pipe whose other end a blocking task compresses into
//! the file with zstd. Once QEMU reports completion the file is synced and
//! QEMU is stopped with reason "saved". Any failure before that removes the
//! partial file and resumes a guest that was running.
//!
//! Restore reads the header, starts QEMU with `-incoming defer` and feeds
//! the stream back the same way (`migrate-incoming fd:`), then resumes the
//! guest unless it was saved paused or the caller asks for paused.
//!
//! `virsh save-image-dumpxml` reads the header's XML; `save-image-define`
//! replaces it (same name and UUID, same guest ABI, as libvirt's
//! `qemuSaveImageUpdateDef`) and/or the state to restore to. The header has
//! no padding for a longer XML (libvirt's has 64 KiB), so a header of a new
//! length is written with a copy of the stream into a temporary file that
//! then replaces the image: a crash leaves the old image or the new one.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use migrated_core::abi::check_save_replacement;
use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainRef, DomainState,
    LifecycleEvent, StateReason,
};
use migrated_core::flags::{check_flags, save as save_flags};
use migrated_core::xml::{DomainDef, FormatOptions};
use migrated_core::{Error, Result};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::registry::{Domain, StopIntent};
use super::{parse_def, QemuDriver};
use crate::migration;
use crate::qmp::commands::{Cont, Getfd, Migrate, MigrateIncoming, Quit};
use crate::savefile::{self, SaveHeader};

// BYPASS_CACHE is a caching hint, accepted and ignored; RESET_NVRAM has
// nothing to reset without firmware variables.
pub(super) use save_flags::PAUSED as SAVE_PAUSED;
use save_flags::{
    BYPASS_CACHE as SAVE_BYPASS_CACHE, RESET_NVRAM as SAVE_RESET_NVRAM, RUNNING as SAVE_RUNNING,
};

/// How long QEMU may take to exit after `quit` once its state is saved.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);

const SAVE_FD: &str = "migrated-save";
const RESTORE_FD: &str = "migrated-restore";

pub(super) fn check_save_flags(operation: &'static str, flags: u32) -> Result<()> {
    check_flags(
        operation,
        u64::from(flags),
        u64::from(SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED | SAVE_RESET_NVRAM),
    )?;
    save_flags::check_running_paused(operation, flags)
}

fn sys(action: &str, path: &Path, e: std::io::Error) -> Error {
    Error::system(format!("{action} {}", path.display()), e)
}

/// A stream pump between QEMU's pipe end and the image file.
type Pump = JoinHandle<std::io::Result<()>>;

impl QemuDriver {
    /// Saves `dom` to `to` and stops it. A `managed` save (`to` is the
    /// managed save image) marks the domain as having its image while the
    /// job lock is still held, so no start can slip in between and boot the
    /// guest afresh beside it.
    pub(super) async fn save_as(
        &self,
        dom: &DomainRef,
        to: &str,
        dxml: Option<&str>,
        flags: u32,
        managed: bool,
    ) -> Result<()> {
        let op = if managed {
            "virDomainManagedSave"
        } else {
            "virDomainSaveFlags"
        };
        check_save_flags(op, flags)?;
        let dispatcher = if managed {
            "remoteDispatchDomainManagedSave"
        } else {
            "remoteDispatchDomainSaveFlags"
        };
        let job = self.job(dom)?;
        let _job = job.acquire(dispatcher).await?;
        let (runtime, id, live_def, state) = self.read(|r| {
            let d = r.get(dom)?;
            let live = d
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            Ok((
                Arc::clone(&live.runtime),
                live.id,
                live.def.clone(),
                live.state,
            ))
        })?;
        let xml = match dxml {
            Some(xml) => {
                let def = parse_def(xml)?;
                if def.uuid != live_def.uuid || def.name != live_def.name {
                    return Err(Error::InvalidArg {
                        operation: op,
                        reason: "the replacement xml names another domain".into(),
                    });
                }
                xml.to_owned()
            }
            None => live_def.format(&FormatOptions {
                secure: true,
                inactive: false,
                migratable: true,
            }),
        };
        let was_running = state.state == DomainState::Running;
        let header = savefile::header(
            xml,
            self.shared.config.save_zstd,
            save_flags::restore_running(flags, was_running),
        );
        let path = PathBuf::from(to);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| sys("create", &path, e))?;
        header.write_to(&mut file, &path)?;

        let qmp = runtime.qmp.clone();
        let mut events = qmp.events();
        if was_running {
            // See `finish_incoming` for why the state is recorded first.
            if let Err(e) = self
                .shared
                .pause_for(&qmp, &dom.uuid, id, state, paused_reason::SAVE)
                .await
            {
                let _ = std::fs::remove_file(&path);
                return Err(e.into_core(op));
            }
        }
        let outcome = async {
            // A file takes one stream: QEMU fails `fd:` with multifd on,
            // which a failed parallel migration leaves behind (and refuses
            // multifd off while a zero-copy one's `zero-copy-send` is on).
            migration::set_capabilities(
                &qmp,
                &[
                    (migration::CAP_EVENTS, true),
                    (migration::CAP_MULTIFD, false),
                    (migration::CAP_ZERO_COPY_SEND, false),
                ],
            )
            .await
            .map_err(|e| e.into_core(op))?;
            let (fd, pump) = if header.zstd {
                let (read, write) = pipe()?;
                let out = file.try_clone().map_err(|e| sys("open", &path, e))?;
                (write, Some(compress(read, out)))
            } else {
                let fd = file.try_clone().map_err(|e| sys("open", &path, e))?;
                (OwnedFd::from(fd), None)
            };
            let sent = async {
                qmp.execute_with_fd(
                    &Getfd {
                        fdname: SAVE_FD.into(),
                    },
                    fd.as_fd(),
                )
                .await?;
                // QEMU holds its own copy now; ours must close so the pump sees EOF.
                drop(fd);
                qmp.execute(&Migrate {
                    uri: format!("fd:{SAVE_FD}"),
                    resume: false,
                })
                .await?;
                migration::wait_for_completion(&qmp, &mut events).await
            }
            .await;
            let pumped = finish_pump(pump).await;
            let info = sent.map_err(|e| e.into_core(op))?;
            pumped.map_err(|e| sys("compress into", &path, e))?;
            file.sync_all().map_err(|e| sys("sync", &path, e))?;
            Ok::<_, Error>(info)
        }
        .await;
        let info = match outcome {
            Ok(info) => info,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                if was_running {
                    if let Err(resume) = self.shared.unpause(&qmp, &dom.uuid, id).await {
                        warn!(error = %resume.chain(), "cannot resume the guest after a failed save");
                    }
                }
                return Err(e);
            }
        };
        info!(name = %dom.name, path = %path.display(), total_ms = info.total_time.unwrap_or(0), "guest saved");
        if managed {
            self.shared.lock()?.get_mut(dom)?.managed_save = true;
        }
        runtime.set_intent(StopIntent {
            reason: shutoff_reason::SAVED,
            detail: event_detail::STOPPED_SAVED,
        });
        // The connection may close before the reply arrives: not an error.
        let _ = qmp.execute(&Quit).await;
        if tokio::time::timeout(QUIT_TIMEOUT, runtime.process.wait())
            .await
            .is_err()
        {
            runtime.process.kill().await.map_err(|e| e.into_core(op))?;
        }
        self.shared.finish_stop(&dom.uuid, id);
        Ok(())
    }

    pub(super) async fn restore_impl(
        &self,
        from: &str,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        const OP: &str = "virDomainRestoreFlags";
        check_save_flags(OP, flags)?;
        let path = PathBuf::from(from);
        let (file, header, def) = open_image(&path, dxml, OP)?;
        let dom = {
            let mut reg = self.shared.lock()?;
            match reg.domains.get(&def.uuid) {
                Some(d) if d.live.is_some() => {
                    return Err(Error::invalid(format!(
                        "domain '{}' is already active",
                        d.config.name
                    )))
                }
                Some(d) if d.config.name != def.name => {
                    return Err(Error::DomainExists {
                        name: d.config.name.clone(),
                        reason: format!("is already defined with uuid {}", def.uuid),
                    })
                }
                Some(d) => d.dom_ref(),
                None => {
                    reg.check_duplicates(&def)?;
                    let d = Domain {
                        config: def.clone(),
                        persistent: false,
                        autostart: false,
                        shutoff_reason: shutoff_reason::UNKNOWN,
                        managed_save: false,
                        live: None,
                        job: Arc::default(),
                    };
                    let r = d.dom_ref();
                    reg.domains.insert(def.uuid, d);
                    r
                }
            }
        };
        let job = self.job(&dom)?;
        let _job = job.acquire("remoteDispatchDomainRestoreFlags").await?;
        self.restore_locked(&dom, def, (file, header), &path, flags)
            .await
    }

    /// Starts `dom` from the image `file` (its `header` read) with the
    /// definition `def`; the caller holds the domain's job lock. A guest
    /// that cannot be restored is stopped (a transient one disappears).
    pub(super) async fn restore_locked(
        &self,
        dom: &DomainRef,
        def: DomainDef,
        (file, header): (File, SaveHeader),
        path: &Path,
        flags: u32,
    ) -> Result<()> {
        const OP: &str = "virDomainRestoreFlags";
        let started = self
            .start_locked(dom, super::StartMode::Restore, Some(def))
            .await;
        let dom = match started {
            Ok(dom) => dom,
            Err(e) => {
                self.remove_if_transient_and_off(dom);
                return Err(e);
            }
        };
        let (runtime, id) = self.read(|r| {
            let live = r
                .get(&dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::internal("restored guest vanished"))?;
            Ok((Arc::clone(&live.runtime), live.id))
        })?;
        let qmp = runtime.qmp.clone();
        let mut events = qmp.events();
        let outcome = async {
            migration::enable_events(&qmp)
                .await
                .map_err(|e| e.into_core(OP))?;
            let (fd, pump) = if header.zstd {
                let (read, write) = pipe()?;
                (read, Some(decompress(file, write)))
            } else {
                (OwnedFd::from(file), None)
            };
            let result = async {
                qmp.execute_with_fd(
                    &Getfd {
                        fdname: RESTORE_FD.into(),
                    },
                    fd.as_fd(),
                )
                .await?;
                drop(fd);
                qmp.execute(&MigrateIncoming {
                    uri: format!("fd:{RESTORE_FD}"),
                })
                .await?;
                migration::wait_for_completion(&qmp, &mut events).await
            }
            .await;
            if let Err(e) = finish_pump(pump).await {
                // QEMU stops reading at the end of its stream; a pump that
                // failed after a completed restore lost nothing.
                if result.is_err() {
                    warn!(error = %e, "restore stream pump failed");
                }
            }
            result.map_err(|e| e.into_core(OP))
        }
        .await;
        if let Err(e) = outcome {
            runtime.set_intent(StopIntent {
                reason: shutoff_reason::FAILED,
                detail: event_detail::STOPPED_DESTROYED,
            });
            let _ = runtime.process.kill().await;
            self.shared.finish_stop(&dom.uuid, id);
            self.remove_if_transient_and_off(&dom);
            return Err(e);
        }
        let run = save_flags::restore_running(flags, header.running);
        // As libvirt's qemuSaveImageStartVM: the guest is announced as
        // started before its vCPUs run (QEMU's RESUME, reported as it
        // comes, must follow).
        self.shared.emit(
            dom.clone(),
            LifecycleEvent::Started,
            event_detail::STARTED_RESTORED,
        );
        let state = if run {
            qmp.execute(&Cont).await.map_err(|e| e.into_core(OP))?;
            let running = StateReason {
                state: DomainState::Running,
                reason: running_reason::RESTORED,
            };
            // The event task reports QEMU's RESUME as it comes: whichever
            // of it and this sees the change first announces it, once.
            self.shared.set_state(
                &dom.uuid,
                id,
                running,
                Some((LifecycleEvent::Resumed, event_detail::RESUMED_UNPAUSED)),
            );
            running
        } else {
            StateReason {
                state: DomainState::Paused,
                reason: paused_reason::USER,
            }
        };
        self.shared.force_state(&dom.uuid, id, state);
        if !run {
            self.shared.emit(
                dom.clone(),
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_PAUSED,
            );
        }
        info!(name = %dom.name, path = %path.display(), running = run, "guest restored");
        Ok(())
    }
}

/// Opens a save image: its header, and the definition to restore (the
/// image's, or `dxml` when it names the same domain).
pub(super) fn open_image(
    path: &Path,
    dxml: Option<&str>,
    op: &'static str,
) -> Result<(File, SaveHeader, DomainDef)> {
    let mut file = File::open(path).map_err(|e| open_failed(path, e))?;
    let header = savefile::read_header(&mut file, path, op)?;
    let saved = parse_def(&header.xml)?;
    let def = match dxml {
        Some(xml) => replacement_def(&saved, xml, op)?,
        None => saved,
    };
    Ok((file, header, def))
}

/// libvirt's `qemuDomainOpenFile` error: "Failed to open file '…'".
fn open_failed(path: &Path, e: std::io::Error) -> Error {
    Error::system(format!("Failed to open file '{}'", path.display()), e)
}

/// The definition `xml` gives a guest saved as `saved`: the same domain
/// (name and UUID) with the same guest ABI, as libvirt's
/// `qemuSaveImageUpdateDef` (the image's device state must fit it).
fn replacement_def(saved: &DomainDef, xml: &str, op: &'static str) -> Result<DomainDef> {
    let def = parse_def(xml)?;
    check_save_replacement(saved, &def, op)?;
    Ok(def)
}

/// The stored XML of the image at `path`, as `virDomainSaveImageGetXMLDesc`
/// formats it: secrets only with `VIR_DOMAIN_SAVE_IMAGE_XML_SECURE`.
pub(super) fn image_xml(path: &Path, flags: u32, op: &'static str) -> Result<String> {
    check_flags(
        op,
        u64::from(flags),
        u64::from(save_flags::IMAGE_XML_SECURE),
    )?;
    let (_, _, def) = open_image(path, None, op)?;
    Ok(def.format(&FormatOptions {
        secure: flags & save_flags::IMAGE_XML_SECURE != 0,
        inactive: false,
        migratable: true,
    }))
}

/// Rewrites the header of the image at `path`: the XML replaced by `dxml`
/// (see [`replacement_def`]) and/or the state to restore to changed by
/// `VIR_DOMAIN_SAVE_RUNNING` / `PAUSED`. Nothing to change is a success
/// that leaves the file alone, as libvirt's `qemuDomainSaveImageDefineXML`.
pub(super) fn define_image_xml(
    path: &Path,
    dxml: Option<&str>,
    flags: u32,
    op: &'static str,
) -> Result<()> {
    check_flags(op, u64::from(flags), u64::from(SAVE_RUNNING | SAVE_PAUSED))?;
    save_flags::check_running_paused(op, flags)?;
    let (mut file, old, saved) = open_image(path, None, op)?;
    let running = save_flags::restore_running(flags, old.running);
    let xml = match dxml {
        Some(xml) if xml != old.xml => replacement_def(&saved, xml, op)?.format(&FormatOptions {
            secure: true,
            inactive: false,
            migratable: true,
        }),
        _ => old.xml.clone(),
    };
    if xml == old.xml && running == old.running {
        return Ok(());
    }
    let new = savefile::header(xml, old.zstd, running);
    if new.encoded_len() == old.encoded_len() {
        // Same layout: only the header's bytes change, in place.
        let mut out = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| open_failed(path, e))?;
        new.write_to(&mut out, path)?;
        return out.sync_all().map_err(|e| sys("sync", path, e));
    }
    // `file` is positioned at the start of the stream (after the old header).
    let tmp = temp_path(path);
    let written = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| sys("create", &tmp, e))?;
        new.write_to(&mut out, &tmp)?;
        std::io::copy(&mut file, &mut out).map_err(|e| sys("copy into", &tmp, e))?;
        out.sync_all().map_err(|e| sys("sync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| sys("replace", path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable once the directory is.
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A sibling of `path` to build its replacement in (same file system, so
/// the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".migrated-define-{}", std::process::id()));
    path.with_file_name(name)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::system("create pipe", e.into()))
}

fn compress(from_qemu: OwnedFd, into: File) -> Pump {
    tokio::task::spawn_blocking(move || {
        let mut encoder = zstd::stream::Encoder::new(into, 3)?;
        std::io::copy(&mut File::from(from_qemu), &mut encoder)?;
        encoder.finish()?;
        Ok(())
    })
}

fn decompress(from: File, to_qemu: OwnedFd) -> Pump {
    tokio::task::spawn_blocking(move || zstd::stream::copy_decode(from, File::from(to_qemu)))
}

async fn finish_pump(pump: Option<Pump>) -> std::io::Result<()> {
    match pump {
        None => Ok(()),
        Some(task) => task.await.unwrap_or_else(|e| {
            Err(std::io::Error::other(format!(
                "stream pump task failed: {e}"
            )))
        }),
    }
}

#[cfg(test)]
mod tests {
    use migrated_core::error::ErrorCode;

    use super::*;

    const UUID: &str = "6f1c0b2e-3d4a-4c5b-9e8f-0a1b2c3d4e5f";
    const STREAM: &[u8] = b"QEMU migration stream";

    fn domain(name: &str, uuid: &str, memory_kib: u32, extra: &str) -> String {
        format!(
            "<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>{extra}\
             <memory unit='KiB'>{memory_kib}</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64'>hvm</type></os></domain>"
        )
    }

    /// An image holding `xml`, saved running, followed by [`STREAM`].
    fn image(dir: &Path, xml: &str) -> PathBuf {
        let path = dir.join("guest.img");
        let mut file = File::create(&path).expect("create");
        savefile::header(xml.to_owned(), true, true)
            .write_to(&mut file, &path)
            .expect("header");
        std::io::Write::write_all(&mut file, STREAM).expect("stream");
        path
    }

    fn read_back(path: &Path) -> (SaveHeader, Vec<u8>) {
        let mut file = File::open(path).expect("open");
        let header = savefile::read_header(&mut file, path, "test").expect("header");
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut rest).expect("stream");
        (header, rest)
    }

    #[test]
    fn define_rewrites_state_in_place_and_a_new_xml_around_the_same_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = image(dir.path(), &domain("g", UUID, 65536, ""));
        const OP: &str = "virDomainSaveImageDefineXML";

        define_image_xml(&path, None, SAVE_PAUSED, OP).expect("paused");
        let (header, stream) = read_back(&path);
        assert!(!header.running);
        assert!(header.zstd);
        assert_eq!(stream, STREAM);

        let edited = domain("g", UUID, 65536, "<description>moved</description>");
        define_image_xml(&path, Some(&edited), SAVE_RUNNING, OP).expect("new xml");
        let (header, stream) = read_back(&path);
        assert!(header.running);
        assert!(header.xml.contains("<description>moved</description>"));
        assert_eq!(stream, STREAM);
        let xml = image_xml(&path, 0, "virDomainSaveImageGetXMLDesc").expect("xml");
        assert!(xml.contains("<description>moved</description>"), "{xml}");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn define_refuses_another_guest_and_leaves_the_image_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = image(dir.path(), &domain("g", UUID, 65536, ""));
        let before = std::fs::read(&path).expect("read");
        const OP: &str = "virDomainSaveImageDefineXML";
        let cases = [
            (domain("g", UUID, 131072, ""), ErrorCode::ConfigUnsupported),
            (domain("h", UUID, 65536, ""), ErrorCode::InvalidArg),
            (
                domain("g", "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", 65536, ""),
                ErrorCode::InvalidArg,
            ),
        ];
        for (xml, code) in cases {
            let err = define_image_xml(&path, Some(&xml), 0, OP).expect_err("refused");
            assert_eq!(err.code(), code, "{err}");
        }
        let err = define_image_xml(&path, None, SAVE_RUNNING | SAVE_PAUSED, OP)
            .expect_err("exclusive flags");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
        assert_eq!(std::fs::read(&path).expect("read"), before);

        let missing = dir.path().join("missing.img");
        let err = image_xml(&missing, 0, OP).expect_err("missing");
        assert_eq!(err.code(), ErrorCode::SystemError);
        assert!(err.to_string().contains("Failed to open file"), "{err}");
    }
}
