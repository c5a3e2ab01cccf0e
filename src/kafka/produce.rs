//! Produce and InitProducerId: batches are checked (framing, CRC, Heka values for the queues,
//! idempotent producers' sequence numbers) and stored as the producer sent them — except that a
//! compressed batch for a queue is stored decompressed, so plugins read it without decompressing.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::protocol::StrBytes;

use super::acl::{Operation, Resource};
use super::broker::{Broker, RequestContext};
use super::codes;
use super::producers::{ProducedBatch, Refused};
use crate::log::batch::{self, Batch, BatchHeader, Compression};
use crate::log::{Partition, is_queue};
use crate::message::MessageView;

/// The most record bytes a produce may carry and still run on the connection's task (see
/// [`Broker::produce_is_light`]): copying this much into the page cache takes well under a
/// millisecond even where first use of a page is slow.
const LIGHT_PRODUCE_BYTES: usize = 64 * 1024;

/// One partition's outcome.
struct Outcome {
    code: i16,
    base_offset: i64,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
}

impl Outcome {
    fn error(code: i16, message: impl Into<String>) -> Self {
        Outcome {
            code,
            base_offset: -1,
            message: Some(message.into()),
            record_errors: Vec::new(),
        }
    }
}

/// The batches of a partition's `records`, each checked (framing, magic, CRC).
fn split_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, Outcome> {
    let mut out = Vec::new();
    let mut rest = records.clone();
    while !rest.is_empty() {
        let header = BatchHeader::parse(&rest)
            .map_err(|e| Outcome::error(codes::CORRUPT_MESSAGE, e.to_string()))?;
        if header.total_len() > rest.len() {
            return Err(Outcome::error(
                codes::CORRUPT_MESSAGE,
                format!(
                    "a batch of {} bytes is cut at {}",
                    header.total_len(),
                    rest.len()
                ),
            ));
        }
        let bytes = rest.split_to(header.total_len());
        batch::verify(&bytes).map_err(|e| Outcome::error(codes::CORRUPT_MESSAGE, e.to_string()))?;
        out.push((header, bytes));
    }
    if out.is_empty() {
        return Err(Outcome::error(codes::CORRUPT_MESSAGE, "no record batch"));
    }
    Ok(out)
}

/// The queues take only Heka messages: every value must decode, or nothing is written.
fn check_heka(header: &BatchHeader, bytes: &Bytes, index: usize) -> Result<(), Outcome> {
    let batch = Batch::new(*header, bytes.clone());
    let records = batch
        .records()
        .map_err(|e| Outcome::error(codes::CORRUPT_MESSAGE, e.to_string()))?;
    let mut errors = Vec::new();
    for (i, record) in records.enumerate() {
        let record = record.map_err(|e| Outcome::error(codes::CORRUPT_MESSAGE, e.to_string()))?;
        let value = record.value.unwrap_or_default();
        if let Err(e) = MessageView::parse(&value) {
            errors.push((i as i32, e.to_string()));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(Outcome {
        code: codes::INVALID_RECORD,
        base_offset: -1,
        message: Some(format!(
            "batch {index}: {} record(s) are not Heka messages",
            errors.len()
        )),
        record_errors: errors,
    })
}

impl Broker {
    pub(super) fn init_producer_id(
        &self,
        request: InitProducerIdRequest,
        cx: &RequestContext,
    ) -> InitProducerIdResponse {
        if !self.policy.allows_producer_id(cx.who()) {
            self.may(cx, Operation::Write, Resource::Cluster); // logs the refusal
            return InitProducerIdResponse::default()
                .with_error_code(codes::CLUSTER_AUTHORIZATION_FAILED)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
        }
        if request.transactional_id.is_some() {
            return InitProducerIdResponse::default()
                .with_error_code(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
        }
        let id = self.producers.next_id();
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0)
    }

    /// Whether a produce only copies a little into the page cache, so that running it on the
    /// connection's task costs less than the round trip to the blocking pool and back (that
    /// round trip was most of the broker's CPU for small produces): at most
    /// [`LIGHT_PRODUCE_BYTES`] of records, no Heka queue (whose batches are decoded, perhaps
    /// decompressed), and appends that neither fsync nor roll a segment.
    pub(super) fn produce_is_light(&self, request: &ProduceRequest) -> bool {
        let mut total = 0usize;
        request.topic_data.iter().all(|topic| {
            !is_queue(&topic.name.0)
                && topic.partition_data.iter().all(|p| {
                    let len = p.records.as_ref().map_or(0, |r| r.len());
                    total += len;
                    total <= LIGHT_PRODUCE_BYTES
                        && self
                            .partition(&topic.name.0, p.index)
                            .is_none_or(|partition| partition.append_is_light(len))
                })
        })
    }

    pub(super) fn produce(&self, request: ProduceRequest, cx: &RequestContext) -> ProduceResponse {
        let transactional = request.transactional_id.is_some();
        let responses = request
            .topic_data
            .into_iter()
            .map(|topic| {
                let name = topic.name.0.to_string();
                let writable = self.may(cx, Operation::Write, Resource::Topic(&name));
                let partitions = topic
                    .partition_data
                    .into_iter()
                    .map(|p| {
                        let outcome = if transactional {
                            Outcome::error(
                                codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                                "Blink does not support transactions",
                            )
                        } else if !writable {
                            Outcome::error(
                                codes::TOPIC_AUTHORIZATION_FAILED,
                                self.policy.refusal(
                                    cx.who(),
                                    Operation::Write,
                                    Resource::Topic(&name),
                                ),
                            )
                        } else {
                            self.produce_partition(&name, p.index, p.records)
                        };
                        let log_start =
                            self.partition(&name, p.index).map_or(-1, |p| p.log_start());
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(outcome.code)
                            .with_base_offset(outcome.base_offset)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(log_start)
                            .with_error_message(outcome.message.map(StrBytes::from_string))
                            .with_record_errors(
                                outcome
                                    .record_errors
                                    .into_iter()
                                    .map(|(i, m)| {
                                        BatchIndexAndErrorMessage::default()
                                            .with_batch_index(i)
                                            .with_batch_index_error_message(Some(
                                                StrBytes::from_string(m),
                                            ))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_partition_responses(partitions)
            })
            .collect();
        ProduceResponse::default().with_responses(responses)
    }

    fn produce_partition(&self, topic: &str, index: i32, records: Option<Bytes>) -> Outcome {
        let partition = self.partition(topic, index);
        let Some(partition) = partition else {
            return Outcome::error(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("{topic}-{index} does not exist"),
            );
        };
        let Some(records) = records else {
            return Outcome::error(codes::CORRUPT_MESSAGE, "no records");
        };
        let mut batches = match split_batches(&records) {
            Ok(b) => b,
            Err(o) => return o,
        };
        if is_queue(topic) {
            for (i, (header, bytes)) in batches.iter_mut().enumerate() {
                if header.compression() == Compression::None {
                    continue;
                }
                match batch::decompressed(header, bytes) {
                    Ok(plain) => {
                        *bytes = Bytes::from(plain);
                        *header =
                            batch::verify(bytes).expect("a decompressed batch is well formed");
                    }
                    Err(e) => {
                        return Outcome::error(codes::CORRUPT_MESSAGE, format!("batch {i}: {e}"));
                    }
                }
            }
        }
        let max = self.log.config().segment_bytes as usize;
        for (i, (header, bytes)) in batches.iter().enumerate() {
            if bytes.len() > max {
                return Outcome::error(
                    codes::MESSAGE_TOO_LARGE,
                    format!(
                        "a batch of {} bytes is larger than a segment ({max})",
                        bytes.len()
                    ),
                );
            }
            if is_queue(topic)
                && let Err(o) = check_heka(header, bytes, i)
            {
                return o;
            }
        }
        let mut first = None;
        for (header, bytes) in batches {
            let base = match self.append(&partition, topic, index, &header, &bytes) {
                Ok(base) => base,
                Err(o) => return o,
            };
            first.get_or_insert(base);
        }
        Outcome {
            code: codes::NONE,
            base_offset: first.unwrap_or(-1),
            message: None,
            record_errors: Vec::new(),
        }
    }

    /// Appends one batch; for an idempotent producer, checks its sequence first (a batch it
    /// already wrote is answered with the offset it got then, and not written again).
    fn append(
        &self,
        partition: &Arc<Partition>,
        topic: &str,
        index: i32,
        header: &BatchHeader,
        bytes: &Bytes,
    ) -> Result<i64, Outcome> {
        let write = || {
            partition.append(bytes).map(|a| a.base_offset).map_err(|e| {
                tracing::error!(topic, partition = index, error = %e, "kafka: produce failed");
                Outcome::error(codes::KAFKA_STORAGE_ERROR, e.to_string())
            })
        };
        if header.producer_id < 0 {
            return write();
        }
        let batch = ProducedBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: header.base_sequence.wrapping_add(header.last_offset_delta),
        };
        self.producers
            .write_once(partition, &batch, write)
            .map_err(|refused| match refused {
                Refused::Write(outcome) => outcome,
                Refused::StaleEpoch { epoch, current } => Outcome::error(
                    codes::INVALID_PRODUCER_EPOCH,
                    format!("epoch {epoch} is older than {current}"),
                ),
                Refused::OutOfOrder { first, expected } => Outcome::error(
                    codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    format!("sequence {first}, expected {expected}"),
                ),
            })
    }
}
