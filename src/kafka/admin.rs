//! Topic administration: DeleteTopics, CreatePartitions, DescribeConfigs.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::broker::Broker;
use super::codes;
use crate::log::LogError;

/// DescribeConfigs resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Config source: the broker's static configuration (Blink's `cfg/blink.toml`).
const STATIC_BROKER_CONFIG: i8 = 4;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A topic operation's error as a Kafka code and message.
fn log_error(e: &LogError) -> (i16, String) {
    let code = match e {
        LogError::UnknownTopic(_) => codes::UNKNOWN_TOPIC_OR_PARTITION,
        LogError::InvalidTopic { .. } => codes::INVALID_TOPIC_EXCEPTION,
        _ => codes::KAFKA_STORAGE_ERROR,
    };
    (code, e.to_string())
}

impl Broker {
    pub(super) fn delete_topics(&self, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
        let names: Vec<TopicName> = request
            .topic_names
            .into_iter()
            .chain(request.topics.into_iter().filter_map(|t| t.name))
            .collect();
        let responses = names
            .into_iter()
            .map(|name| {
                let result = DeletableTopicResult::default().with_name(Some(name.clone()));
                match self.log.delete_topic(&name.0) {
                    Ok(()) => {
                        tracing::info!(topic = %name.0.as_str(), "kafka: topic deleted");
                        result
                    }
                    Err(e) => {
                        let (code, message) = log_error(&e);
                        result
                            .with_error_code(code)
                            .with_error_message(Some(text(&message)))
                    }
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    pub(super) fn create_partitions(
        &self,
        request: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let results = request
            .topics
            .into_iter()
            .map(|t| {
                let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let fail = |code, message: String| {
                    result
                        .clone()
                        .with_error_code(code)
                        .with_error_message(Some(text(&message)))
                };
                let Some(current) = self.log.partitions(&t.name.0).map(|p| p.len() as i32) else {
                    return fail(codes::UNKNOWN_TOPIC_OR_PARTITION, format!("{} does not exist", t.name.0.as_str()));
                };
                if t.count <= current || t.count > 10_000 {
                    return fail(
                        codes::INVALID_PARTITIONS,
                        format!("{} has {current} partitions; the new count must be more, up to 10000", t.name.0.as_str()),
                    );
                }
                if request.validate_only {
                    return result;
                }
                match self.log.add_partitions(&t.name.0, t.count as u32) {
                    Ok(()) => {
                        tracing::info!(topic = %t.name.0.as_str(), partitions = t.count, "kafka: partitions added");
                        result
                    }
                    Err(e) => {
                        let (code, message) = log_error(&e);
                        fail(code, message)
                    }
                }
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }

    /// The settings a topic has in Blink: the log's, shared by every topic.
    fn topic_configs(&self) -> Vec<(&'static str, String)> {
        let config = self.log.config();
        let ms =
            |d: Option<std::time::Duration>| d.map_or(-1, |d| d.as_millis() as i64).to_string();
        vec![
            ("cleanup.policy", "delete".into()),
            ("compression.type", "producer".into()),
            ("max.message.bytes", config.segment_bytes.to_string()),
            ("message.timestamp.type", "CreateTime".into()),
            (
                "retention.bytes",
                config.retention_bytes.map_or(-1, |b| b as i64).to_string(),
            ),
            ("retention.ms", ms(config.retention_age)),
            ("segment.bytes", config.segment_bytes.to_string()),
            ("segment.ms", config.segment_age.as_millis().to_string()),
        ]
    }

    pub(super) fn describe_configs(
        &self,
        request: DescribeConfigsRequest,
    ) -> DescribeConfigsResponse {
        let results = request
            .resources
            .into_iter()
            .map(|r| {
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let configs = match r.resource_type {
                    TOPIC if self.log.partitions(&r.resource_name).is_none() => {
                        return result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(text(&format!(
                                "{} does not exist",
                                r.resource_name.as_str()
                            ))));
                    }
                    TOPIC | BROKER => self.topic_configs(),
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
                    configs
                        .into_iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, value)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(text(name))
                                .with_value(Some(text(&value)))
                                .with_read_only(true)
                                .with_config_source(STATIC_BROKER_CONFIG)
                        })
                        .collect(),
                )
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }
}
