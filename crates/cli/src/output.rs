//! Rendering: virsh-style tables and `key: value` blocks, or JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// Renders a table the way virsh's `vshTablePrint` does: every cell is
/// preceded by one space, columns are padded to their widest cell plus two
/// spaces (the last column is not padded), and the header is underlined by
/// `width + 3` dashes per column.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    push_row(&mut out, &header, &widths);
    out.push_str(&"-".repeat(widths.iter().map(|w| w + 3).sum()));
    out.push('\n');
    for row in rows {
        push_row(&mut out, row, &widths);
    }
    out
}

fn push_row(out: &mut String, row: &[String], widths: &[usize]) {
    let last = row.len().saturating_sub(1);
    for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
        out.push(' ');
        out.push_str(cell);
        if i < last {
            out.push_str(&" ".repeat(width - cell.chars().count() + 2));
        }
    }
    out.push('\n');
}

/// Renders `key: value` lines with the key column padded to `key_width`
/// (virsh uses 15 for `dominfo` and 20 for `nodeinfo`).
pub fn key_values(pairs: &[(&str, String)], key_width: usize) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        let key = format!("{key}:");
        // writing to a String cannot fail
        let _ = writeln!(out, "{key:<key_width$} {value}");
    }
    out
}

/// Pretty-printed JSON of `value`, newline-terminated.
///
/// # Errors
/// Only if `value`'s `Serialize` impl fails, which ours never do.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_virsh_list_layout() {
        let rows = vec![
            vec!["1".to_owned(), "capwguest".to_owned(), "running".to_owned()],
            vec![
                "-".to_owned(),
                "capwguest2".to_owned(),
                "shut off".to_owned(),
            ],
        ];
        // copied from a real `virsh list --all` (captures/list-all)
        let expected = " Id   Name         State\n\
                        -----------------------------\n \
                        1    capwguest    running\n \
                        -    capwguest2   shut off\n";
        assert_eq!(table(&["Id", "Name", "State"], &rows), expected);
    }

    #[test]
    fn empty_table_has_header_and_rule() {
        assert_eq!(
            table(&["Id", "Name", "State"], &[]),
            " Id   Name   State\n--------------------\n"
        );
    }

    #[test]
    fn key_values_pad_keys_like_dominfo() {
        let text = key_values(&[("Id", "1".into()), ("Security model", "none".into())], 15);
        assert_eq!(text, "Id:             1\nSecurity model: none\n");
    }
}
