//! `kafka.producer`: an output plugin's producers into Blink's own topics (see the module's
//! documentation in `mod.rs`).

use std::sync::Arc;

use mlua::{IntoLuaMulti, Lua, Table, UserData, UserDataMethods, Value, Variadic};

use super::ORIGIN_HEADER;
use crate::log::{Log, LogError, is_queue};
use crate::sandbox::modules::Confirm;

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
                    // A zero-copy reference (`read_message("raw", nil, nil, true)`, what the
                    // heka encoders return) stands for its text.
                    Some(t @ Value::Table(table))
                        if table.metatable().is_some_and(|mt| {
                            mt.raw_get::<Value>("__tostring")
                                .is_ok_and(|f| f.is_function())
                        }) =>
                    {
                        let tostring: mlua::Function = lua.globals().raw_get("tostring")?;
                        tostring.call::<Option<mlua::LuaString>>(t.clone())
                    }
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
pub(super) fn module(
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
