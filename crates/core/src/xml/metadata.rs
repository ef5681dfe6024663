//! Reading and changing the verbatim `<metadata>` content, the title and
//! the description (`virsh metadata`, `virsh desc`).

use std::collections::BTreeMap;

use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::Reader;

use super::error::{Position, XmlError};
use super::tree::{self, Element};
use super::write::escape;
use super::DomainDef;
use crate::error::{Error, Result};
use crate::flags::{affect, check_flags};

/// Finds the first child of `<metadata>` named `local_name` in namespace
/// `ns_uri` and returns its attributes (namespace declarations excluded).
///
/// `domain_ns` holds the prefixes declared on `<domain>`, which are in scope
/// inside the metadata. Metadata that no longer parses yields `None`: it was
/// validated when the definition was parsed, so this only happens when a
/// caller stored broken XML in the public field.
pub(crate) fn find_element(
    metadata: &str,
    domain_ns: &[(String, String)],
    ns_uri: &str,
    local_name: &str,
) -> Option<BTreeMap<String, String>> {
    let (_, root) = wrap(metadata).ok()?;
    root.children.into_iter().find_map(|el| {
        let local = el.name.split_once(':').map_or(el.name.as_str(), |(_, l)| l);
        if local != local_name || element_ns(&el, domain_ns) != Some(ns_uri) {
            return None;
        }
        Some(
            el.attrs
                .iter()
                .filter(|(k, _)| k != "xmlns" && !k.starts_with("xmlns:"))
                .cloned()
                .collect(),
        )
    })
}

/// Which of a domain's metadata a `virDomainSetMetadata` or
/// `virDomainGetMetadata` call addresses (`virDomainMetadataType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataTarget {
    /// `<description>` (`VIR_DOMAIN_METADATA_DESCRIPTION`).
    Description,
    /// `<title>` (`VIR_DOMAIN_METADATA_TITLE`).
    Title,
    /// The child of `<metadata>` in namespace `uri`
    /// (`VIR_DOMAIN_METADATA_ELEMENT`); a new element gets the prefix `key`.
    Element {
        /// The namespace URI.
        uri: String,
        /// The prefix of a new element (only when setting one).
        key: Option<String>,
    },
}

/// `VIR_DOMAIN_METADATA_DESCRIPTION`.
const METADATA_DESCRIPTION: i32 = 0;
/// `VIR_DOMAIN_METADATA_TITLE`.
const METADATA_TITLE: i32 = 1;
/// `VIR_DOMAIN_METADATA_ELEMENT`.
const METADATA_ELEMENT: i32 = 2;

impl MetadataTarget {
    /// The `VIR_DOMAIN_EVENT_ID_METADATA_CHANGE` event a successful change
    /// of this target sends (libvirt's QEMU and test drivers send it after
    /// every successful `virDomainSetMetadata`).
    pub fn change_event(&self) -> crate::domain::DomainEventKind {
        let (kind, uri) = match self {
            MetadataTarget::Description => (METADATA_DESCRIPTION, None),
            MetadataTarget::Title => (METADATA_TITLE, None),
            MetadataTarget::Element { uri, .. } => (METADATA_ELEMENT, Some(uri.clone())),
        };
        crate::domain::DomainEventKind::MetadataChange { kind, uri }
    }

    /// The target of a `virDomainSetMetadata` call, with the argument
    /// checks of libvirt's public API (`src/libvirt-domain.c`).
    ///
    /// # Errors
    /// [`Error::InvalidArg`]: an unknown type, a title with a newline, a
    /// key or URI given for a title or description, an element without URI,
    /// or a new element without key.
    pub fn for_set(
        kind: i32,
        value: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
    ) -> Result<Self> {
        const OP: &str = "virDomainSetMetadata";
        match kind {
            METADATA_TITLE if value.is_some_and(|v| v.contains('\n')) => {
                Err(invalid(OP, "metadata title can't contain newlines"))
            }
            METADATA_TITLE | METADATA_DESCRIPTION => {
                must_be_null(OP, "uri", uri)?;
                must_be_null(OP, "key", key)?;
                Ok(if kind == METADATA_TITLE {
                    Self::Title
                } else {
                    Self::Description
                })
            }
            METADATA_ELEMENT => {
                let uri = must_be_set(OP, "uri", uri)?;
                let key = match value {
                    Some(_) => Some(must_be_set(OP, "key", key)?),
                    None => None,
                };
                Ok(Self::Element { uri, key })
            }
            other => Err(invalid(OP, &format!("unknown metadata type '{other}'"))),
        }
    }

    /// The target of a `virDomainGetMetadata` call, checked as libvirt's
    /// public API does.
    ///
    /// # Errors
    /// [`Error::InvalidArg`]: an unknown type, a URI for a title or
    /// description, an element without URI.
    pub fn for_get(kind: i32, uri: Option<&str>) -> Result<Self> {
        const OP: &str = "virDomainGetMetadata";
        match kind {
            METADATA_TITLE | METADATA_DESCRIPTION => {
                must_be_null(OP, "uri", uri)?;
                Ok(if kind == METADATA_TITLE {
                    Self::Title
                } else {
                    Self::Description
                })
            }
            METADATA_ELEMENT => Ok(Self::Element {
                uri: must_be_set(OP, "uri", uri)?,
                key: None,
            }),
            other => Err(invalid(OP, &format!("unknown metadata type '{other}'"))),
        }
    }
}

fn invalid(operation: &'static str, reason: &str) -> Error {
    Error::InvalidArg {
        operation,
        reason: reason.to_owned(),
    }
}

fn must_be_null(operation: &'static str, name: &str, value: Option<&str>) -> Result<()> {
    match value {
        None => Ok(()),
        Some(_) => Err(invalid(
            operation,
            &format!("{name} in {operation} must be NULL"),
        )),
    }
}

fn must_be_set(operation: &'static str, name: &str, value: Option<&str>) -> Result<String> {
    value.map(str::to_owned).ok_or_else(|| {
        invalid(
            operation,
            &format!("{name} in {operation} must not be NULL"),
        )
    })
}

impl DomainDef {
    /// The title, description or metadata element `target` names, as
    /// `virDomainGetMetadata` returns it (libvirt's
    /// `virXMLExtractNamespaceXML`: a copy of the element with the
    /// namespace taken off it and its descendants, its declaration dropped);
    /// `None` when there is none.
    pub fn metadata_of(&self, target: &MetadataTarget) -> Option<String> {
        match target {
            MetadataTarget::Description => self.description.clone(),
            MetadataTarget::Title => self.title.clone(),
            MetadataTarget::Element { uri, .. } => {
                let element = extract_ns(self.metadata.as_deref()?, &self.namespaces, uri)?;
                without_namespace(&element, uri)
            }
        }
    }

    /// Sets (or with `None` or an empty title/description, removes) what
    /// `target` names, as libvirt's `virDomainDefSetMetadata`: a new element
    /// replaces every child of `<metadata>` in its namespace, and it and its
    /// descendants are put in that namespace under the prefix `key`.
    ///
    /// # Errors
    /// [`Error::Xml`] for an element that is not well-formed (one root);
    /// [`Error::InvalidArg`] for a key that is not a valid prefix.
    pub fn set_metadata(&mut self, target: &MetadataTarget, value: Option<&str>) -> Result<()> {
        let text = value.filter(|v| !v.is_empty()).map(str::to_owned);
        match target {
            MetadataTarget::Description => self.description = text,
            MetadataTarget::Title => self.title = text,
            MetadataTarget::Element { uri, key } => {
                let new = match (value, key) {
                    (Some(xml), Some(key)) => Some(inject_namespace(xml, key, uri)?),
                    (Some(_), None) => {
                        return Err(invalid(
                            "virDomainSetMetadata",
                            "key in virDomainSetMetadata must not be NULL",
                        ))
                    }
                    (None, _) => None,
                };
                let kept = match self.metadata.as_deref() {
                    Some(m) => remove_ns(m, &self.namespaces, uri)?,
                    None => String::new(),
                };
                let joined = [kept.trim(), new.as_deref().unwrap_or("")]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("\n");
                self.metadata = (!joined.is_empty()).then_some(joined);
            }
        }
        Ok(())
    }
}

/// What `virDomainSetMetadata` with `flags` ([`crate::flags::affect`]) makes
/// of a domain running `live` (if it runs) with the config `config`: the
/// changed copies `(live, config)`, `None` for one it leaves alone. Both are
/// computed before the caller keeps either, so a refused value changes
/// nothing.
///
/// # Errors
/// [`Error::UnknownFlags`] for flags other than LIVE and CONFIG; as
/// [`crate::flags::affect::resolve`] and [`DomainDef::set_metadata`].
pub fn metadata_change(
    live: Option<&DomainDef>,
    config: &DomainDef,
    persistent: bool,
    target: &MetadataTarget,
    value: Option<&str>,
    flags: u32,
) -> Result<(Option<DomainDef>, Option<DomainDef>)> {
    check_flags(
        "virDomainSetMetadata",
        u64::from(flags),
        u64::from(affect::LIVE | affect::CONFIG),
    )?;
    let (to_live, to_config) = affect::resolve(flags, live.is_some(), persistent)?;
    let change = |def: &DomainDef| {
        let mut def = def.clone();
        def.set_metadata(target, value).map(|()| def)
    };
    let live = live.filter(|_| to_live).map(change).transpose()?;
    let config = to_config.then(|| change(config)).transpose()?;
    Ok((live, config))
}

/// `virDomainGetMetadata` with `flags` on a domain running `live` (if it
/// runs) with the config `config`.
///
/// # Errors
/// [`Error::NoDomainMetadata`] when there is none of that kind; the flags
/// checks of [`crate::flags::affect::resolve_one`].
pub fn metadata_read(
    live: Option<&DomainDef>,
    config: &DomainDef,
    persistent: bool,
    target: &MetadataTarget,
    flags: u32,
) -> Result<String> {
    const OP: &str = "virDomainGetMetadata";
    check_flags(
        OP,
        u64::from(flags),
        u64::from(affect::LIVE | affect::CONFIG),
    )?;
    let def = match (
        live,
        affect::resolve_one(OP, flags, live.is_some(), persistent)?,
    ) {
        (Some(live), true) => live,
        _ => config,
    };
    def.metadata_of(target).ok_or(Error::NoDomainMetadata)
}

/// The namespace URI of `el`, a child of `<metadata>`: declared on the
/// element itself or, for a prefix, on `<domain>`.
fn element_ns<'a>(el: &'a Element, domain_ns: &'a [(String, String)]) -> Option<&'a str> {
    let prefix = el.name.split_once(':').map(|(p, _)| p);
    let decl = prefix.map_or_else(|| "xmlns".to_string(), |p| format!("xmlns:{p}"));
    el.attrs
        .iter()
        .find(|(k, _)| *k == decl)
        .map(|(_, v)| v.as_str())
        .or_else(|| {
            let p = prefix?;
            domain_ns
                .iter()
                .find(|(dp, _)| dp == p)
                .map(|(_, u)| u.as_str())
        })
}

/// `<metadata>` content as a parsed root, with the text it was parsed from.
fn wrap(metadata: &str) -> Result<(String, Element)> {
    let wrapped = format!("<metadata>{metadata}</metadata>");
    let root = tree::parse(&wrapped)?;
    Ok((wrapped, root))
}

/// The first child in namespace `uri`, its namespace declared on it.
fn extract_ns(metadata: &str, domain_ns: &[(String, String)], uri: &str) -> Option<String> {
    let (wrapped, root) = wrap(metadata).ok()?;
    let el = root
        .children
        .iter()
        .find(|el| element_ns(el, domain_ns) == Some(uri))?;
    let text = wrapped.get(el.span.clone())?;
    let prefix = el.name.split_once(':').map(|(p, _)| p);
    let decl = prefix.map_or_else(|| "xmlns".to_string(), |p| format!("xmlns:{p}"));
    if el.attrs.iter().any(|(k, _)| *k == decl) {
        return Some(text.to_owned());
    }
    // Declared on <domain>: carry the declaration into the copy.
    let at = 1 + el.name.len();
    Some(format!(
        "{} {decl}=\"{}\"{}",
        text.get(..at)?,
        escape(uri),
        text.get(at..)?
    ))
}

/// `element` (self-contained: its namespace declared on it) with the
/// elements in namespace `uri` renamed to their local names and the
/// declarations of `uri` dropped, as libvirt hands a metadata element back.
/// Attributes and other namespaces stay as they are.
fn without_namespace(element: &str, uri: &str) -> Option<String> {
    // The prefixes bound to `uri` anywhere in the element ("" for a default
    // namespace declaration).
    let mut prefixes = Vec::new();
    let mut reader = Reader::from_str(element);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                for attr in e.attributes().with_checks(false).flatten() {
                    let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                    let bound = key
                        .strip_prefix("xmlns:")
                        .or((key == "xmlns").then_some(""));
                    if let Some(prefix) = bound {
                        if attr.unescape_value().ok()? == uri {
                            prefixes.push(prefix.to_owned());
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let in_uri = |name: &[u8]| {
        let name = String::from_utf8_lossy(name).into_owned();
        match name.split_once(':') {
            Some((p, local)) if prefixes.iter().any(|q| q == p) => local.to_owned(),
            _ => name,
        }
    };
    let declares_uri = |key: &[u8]| {
        let key = String::from_utf8_lossy(key);
        let prefix = key
            .strip_prefix("xmlns:")
            .or((key == "xmlns").then_some(""));
        prefix.is_some_and(|p| prefixes.iter().any(|q| q == p))
    };
    let strip = |e: &BytesStart<'_>| {
        let mut start = BytesStart::new(in_uri(e.name().as_ref()));
        for attr in e.attributes().with_checks(false).flatten() {
            if !declares_uri(attr.key.as_ref()) {
                start.push_attribute(attr);
            }
        }
        start
    };
    let mut reader = Reader::from_str(element);
    let mut writer = quick_xml::Writer::new(Vec::new());
    loop {
        let out = match reader.read_event().ok()? {
            Event::Start(e) => Event::Start(strip(&e)),
            Event::Empty(e) => Event::Empty(strip(&e)),
            Event::End(e) => Event::End(BytesEnd::new(in_uri(e.name().as_ref()))),
            Event::Eof => break,
            other => other,
        };
        writer.write_event(out).ok()?;
    }
    String::from_utf8(writer.into_inner()).ok()
}

/// `metadata` without its children in namespace `uri`.
fn remove_ns(metadata: &str, domain_ns: &[(String, String)], uri: &str) -> Result<String> {
    let (wrapped, root) = wrap(metadata)?;
    let mut out = String::new();
    let mut from = root.inner.start;
    for el in root
        .children
        .iter()
        .filter(|el| element_ns(el, domain_ns) == Some(uri))
    {
        out.push_str(wrapped.get(from..el.span.start).unwrap_or_default());
        from = el.span.end;
    }
    out.push_str(wrapped.get(from..root.inner.end).unwrap_or_default());
    Ok(out)
}

/// Puts `fragment` (one element) and all its descendants in namespace `uri`
/// under prefix `key`, declared on the root (libvirt's
/// `virXMLInjectNamespace`).
fn inject_namespace(fragment: &str, key: &str, uri: &str) -> Result<String> {
    let valid_prefix = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid_prefix {
        return Err(invalid(
            "virDomainSetMetadata",
            &format!("failed to validate prefix for a new XML namespace '{key}'"),
        ));
    }
    // Limits, well-formedness and a single root, with the model's errors.
    tree::parse(fragment)?;
    let decl = format!("xmlns:{key}");
    let renamed = |name: &[u8]| {
        let name = String::from_utf8_lossy(name);
        let local = name.rsplit_once(':').map_or(&*name, |(_, l)| l).to_owned();
        format!("{key}:{local}")
    };
    let mut root = true;
    let mut rename_start = |e: &BytesStart<'_>| {
        let mut start = BytesStart::new(renamed(e.name().as_ref()));
        // libxml2 writes namespace declarations before the attributes.
        if std::mem::take(&mut root) {
            start.push_attribute((decl.as_str(), uri));
        }
        for attr in e.attributes().with_checks(false).flatten() {
            if attr.key.as_ref() != decl.as_bytes() {
                start.push_attribute(attr);
            }
        }
        start
    };
    let mut reader = Reader::from_str(fragment);
    let mut writer = quick_xml::Writer::new(Vec::new());
    loop {
        let event = reader.read_event().map_err(|source| XmlError::Malformed {
            position: Position::at(
                fragment,
                usize::try_from(reader.error_position()).unwrap_or(0),
            ),
            source,
        })?;
        let out = match event {
            Event::Start(e) => Event::Start(rename_start(&e)),
            Event::Empty(e) => Event::Empty(rename_start(&e)),
            Event::End(e) => Event::End(BytesEnd::new(renamed(e.name().as_ref()))),
            Event::Decl(_) | Event::DocType(_) => continue,
            Event::Eof => break,
            other => other,
        };
        writer
            .write_event(out)
            .map_err(|e| Error::internal(format!("cannot write the metadata element: {e}")))?;
    }
    String::from_utf8(writer.into_inner())
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::internal(format!("metadata element is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::FormatOptions;

    fn def() -> DomainDef {
        DomainDef::parse(
            "<domain type='test' xmlns:app='urn:app'><name>m</name><memory>1024</memory>\
             <os><type>hvm</type></os><metadata><app:keep a='1'/>\
             <x:old xmlns:x='urn:x'>1</x:old></metadata></domain>",
        )
        .expect("valid XML")
    }

    #[test]
    fn an_element_replaces_its_namespace_and_reads_back_without_it() {
        let mut d = def();
        let x = MetadataTarget::Element {
            uri: "urn:x".into(),
            key: Some("k".into()),
        };
        d.set_metadata(&x, Some("<n:new v='2'><child>t &amp; u</child></n:new>"))
            .expect("set");
        // Read back without the namespace, as libvirt's virDomainGetMetadata.
        assert_eq!(
            d.metadata_of(&x).as_deref(),
            Some("<new v=\"2\"><child>t &amp; u</child></new>")
        );
        // Stored with the prefix and its declaration.
        let stored = d.format(&FormatOptions::default());
        assert!(
            stored
                .contains("<k:new xmlns:k=\"urn:x\" v=\"2\"><k:child>t &amp; u</k:child></k:new>"),
            "{stored}"
        );
        // The other namespace is untouched, also when declared on <domain>.
        let app = MetadataTarget::Element {
            uri: "urn:app".into(),
            key: None,
        };
        assert_eq!(d.metadata_of(&app).as_deref(), Some("<keep a=\"1\"/>"));
        // The definition still parses after formatting.
        let again = DomainDef::parse(&d.format(&FormatOptions::default())).expect("reparse");
        assert_eq!(again.metadata_of(&x), d.metadata_of(&x));
        d.set_metadata(&x, None).expect("remove");
        assert_eq!(d.metadata_of(&x), None);
        assert!(d.metadata_of(&app).is_some());
    }

    #[test]
    fn titles_descriptions_and_bad_arguments() {
        let mut d = def();
        d.set_metadata(&MetadataTarget::Title, Some("web"))
            .expect("title");
        assert_eq!(
            d.metadata_of(&MetadataTarget::Title).as_deref(),
            Some("web")
        );
        d.set_metadata(&MetadataTarget::Title, Some(""))
            .expect("clear");
        assert_eq!(d.metadata_of(&MetadataTarget::Title), None);
        let e = MetadataTarget::for_set(1, Some("a\nb"), None, None).expect_err("newline");
        assert!(e.to_string().contains("can't contain newlines"), "{e}");
        MetadataTarget::for_set(0, Some("d"), None, Some("urn:x")).expect_err("uri");
        MetadataTarget::for_set(2, Some("<a/>"), None, Some("urn:x")).expect_err("no key");
        MetadataTarget::for_get(2, None).expect_err("no uri");
        MetadataTarget::for_get(3, None).expect_err("unknown type");
        let x = MetadataTarget::Element {
            uri: "urn:x".into(),
            key: Some("bad key".into()),
        };
        d.set_metadata(&x, Some("<a/>")).expect_err("bad prefix");
        let x = MetadataTarget::Element {
            uri: "urn:x".into(),
            key: Some("k".into()),
        };
        let e = d
            .set_metadata(&x, Some("<a>"))
            .expect_err("not well-formed");
        assert_eq!(e.code(), crate::error::ErrorCode::XmlError);
    }
}
