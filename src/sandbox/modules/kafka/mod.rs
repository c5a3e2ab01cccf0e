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
//! `plugin_status.tsv`'s Notes column.

mod consumer;
mod producer;

use mlua::{Lua, Table};

use super::ModuleEnv;
use crate::plugin::PluginKind;
use consumer::ConsumerHost;

/// The header Blink's output plugins put on every record they produce, naming the plugin: a
/// consumer never hands such a record over, so detections an output forwards to a topic never
/// come back in through the bridge.
pub const ORIGIN_HEADER: &str = "blink.output";

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
            consumer::module(lua, host).map(Some)
        }
        PluginKind::Output => {
            producer::module(lua, log, env.plugin.clone(), env.confirm.clone()).map(Some)
        }
        PluginKind::Analysis => Ok(None),
    }
}
