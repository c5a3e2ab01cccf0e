//! Hindsight's `input_defaults`, `analysis_defaults` and `output_defaults`: cfg keys every
//! plugin of a kind gets when its own cfg does not set them (`[analysis_defaults]` in
//! `blink.toml`). As in Hindsight they cover the sandbox's limits and run settings, not a
//! plugin's own keys; `read_config` sees them as if the cfg had them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{CfgValue, PluginConfig, PluginKind};

/// One kind's defaults, as written in `blink.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct KindDefaults(BTreeMap<String, DefaultValue>);

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DefaultValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
}

/// The keys a kind's defaults may set: Hindsight's list, under Blink's names.
fn settable(kind: PluginKind) -> &'static [&'static str] {
    const COMMON: [&str; 7] = [
        "output_limit",
        "memory_limit",
        "instruction_limit",
        "ticker_interval",
        "preserve_data",
        "restricted_headers",
        "shutdown_on_terminate",
    ];
    match kind {
        PluginKind::Input => &COMMON,
        PluginKind::Analysis => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
            COMMON[5],
            COMMON[6],
            "process_message_inject_limit",
            "timer_event_inject_limit",
        ],
        PluginKind::Output => &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
            COMMON[5],
            COMMON[6],
            "remove_checkpoints_on_terminate",
            "read_queue",
        ],
    }
}

impl KindDefaults {
    /// The defaults as cfg values; an error (for the `blink.toml` key) if a key is not one a
    /// default may set or its value is not valid for it.
    pub fn values(&self, kind: PluginKind) -> Result<Vec<(String, CfgValue)>, String> {
        let allowed = settable(kind);
        let mut values = Vec::with_capacity(self.0.len());
        for (key, value) in &self.0 {
            if !allowed.contains(&key.as_str()) {
                return Err(format!(
                    "`{key}` cannot have a default for {kind} plugins; these can: {}",
                    allowed.join(", ")
                ));
            }
            let value = match value {
                DefaultValue::Bool(b) => CfgValue::Bool(*b),
                DefaultValue::Integer(n) => CfgValue::Number(*n as f64),
                DefaultValue::Float(n) => CfgValue::Number(*n),
                DefaultValue::String(s) => CfgValue::String(s.clone().into_bytes()),
            };
            values.push((key.clone(), value));
        }
        // Checked as a plugin's cfg would check them, so a bad value is refused when Blink
        // starts, naming blink.toml, rather than with every plugin.
        let probe = PluginDefaults::for_kind(kind, values.clone());
        PluginConfig::parse_with(
            kind,
            Path::new("defaults.cfg"),
            b"filename = 'probe.lua' message_matcher = 'TRUE'",
            &probe,
        )
        .map_err(|e| match e {
            super::PluginConfigError::Key { key, reason, .. } => format!("`{key}` {reason}"),
            other => other.to_string(),
        })?;
        Ok(values)
    }
}

/// Every kind's defaults, ready to merge into cfgs.
#[derive(Debug, Clone, Default)]
pub struct PluginDefaults {
    by_kind: [Vec<(String, CfgValue)>; 3],
}

impl PluginDefaults {
    pub fn new(
        input: Vec<(String, CfgValue)>,
        analysis: Vec<(String, CfgValue)>,
        output: Vec<(String, CfgValue)>,
    ) -> Self {
        PluginDefaults {
            by_kind: [input, analysis, output],
        }
    }

    fn for_kind(kind: PluginKind, values: Vec<(String, CfgValue)>) -> Self {
        let mut defaults = PluginDefaults::default();
        defaults.by_kind[kind as usize] = values;
        defaults
    }

    /// The defaults of plugins of `kind`.
    pub fn of(&self, kind: PluginKind) -> &[(String, CfgValue)] {
        &self.by_kind[kind as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(toml_text: &str) -> KindDefaults {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn a_cfg_gets_the_defaults_it_does_not_set_itself() {
        let values = defaults("instruction_limit = 0\nticker_interval = 60\npreserve_data = true")
            .values(PluginKind::Analysis)
            .unwrap();
        let all = PluginDefaults::new(vec![], values, vec![]);
        let config = PluginConfig::parse_with(
            PluginKind::Analysis,
            Path::new("hs_run/analysis/a.cfg"),
            b"filename = 'a.lua' message_matcher = 'TRUE' ticker_interval = 5",
            &all,
        )
        .unwrap();
        assert_eq!(config.instruction_limit, 0, "from the defaults");
        assert!(config.preserve_data, "from the defaults");
        assert_eq!(config.ticker_interval, 5, "the cfg's own value wins");
        assert!(
            matches!(config.get("instruction_limit"), Some(CfgValue::Number(n)) if *n == 0.0),
            "read_config sees the default"
        );
        // Another kind's defaults do not apply.
        let input = PluginConfig::parse_with(
            PluginKind::Input,
            Path::new("hs_run/input/i.cfg"),
            b"filename = 'i.lua'",
            &all,
        )
        .unwrap();
        assert_eq!(input.instruction_limit, 1_000_000);
    }

    #[test]
    fn keys_a_default_cannot_set_and_bad_values_are_refused_by_name() {
        let e = defaults("message_matcher = 'TRUE'")
            .values(PluginKind::Analysis)
            .unwrap_err();
        assert!(e.contains("`message_matcher` cannot have a default"), "{e}");
        let e = defaults("read_queue = 'both'")
            .values(PluginKind::Analysis)
            .unwrap_err();
        assert!(
            e.contains("cannot have a default for analysis plugins"),
            "{e}"
        );
        assert!(
            defaults("read_queue = 'input'")
                .values(PluginKind::Output)
                .is_ok()
        );
        let e = defaults("instruction_limit = -1")
            .values(PluginKind::Input)
            .unwrap_err();
        assert!(
            e.contains("`instruction_limit` must be a whole number"),
            "{e}"
        );
    }
}
