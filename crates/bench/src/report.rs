//! Markdown tables for results.

/// A Markdown table built row by row.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| (*s).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (cells beyond the header are dropped, missing ones empty).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as Markdown, one line per row.
    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// `value` with `decimals` places, or `-` when missing.
pub fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "-".to_owned(),
    }
}

/// A ratio as `1.23x`, or nothing when missing.
pub fn fmt_ratio(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.2}x"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown_with_padding_rows() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["1".into()]);
        t.row(vec!["x".into(), "y".into(), "dropped".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---|\n| 1 |  |\n| x | y |\n");
    }

    #[test]
    fn formats_missing_and_present_values() {
        assert_eq!(fmt_opt(Some(1.23456), 2), "1.23");
        assert_eq!(fmt_opt(None, 2), "-");
        assert_eq!(fmt_opt(Some(f64::NAN), 2), "-");
        assert_eq!(fmt_ratio(Some(3.0)), "3.00x");
        assert_eq!(fmt_ratio(None), "");
    }
}
