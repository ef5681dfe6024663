//! Managed save (`virsh managedsave`): `virsh save` into a file the driver
//! owns, `<state_dir>/qemu/save/<name>.save` as libvirt's
//! `qemuDomainManagedSavePath`, restored by the next start.
//!
//! As libvirt's QEMU driver: only a running persistent guest can be saved
//! this way; start restores the image and removes it once the guest runs
//! (`VIR_DOMAIN_START_FORCE_BOOT` removes it and boots afresh); a failed
//! restore keeps the image and fails the start; undefine refuses while an
//! image exists unless `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE` removes it.

use std::path::{Path, PathBuf};

use migrated_core::domain::DomainRef;
use migrated_core::flags::{self, check_flags};
use migrated_core::{Error, Result};
use tracing::{info, warn};

use super::save::{check_save_flags, define_image_xml, image_xml, open_image, SAVE_PAUSED};
use super::{QemuDriver, StartMode};
use crate::files::remove_if_exists;

/// Where the managed save image of the domain called `name` lives.
pub(super) fn managed_save_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir
        .join("qemu")
        .join("save")
        .join(format!("{name}.save"))
}

impl QemuDriver {
    fn managed_save_file(&self, name: &str) -> PathBuf {
        managed_save_path(&self.shared.config.state_dir, name)
    }

    fn set_managed_save(&self, dom: &DomainRef, exists: bool) -> Result<()> {
        self.shared.lock()?.get_mut(dom)?.managed_save = exists;
        Ok(())
    }

    pub(super) async fn managed_save_impl(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        check_save_flags("virDomainManagedSave", flags)?;
        let (name, persistent) = self.read(|r| {
            let d = r.get(dom)?;
            if d.live.is_none() {
                return Err(Error::invalid("domain is not running"));
            }
            Ok((d.config.name.clone(), d.persistent))
        })?;
        if !persistent {
            return Err(Error::invalid(
                "cannot do managed save for transient domain",
            ));
        }
        let path = self.managed_save_file(&name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::system(format!("create {}", dir.display()), e))?;
        }
        self.save_as(dom, &path.to_string_lossy(), None, flags, true)
            .await
    }

    pub(super) async fn managed_save_remove_impl(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        check_flags("virDomainManagedSaveRemove", u64::from(flags), 0)?;
        let name = self.read(|r| Ok(r.get(dom)?.config.name.clone()))?;
        remove_if_exists(&self.managed_save_file(&name))
            .map_err(|e| e.into_core("virDomainManagedSaveRemove"))?;
        self.set_managed_save(dom, false)
    }

    /// `virDomainCreateWithFlags`: restores the managed save image if there
    /// is one (see the module doc), else boots. The job lock is held from
    /// the check of the image to its removal.
    pub(super) async fn start_or_restore(&self, dom: &DomainRef, flags: u32) -> Result<DomainRef> {
        use flags::create::{START_FORCE_BOOT, START_PAUSED};
        let job = self.job(dom)?;
        let _job = job.acquire("remoteDispatchDomainCreateWithFlags").await?;
        let (name, saved) = self.read(|r| {
            let d = r.get(dom)?;
            Ok((d.config.name.clone(), d.managed_save))
        })?;
        let paused = flags & START_PAUSED != 0;
        let path = self.managed_save_file(&name);
        if saved && flags & START_FORCE_BOOT != 0 {
            remove_if_exists(&path).map_err(|e| e.into_core("virDomainCreate"))?;
            self.set_managed_save(dom, false)?;
        } else if saved {
            let restore_flags = if paused { SAVE_PAUSED } else { 0 };
            let restored = async {
                let (file, header, def) = open_image(&path, None, "virDomainCreate")?;
                if def.uuid != dom.uuid {
                    return Err(Error::internal(format!(
                        "managed save image {} is of another domain",
                        path.display()
                    )));
                }
                self.restore_locked(dom, def, (file, header), &path, restore_flags)
                    .await
            }
            .await;
            if let Err(e) = restored {
                warn!(name, error = %e, "cannot restore the managed save image; is it damaged?");
                return Err(e);
            }
            if let Err(e) = remove_if_exists(&path) {
                warn!(name, error = %e.chain(), "cannot remove the restored managed save image");
            } else {
                self.set_managed_save(dom, false)?;
            }
            info!(name, "guest started from its managed save image");
            return self.read(|r| Ok(r.get(dom)?.dom_ref()));
        }
        self.start_locked(dom, StartMode::Boot { paused }, None)
            .await
    }

    /// The managed save image of `dom`, which must exist (libvirt's
    /// OPERATION_INVALID "domain does not have managed save image").
    fn existing_managed_save(&self, dom: &DomainRef) -> Result<PathBuf> {
        let (name, saved) = self.read(|r| {
            let d = r.get(dom)?;
            Ok((d.config.name.clone(), d.managed_save))
        })?;
        if !saved {
            return Err(Error::invalid("domain does not have managed save image"));
        }
        Ok(self.managed_save_file(&name))
    }

    /// `virDomainManagedSaveGetXMLDesc`.
    pub(super) fn managed_save_xml_impl(&self, dom: &DomainRef, flags: u32) -> Result<String> {
        const OP: &str = "virDomainManagedSaveGetXMLDesc";
        check_flags(
            OP,
            u64::from(flags),
            u64::from(flags::save::IMAGE_XML_SECURE),
        )?;
        image_xml(&self.existing_managed_save(dom)?, flags, OP)
    }

    /// `virDomainManagedSaveDefineXML`, under the job lock so no start
    /// restores the image while its header is rewritten.
    pub(super) async fn managed_save_define_xml_impl(
        &self,
        dom: &DomainRef,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        const OP: &str = "virDomainManagedSaveDefineXML";
        let job = self.job(dom)?;
        let _job = job
            .acquire("remoteDispatchDomainManagedSaveDefineXML")
            .await?;
        define_image_xml(&self.existing_managed_save(dom)?, dxml, flags, OP)
    }

    /// Undefine's part: refuse while an image exists, or remove it with
    /// `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE`.
    pub(super) fn undefine_managed_save(&self, dom: &DomainRef, flags: u32) -> Result<()> {
        let (name, saved) = self.read(|r| {
            let d = r.get(dom)?;
            Ok((d.config.name.clone(), d.managed_save))
        })?;
        if !saved {
            return Ok(());
        }
        if flags & flags::undefine::MANAGED_SAVE == 0 {
            return Err(Error::invalid(
                "Refusing to undefine while domain managed save image exists",
            ));
        }
        remove_if_exists(&self.managed_save_file(&name))
            .map_err(|e| e.into_core("virDomainUndefine"))?;
        self.set_managed_save(dom, false)
    }
}
