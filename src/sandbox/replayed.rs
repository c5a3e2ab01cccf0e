//! Messages a plugin injected before a crash, which it is about to inject again.
//!
//! A `checkpoint_data` analysis plugin resumes after a crash from its last state snapshot and
//! processes again the messages it had processed since. A deterministic plugin (a detection
//! keeping its windows in message time) then injects again what it injected before the crash,
//! which is already in `blink.analysis`. The runner collects those messages when the plugin
//! starts; while it catches up, an inject equal to one of them (every header and field but
//! `Uuid`, `Timestamp` and `Pid`, which Blink sets anew) is dropped, once per message collected, so the
//! stream holds each alert once however the crash fell.

use std::collections::HashMap;

use crate::varint;

/// The identities of messages already in the stream, each with how many times it is there.
#[derive(Debug, Default)]
pub struct ReplayedInjects {
    pending: HashMap<Vec<u8>, u32>,
    /// Bytes held in `pending`'s keys.
    bytes: usize,
    skipped: u64,
}

/// The most bytes of message identities one plugin's replay keeps: what it injected in the
/// seconds before a crash fits many times over; a plugin that injected more than this since
/// its last snapshot has the rest injected again (at least once, never lost).
pub const MAX_REPLAYED_BYTES: usize = 64 << 20;

impl ReplayedInjects {
    /// Records a message found in the stream; false when the bound is reached (nothing kept).
    pub fn add(&mut self, raw: &[u8]) -> bool {
        let Some(id) = identity(raw) else {
            return true;
        };
        if self.bytes + id.len() > MAX_REPLAYED_BYTES {
            return false;
        }
        self.bytes += id.len();
        *self.pending.entry(id).or_default() += 1;
        true
    }

    /// Whether `raw`, about to be injected, is one of the messages already there (and if so,
    /// it is taken off the list).
    pub fn take(&mut self, raw: &[u8]) -> bool {
        let Some(id) = identity(raw) else {
            return false;
        };
        let Some(n) = self.pending.get_mut(&id) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            self.bytes -= id.len();
            self.pending.remove(&id);
        }
        self.skipped += 1;
        true
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Messages still expected.
    pub fn len(&self) -> usize {
        self.pending.values().map(|&n| n as usize).sum()
    }

    /// Injects dropped because they were already in the stream.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// A message's bytes without its `Uuid` (field 1), `Timestamp` (field 2) and `Pid` (field 8:
/// the restarted process has another); `None` if `raw` is not a well-formed protobuf message.
fn identity(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        let start = at;
        let (tag, n) = varint::decode_u64(&raw[at..])?;
        at += n;
        let len = match tag & 7 {
            0 => varint::decode_u64(&raw[at..])?.1,
            1 => 8,
            2 => {
                let (len, n) = varint::decode_u64(&raw[at..])?;
                n.checked_add(usize::try_from(len).ok()?)?
            }
            5 => 4,
            _ => return None,
        };
        at = at.checked_add(len).filter(|&end| end <= raw.len())?;
        if !matches!(tag >> 3, 1 | 2 | 8) {
            out.extend_from_slice(&raw[start..at]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Field, FieldValues, Message};

    fn alert(uuid: u8, timestamp: i64, count: i64) -> Vec<u8> {
        let mut m = Message::new([uuid; 16], timestamp);
        m.pid = Some(i32::from(uuid));
        m.r#type = Some("blink.alert".into());
        m.logger = Some("analysis.rule".into());
        m.fields
            .push(Field::new("count", FieldValues::Integer(vec![count])));
        m.to_bytes()
    }

    #[test]
    fn a_message_again_with_a_new_uuid_and_time_is_taken_once_per_copy() {
        let mut replayed = ReplayedInjects::default();
        assert!(replayed.add(&alert(1, 10, 5)));
        assert!(replayed.add(&alert(2, 11, 5)));
        assert_eq!(replayed.len(), 2);
        assert!(replayed.take(&alert(3, 99, 5)));
        assert!(replayed.take(&alert(4, 98, 5)));
        assert!(
            !replayed.take(&alert(5, 97, 5)),
            "only as many as were there"
        );
        assert!(replayed.is_empty());
        assert_eq!(replayed.skipped(), 2);
    }

    #[test]
    fn a_different_field_is_a_different_message() {
        let mut replayed = ReplayedInjects::default();
        replayed.add(&alert(1, 10, 5));
        assert!(!replayed.take(&alert(1, 10, 6)));
        assert_eq!(replayed.len(), 1);
    }

    #[test]
    fn damaged_bytes_are_never_taken() {
        let mut replayed = ReplayedInjects::default();
        let raw = alert(1, 10, 5);
        assert!(replayed.add(&raw[..raw.len() - 1]), "ignored, not an error");
        assert!(replayed.is_empty());
        assert!(!replayed.take(&raw[..raw.len() - 1]));
        assert!(!replayed.take(&[0xff; 3]));
    }
}
