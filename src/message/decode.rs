//! Borrowed, validating protobuf decoding of Heka messages.
//!
//! [`MessageView::parse`] walks the buffer once: it checks every tag and length (nested fields
//! included), remembers where the header values are, and allocates nothing. Field values are read
//! again only when asked for. Decoding is strict, as lua_sandbox's is: an unknown tag, a wrong wire
//! type, a missing required field or a value of a kind other than the field's `value_type` is an
//! error that says what and where (byte offsets are from the start of the message).

use super::{DEFAULT_SEVERITY, ValueType};
use crate::varint;

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

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// One protobuf key/value pair read from a buffer.
struct Entry<'a> {
    tag: u64,
    wire_type: u8,
    at: usize,
    /// The varint value for wire type 0, the 8 bytes for 1, the contents for 2.
    varint: u64,
    bytes: &'a [u8],
}

/// Reads the entry starting at `*pos` and advances past it.
#[inline(always)]
fn next_entry<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Entry<'a>, DecodeError> {
    match read_entry(buf, *pos) {
        Some((entry, end)) => {
            *pos = end;
            Ok(entry)
        }
        None => Err(entry_error(buf, *pos)),
    }
}

/// The entry at `at` and where it ends, or `None` if it is malformed. Every message read goes
/// through here a dozen times, so it is kept small for inlining; the detailed error is worked
/// out separately ([`entry_error`]) in the rare case it is needed.
#[inline(always)]
fn read_entry(buf: &[u8], at: usize) -> Option<(Entry<'_>, usize)> {
    let (key, n) = varint::decode_u64(buf.get(at..)?)?;
    let mut p = at + n;
    let wire_type = (key & 7) as u8;
    let mut entry = Entry {
        tag: key >> 3,
        wire_type,
        at,
        varint: 0,
        bytes: &[],
    };
    match wire_type {
        VARINT => {
            let (value, n) = varint::decode_u64(buf.get(p..)?)?;
            entry.varint = value;
            p += n;
        }
        FIXED64 => {
            entry.bytes = buf.get(p..p.checked_add(8)?)?;
            p += 8;
        }
        LEN => {
            let (len, n) = varint::decode_u64(buf.get(p..)?)?;
            p += n;
            let end = p.checked_add(usize::try_from(len).ok()?)?;
            entry.bytes = buf.get(p..end)?;
            p = end;
        }
        _ => return None,
    }
    Some((entry, p))
}

/// Why the entry at `at` cannot be read.
#[cold]
#[inline(never)]
fn entry_error(buf: &[u8], at: usize) -> DecodeError {
    let Some((key, n)) = varint::decode_u64(&buf[at..]) else {
        return DecodeError::Truncated { what: "tag", at };
    };
    let p = at + n;
    let wire_type = (key & 7) as u8;
    let truncated = |what, at| DecodeError::Truncated { what, at };
    match wire_type {
        VARINT => truncated("varint", p),
        FIXED64 => truncated("fixed64", p),
        LEN => match varint::decode_u64(&buf[p..]) {
            None => truncated("length", p),
            Some(_) => truncated("length-delimited value", at),
        },
        _ => DecodeError::UnknownTag {
            tag: key >> 3,
            wire_type,
            at,
        },
    }
}

fn expect(entry: &Entry, what: &'static str, wire_type: u8) -> Result<(), DecodeError> {
    if entry.wire_type == wire_type {
        return Ok(());
    }
    let expected = match wire_type {
        VARINT => "0 (varint)",
        FIXED64 => "1 (fixed64)",
        _ => "2 (length-delimited)",
    };
    Err(DecodeError::WireType {
        what,
        wire_type: entry.wire_type,
        expected,
        at: entry.at,
    })
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
        FieldIter {
            raw: self.raw,
            pos: self.first_field,
            left: self.field_count,
        }
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

/// What [`value_in_order`] found.
enum InOrder<'a> {
    /// The value, or `None` when the field has no `ai`-th value.
    Found(Option<Value<'a>>),
    /// The field's entries are not in tag order; read it the general way.
    NotInOrder,
}

/// The `ai`-th value of a field body whose entries are in tag order, in one pass. A value entry
/// of another kind than the field's value type (invalid) also gives `NotInOrder`, so the general
/// path decides.
#[inline]
fn value_in_order(body: &[u8], mut ai: usize) -> InOrder<'_> {
    let mut value_type = ValueType::String;
    let mut last_tag = 0;
    let mut pos = 0;
    while pos < body.len() {
        let Some((entry, end)) = read_entry(body, pos) else {
            return InOrder::NotInOrder;
        };
        pos = end;
        if entry.tag < last_tag {
            return InOrder::NotInOrder;
        }
        last_tag = entry.tag;
        match entry.tag {
            1 | 3 => {}
            2 => match ValueType::from_wire(entry.varint) {
                Some(t) => value_type = t,
                None => return InOrder::NotInOrder,
            },
            tag if tag == value_tag(value_type) => {
                let mut values = ValueIter {
                    body: &[],
                    pos: 0,
                    tag,
                    value_type,
                    packed: &[],
                };
                let one = match (value_type, entry.wire_type) {
                    (ValueType::String, _) => Value::String(entry.bytes),
                    (ValueType::Bytes, _) => Value::Bytes(entry.bytes),
                    (_, LEN) => {
                        // A packed run: skip whole values, then read the one wanted.
                        values.packed = entry.bytes;
                        loop {
                            match values.next_packed() {
                                Some(v) if ai == 0 => return InOrder::Found(Some(v)),
                                Some(_) => ai -= 1,
                                None => break,
                            }
                        }
                        continue;
                    }
                    (ValueType::Double, _) => match entry.bytes.try_into() {
                        Ok(b) => Value::Double(f64::from_le_bytes(b)),
                        Err(_) => return InOrder::NotInOrder,
                    },
                    _ => values.scalar(entry.varint),
                };
                if ai == 0 {
                    return InOrder::Found(Some(one));
                }
                ai -= 1;
            }
            _ => return InOrder::NotInOrder,
        }
    }
    InOrder::Found(None)
}

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

    fn empty(raw: &'a [u8]) -> Self {
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

/// Iterates the fields of a validated message.
#[derive(Debug, Clone)]
pub struct FieldIter<'a> {
    raw: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = FieldView<'a>;

    fn next(&mut self) -> Option<FieldView<'a>> {
        while self.left > 0 {
            // The message was validated when the view was made, so these cannot fail.
            let entry = next_entry(self.raw, &mut self.pos).ok()?;
            if entry.tag == 10 {
                self.left -= 1;
                return FieldView::parse(entry.bytes, self.pos - entry.bytes.len()).ok();
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// One field of a message, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct FieldView<'a> {
    body: &'a [u8],
    name: &'a [u8],
    value_type: ValueType,
    representation: Option<&'a [u8]>,
    value_count: usize,
}

/// Which repeated tag holds a field's values.
fn value_tag(value_type: ValueType) -> u64 {
    4 + value_type as u64
}

impl<'a> FieldView<'a> {
    /// Validates a `Field` submessage; `at` is its offset in the message, for errors.
    fn parse(body: &'a [u8], at: usize) -> Result<Self, DecodeError> {
        let shift = |e: DecodeError| match e {
            DecodeError::Truncated { what, at: a } => DecodeError::Truncated { what, at: at + a },
            DecodeError::UnknownTag {
                tag,
                wire_type,
                at: a,
            } => DecodeError::UnknownTag {
                tag,
                wire_type,
                at: at + a,
            },
            DecodeError::WireType {
                what,
                wire_type,
                expected,
                at: a,
            } => DecodeError::WireType {
                what,
                wire_type,
                expected,
                at: at + a,
            },
            other => other,
        };
        let mut name = None;
        let mut value_type = ValueType::String;
        let mut representation = None;
        // Values seen per kind, indexed by ValueType.
        let mut counts = [0usize; 5];
        let mut pos = 0;
        while pos < body.len() {
            let entry = next_entry(body, &mut pos).map_err(shift)?;
            match (entry.tag, entry.wire_type) {
                (1, LEN) => name = Some(entry.bytes),
                (2, VARINT) => {
                    value_type =
                        ValueType::from_wire(entry.varint).ok_or(DecodeError::ValueType {
                            value_type: entry.varint,
                            at: at + entry.at,
                        })?;
                }
                (3, LEN) => representation = Some(entry.bytes),
                (4, LEN) => counts[0] += 1,
                (5, LEN) => counts[1] += 1,
                (6, VARINT) | (8, VARINT) | (7, FIXED64) => counts[(entry.tag - 4) as usize] += 1,
                (6, LEN) | (8, LEN) => {
                    counts[(entry.tag - 4) as usize] +=
                        count_varints(entry.bytes).ok_or(DecodeError::Truncated {
                            what: "packed varint",
                            at: at + entry.at,
                        })?;
                }
                (7, LEN) => {
                    if entry.bytes.len() % 8 != 0 {
                        return Err(DecodeError::PackedDoubles {
                            len: entry.bytes.len(),
                            at: at + entry.at,
                        });
                    }
                    counts[3] += entry.bytes.len() / 8;
                }
                (tag @ 1..=8, wire_type) => {
                    let what = [
                        "Field.name",
                        "Field.value_type",
                        "Field.representation",
                        "Field.value_string",
                        "Field.value_bytes",
                        "Field.value_integer",
                        "Field.value_double",
                        "Field.value_bool",
                    ][tag as usize - 1];
                    let expected = match tag {
                        2 => "0 (varint)",
                        1 | 3..=5 => "2 (length-delimited)",
                        7 => "1 (fixed64) or 2 (packed)",
                        _ => "0 (varint) or 2 (packed)",
                    };
                    return Err(DecodeError::WireType {
                        what,
                        wire_type,
                        expected,
                        at: at + entry.at,
                    });
                }
                (tag, wire_type) => {
                    return Err(DecodeError::UnknownTag {
                        tag,
                        wire_type,
                        at: at + entry.at,
                    });
                }
            }
        }
        let name = name.ok_or(DecodeError::Missing("Field.name"))?;
        let value_count = counts[value_type as usize];
        if let Some(other) = (0..5).find(|&k| k != value_type as usize && counts[k] > 0) {
            return Err(DecodeError::ValueMismatch {
                name: String::from_utf8_lossy(name).into_owned(),
                declared: value_type.name(),
                found: ValueType::from_wire(other as u64).map_or("unknown", ValueType::name),
            });
        }
        Ok(FieldView {
            body,
            name,
            value_type,
            representation,
            value_count,
        })
    }

    pub fn name(&self) -> &'a [u8] {
        self.name
    }
    pub fn value_type(&self) -> ValueType {
        self.value_type
    }
    pub fn representation(&self) -> Option<&'a [u8]> {
        self.representation
    }
    /// How many values the field holds (1 for a plain field, more for an array).
    pub fn value_count(&self) -> usize {
        self.value_count
    }
    pub fn values(&self) -> ValueIter<'a> {
        ValueIter {
            body: self.body,
            pos: 0,
            tag: value_tag(self.value_type),
            value_type: self.value_type,
            packed: &[],
        }
    }
    /// The `index`-th value (Hindsight's array index), if there is one.
    pub fn value(&self, index: usize) -> Option<Value<'a>> {
        self.values().nth(index)
    }
}

/// The name of a field whose first entry is its name (how every encoder writes it), if so.
#[inline]
fn leading_name(body: &[u8]) -> Option<&[u8]> {
    if body.first() != Some(&0x0a) {
        return None;
    }
    let (len, n) = varint::decode_u64(&body[1..])?;
    // `len` comes from the message: checked, so a huge length cannot wrap into a small range.
    let end = (1 + n).checked_add(usize::try_from(len).ok()?)?;
    body.get(1 + n..end)
}

fn count_varints(mut buf: &[u8]) -> Option<usize> {
    let mut count = 0;
    while !buf.is_empty() {
        let (_, n) = varint::decode_u64(buf)?;
        buf = &buf[n..];
        count += 1;
    }
    Some(count)
}

/// One value of a field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    String(&'a [u8]),
    Bytes(&'a [u8]),
    Integer(i64),
    Double(f64),
    Bool(bool),
}

impl<'a> Value<'a> {
    /// The bytes of a string or bytes value; empty for numbers and booleans.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Value::String(b) | Value::Bytes(b) => b,
            _ => &[],
        }
    }
    pub fn as_i64(&self) -> i64 {
        match *self {
            Value::Integer(i) => i,
            Value::Double(d) => d as i64,
            Value::Bool(b) => b as i64,
            _ => 0,
        }
    }
    pub fn as_f64(&self) -> f64 {
        match *self {
            Value::Integer(i) => i as f64,
            Value::Double(d) => d,
            Value::Bool(b) => b as i64 as f64,
            _ => 0.0,
        }
    }
    pub fn as_bool(&self) -> bool {
        match *self {
            Value::Bool(b) => b,
            Value::Integer(i) => i != 0,
            Value::Double(d) => d != 0.0,
            _ => false,
        }
    }
}

/// Iterates a field's values, packed or not.
#[derive(Debug, Clone)]
pub struct ValueIter<'a> {
    body: &'a [u8],
    pos: usize,
    tag: u64,
    value_type: ValueType,
    /// The rest of a packed run being read.
    packed: &'a [u8],
}

impl<'a> ValueIter<'a> {
    fn next_packed(&mut self) -> Option<Value<'a>> {
        if self.value_type == ValueType::Double {
            let (head, rest) = self.packed.split_first_chunk::<8>()?;
            self.packed = rest;
            return Some(Value::Double(f64::from_le_bytes(*head)));
        }
        let (raw, n) = varint::decode_u64(self.packed)?;
        self.packed = &self.packed[n..];
        Some(self.scalar(raw))
    }

    fn scalar(&self, raw: u64) -> Value<'a> {
        match self.value_type {
            ValueType::Bool => Value::Bool(raw != 0),
            _ => Value::Integer(raw as i64),
        }
    }
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        loop {
            if !self.packed.is_empty() {
                return self.next_packed();
            }
            if self.pos >= self.body.len() {
                return None;
            }
            // Validated when the field view was made.
            let entry = next_entry(self.body, &mut self.pos).ok()?;
            if entry.tag != self.tag {
                continue;
            }
            return Some(match (self.value_type, entry.wire_type) {
                (ValueType::String, _) => Value::String(entry.bytes),
                (ValueType::Bytes, _) => Value::Bytes(entry.bytes),
                (_, LEN) => {
                    self.packed = entry.bytes;
                    continue;
                }
                (ValueType::Double, _) => {
                    Value::Double(f64::from_le_bytes(entry.bytes.try_into().ok()?))
                }
                _ => self.scalar(entry.varint),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::leading_name;

    #[test]
    fn a_name_length_near_u64_max_is_refused_not_wrapped() {
        // Tag 1 (name, length-delimited), then a length of u64::MAX: `1 + n + len` used to wrap.
        let mut body = vec![0x0a];
        body.extend_from_slice(&[0xff; 9]);
        body.push(0x01);
        body.extend_from_slice(b"abc");
        assert_eq!(leading_name(&body), None);
        assert_eq!(leading_name(b"\x0a\x03abc\x10\x01"), Some(&b"abc"[..]));
        assert_eq!(leading_name(b"\x0a\x09abc"), None);
    }
}
