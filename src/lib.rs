//! Blink: a Hindsight-style sandboxed stream processor whose stream is a Kafka-compatible log.
//!
//! # Layout
//! From the bottom up (docs/architecture.md shows which way imports point; `tests/layout.rs`
//! keeps them pointing one way):
//! - [`varint`]: base-128 varints shared by protobuf and Kafka records.
//! - [`time`]: RFC 3339 formatting of nanosecond timestamps.
//! - [`atomic_file`]: replacing a small file whole.
//! - [`stop`]: the stop token everything that waits can be stopped through.
//! - [`message`]: Heka messages, their protobuf codec and Hindsight's stream framing.
//! - [`matcher`]: Hindsight message matcher expressions, compiled once, evaluated per message.
//! - [`plugin`]: plugin kinds, their Lua-syntax `.cfg` files, and each plugin's counters.
//! - [`checkpoint`]: reader positions and input checkpoints, persisted atomically.
//! - [`log`]: topics, partitions and segments in Kafka's RecordBatch format; appends, reads,
//!   recovery and retention; the log's own settings.
//! - [`config`]: the global TOML configuration, which assembles the log's settings.
//! - [`durability`]: the periodic tick that syncs the log, writes checkpoints and applies retention.
//! - [`sandbox`]: one Lua 5.1 state per plugin, with Hindsight's libraries, limits, API and
//!   host modules.
//! - [`runner`]: input, analysis and output threads, and the pipeline that starts and stops them.
//! - [`hotload`]: the `hs_load/` directories: dropped files start, restart and stop plugins.
//! - [`kafka`]: the Kafka protocol server over the log.
//! - [`fuzz`]: entry points for the fuzzers, one per parser that faces untrusted input.

pub mod atomic_file;
pub mod checkpoint;
pub mod config;
pub mod durability;
pub mod fuzz;
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
