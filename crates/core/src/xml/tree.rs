//! A bounded, DTD-free element tree built from quick-xml events.
//!
//! The typed model is parsed from this tree rather than from the event stream
//! so that every element can be checked for unknown attributes and children in
//! one place. The limits are enforced here, before anything else looks at the
//! input: size, nesting depth, no `<!DOCTYPE>` and no entity other than the
//! five predefined ones (so "billion laughs" and external entities cannot work).

use std::ops::Range;

use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::error::{Position, Result, XmlError};
use super::{MAX_XML_ATTRIBUTES, MAX_XML_BYTES, MAX_XML_DEPTH};

/// One element of the input with its attributes, children and text.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    /// Qualified name as written (`qemu:commandline`).
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// All character data directly inside this element, unescaped.
    pub text: String,
    /// Byte range of the whole element in the input.
    pub span: Range<usize>,
    /// Byte range of the content between the start and end tags.
    pub inner: Range<usize>,
}

/// Parses `input` into its root element, enforcing the limits.
///
/// # Errors
/// [`XmlError::TooLarge`], [`XmlError::TooDeep`], [`XmlError::DtdNotAllowed`],
/// [`XmlError::Malformed`], or [`XmlError::NotADomain`] when there is no single
/// root element.
pub(crate) fn parse(input: &str) -> Result<Element> {
    if input.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge {
            size: input.len(),
            max: MAX_XML_BYTES,
        });
    }
    // quick-xml skips one leading byte-order mark and counts its positions
    // from after it; parse the text without any (a repeated mark would be
    // skipped too) and shift every position back so spans always index
    // `input` itself.
    let body = input.trim_start_matches('\u{feff}');
    let base = input.len() - body.len();
    let mut reader = Reader::from_str(body);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let start = offset(base, reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|e| convert_error(input, offset(base, reader.error_position()), e))?;
        let end = offset(base, reader.buffer_position());
        match event {
            Event::Start(_) | Event::Empty(_) if stack.len() >= MAX_XML_DEPTH => {
                return Err(XmlError::TooDeep {
                    max: MAX_XML_DEPTH,
                    position: Position::at(input, start),
                });
            }
            Event::Start(e) => {
                let el = new_element(input, &e, start..end, end..end)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = new_element(input, &e, start..end, end..end)?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                // check_end_names guarantees a matching open element.
                let Some(mut el) = stack.pop() else {
                    return Err(XmlError::NotADomain {
                        found: "an unmatched end tag".into(),
                    });
                };
                el.inner.end = start;
                el.span.end = end;
                attach(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| convert_error(input, start, e))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    // A byte-order mark is not content.
                    None if text
                        .trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
                        .is_empty() => {}
                    None => {
                        return Err(XmlError::NotADomain {
                            found: "text outside the root element".into(),
                        })
                    }
                }
            }
            Event::CData(c) => {
                let text = String::from_utf8_lossy(&c).into_owned();
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None => {
                        return Err(XmlError::NotADomain {
                            found: "CDATA outside the root element".into(),
                        })
                    }
                }
            }
            Event::DocType(_) => {
                return Err(XmlError::DtdNotAllowed {
                    what: "DOCTYPE".into(),
                    position: Position::at(input, start),
                })
            }
            // Comments, processing instructions and the declaration carry no
            // configuration; libvirt drops them too.
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::Malformed {
            position: Position::at(input, input.len()),
            source: quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::MissingEndTag(
                open.name.clone(),
            )),
        });
    }
    root.ok_or_else(|| XmlError::NotADomain {
        found: "no element".into(),
    })
}

fn offset(base: usize, pos: u64) -> usize {
    usize::try_from(pos).map_or(usize::MAX, |p| p.saturating_add(base))
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<()> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => {
            return Err(XmlError::NotADomain {
                found: format!("a second root element <{}>", el.name),
            })
        }
    }
    Ok(())
}

fn new_element(
    input: &str,
    e: &BytesStart<'_>,
    span: Range<usize>,
    inner: Range<usize>,
) -> Result<Element> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in e.attributes() {
        // quick-xml's duplicate-attribute check is quadratic: stop early.
        if attrs.len() == MAX_XML_ATTRIBUTES {
            return Err(XmlError::TooManyAttributes {
                element: name,
                max: MAX_XML_ATTRIBUTES,
                position: Position::at(input, span.start),
            });
        }
        let attr = attr.map_err(|err| convert_error(input, span.start, err.into()))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|err| convert_error(input, span.start, err))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
        span,
        inner,
    })
}

/// Entity references are reported as DTD use, everything else as malformed XML.
fn convert_error(input: &str, at: usize, err: quick_xml::Error) -> XmlError {
    match err {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            XmlError::DtdNotAllowed {
                what: format!("entity &{name};"),
                position: Position::at(input, at),
            }
        }
        source => XmlError::Malformed {
            position: Position::at(input, at),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_element_and_content() {
        let input = "<a x='1'><b>t&amp;</b><c/></a>";
        let root = parse(input).expect("valid");
        assert_eq!(root.name, "a");
        assert_eq!(root.attrs, vec![("x".to_string(), "1".to_string())]);
        assert_eq!(&input[root.inner.clone()], "<b>t&amp;</b><c/>");
        let b = &root.children[0];
        assert_eq!(b.text, "t&");
        assert_eq!(&input[b.span.clone()], "<b>t&amp;</b>");
        assert_eq!(&input[root.children[1].span.clone()], "<c/>");
    }

    #[test]
    fn spans_index_the_input_past_a_byte_order_mark() {
        // Found by the domain_xml fuzz target: quick-xml counts positions
        // after the BOM, which shifted every span by three bytes.
        for input in [
            "\u{feff}<a><m x='1'/></a>",
            "\u{feff}\u{feff}<a><m x='1'/></a>",
        ] {
            let root = parse(input).expect("valid");
            assert_eq!(&input[root.inner.clone()], "<m x='1'/>");
            assert_eq!(&input[root.children[0].span.clone()], "<m x='1'/>");
        }
    }

    #[test]
    fn unknown_entity_is_refused_as_dtd_use() {
        let err = parse("<a>&xxe;</a>").expect_err("entity");
        assert!(matches!(err, XmlError::DtdNotAllowed { .. }), "{err}");
    }

    #[test]
    fn doctype_is_refused() {
        let err = parse("<!DOCTYPE a [<!ENTITY x 'y'>]><a/>").expect_err("dtd");
        assert!(
            err.to_string().contains("DTD/entities are not allowed"),
            "{err}"
        );
    }

    #[test]
    fn unclosed_element_is_malformed_with_position() {
        let err = parse("<a>\n<b></a>").expect_err("mismatch");
        let msg = err.to_string();
        assert!(msg.starts_with("malformed XML at line 2"), "{msg}");
    }

    #[test]
    fn depth_limit_is_enforced() {
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1);
        let err = parse(&deep).expect_err("deep");
        assert!(matches!(err, XmlError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn attribute_count_is_bounded() {
        let attrs: String = (0..=MAX_XML_ATTRIBUTES)
            .map(|i| format!(" a{i}='x'"))
            .collect();
        let err = parse(&format!("<a{attrs}/>")).expect_err("too many");
        assert!(matches!(err, XmlError::TooManyAttributes { .. }), "{err}");
        let attrs: String = (1..MAX_XML_ATTRIBUTES)
            .map(|i| format!(" a{i}='x'"))
            .collect();
        assert!(parse(&format!("<a{attrs}/>")).is_ok());
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert!(parse("\u{feff}<a/>").is_ok());
    }

    #[test]
    fn two_roots_are_refused() {
        assert!(parse("<a/><b/>").is_err());
    }
}
