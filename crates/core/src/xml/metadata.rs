//! Reading one element out of the verbatim `<metadata>` content.

use std::collections::BTreeMap;

use super::tree;

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
    let wrapped = format!("<metadata>{metadata}</metadata>");
    let root = tree::parse(&wrapped).ok()?;
    root.children.into_iter().find_map(|el| {
        let (prefix, local) = match el.name.split_once(':') {
            Some((p, l)) => (Some(p), l),
            None => (None, el.name.as_str()),
        };
        if local != local_name {
            return None;
        }
        let decl = prefix.map_or_else(|| "xmlns".to_string(), |p| format!("xmlns:{p}"));
        let uri = el
            .attrs
            .iter()
            .find(|(k, _)| *k == decl)
            .map(|(_, v)| v.as_str())
            .or_else(|| {
                let p = prefix?;
                domain_ns
                    .iter()
                    .find(|(dp, _)| dp == p)
                    .map(|(_, u)| u.as_str())
            })?;
        if uri != ns_uri {
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
