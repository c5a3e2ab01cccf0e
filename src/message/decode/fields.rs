//! A message's fields and their values, read on demand from a validated message.

use super::DecodeError;
use super::wire::{FIXED64, LEN, VARINT, next_entry, read_entry};
use crate::message::ValueType;
use crate::varint;

/// Iterates the fields of a validated message.
#[derive(Debug, Clone)]
pub struct FieldIter<'a> {
    raw: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> FieldIter<'a> {
    /// The `count` fields of `raw` from byte `first` on (the message was validated).
    pub(super) fn new(raw: &'a [u8], first: usize, count: usize) -> Self {
        FieldIter {
            raw,
            pos: first,
            left: count,
        }
    }
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
pub(super) fn value_tag(value_type: ValueType) -> u64 {
    4 + value_type as u64
}

impl<'a> FieldView<'a> {
    /// Validates a `Field` submessage; `at` is its offset in the message, for errors.
    pub(super) fn parse(body: &'a [u8], at: usize) -> Result<Self, DecodeError> {
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
pub(super) fn leading_name(body: &[u8]) -> Option<&[u8]> {
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

/// What [`value_in_order`] found.
pub(super) enum InOrder<'a> {
    /// The value, or `None` when the field has no `ai`-th value.
    Found(Option<Value<'a>>),
    /// The field's entries are not in tag order; read it the general way.
    NotInOrder,
}

/// The `ai`-th value of a field body whose entries are in tag order, in one pass. A value entry
/// of another kind than the field's value type (invalid) also gives `NotInOrder`, so the general
/// path decides.
#[inline]
pub(super) fn value_in_order(body: &[u8], mut ai: usize) -> InOrder<'_> {
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
