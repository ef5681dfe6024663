//! The fault matrix's results: each case appends a [`Row`] to
//! `target/fault-matrix/<mode>.tsv`; [`render`] turns every mode's rows
//! into the markdown of `docs/reliability.md`, which the matrix writes when
//! `MIGRATED_WRITE_RELIABILITY=1` is set (a normal run writes only the rows).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Environment variable that makes the matrix rewrite `docs/reliability.md`.
pub const WRITE_ENV: &str = "MIGRATED_WRITE_RELIABILITY";

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Migration step the fault hit (pause point name).
    pub step: String,
    /// The fault.
    pub fault: String,
    /// regular, p2p or p2p+tunnelled.
    pub mode: String,
    /// What the migration command reported (`ok` or `failed`).
    pub migrate: String,
    /// Where the one live copy ended up and its state, e.g. `source running`.
    pub guest: String,
    /// Which sides keep a persistent config.
    pub config: String,
    /// What the fault left for recovery (e.g. `recovered: paused, resolved by peer`).
    pub recovery: String,
    /// Wall time of the case in ms.
    pub millis: u128,
}

impl Row {
    fn to_line(&self) -> String {
        let fields = [
            self.step.as_str(),
            &self.fault,
            &self.mode,
            &self.migrate,
            &self.guest,
            &self.config,
            &self.recovery,
            &self.millis.to_string(),
        ];
        let mut line = fields
            .iter()
            .map(|f| f.replace(['\t', '\n'], " "))
            .collect::<Vec<_>>()
            .join("\t");
        line.push('\n');
        line
    }

    fn from_line(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split('\t').collect();
        let [step, fault, mode, migrate, guest, config, recovery, millis] = f.as_slice() else {
            return None;
        };
        Some(Self {
            step: (*step).to_owned(),
            fault: (*fault).to_owned(),
            mode: (*mode).to_owned(),
            migrate: (*migrate).to_owned(),
            guest: (*guest).to_owned(),
            config: (*config).to_owned(),
            recovery: (*recovery).to_owned(),
            millis: millis.trim().parse().ok()?,
        })
    }
}

/// The workspace root (parent of the `tests` crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where the rows of `mode` go.
pub fn rows_path(mode: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join("fault-matrix")
        .join(format!("{}.tsv", mode.replace('+', "-")))
}

/// Starts `mode`'s row file afresh.
///
/// # Panics
/// When the file cannot be written.
pub fn reset(mode: &str) {
    let path = rows_path(mode);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create target/fault-matrix");
    }
    std::fs::write(&path, "").expect("reset fault-matrix rows");
}

/// Appends one row to `row.mode`'s file.
///
/// # Panics
/// When the file cannot be written.
pub fn append(row: &Row) {
    let path = rows_path(&row.mode);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create target/fault-matrix");
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open fault-matrix rows");
    f.write_all(row.to_line().as_bytes())
        .expect("append fault-matrix row");
}

/// Rows recorded for `modes`, in file order.
pub fn load(modes: &[&str]) -> Vec<Row> {
    modes
        .iter()
        .flat_map(|m| {
            std::fs::read_to_string(rows_path(m))
                .unwrap_or_default()
                .lines()
                .filter_map(Row::from_line)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The markdown table of `rows` under `preamble`.
pub fn render(preamble: &str, rows: &[Row]) -> String {
    let mut out = String::from(preamble);
    let mut mode = "";
    for r in rows {
        if r.mode != mode {
            mode = &r.mode;
            let _ = write!(
                out,
                "\n### Mode: {mode}\n\n| step | fault | migrate | guest afterwards | config | recovery | ms |\n|---|---|---|---|---|---|---:|\n"
            );
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.step, r.fault, r.migrate, r.guest, r.config, r.recovery, r.millis
        );
    }
    let total: u128 = rows.iter().map(|r| r.millis).sum();
    let _ = writeln!(
        out,
        "\n{} cases, {:.1} s of case time in total.",
        rows.len(),
        total as f64 / 1000.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_their_line_format() {
        let row = Row {
            step: "perform-done".into(),
            fault: "source killed".into(),
            mode: "p2p".into(),
            migrate: "failed".into(),
            guest: "source paused\twaiting".into(),
            config: "source".into(),
            recovery: "held".into(),
            millis: 1234,
        };
        let back = Row::from_line(row.to_line().trim_end()).expect("parses");
        assert_eq!(back.guest, "source paused waiting");
        assert_eq!(back.millis, 1234);
        let md = render("# T\n", &[back]);
        assert!(md.contains("### Mode: p2p"));
        assert!(md.contains("| perform-done | source killed | failed |"));
        assert!(md.contains("1 cases"));
    }
}
