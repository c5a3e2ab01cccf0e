//! Topic administration: DeleteTopics, CreatePartitions.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::acl::{Operation, Resource};
use super::broker::{Broker, RequestContext};
use super::codes;
use crate::log::LogError;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A topic operation's error as a Kafka code and message.
fn log_error(e: &LogError) -> (i16, String) {
    let code = match e {
        LogError::UnknownTopic(_) => codes::UNKNOWN_TOPIC_OR_PARTITION,
        LogError::InvalidTopic { .. } => codes::INVALID_TOPIC_EXCEPTION,
        LogError::TooManyPartitions { .. } => codes::INVALID_PARTITIONS,
        _ => codes::KAFKA_STORAGE_ERROR,
    };
    (code, e.to_string())
}

impl Broker {
    pub(super) fn delete_topics(
        &self,
        request: DeleteTopicsRequest,
        cx: &RequestContext,
    ) -> DeleteTopicsResponse {
        let names: Vec<TopicName> = request
            .topic_names
            .into_iter()
            .chain(request.topics.into_iter().filter_map(|t| t.name))
            .collect();
        let responses = names
            .into_iter()
            .map(|name| {
                let result = DeletableTopicResult::default().with_name(Some(name.clone()));
                let topic = Resource::Topic(&name.0);
                if !self.may(cx, Operation::Delete, topic) {
                    return result
                        .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                        .with_error_message(Some(self.refusal(cx, Operation::Delete, topic)));
                }
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
        cx: &RequestContext,
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
                let topic = Resource::Topic(&t.name.0);
                if !self.may(cx, Operation::Alter, topic) {
                    return fail(
                        codes::TOPIC_AUTHORIZATION_FAILED,
                        self.refusal(cx, Operation::Alter, topic).to_string(),
                    );
                }
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
}
