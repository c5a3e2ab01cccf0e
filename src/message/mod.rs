//! Heka messages: the unit of data in `blink.input` and `blink.analysis`.
//!
//! The model and its protobuf encoding follow Hindsight's `message.proto` field for field, so a
//! message written by Mozilla Hindsight decodes here unchanged and the other way round. Two
//! representations serve two jobs:
//! - [`MessageView`] borrows a protobuf buffer and validates it in one pass without allocating; its
//!   fields are read on demand. Readers of the log use it.
//! - [`Message`] owns its parts and encodes into a caller's buffer in one pass. Writers use it.
//!
//! Text fields are bytes, not `str`: Hindsight plugins are Lua, whose strings are byte strings, and a
//! payload that is not UTF-8 must survive the round trip.

mod decode;
pub(crate) mod encode;
pub mod stream;
mod uuid;

pub use decode::{DecodeError, FieldIter, FieldView, MessageIndex, MessageView, Value, ValueIter};
pub use uuid::{format_uuid, new_uuid};

/// Severity a message has when it does not say (syslog "debug", as Hindsight).
pub const DEFAULT_SEVERITY: i32 = 7;

/// The type tag of a field's values (`Field.ValueType` in message.proto).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String = 0,
    Bytes = 1,
    Integer = 2,
    Double = 3,
    Bool = 4,
}

impl ValueType {
    pub fn from_wire(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Self::String,
            1 => Self::Bytes,
            2 => Self::Integer,
            3 => Self::Double,
            4 => Self::Bool,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::String => "STRING",
            Self::Bytes => "BYTES",
            Self::Integer => "INTEGER",
            Self::Double => "DOUBLE",
            Self::Bool => "BOOL",
        }
    }
}

/// An owned Heka message, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub uuid: [u8; 16],
    /// Nanoseconds since the Unix epoch.
    pub timestamp: i64,
    pub r#type: Option<Vec<u8>>,
    pub logger: Option<Vec<u8>>,
    pub severity: Option<i32>,
    pub payload: Option<Vec<u8>>,
    pub env_version: Option<Vec<u8>>,
    pub pid: Option<i32>,
    pub hostname: Option<Vec<u8>>,
    pub fields: Vec<Field>,
}

/// One named, typed, possibly repeated value of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: Vec<u8>,
    pub representation: Option<Vec<u8>>,
    pub values: FieldValues,
}

/// A field's values; the variant is the field's value type.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValues {
    String(Vec<Vec<u8>>),
    Bytes(Vec<Vec<u8>>),
    Integer(Vec<i64>),
    Double(Vec<f64>),
    Bool(Vec<bool>),
}

impl FieldValues {
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::String(_) => ValueType::String,
            Self::Bytes(_) => ValueType::Bytes,
            Self::Integer(_) => ValueType::Integer,
            Self::Double(_) => ValueType::Double,
            Self::Bool(_) => ValueType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::String(v) | Self::Bytes(v) => v.len(),
            Self::Integer(v) => v.len(),
            Self::Double(v) => v.len(),
            Self::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Field {
    /// A single-valued field with no representation.
    pub fn new(name: &str, values: FieldValues) -> Self {
        Field {
            name: name.as_bytes().to_vec(),
            representation: None,
            values,
        }
    }
}

impl Message {
    /// A message with the given identity and nothing else set.
    pub fn new(uuid: [u8; 16], timestamp: i64) -> Self {
        Message {
            uuid,
            timestamp,
            r#type: None,
            logger: None,
            severity: None,
            payload: None,
            env_version: None,
            pid: None,
            hostname: None,
            fields: Vec::new(),
        }
    }
}

impl<'a> From<&MessageView<'a>> for Message {
    fn from(view: &MessageView<'a>) -> Self {
        let own = |s: Option<&[u8]>| s.map(<[u8]>::to_vec);
        Message {
            uuid: *view.uuid(),
            timestamp: view.timestamp(),
            r#type: own(view.r#type()),
            logger: own(view.logger()),
            severity: view.severity_raw(),
            payload: own(view.payload()),
            env_version: own(view.env_version()),
            pid: view.pid(),
            hostname: own(view.hostname()),
            fields: view.fields().map(|f| Field::from(&f)).collect(),
        }
    }
}

impl<'a> From<&FieldView<'a>> for Field {
    fn from(view: &FieldView<'a>) -> Self {
        let values = view.values();
        let values = match view.value_type() {
            ValueType::String => {
                FieldValues::String(values.map(|v| v.as_bytes().to_vec()).collect())
            }
            ValueType::Bytes => FieldValues::Bytes(values.map(|v| v.as_bytes().to_vec()).collect()),
            ValueType::Integer => FieldValues::Integer(values.map(|v| v.as_i64()).collect()),
            ValueType::Double => FieldValues::Double(values.map(|v| v.as_f64()).collect()),
            ValueType::Bool => FieldValues::Bool(values.map(|v| v.as_bool()).collect()),
        };
        Field {
            name: view.name().to_vec(),
            representation: view.representation().map(<[u8]>::to_vec),
            values,
        }
    }
}

#[cfg(test)]
mod tests;
