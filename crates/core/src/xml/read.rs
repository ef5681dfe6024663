//! Strict reading of typed values out of the element tree.
//!
//! A [`Node`] hands out attributes and children and remembers which it gave
//! out; [`Node::finish`] then turns anything left over into an
//! "unsupported attribute" error, so configuration is never dropped silently.

use std::str::FromStr;

use super::error::{Result, XmlError};
use super::tree::Element;

/// An element being read, with its path relative to `<domain>`.
pub(crate) struct Node<'a> {
    el: &'a Element,
    path: String,
    taken: Vec<bool>,
}

impl<'a> Node<'a> {
    /// Wraps the root element; its path is its own name.
    pub(crate) fn root(el: &'a Element) -> Self {
        Self::new(el, el.name.clone())
    }

    fn new(el: &'a Element, path: String) -> Self {
        Self {
            el,
            taken: vec![false; el.attrs.len()],
            path,
        }
    }

    /// The element name as written.
    pub(crate) fn name(&self) -> &'a str {
        &self.el.name
    }

    /// The path used in error messages.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The underlying element.
    pub(crate) fn element(&self) -> &'a Element {
        self.el
    }

    /// Takes an optional attribute.
    pub(crate) fn attr(&mut self, name: &str) -> Option<String> {
        let idx = self.el.attrs.iter().position(|(k, _)| k == name)?;
        self.taken[idx] = true;
        Some(self.el.attrs[idx].1.clone())
    }

    /// Takes a required attribute.
    pub(crate) fn req_attr(&mut self, name: &str) -> Result<String> {
        self.attr(name).ok_or_else(|| XmlError::MissingAttribute {
            attr: name.into(),
            path: self.path.clone(),
        })
    }

    /// Takes an optional attribute and parses it.
    pub(crate) fn attr_parse<T>(&mut self, name: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.attr(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|e| XmlError::InvalidValue {
                    what: format!("attribute '{name}' on <{}>", self.path),
                    value: v,
                    reason: e.to_string(),
                }),
        }
    }

    /// Takes every attribute named in `allowed`, in the order of `allowed`, so
    /// that formatting is canonical.
    pub(crate) fn attrs_in(&mut self, allowed: &[&str]) -> Vec<(String, String)> {
        allowed
            .iter()
            .filter_map(|name| self.attr(name).map(|v| ((*name).to_string(), v)))
            .collect()
    }

    /// Takes every attribute, in document order.
    pub(crate) fn all_attrs(&mut self) -> Vec<(String, String)> {
        self.taken.iter_mut().for_each(|t| *t = true);
        self.el.attrs.clone()
    }

    /// Takes a required attribute and parses it.
    pub(crate) fn req_attr_parse<T>(&mut self, name: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.attr_parse(name)?
            .ok_or_else(|| XmlError::MissingAttribute {
                attr: name.into(),
                path: self.path.clone(),
            })
    }

    /// Takes an optional `yes`/`no` attribute.
    pub(crate) fn attr_yes_no(&mut self, name: &str) -> Result<Option<bool>> {
        match self.attr(name).as_deref() {
            None => Ok(None),
            Some("yes") => Ok(Some(true)),
            Some("no") => Ok(Some(false)),
            Some(other) => Err(self.invalid_attr(name, other, "expected 'yes' or 'no'")),
        }
    }

    /// Builds an "invalid value" error for attribute `name`.
    pub(crate) fn invalid_attr(&self, name: &str, value: &str, reason: &str) -> XmlError {
        XmlError::InvalidValue {
            what: format!("attribute '{name}' on <{}>", self.path),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The child elements, each with its own path.
    pub(crate) fn children(&self) -> impl Iterator<Item = Node<'a>> + '_ {
        self.el.children.iter().map(move |c| {
            // Paths are relative to <domain>: its children read "devices/disk".
            let path = if self.path == "domain" {
                c.name.clone()
            } else {
                format!("{}/{}", self.path, c.name)
            };
            Node::new(c, path)
        })
    }

    /// The error for a child this element does not accept.
    pub(crate) fn unsupported(&self) -> XmlError {
        XmlError::UnsupportedElement {
            path: self.path.clone(),
        }
    }

    /// The error for a repeated singleton.
    pub(crate) fn duplicate(&self) -> XmlError {
        XmlError::Duplicate {
            path: self.path.clone(),
        }
    }

    /// Checks that every attribute was taken and that the element holds no
    /// text; children are the caller's business.
    pub(crate) fn finish(self) -> Result<()> {
        self.finish_attrs()?;
        if !self.el.text.trim().is_empty() {
            return Err(XmlError::UnexpectedText {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Checks that every attribute was taken.
    pub(crate) fn finish_attrs(&self) -> Result<()> {
        match self.taken.iter().position(|t| !t) {
            None => Ok(()),
            Some(idx) => Err(XmlError::UnsupportedAttribute {
                attr: self.el.attrs[idx].0.clone(),
                path: self.path.clone(),
            }),
        }
    }

    /// Finishes a text leaf: checks that every attribute was taken, refuses
    /// children and returns the trimmed text.
    pub(crate) fn text(self) -> Result<String> {
        self.finish_attrs()?;
        if let Some(child) = self.children().next() {
            return Err(child.unsupported());
        }
        Ok(self.el.text.trim().to_string())
    }

    /// Leaf with text parsed as `T`.
    pub(crate) fn text_parse<T>(self) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let what = format!("<{}>", self.path);
        let text = self.text()?;
        text.parse::<T>().map_err(|e| XmlError::InvalidValue {
            what,
            value: text,
            reason: e.to_string(),
        })
    }

    /// Empty element whose attributes the closure reads; refuses children and text.
    pub(crate) fn leaf<T>(mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let value = f(&mut self)?;
        if let Some(child) = self.children().next() {
            return Err(child.unsupported());
        }
        self.finish()?;
        Ok(value)
    }
}

/// Stores `value` in a singleton slot, refusing a second occurrence.
pub(crate) fn once<'a, T>(
    slot: &mut Option<T>,
    node: Node<'a>,
    parse: impl FnOnce(Node<'a>) -> Result<T>,
) -> Result<()> {
    if slot.is_some() {
        return Err(node.duplicate());
    }
    *slot = Some(parse(node)?);
    Ok(())
}
