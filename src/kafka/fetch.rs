//! Fetch (with long polling) and ListOffsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};

use super::acl::{Operation, Resource};
use super::broker::{Broker, RequestContext};
use super::codes;
use crate::log::batch::{Batch, BatchHeader};
use crate::log::{Partition, read_batches};

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

impl Broker {
    /// Answers once `min_bytes` are there or `max_wait_ms` has passed. The log's generation is
    /// marked seen before each look, so an append landing between the look and the wait still
    /// ends the wait; the wait itself is async (no thread held per waiting consumer).
    pub(super) async fn fetch(
        self: &Arc<Self>,
        request: FetchRequest,
        cx: &RequestContext,
    ) -> FetchResponse {
        // Decided once: the waits below look again and again.
        let readable: Vec<bool> = request
            .topics
            .iter()
            .map(|t| self.may(cx, Operation::Read, Resource::Topic(&t.topic)))
            .collect();
        let readable = Arc::new(readable);
        let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
        let request = Arc::new(request);
        let mut appended = self.log.notifier().subscribe();
        let mut at_tail = self.fetch_is_at_tail(&request);
        loop {
            // Marked seen before the look: an append after it ends the wait below.
            appended.borrow_and_update();
            let looked = request.clone();
            let allowed = readable.clone();
            // A look at the tail of the log copies little, from pages just written, and runs on
            // this task: a round trip to the blocking pool and back would cost more than the
            // read (it was most of the broker's CPU for a consumer following a producer). Any
            // other look may read megabytes, or from disk, and runs on the pool.
            let result = if at_tail {
                Ok(self.read_fetch(&looked, &allowed))
            } else {
                self.blocking(move |b| b.read_fetch(&looked, &allowed))
                    .await
            };
            let (response, bytes, errors) = match result {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "kafka: fetch failed");
                    return FetchResponse::default().with_error_code(codes::UNKNOWN_SERVER_ERROR);
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if bytes >= request.min_bytes.max(1) as usize || errors || left.is_zero() {
                return response;
            }
            // Fewer than min_bytes were there: the next look reads those and what arrives
            // while this fetch waits, a tail.
            at_tail = true;
            // Waiting holds no thread: the notifier's watch wakes this task.
            if let Ok(Err(_)) = tokio::time::timeout(left, appended.changed()).await {
                return response; // the log is gone
            }
        }
    }

    /// Whether every partition the fetch asks for has nothing to read yet: its fetch offset is
    /// at (or past) the partition's end.
    fn fetch_is_at_tail(&self, request: &FetchRequest) -> bool {
        request.topics.iter().all(|topic| {
            topic.partitions.iter().all(|p| {
                self.partition(&topic.topic.0, p.partition)
                    .is_some_and(|partition| p.fetch_offset >= partition.next_offset())
            })
        })
    }

    /// One look at every requested partition: the response, its record bytes, and whether any
    /// partition answered with an error (answered at once, as Kafka does). `readable` says, per
    /// topic of the request, whether the client may read it.
    fn read_fetch(
        &self,
        request: &FetchRequest,
        readable: &[bool],
    ) -> (FetchResponse, usize, bool) {
        let mut budget = request.max_bytes.max(0) as usize;
        let mut total = 0usize;
        let mut errors = false;
        let topics = request
            .topics
            .iter()
            .zip(readable)
            .map(|(topic, &readable)| {
                let name = topic.topic.0.to_string();
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let data = PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_preferred_read_replica(BrokerId(-1))
                            .with_aborted_transactions(Some(Vec::new()));
                        if !readable {
                            errors = true;
                            return data
                                .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1);
                        }
                        let partition = self.partition(&name, p.partition);
                        let Some(partition) = partition else {
                            errors = true;
                            return data
                                .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1);
                        };
                        let (start, end) = (partition.log_start(), partition.next_offset());
                        let data = data
                            .with_high_watermark(end)
                            .with_last_stable_offset(end)
                            .with_log_start_offset(start);
                        if p.fetch_offset < start || p.fetch_offset > end {
                            errors = true;
                            return data.with_error_code(codes::OFFSET_OUT_OF_RANGE);
                        }
                        // The first batch is always whole, even past the limits, so a client
                        // can make progress; after it, the limits hold.
                        let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
                        let records = if p.fetch_offset < end {
                            match read_batches(&partition, p.fetch_offset, limit.max(1)) {
                                Ok(batches) => concat(batches, limit, total == 0),
                                Err(e) => {
                                    tracing::error!(topic = %name, partition = p.partition, error = %e, "kafka: cannot read for a fetch");
                                    errors = true;
                                    return data.with_error_code(codes::KAFKA_STORAGE_ERROR);
                                }
                            }
                        } else {
                            Bytes::new()
                        };
                        total += records.len();
                        budget = budget.saturating_sub(records.len());
                        data.with_records(Some(records))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(partitions)
            })
            .collect();
        (
            FetchResponse::default().with_responses(topics),
            total,
            errors,
        )
    }

    pub(super) fn list_offsets(
        &self,
        request: ListOffsetsRequest,
        cx: &RequestContext,
    ) -> ListOffsetsResponse {
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let name = topic.name.0.to_string();
                let visible = self.may(cx, Operation::Describe, Resource::Topic(&name));
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        // leader_epoch stays -1 (unknown): older versions cannot carry it.
                        let answer = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index);
                        if !visible {
                            return answer
                                .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                                .with_offset(-1)
                                .with_timestamp(-1);
                        }
                        let partition = self.partition(&name, p.partition_index);
                        let Some(partition) = partition else {
                            return answer
                                .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                                .with_offset(-1)
                                .with_timestamp(-1);
                        };
                        let (offset, timestamp) = match p.timestamp {
                            LATEST => (partition.next_offset(), -1),
                            EARLIEST => (partition.log_start(), -1),
                            t if t >= 0 => match offset_for_time(&partition, t) {
                                Ok(found) => found,
                                Err(e) => {
                                    tracing::error!(topic = %name, error = %e, "kafka: cannot search by time");
                                    return answer.with_error_code(codes::KAFKA_STORAGE_ERROR);
                                }
                            },
                            // -3 (max timestamp) and others: not kept; say "none".
                            _ => (-1, -1),
                        };
                        answer.with_offset(offset).with_timestamp(timestamp)
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }
}

/// Joins batches into one records field, stopping before the limit (but always keeping the
/// first batch when `first_in_response`).
fn concat(batches: Vec<Bytes>, limit: usize, first_in_response: bool) -> Bytes {
    if batches.len() == 1 {
        let only = batches.into_iter().next().expect("one batch");
        return if first_in_response || only.len() <= limit {
            only
        } else {
            Bytes::new()
        };
    }
    let mut out = BytesMut::new();
    for batch in batches {
        if out.len() + batch.len() > limit && !(out.is_empty() && first_in_response) {
            break;
        }
        out.extend_from_slice(&batch);
    }
    out.freeze()
}

/// The first offset whose record timestamp is at or after `t` (ms), with that timestamp; (-1,
/// -1) if none. Batches are skipped by their max timestamp; only a batch that may hold the
/// answer has its records read (and decompressed).
fn offset_for_time(partition: &Arc<Partition>, t: i64) -> Result<(i64, i64), crate::log::LogError> {
    let mut offset = partition.log_start();
    loop {
        let batches = read_batches(partition, offset, 1 << 20)?;
        if batches.is_empty() {
            return Ok((-1, -1));
        }
        for bytes in batches {
            let header = BatchHeader::parse(&bytes)?;
            offset = header.next_offset();
            if header.max_timestamp < t {
                continue;
            }
            for record in Batch::new(header, bytes).records()? {
                let record = record?;
                if record.timestamp >= t {
                    return Ok((record.offset, record.timestamp));
                }
            }
        }
        if offset >= partition.next_offset() {
            return Ok((-1, -1));
        }
    }
}
