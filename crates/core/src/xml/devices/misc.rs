//! Single-purpose devices: `<memballoon>`, `<rng>`, `<watchdog>`, `<sound>`, `<audio>`.

use super::address::{info_only, DeviceInfo};
use crate::xml::error::{Result, XmlError};
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;
use crate::xml::FormatOptions;

/// The memory balloon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memballoon {
    /// virtio, xen, none.
    pub model: String,
    /// `autodeflate` on/off.
    pub autodeflate: Option<String>,
    /// `freePageReporting` on/off.
    pub free_page_reporting: Option<String>,
    /// `<stats period=…/>` in seconds.
    pub stats_period: Option<u32>,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Memballoon {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let mut m = Memballoon {
            model: node.req_attr("model")?,
            autodeflate: node.attr("autodeflate"),
            free_page_reporting: node.attr("freePageReporting"),
            stats_period: None,
            info: DeviceInfo::default(),
        };
        let mut stats = None;
        for c in node.children() {
            let Some(c) = m.info.take(c)? else { continue };
            match c.name() {
                "stats" => once(&mut stats, c, |c| c.leaf(|c| c.attr_parse::<u32>("period")))?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        m.stats_period = stats.flatten();
        Ok(m)
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem(
            "memballoon",
            &[
                ("model", &self.model),
                ("autodeflate", &self.autodeflate),
                ("freePageReporting", &self.free_page_reporting),
            ],
            |w| {
                if let Some(p) = self.stats_period {
                    w.empty("stats", &[("period", &p)]);
                }
                self.info.format(w, opts);
            },
        );
    }
}

/// A random number generator device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    /// `model`: virtio.
    pub model: String,
    /// `<backend model=…>`: random or egd.
    pub backend_model: String,
    /// `<backend>` text: the host source (`/dev/urandom`).
    pub backend: Option<String>,
    /// `<rate bytes=… period=…/>` attributes.
    pub rate: Vec<(String, String)>,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Rng {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let model = node.req_attr("model")?;
        let mut info = DeviceInfo::default();
        let (mut backend, mut rate) = (None, None);
        for c in node.children() {
            let Some(c) = info.take(c)? else { continue };
            match c.name() {
                "backend" => once(&mut backend, c, |mut c| {
                    let model = c.req_attr("model")?;
                    let text = c.text()?;
                    Ok((model, (!text.is_empty()).then_some(text)))
                })?,
                "rate" => once(&mut rate, c, |c| {
                    c.leaf(|c| Ok(c.attrs_in(&["bytes", "period"])))
                })?,
                _ => return Err(c.unsupported()),
            }
        }
        let (backend_model, backend) = backend.ok_or_else(|| XmlError::MissingElement {
            path: format!("{}/backend", node.path()),
        })?;
        node.finish()?;
        Ok(Rng {
            model,
            backend_model,
            backend,
            rate: rate.unwrap_or_default(),
            info,
        })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem("rng", &[("model", &self.model)], |w| {
            match &self.backend {
                Some(path) => w.text("backend", &[("model", &self.backend_model)], path),
                None => w.empty("backend", &[("model", &self.backend_model)]),
            }
            if !self.rate.is_empty() {
                w.empty_list("rate", &self.rate);
            }
            self.info.format(w, opts);
        });
    }
}

/// A watchdog device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchdog {
    /// i6300esb, ib700, diag288, itco.
    pub model: String,
    /// `action`: reset, shutdown, poweroff, pause, none, dump, inject-nmi.
    pub action: Option<String>,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Watchdog {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let model = node.req_attr("model")?;
        let action = node.attr("action");
        let info = info_only(&node)?;
        node.finish()?;
        Ok(Watchdog {
            model,
            action,
            info,
        })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem(
            "watchdog",
            &[("model", &self.model), ("action", &self.action)],
            |w| {
                self.info.format(w, opts);
            },
        );
    }
}

/// A sound card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sound {
    /// ich6, ich9, ac97, es1370, sb16, usb.
    pub model: String,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Sound {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let model = node.req_attr("model")?;
        let info = info_only(&node)?;
        node.finish()?;
        Ok(Sound { model, info })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem("sound", &[("model", &self.model)], |w| {
            self.info.format(w, opts)
        });
    }
}

/// An audio back-end (`<audio id='1' type='none'/>`), host-side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// `id` referenced by sound cards.
    pub id: Option<u32>,
    /// none, alsa, pulseaudio, spice, file…
    pub kind: String,
}

impl Audio {
    pub(crate) fn parse(node: Node<'_>) -> Result<Self> {
        node.leaf(|n| {
            Ok(Audio {
                id: n.attr_parse("id")?,
                kind: n.req_attr("type")?,
            })
        })
    }

    pub(crate) fn format(&self, w: &mut Writer) {
        w.empty("audio", &[("id", &self.id), ("type", &self.kind)]);
    }
}

/// A TPM (`<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tpm {
    /// tpm-tis, tpm-crb, spapr-tpm-proxy.
    pub model: Option<String>,
    /// `<backend type=…>`: emulator or passthrough.
    pub backend: String,
    /// `<backend version=…>`: 1.2 or 2.0 (guest-visible).
    pub version: Option<String>,
    /// `<backend><device path=…/>`: the host TPM of a passthrough backend.
    pub device_path: Option<String>,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Tpm {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let model = node.attr("model");
        let mut info = DeviceInfo::default();
        let mut backend = None;
        for c in node.children() {
            let Some(c) = info.take(c)? else { continue };
            match c.name() {
                "backend" => once(&mut backend, c, |mut c| {
                    let kind = c.req_attr("type")?;
                    let version = c.attr("version");
                    let mut device = None;
                    for d in c.children() {
                        match d.name() {
                            "device" => once(&mut device, d, |d| d.leaf(|d| d.req_attr("path")))?,
                            _ => return Err(d.unsupported()),
                        }
                    }
                    c.finish()?;
                    Ok((kind, version, device))
                })?,
                _ => return Err(c.unsupported()),
            }
        }
        let (backend, version, device_path) = backend.ok_or_else(|| XmlError::MissingElement {
            path: format!("{}/backend", node.path()),
        })?;
        node.finish()?;
        Ok(Tpm {
            model,
            backend,
            version,
            device_path,
            info,
        })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem("tpm", &[("model", &self.model)], |w| {
            w.elem(
                "backend",
                &[("type", &self.backend), ("version", &self.version)],
                |w| {
                    if let Some(path) = &self.device_path {
                        w.empty("device", &[("path", path)]);
                    }
                },
            );
            self.info.format(w, opts);
        });
    }
}

/// A redirected USB device (`<redirdev bus='usb' type='spicevmc'/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirdev {
    /// `bus`: usb.
    pub bus: String,
    /// `type`: spicevmc.
    pub kind: String,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Redirdev {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let bus = node.req_attr("bus")?;
        let kind = node.req_attr("type")?;
        let info = info_only(&node)?;
        node.finish()?;
        Ok(Redirdev { bus, kind, info })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem(
            "redirdev",
            &[("bus", &self.bus), ("type", &self.kind)],
            |w| {
                self.info.format(w, opts);
            },
        );
    }
}
