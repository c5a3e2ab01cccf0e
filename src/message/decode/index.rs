//! Where a parsed message's parts are: kept beside the bytes, so a message read once can be
//! viewed again without scanning it again.

use super::MessageView;

/// Where a parsed message's parts are, as offsets: kept beside the bytes so the same message can
/// be viewed again ([`MessageView::with_index`]) without scanning it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageIndex {
    len: usize,
    uuid: usize,
    timestamp: i64,
    text: [Option<(u32, u32)>; 5],
    severity: Option<i32>,
    pid: Option<i32>,
    first_field: usize,
    field_count: usize,
}

impl<'a> MessageView<'a> {
    /// The offsets of this view's parts within its bytes.
    pub fn index(&self) -> MessageIndex {
        let base = self.raw.as_ptr() as usize;
        let span =
            |s: Option<&[u8]>| s.map(|s| ((s.as_ptr() as usize - base) as u32, s.len() as u32));
        MessageIndex {
            len: self.raw.len(),
            uuid: self.uuid.as_ptr() as usize - base,
            timestamp: self.timestamp,
            text: [
                span(self.r#type),
                span(self.logger),
                span(self.payload),
                span(self.env_version),
                span(self.hostname),
            ],
            severity: self.severity,
            pid: self.pid,
            first_field: self.first_field,
            field_count: self.field_count,
        }
    }

    /// The view `index` describes, over the same bytes it was made from. Bytes that do not match
    /// the index (a caller's mistake) give an empty view rather than a panic.
    pub fn with_index(raw: &'a [u8], index: &MessageIndex) -> Self {
        const NO_UUID: [u8; 16] = [0; 16];
        if raw.len() != index.len {
            return Self::empty(raw);
        }
        let text = |i: usize| {
            index.text[i].and_then(|(at, len)| raw.get(at as usize..at as usize + len as usize))
        };
        MessageView {
            raw,
            uuid: raw
                .get(index.uuid..index.uuid + 16)
                .and_then(|u| u.try_into().ok())
                .unwrap_or(&NO_UUID),
            timestamp: index.timestamp,
            r#type: text(0),
            logger: text(1),
            severity: index.severity,
            payload: text(2),
            env_version: text(3),
            pid: index.pid,
            hostname: text(4),
            first_field: index.first_field,
            field_count: index.field_count,
        }
    }

    pub(super) fn empty(raw: &'a [u8]) -> Self {
        MessageView {
            raw,
            uuid: &[0; 16],
            timestamp: 0,
            r#type: None,
            logger: None,
            severity: None,
            payload: None,
            env_version: None,
            pid: None,
            hostname: None,
            first_field: raw.len(),
            field_count: 0,
        }
    }
}
