//! The error type of the domain XML layer.

use std::fmt;

/// A position in the XML input, reported to users as `line:column` (both 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in bytes.
    pub column: usize,
}

impl Position {
    /// Converts a byte offset into `input` to a line and column.
    pub(crate) fn at(input: &str, offset: usize) -> Self {
        let offset = offset.min(input.len());
        let before = &input.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        Self {
            line,
            column: offset - line_start + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Everything that can go wrong while reading a domain definition.
///
/// Element paths are relative to `<domain>` (`devices/disk/driver`), so a
/// message points at the offending piece of configuration. All of these map to
/// libvirt's `VIR_ERR_XML_ERROR` / `VIR_ERR_CONFIG_UNSUPPORTED` family in the
/// core `Error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The document is larger than [`MAX_XML_BYTES`](super::MAX_XML_BYTES).
    #[error("domain XML is {size} bytes, larger than the {max} byte limit")]
    TooLarge {
        /// Size of the rejected input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Elements are nested deeper than [`MAX_XML_DEPTH`](super::MAX_XML_DEPTH).
    #[error("domain XML nests elements deeper than {max} levels at {position}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where the limit was crossed.
        position: Position,
    },
    /// An element carries more than [`MAX_XML_ATTRIBUTES`](super::MAX_XML_ATTRIBUTES).
    #[error("element <{element}> has more than {max} attributes at {position}")]
    TooManyAttributes {
        /// Name of the element.
        element: String,
        /// The limit.
        max: usize,
        /// Where the element starts.
        position: Position,
    },
    /// A `<!DOCTYPE>` or an entity reference other than the five predefined ones.
    #[error("DTD/entities are not allowed ({what} at {position})")]
    DtdNotAllowed {
        /// What was found (`DOCTYPE`, `entity &xxe;`).
        what: String,
        /// Where it was found.
        position: Position,
    },
    /// The input is not well-formed XML.
    #[error("malformed XML at {position}")]
    Malformed {
        /// Where the parser gave up.
        position: Position,
        /// The parser's diagnosis.
        #[source]
        source: quick_xml::Error,
    },
    /// The document has no root element, or one that is not `<domain>`.
    #[error("expected a <domain> root element, found {found}")]
    NotADomain {
        /// What was found instead.
        found: String,
    },
    /// The root element is not `<domainsnapshot>`.
    #[error("expected a <domainsnapshot> root element, found {found}")]
    NotASnapshot {
        /// What was found instead.
        found: String,
    },
    /// An element this model does not know.
    #[error("unsupported element <{path}>")]
    UnsupportedElement {
        /// Path of the element.
        path: String,
    },
    /// An attribute this model does not know.
    #[error("unsupported attribute '{attr}' on <{path}>")]
    UnsupportedAttribute {
        /// Attribute name.
        attr: String,
        /// Path of the element carrying it.
        path: String,
    },
    /// Text where only elements are allowed.
    #[error("unexpected text in <{path}>")]
    UnexpectedText {
        /// Path of the element.
        path: String,
    },
    /// An element that may appear once appeared again.
    #[error("duplicate element <{path}>")]
    Duplicate {
        /// Path of the repeated element.
        path: String,
    },
    /// A required element is absent.
    #[error("missing element <{path}>")]
    MissingElement {
        /// Path of the missing element.
        path: String,
    },
    /// A required attribute is absent.
    #[error("missing attribute '{attr}' on <{path}>")]
    MissingAttribute {
        /// Attribute name.
        attr: String,
        /// Path of the element.
        path: String,
    },
    /// An attribute or element value that does not parse or is out of range.
    #[error("invalid value '{value}' for {what}: {reason}")]
    InvalidValue {
        /// `attribute 'unit' on <memory>` or `<memory>`.
        what: String,
        /// The offending value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Result alias of the XML layer.
pub type Result<T> = std::result::Result<T, XmlError>;
