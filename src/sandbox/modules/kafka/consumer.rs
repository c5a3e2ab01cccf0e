//! `kafka.consumer`: an input plugin's consumers over Blink's own topics (see the module's
//! documentation in `mod.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{Lua, Table, UserData, UserDataMethods, Value, Variadic};

use super::ORIGIN_HEADER;
use crate::log::{Log, LogError, PartitionReader, is_queue};
use crate::plugin::PluginStats;

/// What an input plugin's consumers need from their sandbox.
pub(super) struct ConsumerHost {
    pub log: Arc<Log>,
    /// The plugin, which the log keeps as a topic consumer (retention waits for it).
    pub plugin: String,
    /// Where the consumer's counts show (`plugin_status.tsv`).
    pub stats: Arc<PluginStats>,
    /// The largest value handed over: what the plugin could inject at all.
    pub max_value_bytes: usize,
}

/// Which topics a consumer reads: a name, or a pattern with `*` (any run of characters).
#[derive(Debug, Clone)]
struct TopicFilter(String);

impl TopicFilter {
    fn matches(&self, topic: &str) -> bool {
        glob_match(self.0.as_bytes(), topic.as_bytes())
    }
}

/// `*` matches any run of bytes; everything else matches itself. Linear in practice: the
/// classic backtrack-to-the-last-star walk.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The longest `receive` waits for a record before returning nil. Any append to the log, and
/// the plugin's stop, end the wait sooner, so it can be long: an idle bridge stays idle.
const WAIT: Duration = Duration::from_secs(1);
/// How often the consumer looks for new topics and partitions.
const REFRESH: Duration = Duration::from_secs(1);

struct Source {
    topic: String,
    partition: u32,
    reader: PartitionReader,
}

struct Consumer {
    log: Arc<Log>,
    /// `None`: every topic but Blink's own queues (which are never read, even when named).
    topics: Option<Vec<TopicFilter>>,
    stats: Arc<PluginStats>,
    max_value_bytes: usize,
    /// Positions from the checkpoint, for partitions not opened yet.
    resume: HashMap<(String, u32), i64>,
    from_end: bool,
    sources: Vec<Source>,
    next: usize,
    refreshed: Option<Instant>,
}

impl Consumer {
    /// Opens readers for partitions that appeared since the last look.
    fn refresh(&mut self) {
        if self.refreshed.is_some_and(|t| t.elapsed() < REFRESH) {
            return;
        }
        self.refreshed = Some(Instant::now());
        let topics: Vec<(String, usize)> = self
            .log
            .topics()
            .into_iter()
            .filter(|(name, _)| {
                !is_queue(name)
                    && self
                        .topics
                        .as_ref()
                        .is_none_or(|wanted| wanted.iter().any(|f| f.matches(name)))
            })
            .collect();
        for (topic, partitions) in topics {
            for id in 0..partitions as u32 {
                if self
                    .sources
                    .iter()
                    .any(|s| s.topic == topic && s.partition == id)
                {
                    continue;
                }
                let Ok(partition) = self.log.partition(&topic, id) else {
                    continue;
                };
                let start = match self.resume.get(&(topic.clone(), id)) {
                    Some(&offset) => offset,
                    None if self.from_end => partition.next_offset(),
                    None => partition.log_start(),
                };
                let start = start.max(partition.log_start());
                self.sources.push(Source {
                    topic: topic.clone(),
                    partition: id,
                    reader: PartitionReader::new(partition, start),
                });
            }
        }
    }

    /// The next record of any partition, taking them in turn.
    fn next_record(&mut self) -> mlua::Result<Option<Received>> {
        let n = self.sources.len();
        for i in 0..n {
            let at = (self.next + i) % n;
            let source = &mut self.sources[at];
            let mut next = source.reader.next_record();
            // Records Blink's own outputs produced are passed over (their position still moves).
            while let Ok(Some(record)) = &next
                && record
                    .headers()
                    .any(|(name, _)| name == ORIGIN_HEADER.as_bytes())
            {
                self.stats.count("own_records_skipped", 1);
                next = source.reader.next_record();
            }
            match next {
                Ok(Some(record)) => {
                    self.next = at + 1;
                    return Ok(Some(Received::Record(at, record)));
                }
                Ok(None) => {}
                Err(LogError::OffsetOutOfRange { start, .. }) => {
                    tracing::warn!(topic = %source.topic, partition = source.partition, start, "kafka consumer: records were deleted by retention before they were read; going on from the oldest retained");
                    source.reader.seek(start);
                }
                Err(e @ LogError::UnreadableBatch { .. }) => {
                    let reason = e.to_string();
                    let LogError::UnreadableBatch {
                        base_offset,
                        next_offset,
                        batch,
                        ..
                    } = e
                    else {
                        unreachable!()
                    };
                    // Handed to the plugin whole, then passed: one bad batch never stops it.
                    tracing::warn!(topic = %source.topic, partition = source.partition, base_offset, next_offset, %reason, "kafka consumer: a batch's records cannot be read; handing it over raw and going on");
                    source.reader.seek(next_offset);
                    self.next = at + 1;
                    return Ok(Some(Received::Unreadable {
                        at,
                        offset: base_offset,
                        batch,
                        reason,
                    }));
                }
                Err(e) => return Err(mlua::Error::runtime(format!("kafka consumer: {e}"))),
            }
        }
        Ok(None)
    }

    /// Whether `size` bytes of `what` are more than the plugin could inject; if so it is
    /// counted and said in `reason` (after what is there). Such bytes are not handed over: they
    /// would only end the plugin, and huge ones would not fit its memory either.
    fn over_limit(&self, what: &str, size: usize, reason: &mut String) -> bool {
        if size <= self.max_value_bytes {
            return false;
        }
        self.stats.count("oversized_records", 1);
        if !reason.is_empty() {
            reason.push_str("; ");
        }
        reason.push_str(&format!(
            "{what} of {size} bytes, over the {} a message of this plugin may carry \
             (output_limit, max_message_size): not handed over",
            self.max_value_bytes
        ));
        true
    }

    /// `bytes`, or nothing if they are over the limit (see [`Consumer::over_limit`]).
    fn within_limit<'b>(&self, what: &str, bytes: &'b [u8], reason: &mut String) -> &'b [u8] {
        if self.over_limit(what, bytes.len(), reason) {
            &[]
        } else {
            bytes
        }
    }

    fn checkpoint(&self) -> String {
        let mut positions: Vec<(String, u32, i64)> = self
            .resume
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .filter(|(t, p, _)| {
                !self
                    .sources
                    .iter()
                    .any(|s| s.topic == *t && s.partition == *p)
            })
            .collect();
        positions.extend(
            self.sources
                .iter()
                .map(|s| (s.topic.clone(), s.partition, s.reader.position())),
        );
        positions.sort();
        positions
            .iter()
            .map(|(t, p, o)| format!("{t}:{p}:{o}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl UserData for Consumer {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("receive", |lua, this, ()| {
            this.refresh();
            let notifier = this.log.notifier();
            let mut found = None;
            for attempt in 0..2 {
                let generation = notifier.generation();
                found = this.next_record()?;
                if found.is_some() || attempt == 1 {
                    break;
                }
                notifier.wait_past(generation, WAIT);
            }
            let (at, record) = match found {
                None => return Ok(Variadic::new()),
                Some(Received::Record(at, record)) => (at, record),
                Some(Received::Unreadable {
                    at,
                    offset,
                    batch,
                    reason,
                }) => {
                    this.stats.count("unreadable_batches", 1);
                    let source = &this.sources[at];
                    let timestamp = crate::log::batch::BatchHeader::parse(&batch)
                        .map_or(-1, |h| h.max_timestamp);
                    let mut reason = reason;
                    let value = this.within_limit("the batch", &batch, &mut reason);
                    return Ok(Variadic::from_iter([
                        Value::String(lua.create_string(value)?),
                        Value::String(lua.create_string(&source.topic)?),
                        Value::Number(source.partition as f64),
                        Value::Nil,
                        Value::Number(offset as f64),
                        Value::Number(timestamp as f64),
                        Value::Table(lua.create_table()?),
                        Value::String(lua.create_string(&reason)?),
                        Value::Number(batch.len() as f64),
                    ]));
                }
            };
            let source = &this.sources[at];
            let headers = lua.create_table()?;
            // Headers too are bounded by what the plugin could inject (a producer may send
            // megabytes of them); over that, none are handed over.
            let header_bytes: usize = record
                .headers()
                .map(|(n, v)| n.len() + v.map_or(0, <[u8]>::len))
                .sum();
            let mut problem = String::new();
            let all_headers = !this.over_limit("the headers", header_bytes, &mut problem);
            for (name, value) in record.headers().take_while(|_| all_headers) {
                headers.raw_set(
                    lua.create_string(name)?,
                    match value {
                        Some(v) => Value::String(lua.create_string(v)?),
                        None => Value::Boolean(false),
                    },
                )?;
            }
            let whole = record.value.as_deref().unwrap_or_default();
            let value = this.within_limit("the value", whole, &mut problem);
            let key = match record.key.as_deref() {
                Some(k) if k.len() <= this.max_value_bytes => Value::String(lua.create_string(k)?),
                _ => Value::Nil,
            };
            let problem = if problem.is_empty() {
                Value::Nil
            } else {
                Value::String(lua.create_string(&problem)?)
            };
            Ok(Variadic::from_iter([
                Value::String(lua.create_string(value)?),
                Value::String(lua.create_string(&source.topic)?),
                Value::Number(source.partition as f64),
                key,
                Value::Number(record.offset as f64),
                Value::Number(record.timestamp as f64),
                Value::Table(headers),
                problem,
                Value::Number(whole.len() as f64),
            ]))
        });
        methods.add_method("checkpoint", |_, this, ()| Ok(this.checkpoint()));
        // A count of the plugin's own, shown in plugin_status.tsv's Notes (bad records, say).
        methods.add_method("count", |_, this, (name, n): (String, Option<f64>)| {
            if name.is_empty() || name.len() > 64 {
                return Err(mlua::Error::runtime(
                    "consumer:count: the name must be 1 to 64 bytes",
                ));
            }
            this.stats.count(&name, n.unwrap_or(1.0).max(0.0) as u64);
            Ok(())
        });
    }
}

/// What `receive` found.
enum Received {
    Record(usize, crate::log::batch::Record),
    /// A batch (from source `at`) whose records cannot be read: its bytes as stored, its first
    /// offset and why.
    Unreadable {
        at: usize,
        offset: i64,
        batch: bytes::Bytes,
        reason: String,
    },
}

/// The module of input plugin `plugin`: consumers. Creating one registers the plugin with the
/// log as a topic consumer, so retention keeps what its checkpoint has not passed.
pub(super) fn module(lua: &Lua, host: ConsumerHost) -> mlua::Result<Table> {
    let ConsumerHost {
        log,
        plugin,
        stats,
        max_value_bytes,
    } = host;
    let module = lua.create_table()?;
    module.raw_set(
        "consumer",
        lua.create_function(
            move |_, (topics, checkpoint, options): (Value, Option<String>, Option<Table>)| {
                let topics = match topics {
                    Value::Nil => None,
                    Value::String(s) => Some(vec![s.to_str()?.to_owned()]),
                    Value::Table(t) => Some(
                        t.sequence_values::<String>()
                            .collect::<mlua::Result<Vec<_>>>()?,
                    ),
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "kafka.consumer: topics must be a table of names or patterns, a name or pattern, or nil, not a {}",
                            other.type_name()
                        )));
                    }
                };
                let topics = topics.map(|t| t.into_iter().map(TopicFilter).collect());
                let resume = crate::checkpoint::parse_topic_positions(checkpoint.as_deref().unwrap_or(""))
                    .map_err(|e| mlua::Error::runtime(format!("kafka.consumer: {e}")))?;
                let from_end = match options {
                    Some(o) => match o.raw_get::<Option<String>>("start")?.as_deref() {
                        None | Some("beginning") => false,
                        Some("end") => true,
                        Some(other) => {
                            return Err(mlua::Error::runtime(format!(
                                "kafka.consumer: start = {other:?}: \"beginning\" or \"end\""
                            )));
                        }
                    },
                    None => false,
                };
                log.register_topic_consumer(&plugin);
                let mut consumer = Consumer {
                    log: log.clone(),
                    topics,
                    stats: stats.clone(),
                    max_value_bytes,
                    resume,
                    from_end,
                    sources: Vec::new(),
                    next: 0,
                    refreshed: None,
                };
                consumer.refresh();
                Ok(consumer)
            },
        )?,
    )?;
    Ok(module)
}
