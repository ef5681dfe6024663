//! A throw-away PKI made by the project's `deploy/pki.sh`, in libvirt's
//! file layout, shared by `migrated` and the stock libvirtd.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Certificates in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Runs `ROOT/deploy/pki.sh DIR` into a fresh temporary directory.
    ///
    /// # Errors
    /// When the script is missing or fails (it needs openssl).
    pub fn generate(repo_root: &Path) -> Result<Self> {
        let script = repo_root.join("deploy/pki.sh");
        if !script.exists() {
            bail!("{} not found (pass --repo-root)", script.display());
        }
        let dir = tempfile::Builder::new()
            .prefix("migrated-bench-pki-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let out = Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .output()
            .context("cannot run deploy/pki.sh")?;
        if !out.status.success() {
            bail!(
                "deploy/pki.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self { dir })
    }

    /// The directory itself (libvirtd's TLS files are found under it).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("CA/cacert.pem")
    }

    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("libvirt/servercert.pem")
    }

    /// The server key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("libvirt/private/serverkey.pem")
    }

    /// What a client's `?pkipath=` names.
    pub fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }
}
