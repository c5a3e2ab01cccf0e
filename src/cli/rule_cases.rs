//! The case files of `blink test`: `NAME.test.toml` (or `NAME.test.json`, the same document as
//! JSON: `{"case": [{"name": …, "events": […], "expect": […]}]}`) beside a detection's
//! `NAME.cfg`, each case a list of events and the alerts they must raise (docs/detections.md).
//!
//! ```toml
//! [[case]]
//! name = "three failures from one address alert once"
//! start = "2026-01-05T03:00:00Z"   # optional; the events' `at` counts seconds from it
//! until = 4000                     # optional: run the clock this far, so windows close
//! events = [
//!   {at = 0, Type = "auth", Fields = {outcome = "failure", src_ip = "10.0.0.1"}},
//! ]
//! expect = [{status = "new", count = 3}]   # [] when nothing may alert
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// What a case file holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

/// One case: events in, alerts expected out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// RFC 3339 time the events' `at` counts from (default 2024-01-01T00:00:00Z).
    pub start: Option<String>,
    /// Seconds after `start` to move the clock to once the events are in.
    pub until: Option<f64>,
    pub events: Vec<toml::Table>,
    /// Each alert's fields that must hold, in order; empty: no alert.
    pub expect: Vec<toml::Table>,
}

/// The default `start`.
const DEFAULT_START_S: i64 = 1_704_067_200;
/// Events one case may hold: a case is a unit test, not a replay (use `blink run --batch`).
const MAX_EVENTS: usize = 100_000;

impl Case {
    /// `start` in seconds since the epoch.
    pub fn start_s(&self) -> anyhow::Result<i64> {
        match &self.start {
            None => Ok(DEFAULT_START_S),
            Some(text) => blink::time::parse_rfc3339(text.as_bytes())
                .map(|ns| (ns / 1e9) as i64)
                .with_context(|| {
                    format!("start = {text:?} is not an RFC 3339 time such as 2026-01-05T03:00:00Z")
                }),
        }
    }
}

/// The endings of case file names.
const ENDINGS: [&str; 2] = [".test.toml", ".test.json"];

/// Reads and checks a case file (TOML, or JSON if its name ends `.test.json`).
pub fn load(path: &Path) -> anyhow::Result<CaseFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed: anyhow::Result<CaseFile> = if path.to_string_lossy().ends_with(".json") {
        serde_json::from_str(&text).map_err(anyhow::Error::from)
    } else {
        toml::from_str(&text).map_err(anyhow::Error::from)
    };
    let file = parsed.with_context(|| format!("{} is not a case file", path.display()))?;
    if file.cases.is_empty() {
        bail!("{} has no [[case]]", path.display());
    }
    for case in &file.cases {
        if case.events.len() > MAX_EVENTS {
            bail!(
                "{}: case {:?} has {} events; at most {MAX_EVENTS}",
                path.display(),
                case.name,
                case.events.len()
            );
        }
        case.start_s()
            .with_context(|| format!("{}: case {:?}", path.display(), case.name))?;
    }
    Ok(file)
}

/// The detection's cfg a case file belongs to: `NAME.cfg` beside `NAME.test.toml` (`.json`).
pub fn rule_cfg(case_file: &Path) -> anyhow::Result<PathBuf> {
    let name = case_file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| ENDINGS.iter().find_map(|end| n.strip_suffix(end)))
        .with_context(|| {
            format!(
                "{} is not named NAME.test.toml or NAME.test.json",
                case_file.display()
            )
        })?;
    let cfg = case_file.with_file_name(format!("{name}.cfg"));
    if !cfg.is_file() {
        bail!(
            "{}: no {} beside it (a case file tests the detection of the same name)",
            case_file.display(),
            cfg.display()
        );
    }
    Ok(cfg)
}

/// Every case file under `dirs` (recursively; a directory that does not exist has none).
pub fn find(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if ENDINGS
                .iter()
                .any(|end| path.to_string_lossy().ends_with(end))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
