//! `kafka` for input plugins: consumers over Blink's own topics (what Kafka clients produced
//! into Blink), following the call shape of lua_sandbox_extensions' kafka module.
//!
//! ```lua
//! require "kafka"
//! function process_message(checkpoint)
//!     local consumer = kafka.consumer({"events"}, checkpoint)   -- nil topics: every user topic
//!     while is_running() do
//!         local value, topic, partition, key, offset, timestamp, headers, err = consumer:receive()
//!         if value then inject_message({Payload = value}, consumer:checkpoint()) end
//!     end
//!     return 0
//! end
//! ```
//!
//! Output plugins get `kafka.producer()` instead: `producer:send(topic, value [, key [,
//! partition]])` appends one record to a topic of Blink's log (created with one partition if it
//! does not exist; the partition is chosen by key hash, else in turn) and returns its offset once
//! the record has reached the log, so the plugin can return 0 (sent) at once; a failure raises
//! an error the plugin can turn into -1 or -3 (retry). lua_sandbox_extensions' shape works too,
//! for plugins written for Hindsight's kafka output:
//!
//! ```lua
//! local producer = kafka.producer()
//! function process_message(sequence_id)
//!     local ret = producer:send(topic, -1, sequence_id, read_message("raw"))
//!     if ret ~= 0 then return -1, "send failed" end   -- 90: too large, 22: invalid topic
//!     producer:poll()     -- confirms sent sequence ids: update_checkpoint(sequence_id, 0)
//!     return -5           -- the checkpoint waits for that confirmation
//! end
//! function timer_event(ns) producer:poll() end
//! ```
//!
//! The consumer's position is the plugin's checkpoint: `consumer:checkpoint()` encodes the next
//! offset of every partition (`topic:partition:offset,…`), and a consumer created with it resumes
//! exactly there. Partitions with no position start at their oldest retained record (or the
//! newest, with `{start = "end"}` as third argument). `receive` waits for a record (up to a second;
//! stopping the plugin ends the wait at once) and returns nil when there is none, so the plugin
//! can check `is_running()`. A batch whose CRC holds
//! but whose records cannot be read (a producer's compressed garbage) comes back once, whole, as
//! the value, with its first offset and an eighth result saying why; the consumer then goes on
//! after it, so one bad batch never stops a plugin. The ninth result is the value's size.
//!
//! Nothing larger than the plugin could inject is handed over: a value (or a bad batch, or a
//! record's headers) over `min(output_limit, max_message_size)` comes back as an empty string
//! with the eighth result saying so, counted as `oversized_records` — a 1 MB record is a bad
//! record, not the end of the plugin. Topics are names or patterns with `*` (`"auth-*"`); Blink's
//! queues are never read, and neither is any record one of Blink's output plugins produced
//! (every such record carries the header `blink.output`), so detections forwarded to a topic
//! never loop back in. `consumer:count(name [, n])` adds to a count of the plugin's own, shown
//! with the consumer's (`unreadable_batches`, `oversized_records`, `own_records_skipped`) in
//! `plugins.tsv`'s Notes column.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{IntoLuaMulti, Lua, Table, UserData, UserDataMethods, Value, Variadic};

use super::{Confirm, ModuleEnv};
use crate::log::{Log, LogError, PartitionReader, is_queue};
use crate::plugin::{PluginKind, PluginStats};

/// The header Blink's output plugins put on every record they produce, naming the plugin: a
/// consumer never hands such a record over, so detections an output forwards to a topic never
/// come back in through the bridge.
pub const ORIGIN_HEADER: &str = "blink.output";

/// What an input plugin's consumers need from their sandbox.
struct ConsumerHost {
    log: Arc<Log>,
    /// The plugin, which the log keeps as a topic consumer (retention waits for it).
    plugin: String,
    /// Where the consumer's counts show (`plugins.tsv`).
    stats: Arc<PluginStats>,
    /// The largest value handed over: what the plugin could inject at all.
    max_value_bytes: usize,
}

/// Opens the module: consumers for an input plugin, producers for an output plugin; none in a
/// sandbox without the log.
pub fn open(lua: &Lua, env: &ModuleEnv) -> mlua::Result<Option<Table>> {
    let Some(log) = env.log.clone() else {
        return Ok(None);
    };
    match env.kind {
        PluginKind::Input => {
            let host = ConsumerHost {
                log,
                plugin: env.plugin.clone(),
                stats: env.stats.clone(),
                max_value_bytes: env.max_message_bytes,
            };
            module(lua, host).map(Some)
        }
        PluginKind::Output => {
            producer_module(lua, log, env.plugin.clone(), env.confirm.clone()).map(Some)
        }
        PluginKind::Analysis => Ok(None),
    }
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
        // A count of the plugin's own, shown in plugins.tsv's Notes (bad records, say).
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

/// Appends records to Blink's topics for an output plugin.
struct Producer {
    log: Arc<Log>,
    /// The output plugin, named in every record's [`ORIGIN_HEADER`].
    plugin: String,
    next: u32,
    /// lua_sandbox_extensions' call shape: the highest sequence id whose record is in the log and
    /// not yet reported by `poll`.
    delivered: Option<u64>,
    /// Reports delivered sequence ids, as `update_checkpoint` does.
    confirm: Confirm,
}

/// Why a send failed, with the errno-style code lua_sandbox_extensions' `producer:send` returns
/// for it (librdkafka's produce call sets errno).
struct SendError {
    code: i32,
    message: String,
}

impl SendError {
    /// EMSGSIZE: the record is larger than the log takes.
    const TOO_LARGE: i32 = 90;
    /// ESRCH: no such partition.
    const NO_PARTITION: i32 = 3;
    /// EINVAL: the topic cannot be written (a queue, a bad name).
    const INVALID: i32 = 22;
    /// EIO: the log could not write it.
    const IO: i32 = 5;

    fn new(code: i32, message: impl Into<String>) -> Self {
        SendError {
            code,
            message: message.into(),
        }
    }
}

impl Producer {
    fn send(
        &mut self,
        topic: &str,
        value: &[u8],
        key: Option<&[u8]>,
        partition: Option<u32>,
    ) -> Result<i64, SendError> {
        if is_queue(topic) {
            return Err(SendError::new(
                SendError::INVALID,
                format!("{topic} is one of Blink's queues: inject_message writes there"),
            ));
        }
        let partitions = match self.log.partitions(topic) {
            Some(p) => p,
            None => {
                match self.log.create_topic(topic, 1) {
                    Ok(()) | Err(LogError::TopicExists(_)) => {}
                    Err(e @ LogError::InvalidTopic { .. }) => {
                        return Err(SendError::new(SendError::INVALID, e.to_string()));
                    }
                    Err(e) => return Err(SendError::new(SendError::IO, e.to_string())),
                }
                self.log
                    .partitions(topic)
                    .ok_or_else(|| SendError::new(SendError::IO, "topic vanished"))?
            }
        };
        let index = match (partition, key) {
            (Some(p), _) => p as usize,
            (None, Some(k)) => (crc32c::crc32c(k) as usize) % partitions.len(),
            (None, None) => {
                self.next = self.next.wrapping_add(1);
                self.next as usize % partitions.len()
            }
        };
        let target = partitions.get(index).ok_or_else(|| {
            SendError::new(
                SendError::NO_PARTITION,
                format!("{topic} has no partition {index}"),
            )
        })?;
        let mut builder = crate::log::batch::BatchBuilder::with_capacity(value.len() + 128);
        let origin: &[(&[u8], Option<&[u8]>)] =
            &[(ORIGIN_HEADER.as_bytes(), Some(self.plugin.as_bytes()))];
        builder.push_with_headers(
            crate::time::now_nanos() / 1_000_000,
            key,
            Some(value),
            origin,
        );
        let batch = builder.finish();
        target.append(&batch).map(|a| a.base_offset).map_err(|e| {
            let code = match e {
                LogError::BatchTooLarge { .. } | LogError::MessageTooLarge { .. } => {
                    SendError::TOO_LARGE
                }
                _ => SendError::IO,
            };
            SendError::new(code, e.to_string())
        })
    }
}

/// A partition number from Lua: a whole number from 0 to i32::MAX (Kafka's partition type); a
/// negative, fractional or NaN number is an error, never partition 0.
fn partition_number(p: f64) -> Result<u32, String> {
    if p.fract() == 0.0 && (0.0..=i32::MAX as f64).contains(&p) {
        Ok(p as u32)
    } else {
        Err(format!("partition {p} is not a partition number (0, 1, …)"))
    }
}

impl UserData for Producer {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Two call shapes, told apart by the second argument:
        // - `send(topic, value [, key [, partition]])` returns the record's offset, or raises;
        // - lua_sandbox_extensions': `send(topic, partition, sequence_id, message)` (partition -1:
        //   any) returns 0, or an errno-style code and a message; `poll()` then confirms the sent
        //   sequence ids with update_checkpoint, for plugins returning -5.
        methods.add_method_mut("send", |lua, this, args: Variadic<Value>| {
            let topic = match args.first() {
                Some(Value::String(t)) => t.to_str()?.to_owned(),
                _ => {
                    return Err(mlua::Error::runtime(
                        "producer:send: the first argument must be a topic name",
                    ));
                }
            };
            let string = |i: usize| -> mlua::Result<Option<mlua::LuaString>> {
                match args.get(i) {
                    None | Some(Value::Nil) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => Err(mlua::Error::runtime(format!(
                        "producer:send: argument {} must be a string, not a {}",
                        i + 1,
                        other.type_name()
                    ))),
                }
            };
            let number = |i: usize| -> mlua::Result<Option<f64>> {
                match args.get(i) {
                    None | Some(Value::Nil) => Ok(None),
                    Some(Value::Integer(n)) => Ok(Some(*n as f64)),
                    Some(Value::Number(n)) => Ok(Some(*n)),
                    Some(other) => Err(mlua::Error::runtime(format!(
                        "producer:send: argument {} must be a number, not a {}",
                        i + 1,
                        other.type_name()
                    ))),
                }
            };
            if matches!(args.get(1), Some(Value::Integer(_) | Value::Number(_))) {
                // -1: any partition, as librdkafka's RD_KAFKA_PARTITION_UA.
                let partition = match number(1)? {
                    Some(-1.0) => None,
                    p => match p.map(partition_number).transpose() {
                        Ok(p) => p,
                        Err(e) => {
                            return (SendError::INVALID, format!("producer:send: {e}"))
                                .into_lua_multi(lua);
                        }
                    },
                };
                let sequence = number(2)?;
                let message = string(3)?.ok_or_else(|| {
                    mlua::Error::runtime("producer:send: argument 4 (the message) is missing")
                })?;
                return match this.send(&topic, &message.as_bytes(), None, partition) {
                    Ok(_) => {
                        if let Some(seq) = sequence {
                            let seq = seq as u64;
                            this.delivered = Some(this.delivered.map_or(seq, |d| d.max(seq)));
                        }
                        (0, Value::Nil).into_lua_multi(lua)
                    }
                    Err(e) => (e.code, format!("producer:send: {}", e.message)).into_lua_multi(lua),
                };
            }
            let value = string(1)?.ok_or_else(|| {
                mlua::Error::runtime("producer:send: argument 2 (the value) is missing")
            })?;
            let key = string(2)?;
            let partition = number(3)?
                .map(partition_number)
                .transpose()
                .map_err(|e| mlua::Error::runtime(format!("producer:send: {e}")))?;
            let key = key.as_ref().map(|k| k.as_bytes());
            this.send(&topic, &value.as_bytes(), key.as_deref(), partition)
                .map_err(|e| mlua::Error::runtime(format!("producer:send: {}", e.message)))?
                .into_lua_multi(lua)
        });
        // Records are in the log when `send` returns, so every sent sequence id is delivered.
        methods.add_method_mut("poll", |_, this, ()| {
            if let Some(seq) = this.delivered.take() {
                (this.confirm)(seq, 0);
            }
            Ok(())
        });
    }
}

/// The module of an output plugin: producers. `kafka.producer()` writes to Blink's own log; a
/// broker list (lua_sandbox_extensions' first argument) must be empty or absent — sending to
/// another Kafka cluster is not supported from a plugin.
fn producer_module(
    lua: &Lua,
    log: Arc<Log>,
    plugin: String,
    confirm: Confirm,
) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "producer",
        lua.create_function(move |_, args: Variadic<Value>| {
            if let Some(Value::String(brokers)) = args.first()
                && !brokers.as_bytes().is_empty()
            {
                return Err(mlua::Error::runtime(format!(
                    "kafka.producer: writes to Blink's own topics; a broker list ({}) is not \
                     supported — pass nil or nothing",
                    brokers.to_string_lossy()
                )));
            }
            Ok(Producer {
                log: log.clone(),
                plugin: plugin.clone(),
                next: 0,
                delivered: None,
                confirm: confirm.clone(),
            })
        })?,
    )?;
    Ok(module)
}

/// The module of input plugin `plugin`: consumers. Creating one registers the plugin with the
/// log as a topic consumer, so retention keeps what its checkpoint has not passed.
fn module(lua: &Lua, host: ConsumerHost) -> mlua::Result<Table> {
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
