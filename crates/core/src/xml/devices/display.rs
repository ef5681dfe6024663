//! `<graphics>`, `<video>` and `<input>`.

use super::address::{info_only, DeviceInfo};
use crate::xml::error::Result;
use crate::xml::kinds::GraphicsType;
use crate::xml::read::{once, Node};
use crate::xml::write::Writer;
use crate::xml::FormatOptions;

/// A remote display (host-side: none of it is visible to the guest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graphics {
    /// `type`: vnc or spice.
    pub kind: GraphicsType,
    /// `port`; -1 means "pick one".
    pub port: Option<i32>,
    /// `tlsPort` (spice).
    pub tls_port: Option<i32>,
    /// `autoport` yes/no.
    pub autoport: Option<bool>,
    /// `websocket` port (vnc).
    pub websocket: Option<i32>,
    /// `listen` attribute: the first listen address, kept for old clients.
    pub listen: Option<String>,
    /// `passwd`: printed only with [`FormatOptions::secure`].
    pub passwd: Option<String>,
    /// `passwdValidTo`.
    pub passwd_valid_to: Option<String>,
    /// `keymap`.
    pub keymap: Option<String>,
    /// `sharePolicy` (vnc).
    pub share_policy: Option<String>,
    /// `<listen …/>` children.
    pub listens: Vec<GraphicsListen>,
    /// SPICE tuning children (`<image compression='off'/>`, `<channel …/>`,
    /// `<gl enable='no'/>`…) with their attributes, in document order.
    pub spice_options: Vec<(String, Vec<(String, String)>)>,
}

/// SPICE children kept as name and attributes; all are host-side tuning.
const SPICE_OPTIONS: &[&str] = &[
    "channel",
    "image",
    "jpeg",
    "zlib",
    "playback",
    "streaming",
    "clipboard",
    "mouse",
    "filetransfer",
    "gl",
];

/// `<listen type='address' address=…/>` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsListen {
    /// address, network, socket, none.
    pub kind: String,
    /// `address` (type address).
    pub address: Option<String>,
    /// `network` (type network).
    pub network: Option<String>,
    /// `socket` (type socket).
    pub socket: Option<String>,
}

impl Graphics {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let kind: GraphicsType = node.req_attr_parse("type")?;
        let mut g = Graphics {
            kind,
            port: node.attr_parse("port")?,
            tls_port: node.attr_parse("tlsPort")?,
            autoport: node.attr_yes_no("autoport")?,
            websocket: node.attr_parse("websocket")?,
            listen: node.attr("listen"),
            passwd: node.attr("passwd"),
            passwd_valid_to: node.attr("passwdValidTo"),
            keymap: node.attr("keymap"),
            share_policy: node.attr("sharePolicy"),
            listens: Vec::new(),
            spice_options: Vec::new(),
        };
        for c in node.children() {
            match c.name() {
                "listen" => g.listens.push(c.leaf(|c| {
                    Ok(GraphicsListen {
                        kind: c.req_attr("type")?,
                        address: c.attr("address"),
                        network: c.attr("network"),
                        socket: c.attr("socket"),
                    })
                })?),
                name if kind == GraphicsType::Spice && SPICE_OPTIONS.contains(&name) => {
                    let name = name.to_string();
                    let attrs = c.leaf(|c| Ok(c.all_attrs()))?;
                    g.spice_options.push((name, attrs));
                }
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(g)
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        let passwd = if opts.secure {
            self.passwd.as_ref()
        } else {
            None
        };
        w.elem(
            "graphics",
            &[
                ("type", &self.kind),
                ("port", &self.port),
                ("tlsPort", &self.tls_port),
                ("autoport", &self.autoport),
                ("websocket", &self.websocket),
                ("listen", &self.listen),
                ("passwd", &passwd),
                ("passwdValidTo", &self.passwd_valid_to),
                ("keymap", &self.keymap),
                ("sharePolicy", &self.share_policy),
            ],
            |w| {
                for l in &self.listens {
                    w.empty(
                        "listen",
                        &[
                            ("type", &l.kind),
                            ("address", &l.address),
                            ("network", &l.network),
                            ("socket", &l.socket),
                        ],
                    );
                }
                for (name, attrs) in &self.spice_options {
                    w.empty_list(name, attrs);
                }
            },
        );
    }
}

/// A video adapter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Video {
    /// `<model …/>`.
    pub model: Option<VideoModel>,
    /// Alias and address.
    pub info: DeviceInfo,
}

/// `<model type=… vram=… heads=… primary=…/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoModel {
    /// vga, cirrus, qxl, virtio, bochs, ramfb, none.
    pub kind: String,
    /// `ram` in KiB (qxl).
    pub ram: Option<u32>,
    /// `vram` in KiB.
    pub vram: Option<u32>,
    /// `vram64` in KiB (qxl).
    pub vram64: Option<u32>,
    /// `vgamem` in KiB (qxl).
    pub vgamem: Option<u32>,
    /// `heads`.
    pub heads: Option<u32>,
    /// `primary` yes/no.
    pub primary: Option<bool>,
}

impl Video {
    pub(crate) fn parse(node: Node<'_>) -> Result<Self> {
        let mut v = Video::default();
        for c in node.children() {
            let Some(c) = v.info.take(c)? else { continue };
            match c.name() {
                "model" => once(&mut v.model, c, |c| {
                    c.leaf(|c| {
                        Ok(VideoModel {
                            kind: c.req_attr("type")?,
                            ram: c.attr_parse("ram")?,
                            vram: c.attr_parse("vram")?,
                            vram64: c.attr_parse("vram64")?,
                            vgamem: c.attr_parse("vgamem")?,
                            heads: c.attr_parse("heads")?,
                            primary: c.attr_yes_no("primary")?,
                        })
                    })
                })?,
                _ => return Err(c.unsupported()),
            }
        }
        node.finish()?;
        Ok(v)
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem("video", &[], |w| {
            if let Some(m) = &self.model {
                w.empty(
                    "model",
                    &[
                        ("type", &m.kind),
                        ("ram", &m.ram),
                        ("vram", &m.vram),
                        ("vram64", &m.vram64),
                        ("vgamem", &m.vgamem),
                        ("heads", &m.heads),
                        ("primary", &m.primary),
                    ],
                );
            }
            self.info.format(w, opts);
        });
    }
}

/// An input device (`<input type='tablet' bus='usb'/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// mouse, keyboard, tablet.
    pub kind: String,
    /// ps2, usb, virtio.
    pub bus: Option<String>,
    /// Alias and address.
    pub info: DeviceInfo,
}

impl Input {
    pub(crate) fn parse(mut node: Node<'_>) -> Result<Self> {
        let kind = node.req_attr("type")?;
        let bus = node.attr("bus");
        let info = info_only(&node)?;
        node.finish()?;
        Ok(Input { kind, bus, info })
    }

    pub(crate) fn format(&self, w: &mut Writer, opts: &FormatOptions) {
        w.elem("input", &[("type", &self.kind), ("bus", &self.bus)], |w| {
            self.info.format(w, opts);
        });
    }
}
