//! Metadata and CreateTopics: which topics and partitions exist, and making new ones.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::acl::{Operation, Resource};
use super::broker::{Broker, RequestContext};
use super::codes;
use crate::log::{LogError, TopicSettings, validate_topic_name};

/// Blink is a cluster of one broker, node 0.
const NODE: BrokerId = BrokerId(0);
const CLUSTER_ID: &str = "blink";

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

impl Broker {
    pub(super) fn metadata(
        &self,
        request: MetadataRequest,
        cx: &RequestContext,
    ) -> MetadataResponse {
        let version = cx.version;
        let wanted: Option<Vec<String>> = match request.topics {
            None => None,
            // v0 has no null: an empty list means every topic.
            Some(list) if version == 0 && list.is_empty() => None,
            Some(list) => Some(
                list.into_iter()
                    .filter_map(|t| t.name.map(|n| n.0.to_string()))
                    .collect(),
            ),
        };
        let may_create =
            self.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
        let topics = match wanted {
            // Every topic the client may see; the others are left out, as Kafka does.
            None => self
                .log
                .topics()
                .into_iter()
                .filter(|(name, _)| {
                    self.policy
                        .allows(cx.who(), Operation::Describe, Resource::Topic(name))
                })
                .map(|(name, _)| self.topic_metadata(&name, false))
                .collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    if !self.may(cx, Operation::Describe, Resource::Topic(name)) {
                        return MetadataResponseTopic::default()
                            .with_name(Some(topic_name(name)))
                            .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let create = may_create && self.policy.allows_auto_create(cx.who(), name);
                    self.topic_metadata(name, create)
                })
                .collect(),
        };
        MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(NODE)
                    .with_host(cx.endpoint.host.clone())
                    .with_port(cx.endpoint.port),
            ])
            .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
            .with_controller_id(NODE)
            .with_topics(topics)
    }

    fn topic_metadata(&self, name: &str, may_create: bool) -> MetadataResponseTopic {
        let topic = MetadataResponseTopic::default().with_name(Some(topic_name(name)));
        if validate_topic_name(name).is_err() {
            return topic.with_error_code(codes::INVALID_TOPIC_EXCEPTION);
        }
        let mut partitions = self.log.partitions(name);
        if partitions.is_none() && may_create {
            match self.log.create_topic(name, self.config.default_partitions) {
                Ok(()) => tracing::info!(
                    topic = name,
                    partitions = self.config.default_partitions,
                    "kafka: topic created on request"
                ),
                Err(LogError::TopicExists(_)) => {}
                Err(e @ LogError::TooManyPartitions { .. }) => {
                    tracing::warn!(topic = name, error = %e, "kafka: not creating a topic");
                    return topic.with_error_code(codes::INVALID_PARTITIONS);
                }
                Err(e) => {
                    tracing::error!(topic = name, error = %e, "kafka: cannot create topic");
                    return topic.with_error_code(codes::KAFKA_STORAGE_ERROR);
                }
            }
            partitions = self.log.partitions(name);
        }
        let Some(partitions) = partitions else {
            return topic.with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION);
        };
        topic.with_partitions(
            (0..partitions.len() as i32)
                .map(|i| {
                    MetadataResponsePartition::default()
                        .with_partition_index(i)
                        .with_leader_id(NODE)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![NODE])
                        .with_isr_nodes(vec![NODE])
                })
                .collect(),
        )
    }

    pub(super) fn create_topics(
        &self,
        request: CreateTopicsRequest,
        cx: &RequestContext,
    ) -> CreateTopicsResponse {
        let results = request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let partitions = if t.num_partitions == -1 {
                    self.config.default_partitions as i32
                } else {
                    t.num_partitions
                };
                let result = CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                let fail = |code, message: String| {
                    result
                        .clone()
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message)))
                };
                let topic = Resource::Topic(&name);
                if !self.may(cx, Operation::Create, topic) {
                    return fail(
                        codes::TOPIC_AUTHORIZATION_FAILED,
                        self.refusal(cx, Operation::Create, topic).to_string(),
                    );
                }
                if let Err(e) = validate_topic_name(&name) {
                    return fail(codes::INVALID_TOPIC_EXCEPTION, e.to_string());
                }
                if !(1..=10_000).contains(&partitions) {
                    return fail(
                        codes::INVALID_PARTITIONS,
                        format!("{partitions} partitions: 1 to 10000 are possible"),
                    );
                }
                if !matches!(t.replication_factor, -1 | 1) {
                    return fail(
                        codes::INVALID_REPLICATION_FACTOR,
                        format!(
                            "replication factor {}: Blink is one broker, so only 1",
                            t.replication_factor
                        ),
                    );
                }
                let mut settings = TopicSettings::default();
                for config in &t.configs {
                    if let Err(message) = settings.set(&config.name, config.value.as_deref()) {
                        return fail(codes::INVALID_CONFIG, message);
                    }
                }
                if self.log.partitions(&name).is_some() {
                    return fail(codes::TOPIC_ALREADY_EXISTS, format!("{name} exists"));
                }
                if request.validate_only {
                    return result;
                }
                match self.log.create_topic(&name, partitions as u32) {
                    Ok(()) => {
                        tracing::info!(topic = %name, partitions, ?settings, "kafka: topic created");
                        if let Err(e) = self.log.set_topic_settings(&name, settings) {
                            return fail(codes::KAFKA_STORAGE_ERROR, e.to_string());
                        }
                        result
                    }
                    Err(LogError::TopicExists(_)) => {
                        fail(codes::TOPIC_ALREADY_EXISTS, format!("{name} exists"))
                    }
                    Err(e @ LogError::TooManyPartitions { .. }) => {
                        fail(codes::INVALID_PARTITIONS, e.to_string())
                    }
                    Err(e) => fail(codes::KAFKA_STORAGE_ERROR, e.to_string()),
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(results)
    }
}
