//! A tiny indenting XML writer producing libvirt's layout (two spaces,
//! single-quoted attributes).

use std::fmt::Write as _;

/// Something that can be an attribute value; `None` omits the attribute.
pub(crate) trait AttrValue {
    /// The text of the value, if present.
    fn value(&self) -> Option<String>;
}

impl AttrValue for str {
    fn value(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl AttrValue for String {
    fn value(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl AttrValue for u32 {
    fn value(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl AttrValue for i32 {
    fn value(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl AttrValue for u64 {
    fn value(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl AttrValue for bool {
    fn value(&self) -> Option<String> {
        Some(if *self { "yes" } else { "no" }.to_string())
    }
}

impl<T: AttrValue> AttrValue for Option<T> {
    fn value(&self) -> Option<String> {
        self.as_ref().and_then(AttrValue::value)
    }
}

impl<T: AttrValue + ?Sized> AttrValue for &T {
    fn value(&self) -> Option<String> {
        (**self).value()
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
            if let Some(v) = value.value() {
                let _ = write!(self.out, " {key}='{}'", escape(&v));
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
            let _ = writeln!(self.out, "</{name}>");
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
        let _ = writeln!(self.out, ">{}</{name}>", escape(text));
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
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
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
}
