//! `<serial>`, `<console>` and `<channel>`.

use super::address::DeviceInfo;
use crate::xml::error::Result;
use crate::xml::kinds::CharType;
use crate::xml::read::{once, Node};
use crate::xml::write::{AttrValue, Writer};
use crate::xml::FormatOptions;

/// A serial port, console or channel: a guest-side target wired to a host-side source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharDevice {
    /// `type`: the host side.
    pub kind: CharType,
    /// `tty` attribute of a pty console (live XML only).
    pub tty: Option<String>,
    /// `<source …/>`.
    pub source: Option<CharSource>,
    /// `<target …/>`.
    pub target: Option<CharTarget>,
    /// `<log file=… append=…/>` attributes.
    pub log: Vec<(String, String)>,
    /// Alias and address.
    pub info: DeviceInfo,
}

/// `<source path=… mode=… append=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CharSource {
    /// File, pty or socket path.
    pub path: Option<String>,
    /// `mode`: bind or connect (unix).
    pub mode: Option<String>,
    /// `append` on/off (file).
    pub append: Option<String>,
}

/// `<target type=… port=… name=…><model name=…/></target>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CharTarget {
    /// isa-serial, usb-serial, pci-serial (serial); serial, virtio (console, channel).
    pub kind: Option<String>,
    /// Port number.
    pub port: Option<u32>,
    /// Channel name (`org.qemu.guest_agent.0`).
    pub name: Option<String>,
    /// Channel state (connected, disconnected), live XML only.
    pub state: Option<String>,
    /// `<model name=…/>`: the guest device model.
    pub model: Option<String>,
}

impl CharDevice {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let kind: CharType = node.req_attr_parse("type")?;
        let tty = node.attr("tty");
        let mut info = DeviceInfo::default();
        let (mut source, mut target, mut log) = (None, None, None);
        for c in node.children() {
            let Some(c) = info.take(c)? else { continue };
            match c.name() {
                "source" => once(&mut source, c, |c| {
                    c.leaf(|c| {
                        Ok(CharSource {
                            path: c.attr("path"),
                            mode: c.attr("mode"),
                            append: c.attr("append"),
                        })
                    })
                })?,
                "target" => once(&mut target, c, parse_target)?,
                "log" => once(&mut log, c, |c| {
                    c.leaf(|c| Ok(c.attrs_in(&["file", "append"])))
                })?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(CharDevice {
            kind,
            tty,
            source,
            target,
            log: log.unwrap_or_default(),
            info,
        })
    }

    pub(crate) fn format(&self, w: &mut Writer, element: &str, opts: &FormatOptions) {
        let tty = if opts.inactive {
            None
        } else {
            self.tty.as_ref()
        };
        // A pty's path is allocated at start; an inactive definition has none.
        let runtime_source = opts.inactive && self.kind == CharType::Pty;
        w.elem(element, &[("type", &self.kind), ("tty", &tty)], |w| {
            if let Some(s) = self.source.as_ref().filter(|_| !runtime_source) {
                w.empty(
                    "source",
                    &[("mode", &s.mode), ("path", &s.path), ("append", &s.append)],
                );
            }
            if !self.log.is_empty() {
                w.empty_list("log", &self.log);
            }
            if let Some(t) = &self.target {
                let state = if opts.inactive {
                    None
                } else {
                    t.state.as_ref()
                };
                let attrs: [(&str, &dyn AttrValue); 4] = [
                    ("type", &t.kind),
                    ("name", &t.name),
                    ("state", &state),
                    ("port", &t.port),
                ];
                w.elem("target", &attrs, |w| {
                    if let Some(m) = &t.model {
                        w.empty("model", &[("name", m)]);
                    }
                });
            }
            self.info.format(w, opts);
        });
    }
}

fn parse_target(mut node: Node<'_>) -> Result<CharTarget> {
    let mut t = CharTarget {
        kind: node.attr("type"),
        port: node.attr_parse("port")?,
        name: node.attr("name"),
        state: node.attr("state"),
        model: None,
    };
    for c in node.children() {
        match c.name() {
            "model" => once(&mut t.model, c, |c| c.leaf(|c| c.req_attr("name")))?,
            _ => return Err(c.unsupported()),
        }
    }
    node.finish()?;
    Ok(t)
}
