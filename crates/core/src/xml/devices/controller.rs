//! `<controller>`.

use super::address::DeviceInfo;
use crate::xml::error::Result;
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;
use crate::xml::FormatOptions;

/// A bus controller (pci, usb, scsi, sata, ide, virtio-serial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// `type`.
    pub kind: String,
    /// `index` on its type.
    pub index: Option<u32>,
    /// `model` (pci-root, pcie-root-port, qemu-xhci, virtio-scsi, none).
    pub model: Option<String>,
    /// `ports` (virtio-serial, usb).
    pub ports: Option<u32>,
    /// `vectors` (virtio-serial).
    pub vectors: Option<u32>,
    /// `<model name=…/>`: the QEMU device behind a PCI controller.
    pub model_name: Option<String>,
    /// `<target …/>` attributes (chassisNr, chassis, port, busNr, index, hotplug).
    pub target: Vec<(String, String)>,
    /// `<driver …/>` attributes (queues, iothread, cmd_per_lun, max_sectors).
    pub driver: Vec<(String, String)>,
    /// `<master startport=…/>`: USB companion controllers.
    pub master_startport: Option<u32>,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Controller {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let mut ctl = Controller {
            kind: node.req_attr("type")?,
            index: node.attr_parse("index")?,
            model: node.attr("model"),
            ports: node.attr_parse("ports")?,
            vectors: node.attr_parse("vectors")?,
            model_name: None,
            target: Vec::new(),
            driver: Vec::new(),
            master_startport: None,
            info: DeviceInfo::default(),
        };
        let (mut target, mut driver, mut master) = (None, None, None);
        for c in node.children() {
            let Some(c) = ctl.info.take(c)? else { continue };
            match c.name() {
                "model" => once(&mut ctl.model_name, c, |c| c.leaf(|c| c.req_attr("name")))?,
                "target" => once(&mut target, c, |c| {
                    c.leaf(|c| {
                        Ok(c.attrs_in(&[
                            "chassisNr",
                            "chassis",
                            "port",
                            "busNr",
                            "index",
                            "hotplug",
                        ]))
                    })
                })?,
                "driver" => once(&mut driver, c, |c| {
                    c.leaf(|c| {
                        Ok(c.attrs_in(&["queues", "iothread", "cmd_per_lun", "max_sectors"]))
                    })
                })?,
                "master" => once(&mut master, c, |c| {
                    c.leaf(|c| c.attr_parse::<u32>("startport"))
                })?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        ctl.target = target.unwrap_or_default();
        ctl.driver = driver.unwrap_or_default();
        ctl.master_startport = master.flatten();
        Ok(ctl)
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem(
            "controller",
            &[
                ("type", &self.kind),
                ("index", &self.index),
                ("model", &self.model),
                ("ports", &self.ports),
                ("vectors", &self.vectors),
            ],
            |w| {
                if !self.driver.is_empty() {
                    w.empty_list("driver", &self.driver);
                }
                if let Some(name) = &self.model_name {
                    w.empty("model", &[("name", name)]);
                }
                if !self.target.is_empty() {
                    w.empty_list("target", &self.target);
                }
                if let Some(port) = self.master_startport {
                    w.empty("master", &[("startport", &port)]);
                }
                self.info.format(w, opts);
            },
        );
    }
}
