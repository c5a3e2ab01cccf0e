//! Blink: a Hindsight-style sandboxed stream processor whose stream is a Kafka-compatible log.
//!
//! # Layout
//! - [`varint`]: base-128 varints shared by protobuf and Kafka records.
//! - [`message`]: Heka messages, their protobuf codec and Hindsight's stream framing.

pub mod message;
pub mod varint;
