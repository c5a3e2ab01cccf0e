//! Blink: a Hindsight-style sandboxed stream processor whose stream is a Kafka-compatible log.
//!
//! # Layout
//! - [`config`]: the global TOML configuration.
//! - [`message`]: Heka messages, their protobuf codec and Hindsight's stream framing.
//! - [`matcher`]: Hindsight message matcher expressions, compiled once, evaluated per message.
//! - [`plugin`]: plugin kinds, their Lua-syntax `.cfg` files, and each plugin's counters.
//! - [`log`]: topics, partitions and segments in Kafka's RecordBatch format; appends, reads,
//!   recovery and retention.
//! - [`checkpoint`]: reader positions and input checkpoints, persisted atomically.
//! - [`sandbox`]: one Lua 5.1 state per plugin, with Hindsight's libraries, limits and API.
//! - [`runner`]: input, analysis and output threads, and the pipeline that starts and stops them.
//! - [`hotload`]: the `hs_load/` directories: dropped files start, restart and stop plugins.
//! - [`kafka`]: the Kafka protocol server over the log.
//! - [`durability`]: the periodic tick that syncs the log, writes checkpoints and applies retention.
//! - [`time`]: RFC 3339 formatting of nanosecond timestamps.
//! - [`varint`]: base-128 varints shared by protobuf and Kafka records.

pub mod atomic_file;
pub mod checkpoint;
pub mod config;
pub mod durability;
pub mod hotload;
pub mod kafka;
pub mod log;
pub mod matcher;
pub mod message;
pub mod plugin;
pub mod runner;
pub mod sandbox;
pub mod stop;
pub mod time;
pub mod varint;
