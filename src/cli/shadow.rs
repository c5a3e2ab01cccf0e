//! `blink shadow`: how a detection in shadow mode compares with the live one of the same rule
//! id, over the alerts both raised on the same events.
//!
//! Alert ids are the rule id, the dedup key and the window's first second, so the same events
//! give the same id in both: ids in both are alerts the change keeps, ids only in the live rule
//! are alerts it would drop, ids only in the shadow rule alerts it would add. Read from
//! `blink.analysis` (read-only, beside a running Blink), counting each alert once (its `new` or
//! `merged` message; updates are the same alert).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use blink::log::{ANALYSIS_TOPIC, PartitionReader};
use blink::message::{MessageView, Value};

/// The alert ids one rule raised, live and in shadow.
#[derive(Default)]
struct RuleAlerts {
    live: BTreeSet<String>,
    shadow: BTreeSet<String>,
}

pub fn shadow(config_path: Option<&Path>, list: bool) -> anyhow::Result<ExitCode> {
    let config = super::config_file::load_config(config_path)?;
    let log = super::config_file::open_log_read_only(&config)?;
    let mut rules: BTreeMap<String, RuleAlerts> = BTreeMap::new();
    for partition in log.partitions(ANALYSIS_TOPIC).unwrap_or_default() {
        let start = partition.log_start();
        let mut reader = PartitionReader::new(partition, start);
        while let Some(record) = reader.next_record()? {
            let Ok(view) = MessageView::parse(record.value.as_deref().unwrap_or_default()) else {
                continue;
            };
            let shadow = match view.r#type() {
                Some(b"blink.alert") => false,
                Some(b"blink.shadow") => true,
                _ => continue,
            };
            let text = |name: &[u8]| match view.field_value(name, 0, 0) {
                Some(Value::String(s)) => Some(String::from_utf8_lossy(s).into_owned()),
                _ => None,
            };
            if !matches!(text(b"status").as_deref(), Some("new" | "merged")) {
                continue;
            }
            let (Some(rule), Some(id)) = (text(b"rule_id"), text(b"alert_id")) else {
                continue;
            };
            let alerts = rules.entry(rule).or_default();
            if shadow {
                alerts.shadow.insert(id);
            } else {
                alerts.live.insert(id);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let with_shadow: Vec<_> = rules.iter().filter(|(_, a)| !a.shadow.is_empty()).collect();
    if with_shadow.is_empty() {
        writeln!(
            out,
            "no shadow alerts in {ANALYSIS_TOPIC}: a rule with mode = \"shadow\" has not alerted yet"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "rule\tlive\tshadow\tboth\tonly live\tonly shadow")?;
    for (rule, alerts) in &with_shadow {
        let both = alerts.live.intersection(&alerts.shadow).count();
        writeln!(
            out,
            "{rule}\t{}\t{}\t{both}\t{}\t{}",
            alerts.live.len(),
            alerts.shadow.len(),
            alerts.live.len() - both,
            alerts.shadow.len() - both
        )?;
    }
    if list {
        for (rule, alerts) in &with_shadow {
            for id in alerts.live.difference(&alerts.shadow) {
                writeln!(out, "{rule}\tonly live\t{id}")?;
            }
            for id in alerts.shadow.difference(&alerts.live) {
                writeln!(out, "{rule}\tonly shadow\t{id}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
