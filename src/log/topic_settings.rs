//! Per-topic settings: the retention a client set for one topic (Kafka's `retention.ms` and
//! `retention.bytes`, from CreateTopics or AlterConfigs), over the log's global values.
//!
//! Overrides are kept in `output_path/topic_settings.json`, replaced whole (written to a
//! temporary file, fsynced, renamed) before a change is acknowledged, so they survive a restart.
//! Segment size and age stay global: a segment's size also bounds the largest batch, which every
//! writer of the log relies on.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::LogConfig;

/// A topic's overrides; `None` keeps the log's global value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    #[serde(
        rename = "retention.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retention_ms: Option<i64>,
    #[serde(
        rename = "retention.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retention_bytes: Option<i64>,
}

/// How long and how much a partition keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub age: Option<Duration>,
    pub bytes: Option<u64>,
}

impl Retention {
    /// The log's global retention (`retention_ms`, `retention_bytes` in blink.toml).
    pub fn global(config: &LogConfig) -> Self {
        Retention {
            age: config.retention_age,
            bytes: config.retention_bytes,
        }
    }
}

/// The keys a topic's settings can override.
pub const SETTABLE: &[&str] = &["retention.ms", "retention.bytes"];

impl TopicSettings {
    /// Sets (`Some`) or removes (`None`, back to the global value) one Kafka topic config.
    /// `cleanup.policy=delete` is accepted as what Blink always does. The error says why a key
    /// or value is refused, for the client's INVALID_CONFIG message.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        let limit = |value: Option<&str>| -> Result<Option<i64>, String> {
            let Some(text) = value else { return Ok(None) };
            match text.trim().parse::<i64>() {
                Ok(n) if n == -1 || n > 0 => Ok(Some(n)),
                _ => Err(format!(
                    "{key}={text}: must be -1 (no limit) or a positive number"
                )),
            }
        };
        match key {
            "retention.ms" => self.retention_ms = limit(value)?,
            "retention.bytes" => self.retention_bytes = limit(value)?,
            "cleanup.policy" => match value {
                None | Some("delete") => {}
                Some(other) => {
                    return Err(format!(
                        "cleanup.policy={other}: Blink deletes old segments and has no compaction"
                    ));
                }
            },
            // What Blink always does may be asked for.
            "compression.type" | "message.timestamp.type" => {
                let fixed = if key == "compression.type" {
                    "producer"
                } else {
                    "CreateTime"
                };
                match value {
                    None => {}
                    Some(v) if v == fixed => {}
                    Some(other) => {
                        return Err(format!(
                            "{key}={other}: Blink stores batches as producers send them \
                             ({key}={fixed} only)"
                        ));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "{key} cannot be set per topic in Blink (settable: {}; the rest are the \
                     global settings in blink.toml)",
                    SETTABLE.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == TopicSettings::default()
    }

    /// The retention these settings give, over the log's global values.
    pub fn retention(&self, global: &LogConfig) -> Retention {
        let global = Retention::global(global);
        Retention {
            age: self.retention_ms.map_or(global.age, |ms| {
                u64::try_from(ms).ok().map(Duration::from_millis)
            }),
            bytes: self
                .retention_bytes
                .map_or(global.bytes, |b| u64::try_from(b).ok()),
        }
    }
}

/// Every topic's overrides, as stored in `topic_settings.json`.
pub type SettingsTable = BTreeMap<String, TopicSettings>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_the_global_retention_and_removing_them_restores_it() {
        let mut global = LogConfig::in_dir("/nonexistent");
        global.retention_age = Some(Duration::from_secs(7 * 86400));
        global.retention_bytes = None;
        let mut s = TopicSettings::default();
        s.set("retention.ms", Some("60000")).unwrap();
        s.set("retention.bytes", Some("1048576")).unwrap();
        assert_eq!(
            s.retention(&global),
            Retention {
                age: Some(Duration::from_secs(60)),
                bytes: Some(1 << 20)
            }
        );
        s.set("retention.ms", Some("-1")).unwrap();
        assert_eq!(s.retention(&global).age, None);
        s.set("retention.ms", None).unwrap();
        s.set("retention.bytes", None).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.retention(&global).age, global.retention_age);
    }

    #[test]
    fn refusals_name_the_key_and_value() {
        let mut s = TopicSettings::default();
        for (key, value, says) in [
            ("retention.ms", "0", "retention.ms=0"),
            ("retention.bytes", "lots", "retention.bytes=lots"),
            ("cleanup.policy", "compact", "no compaction"),
            (
                "segment.bytes",
                "1024",
                "segment.bytes cannot be set per topic",
            ),
        ] {
            let err = s.set(key, Some(value)).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
        s.set("cleanup.policy", Some("delete")).unwrap();
        s.set("compression.type", Some("producer")).unwrap();
        assert!(s.is_empty());
        let err = s.set("compression.type", Some("lz4")).unwrap_err();
        assert!(err.contains("compression.type=lz4"), "{err}");
    }

    #[test]
    fn the_table_round_trips_as_kafka_named_json() {
        let mut table = SettingsTable::new();
        let mut s = TopicSettings::default();
        s.set("retention.ms", Some("1000")).unwrap();
        table.insert("events".into(), s);
        let json = serde_json::to_string(&table).unwrap();
        assert_eq!(json, r#"{"events":{"retention.ms":1000}}"#);
        assert_eq!(serde_json::from_str::<SettingsTable>(&json).unwrap(), table);
    }
}
