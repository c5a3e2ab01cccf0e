//! Borrowed, validating protobuf decoding of Heka messages.
//!
//! [`MessageView::parse`] walks the buffer once: it checks every tag and length (nested fields
//! included), remembers where the header values are, and allocates nothing. Field values are read
//! again only when asked for. Decoding is strict, as lua_sandbox's is: an unknown tag, a wrong wire
//! type, a missing required field or a value of a kind other than the field's `value_type` is an
//! error that says what and where (byte offsets are from the start of the message).

mod fields;
mod index;
mod wire;

pub use fields::{FieldIter, FieldView, Value, ValueIter};
pub use index::MessageIndex;

use super::DEFAULT_SEVERITY;
use fields::{InOrder, leading_name, value_in_order};
use wire::{LEN, VARINT, expect, next_entry, read_entry};

/// Why bytes are not a valid Heka message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Heka message truncated: {what} at byte {at} runs past the end")]
    Truncated { what: &'static str, at: usize },
    #[error("Heka message has unknown tag {tag} (wire type {wire_type}) at byte {at}")]
    UnknownTag { tag: u64, wire_type: u8, at: usize },
    #[error("Heka message: {what} has wire type {wire_type}, expected {expected}, at byte {at}")]
    WireType {
        what: &'static str,
        wire_type: u8,
        expected: &'static str,
        at: usize,
    },
    #[error("Heka message is missing required {0}")]
    Missing(&'static str),
    #[error("Heka message Uuid is {len} bytes, expected 16")]
    UuidLength { len: usize },
    #[error("Heka message field at byte {at} has value_type {value_type}, which is not 0-4")]
    ValueType { value_type: u64, at: usize },
    #[error("Heka message field '{name}' is {declared} but holds {found} values")]
    ValueMismatch {
        name: String,
        declared: &'static str,
        found: &'static str,
    },
    #[error("Heka message field at byte {at}: packed doubles are {len} bytes, not a multiple of 8")]
    PackedDoubles { len: usize, at: usize },
}

/// A validated Heka message borrowed from its protobuf bytes.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    raw: &'a [u8],
    uuid: &'a [u8; 16],
    timestamp: i64,
    r#type: Option<&'a [u8]>,
    logger: Option<&'a [u8]>,
    severity: Option<i32>,
    payload: Option<&'a [u8]>,
    env_version: Option<&'a [u8]>,
    pid: Option<i32>,
    hostname: Option<&'a [u8]>,
    /// Offset of the first Fields entry, so iteration skips the header.
    first_field: usize,
    field_count: usize,
}

impl<'a> MessageView<'a> {
    /// Validates `raw` as a Heka message.
    pub fn parse(raw: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_with(raw, true)
    }

    /// Reads a message that was validated before (by [`MessageView::parse`]): header and
    /// framing are still checked, nested fields are not walked again. Used where the same bytes
    /// are looked at several times, such as `read_message` after the matcher.
    pub fn parse_trusted(raw: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_with(raw, false)
    }

    fn parse_with(raw: &'a [u8], check_fields: bool) -> Result<Self, DecodeError> {
        let mut uuid = None;
        let mut timestamp = None;
        let mut view = MessageView::empty(raw);
        let mut pos = 0;
        while pos < raw.len() {
            let entry = next_entry(raw, &mut pos)?;
            match entry.tag {
                1 => {
                    expect(&entry, "Uuid", LEN)?;
                    let bytes: &[u8; 16] =
                        entry
                            .bytes
                            .try_into()
                            .map_err(|_| DecodeError::UuidLength {
                                len: entry.bytes.len(),
                            })?;
                    uuid = Some(bytes);
                }
                2 => {
                    expect(&entry, "Timestamp", VARINT)?;
                    timestamp = Some(entry.varint as i64);
                }
                3 => {
                    expect(&entry, "Type", LEN)?;
                    view.r#type = Some(entry.bytes);
                }
                4 => {
                    expect(&entry, "Logger", LEN)?;
                    view.logger = Some(entry.bytes);
                }
                5 => {
                    expect(&entry, "Severity", VARINT)?;
                    view.severity = Some(entry.varint as i64 as i32);
                }
                6 => {
                    expect(&entry, "Payload", LEN)?;
                    view.payload = Some(entry.bytes);
                }
                7 => {
                    expect(&entry, "EnvVersion", LEN)?;
                    view.env_version = Some(entry.bytes);
                }
                8 => {
                    expect(&entry, "Pid", VARINT)?;
                    view.pid = Some(entry.varint as i64 as i32);
                }
                9 => {
                    expect(&entry, "Hostname", LEN)?;
                    view.hostname = Some(entry.bytes);
                }
                10 => {
                    expect(&entry, "Fields", LEN)?;
                    if check_fields {
                        FieldView::parse(entry.bytes, pos - entry.bytes.len())?;
                    }
                    if view.field_count == 0 {
                        view.first_field = entry.at;
                    }
                    view.field_count += 1;
                }
                tag => {
                    return Err(DecodeError::UnknownTag {
                        tag,
                        wire_type: entry.wire_type,
                        at: entry.at,
                    });
                }
            }
        }
        view.uuid = uuid.ok_or(DecodeError::Missing("Uuid"))?;
        view.timestamp = timestamp.ok_or(DecodeError::Missing("Timestamp"))?;
        Ok(view)
    }

    /// The protobuf bytes this view reads.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    pub fn uuid(&self) -> &'a [u8; 16] {
        self.uuid
    }
    /// Nanoseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    pub fn r#type(&self) -> Option<&'a [u8]> {
        self.r#type
    }
    pub fn logger(&self) -> Option<&'a [u8]> {
        self.logger
    }
    /// Severity, 7 when the message does not set one (Hindsight's default).
    pub fn severity(&self) -> i32 {
        self.severity.unwrap_or(DEFAULT_SEVERITY)
    }
    /// Severity as written, `None` when absent.
    pub fn severity_raw(&self) -> Option<i32> {
        self.severity
    }
    pub fn payload(&self) -> Option<&'a [u8]> {
        self.payload
    }
    pub fn env_version(&self) -> Option<&'a [u8]> {
        self.env_version
    }
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }
    pub fn hostname(&self) -> Option<&'a [u8]> {
        self.hostname
    }
    pub fn field_count(&self) -> usize {
        self.field_count
    }

    /// The message's fields in the order they were written.
    pub fn fields(&self) -> FieldIter<'a> {
        FieldIter::new(self.raw, self.first_field, self.field_count)
    }

    /// The `index`-th field called `name` (Hindsight's `Fields[name][index]`).
    pub fn field(&self, name: &[u8], index: usize) -> Option<FieldView<'a>> {
        // Compare names before parsing a field in full: most fields are not the one wanted.
        let mut pos = self.first_field;
        let mut left = self.field_count;
        let mut seen = 0;
        while left > 0 {
            let entry = next_entry(self.raw, &mut pos).ok()?;
            if entry.tag != 10 {
                continue;
            }
            left -= 1;
            if leading_name(entry.bytes).is_some_and(|n| n != name) {
                continue;
            }
            let field = FieldView::parse(entry.bytes, pos - entry.bytes.len()).ok()?;
            if field.name() == name {
                if seen == index {
                    return Some(field);
                }
                seen += 1;
            }
        }
        None
    }
}

impl<'a> MessageView<'a> {
    /// `Fields[name][fi][ai]`: the `ai`-th value of the `fi`-th field called `name`.
    ///
    /// The matcher and `read_message` make this lookup for every message, so it reads the field
    /// in one pass when its entries are in tag order (as every encoder writes them): name, value
    /// type, representation, values. Anything else takes the general path through [`FieldView`].
    pub fn field_value(&self, name: &[u8], fi: usize, ai: usize) -> Option<Value<'a>> {
        let mut pos = self.first_field;
        let mut left = self.field_count;
        let mut seen = 0;
        while left > 0 {
            let (entry, end) = read_entry(self.raw, pos)?;
            pos = end;
            if entry.tag != 10 {
                continue;
            }
            left -= 1;
            match leading_name(entry.bytes) {
                Some(n) if n != name => continue,
                Some(_) if seen < fi => seen += 1,
                Some(_) => {
                    return match value_in_order(entry.bytes, ai) {
                        InOrder::Found(value) => value,
                        InOrder::NotInOrder => FieldView::parse(entry.bytes, 0).ok()?.value(ai),
                    };
                }
                // No leading name: not how encoders write fields; the general path copes.
                None => return self.field(name, fi)?.value(ai),
            }
        }
        None
    }
}
