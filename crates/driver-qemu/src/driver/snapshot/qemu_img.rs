//! The images of a shut-off guest: internal snapshots with `qemu-img
//! snapshot` on each qcow2 image (libvirt's `qemuDomainSnapshotForEachQcow2`),
//! external ones with `qemu-img create -b`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use migrated_core::{Error, Result};

/// How long one `qemu-img snapshot` may take (it only edits the image's
/// snapshot table, but a large L1 table takes a moment to copy).
const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(120);

/// What to do to the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// `-c`: take the snapshot.
    Create,
    /// `-a`: apply it (the images go back to it).
    Apply,
    /// `-d`: delete it.
    Delete,
}

impl Op {
    fn flag(self) -> &'static str {
        match self {
            Op::Create => "-c",
            Op::Apply => "-a",
            Op::Delete => "-d",
        }
    }
}

/// Runs `qemu-img snapshot <op> <tag> <image>`.
///
/// # Errors
/// As [`qemu_img`].
pub(super) async fn run(op: Op, tag: &str, image: &Path) -> Result<()> {
    let args = [
        OsStr::new("snapshot"),
        OsStr::new(op.flag()),
        OsStr::new(tag),
        image.as_os_str(),
    ];
    qemu_img(&args).await
}

/// Creates the qcow2 `overlay` on top of `base` (whose format is
/// `base_format`): `qemu-img create -f qcow2 -F <fmt> -b <base> <overlay>`,
/// as libvirt creates the files of an external snapshot of a shut-off guest.
///
/// # Errors
/// As [`qemu_img`].
pub(super) async fn create_overlay(overlay: &Path, base: &Path, base_format: &str) -> Result<()> {
    let args = [
        OsStr::new("create"),
        OsStr::new("-q"),
        OsStr::new("-f"),
        OsStr::new("qcow2"),
        OsStr::new("-F"),
        OsStr::new(base_format),
        OsStr::new("-b"),
        base.as_os_str(),
        overlay.as_os_str(),
    ];
    qemu_img(&args).await
}

/// Runs `qemu-img <args>`.
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` with libvirt's "Child process (…) unexpected
/// exit status" wording and qemu-img's message; a system error when it
/// cannot run.
async fn qemu_img(args: &[&OsStr]) -> Result<()> {
    let mut cmd = tokio::process::Command::new("qemu-img");
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let shown = std::iter::once(OsStr::new("qemu-img"))
        .chain(args.iter().copied())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = tokio::time::timeout(QEMU_IMG_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            Error::internal(format!(
                "Child process ({shown}) did not finish within {} s",
                QEMU_IMG_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| Error::system("cannot run qemu-img", e))?;
    if out.status.success() {
        return Ok(());
    }
    let code = out
        .status
        .code()
        .map_or_else(|| "(killed)".to_owned(), |c| c.to_string());
    Err(Error::internal(format!(
        "Child process ({shown}) unexpected exit status {code}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Applies `op` to every image; on a failed `Create`, the snapshots already
/// taken are deleted again so no image keeps half a snapshot (libvirt's
/// rollback). `Delete` tries every image and reports the first failure.
///
/// # Errors
/// As [`run`].
pub(super) async fn each(op: Op, tag: &str, images: &[PathBuf]) -> Result<()> {
    let mut first_error = None;
    for (i, image) in images.iter().enumerate() {
        let Err(e) = run(op, tag, image).await else {
            continue;
        };
        match op {
            Op::Create => {
                for done in &images[..i] {
                    if let Err(undo) = run(Op::Delete, tag, done).await {
                        tracing::warn!(error = %undo, "cannot roll back a partial snapshot");
                    }
                }
                return Err(e);
            }
            Op::Apply => return Err(e),
            Op::Delete => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img_present() -> bool {
        std::process::Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn image(dir: &Path, name: &str, format: &str) -> PathBuf {
        let path = dir.join(name);
        let ok = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", format])
            .arg(&path)
            .arg("1M")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "qemu-img create {format}");
        path
    }

    fn tags(path: &Path) -> String {
        let out = std::process::Command::new("qemu-img")
            .args(["snapshot", "-l"])
            .arg(path)
            .output()
            .expect("qemu-img snapshot -l");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[tokio::test]
    async fn create_apply_delete_and_roll_back() {
        if !qemu_img_present() {
            eprintln!("SKIPPED: qemu-img is not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let a = image(dir.path(), "a.qcow2", "qcow2");
        let b = image(dir.path(), "b.qcow2", "qcow2");
        each(Op::Create, "s1", &[a.clone(), b.clone()])
            .await
            .expect("create");
        assert!(tags(&a).contains("s1") && tags(&b).contains("s1"));
        each(Op::Apply, "s1", std::slice::from_ref(&a))
            .await
            .expect("apply");
        let e = each(Op::Apply, "nope", std::slice::from_ref(&a))
            .await
            .expect_err("unknown tag");
        assert!(e.to_string().contains("unexpected exit status"), "{e}");
        each(Op::Delete, "s1", &[a.clone(), b.clone()])
            .await
            .expect("delete");
        assert!(!tags(&a).contains("s1"));

        // A raw image in the list: the qcow2 one keeps no half snapshot.
        let raw = image(dir.path(), "c.raw", "raw");
        assert!(each(Op::Create, "s2", &[a.clone(), raw]).await.is_err());
        assert!(!tags(&a).contains("s2"), "{}", tags(&a));
    }
}
