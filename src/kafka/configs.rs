//! Configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! A topic's `retention.ms` and `retention.bytes` can be set per topic (kept by the log, see
//! [`crate::log::TopicSettings`]); every other setting is Blink's global one from
//! `cfg/blink.toml` and is described read-only, with the source Kafka would report: the default,
//! or the broker's static configuration when blink.toml changed it.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::acl::{Operation, Resource};
use super::broker::{Broker, RequestContext};
use super::codes;
use crate::config::{Config, KafkaConfig};
use crate::log::{LogError, SETTABLE_TOPIC_KEYS, TopicSettings};

/// Resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Where a value comes from (DescribeConfigs `config_source`).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// Value types (DescribeConfigs v3+ `config_type`).
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// One described setting.
struct Entry {
    name: &'static str,
    value: String,
    source: i8,
    read_only: bool,
    kind: i8,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// The source of a global setting: Kafka's "default" when blink.toml left it alone.
fn global_source(is_default: bool) -> i8 {
    if is_default {
        DEFAULT_CONFIG
    } else {
        STATIC_BROKER_CONFIG
    }
}

/// A limit as Kafka writes it: -1 for none.
fn limit(value: Option<u64>) -> String {
    value.map_or(-1, |v| v as i64).to_string()
}

/// A time limit in milliseconds, -1 for none.
fn ms(value: Option<std::time::Duration>) -> String {
    limit(value.map(|d| d.as_millis() as u64))
}

impl Broker {
    /// A topic's settings: its own where it has them, else the global ones.
    fn topic_entries(&self, topic: &str) -> Vec<Entry> {
        let config = self.log.config();
        let defaults = Config::default().log();
        let own = self.log.topic_settings(topic);
        let retention = own.retention(config);
        let fixed = |name, value: &str, kind| Entry {
            name,
            value: value.to_owned(),
            source: DEFAULT_CONFIG,
            read_only: true,
            kind,
        };
        let global = |name, value: String, is_default, kind| Entry {
            name,
            value,
            source: global_source(is_default),
            read_only: !SETTABLE_TOPIC_KEYS.contains(&name),
            kind,
        };
        let overridable = |name, value: String, own: bool, is_default, kind| Entry {
            source: if own {
                DYNAMIC_TOPIC_CONFIG
            } else {
                global_source(is_default)
            },
            ..global(name, value, is_default, kind)
        };
        let segment_default = config.segment_bytes == defaults.segment_bytes;
        vec![
            Entry {
                read_only: false,
                ..fixed("cleanup.policy", "delete", LIST)
            },
            fixed("compression.type", "producer", STRING),
            global(
                "max.message.bytes",
                config.segment_bytes.to_string(),
                segment_default,
                INT,
            ),
            fixed("message.timestamp.type", "CreateTime", STRING),
            overridable(
                "retention.bytes",
                limit(retention.bytes),
                own.retention_bytes.is_some(),
                config.retention_bytes == defaults.retention_bytes,
                LONG,
            ),
            overridable(
                "retention.ms",
                ms(retention.age),
                own.retention_ms.is_some(),
                config.retention_age == defaults.retention_age,
                LONG,
            ),
            global(
                "segment.bytes",
                config.segment_bytes.to_string(),
                segment_default,
                INT,
            ),
            global(
                "segment.ms",
                config.segment_age.as_millis().to_string(),
                config.segment_age == defaults.segment_age,
                LONG,
            ),
        ]
    }

    /// The broker's settings, under Kafka's broker names; all from blink.toml, read-only.
    fn broker_entries(&self) -> Vec<Entry> {
        let log = self.log.config();
        let defaults = Config::default().log();
        let kafka = &self.config;
        let kafka_defaults = KafkaConfig::default();
        let entry = |name, value: String, is_default, kind| Entry {
            name,
            value,
            source: global_source(is_default),
            read_only: true,
            kind,
        };
        vec![
            entry(
                "advertised.listeners",
                format!("PLAINTEXT://{}:{}", self.host.as_str(), self.port),
                kafka.advertised_host.is_empty(),
                LIST,
            ),
            entry(
                "auto.create.topics.enable",
                kafka.auto_create_topics.to_string(),
                kafka.auto_create_topics == kafka_defaults.auto_create_topics,
                BOOLEAN,
            ),
            entry("broker.id", "0".into(), true, INT),
            entry(
                "connections.max.idle.ms",
                kafka.connections_max_idle_ms.to_string(),
                kafka.connections_max_idle_ms == kafka_defaults.connections_max_idle_ms,
                LONG,
            ),
            entry(
                "group.initial.rebalance.delay.ms",
                kafka.group_initial_rebalance_delay_ms.to_string(),
                kafka.group_initial_rebalance_delay_ms
                    == kafka_defaults.group_initial_rebalance_delay_ms,
                INT,
            ),
            entry(
                "listeners",
                format!("PLAINTEXT://{}", kafka.listen),
                kafka.listen == kafka_defaults.listen,
                LIST,
            ),
            entry(
                "log.retention.bytes",
                limit(log.retention_bytes),
                log.retention_bytes == defaults.retention_bytes,
                LONG,
            ),
            entry(
                "log.retention.ms",
                ms(log.retention_age),
                log.retention_age == defaults.retention_age,
                LONG,
            ),
            entry(
                "log.roll.ms",
                log.segment_age.as_millis().to_string(),
                log.segment_age == defaults.segment_age,
                LONG,
            ),
            entry(
                "log.segment.bytes",
                log.segment_bytes.to_string(),
                log.segment_bytes == defaults.segment_bytes,
                INT,
            ),
            entry(
                "max.connections",
                kafka.max_connections.to_string(),
                kafka.max_connections == kafka_defaults.max_connections,
                INT,
            ),
            entry(
                "max.connections.per.ip",
                kafka.max_connections_per_ip.to_string(),
                kafka.max_connections_per_ip == kafka_defaults.max_connections_per_ip,
                INT,
            ),
            entry(
                "message.max.bytes",
                log.segment_bytes.to_string(),
                log.segment_bytes == defaults.segment_bytes,
                INT,
            ),
            entry(
                "num.partitions",
                kafka.default_partitions.to_string(),
                kafka.default_partitions == kafka_defaults.default_partitions,
                INT,
            ),
            entry(
                "socket.request.max.bytes",
                kafka.max_request_bytes.to_string(),
                kafka.max_request_bytes == kafka_defaults.max_request_bytes,
                INT,
            ),
            entry(
                "connections.max.reauth.ms",
                kafka.connections_max_reauth_ms.to_string(),
                kafka.connections_max_reauth_ms == kafka_defaults.connections_max_reauth_ms,
                LONG,
            ),
        ]
    }

    pub(super) fn describe_configs(
        &self,
        request: DescribeConfigsRequest,
        cx: &RequestContext,
    ) -> DescribeConfigsResponse {
        let results = request
            .resources
            .into_iter()
            .map(|r| {
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let (resource, denied) = match r.resource_type {
                    TOPIC => (
                        Resource::Topic(&r.resource_name),
                        codes::TOPIC_AUTHORIZATION_FAILED,
                    ),
                    _ => (Resource::Cluster, codes::CLUSTER_AUTHORIZATION_FAILED),
                };
                if !self.may(cx, Operation::Describe, resource) {
                    return result
                        .with_error_code(denied)
                        .with_error_message(Some(self.refusal(cx, Operation::Describe, resource)));
                }
                let entries = match r.resource_type {
                    TOPIC if self.log.partitions(&r.resource_name).is_none() => {
                        return result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(text(&format!(
                                "{} does not exist",
                                r.resource_name.as_str()
                            ))));
                    }
                    TOPIC => self.topic_entries(&r.resource_name),
                    BROKER => self.broker_entries(),
                    other => {
                        return result
                            .with_error_code(codes::INVALID_REQUEST)
                            .with_error_message(Some(text(&format!(
                                "resource type {other} is not described"
                            ))));
                    }
                };
                let wanted = |name: &str| {
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
                };
                result.with_configs(
                    entries
                        .into_iter()
                        .filter(|e| wanted(e.name))
                        .map(|e| {
                            DescribeConfigsResourceResult::default()
                                .with_name(text(e.name))
                                .with_value(Some(text(&e.value)))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source)
                                .with_config_type(e.kind)
                        })
                        .collect(),
                )
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    /// Checks a topic resource of an alter request, then applies `change` to its settings and
    /// stores them unless `validate_only`. Returns the error code and message.
    fn alter_topic(
        &self,
        cx: &RequestContext,
        resource_type: i8,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(TopicSettings) -> Result<TopicSettings, String>,
    ) -> (i16, Option<String>) {
        let (resource, denied) = match resource_type {
            TOPIC => (Resource::Topic(name), codes::TOPIC_AUTHORIZATION_FAILED),
            _ => (Resource::Cluster, codes::CLUSTER_AUTHORIZATION_FAILED),
        };
        if !self.may(cx, Operation::Alter, resource) {
            let why = self.policy.refusal(cx.who(), Operation::Alter, resource);
            return (denied, Some(why));
        }
        match resource_type {
            TOPIC => {}
            BROKER => {
                return (
                    codes::INVALID_REQUEST,
                    Some("Blink's broker settings are read from cfg/blink.toml at start".into()),
                );
            }
            other => {
                return (
                    codes::INVALID_REQUEST,
                    Some(format!("resource type {other} has no settings in Blink")),
                );
            }
        }
        if self.log.partitions(name).is_none() {
            return (
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(format!("{name} does not exist")),
            );
        }
        let settings = match change(self.log.topic_settings(name)) {
            Ok(s) => s,
            Err(message) => return (codes::INVALID_CONFIG, Some(message)),
        };
        if validate_only {
            return (codes::NONE, None);
        }
        match self.log.set_topic_settings(name, settings.clone()) {
            Ok(()) => {
                tracing::info!(topic = name, ?settings, "kafka: topic settings changed");
                (codes::NONE, None)
            }
            Err(LogError::UnknownTopic(_)) => (
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(format!("{name} does not exist")),
            ),
            Err(e) => (codes::KAFKA_STORAGE_ERROR, Some(e.to_string())),
        }
    }

    /// AlterConfigs: the given settings replace all of a topic's own settings.
    pub(super) fn alter_configs(
        &self,
        request: AlterConfigsRequest,
        cx: &RequestContext,
    ) -> AlterConfigsResponse {
        let responses = request
            .resources
            .into_iter()
            .map(|r| {
                let (code, message) = self.alter_topic(
                    cx,
                    r.resource_type,
                    &r.resource_name,
                    request.validate_only,
                    |_| {
                        let mut settings = TopicSettings::default();
                        for c in &r.configs {
                            settings.set(&c.name, c.value.as_deref())?;
                        }
                        Ok(settings)
                    },
                );
                AlterResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    }

    /// IncrementalAlterConfigs: SET and DELETE; APPEND and SUBTRACT only for the one list
    /// setting, `cleanup.policy` (which can only ever be `delete`).
    pub(super) fn incremental_alter_configs(
        &self,
        request: IncrementalAlterConfigsRequest,
        cx: &RequestContext,
    ) -> IncrementalAlterConfigsResponse {
        let responses = request
            .resources
            .into_iter()
            .map(|r| {
                let (code, message) = self.alter_topic(
                    cx,
                    r.resource_type,
                    &r.resource_name,
                    request.validate_only,
                    |mut settings| {
                        for c in &r.configs {
                            match c.config_operation {
                                SET if c.value.is_some() => {
                                    settings.set(&c.name, c.value.as_deref())?
                                }
                                SET => return Err(format!("{}: SET needs a value", c.name)),
                                DELETE => settings.set(&c.name, None)?,
                                APPEND if c.name.as_str() == "cleanup.policy" => {
                                    settings.set(&c.name, c.value.as_deref())?
                                }
                                SUBTRACT
                                    if c.name.as_str() == "cleanup.policy"
                                        && c.value.as_deref() != Some("delete") => {}
                                SUBTRACT if c.name.as_str() == "cleanup.policy" => {
                                    return Err("cleanup.policy: Blink always deletes old \
                                                segments; `delete` cannot be removed"
                                        .into());
                                }
                                op => {
                                    return Err(format!(
                                        "{}: operation {op} (APPEND/SUBTRACT) applies to list \
                                         settings; this one is a single value",
                                        c.name
                                    ));
                                }
                            }
                        }
                        Ok(settings)
                    },
                );
                IncrementalResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }
}
