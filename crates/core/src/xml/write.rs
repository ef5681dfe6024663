//! A tiny indenting XML writer producing libvirt's layout (two spaces,
//! single-quoted attributes).

use std::fmt::Write as _;

/// Something that can be an attribute value; `None` omits the attribute.
///
/// Values are written straight into the document (escaped), so formatting a
/// definition allocates nothing per attribute: `DOMAIN_GET_XML_DESC` formats
/// on every call.
pub(crate) trait AttrValue {
    /// Appends the escaped value to `out`; false (and nothing appended)
    /// when the value is absent.
    fn write_value(&self, out: &mut String) -> bool;
}

impl AttrValue for str {
    fn write_value(&self, out: &mut String) -> bool {
        escape_into(out, self);
        true
    }
}

impl AttrValue for String {
    fn write_value(&self, out: &mut String) -> bool {
        self.as_str().write_value(out)
    }
}

/// Numbers never need escaping.
macro_rules! number_attr {
    ($($t:ty),+) => {$(
        impl AttrValue for $t {
            fn write_value(&self, out: &mut String) -> bool {
                let _ = write!(out, "{self}");
                true
            }
        }
    )+};
}

number_attr!(u32, i32, u64);

impl AttrValue for bool {
    fn write_value(&self, out: &mut String) -> bool {
        out.push_str(if *self { "yes" } else { "no" });
        true
    }
}

impl<T: AttrValue> AttrValue for Option<T> {
    fn write_value(&self, out: &mut String) -> bool {
        self.as_ref().is_some_and(|v| v.write_value(out))
    }
}

impl<T: AttrValue + ?Sized> AttrValue for &T {
    fn write_value(&self, out: &mut String) -> bool {
        (**self).write_value(out)
    }
}

/// Attribute list: name and value, in output order.
pub(crate) type Attrs<'a> = [(&'a str, &'a dyn AttrValue)];

/// Accumulates formatted XML.
#[derive(Default)]
pub(crate) struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    /// A writer whose buffer starts with room for `bytes`.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            out: String::with_capacity(bytes),
            depth: 0,
        }
    }

    /// The formatted document.
    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open_tag(&mut self, name: &str, attrs: &Attrs<'_>) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            let mark = self.out.len();
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("='");
            if value.write_value(&mut self.out) {
                self.out.push('\'');
            } else {
                self.out.truncate(mark);
            }
        }
    }

    /// Writes an element whose children `body` writes; self-closes when `body`
    /// writes nothing.
    pub(crate) fn elem(&mut self, name: &str, attrs: &Attrs<'_>, body: impl FnOnce(&mut Self)) {
        self.open_tag(name, attrs);
        let mark = self.out.len();
        self.out.push_str(">\n");
        let body_start = self.out.len();
        self.depth += 1;
        body(self);
        self.depth -= 1;
        if self.out.len() == body_start {
            self.out.truncate(mark);
            self.out.push_str("/>\n");
        } else {
            self.indent();
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push_str(">\n");
        }
    }

    /// Writes an empty element whose attributes are a name/value list.
    pub(crate) fn empty_list(&mut self, name: &str, attrs: &[(String, String)]) {
        let refs: Vec<(&str, &dyn AttrValue)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v as &dyn AttrValue))
            .collect();
        self.empty(name, &refs);
    }

    /// Writes an empty element.
    pub(crate) fn empty(&mut self, name: &str, attrs: &Attrs<'_>) {
        self.open_tag(name, attrs);
        self.out.push_str("/>\n");
    }

    /// Writes an element holding only text.
    pub(crate) fn text(&mut self, name: &str, attrs: &Attrs<'_>, text: &str) {
        self.open_tag(name, attrs);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Writes a text element when `text` is present.
    pub(crate) fn opt_text(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.text(name, &[], t);
        }
    }

    /// Writes pre-formatted XML on its own indented line(s), unchanged.
    pub(crate) fn raw(&mut self, xml: &str) {
        if xml.is_empty() {
            return;
        }
        self.indent();
        self.out.push_str(xml);
        self.out.push('\n');
    }
}

/// Escapes text and attribute values (both quote kinds, so any quoting works).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// Appends `s` to `out`, escaped as [`escape`] does; runs of plain text are
/// copied whole.
fn escape_into(out: &mut String, s: &str) {
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\'' => "&apos;",
            b'"' => "&quot;",
            _ => continue,
        };
        // ASCII bytes never fall inside a multi-byte character, so both
        // slice ends are character boundaries.
        out.push_str(&s[plain..i]);
        out.push_str(entity);
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_self_closes_and_none_attrs_are_omitted() {
        let mut w = Writer::default();
        let none: Option<u32> = None;
        w.elem("a", &[("x", &"1"), ("y", &none)], |w| {
            w.elem("b", &[], |_| {});
            w.text("c", &[], "x<y");
        });
        assert_eq!(w.finish(), "<a x='1'>\n  <b/>\n  <c>x&lt;y</c>\n</a>\n");
    }

    #[test]
    fn attribute_values_are_escaped_in_place() {
        let mut w = Writer::default();
        let absent: Option<&str> = None;
        w.empty(
            "e",
            &[
                ("a", &"it's <b> & \"c\" é"),
                ("gone", &absent),
                ("n", &42u64),
                ("m", &-1i32),
                ("on", &true),
                ("s", &Some("x".to_string())),
            ],
        );
        w.text("t", &[], "plain");
        w.text("u", &[], "&é>");
        assert_eq!(
            w.finish(),
            "<e a='it&apos;s &lt;b&gt; &amp; &quot;c&quot; é' n='42' m='-1' on='yes' s='x'/>\n\
             <t>plain</t>\n<u>&amp;é&gt;</u>\n"
        );
        assert_eq!(escape("a'b\"c"), "a&apos;b&quot;c");
        assert_eq!(escape("ü<"), "ü&lt;");
    }
}
