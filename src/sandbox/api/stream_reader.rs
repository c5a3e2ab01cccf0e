//! `create_stream_reader(name)` for input plugins: a reader of framed Heka protobuf streams
//! (Hindsight's queue and output files, heka_file, S3 objects), with lua_sandbox's methods:
//!
//! - `hsr:find_message(buf [, decode])`: adds `buf` (a string, or nil to scan what is held,
//!   or an open file to read from) and looks for the next whole message →
//!   `found, consumed, need` — `consumed` the stream bytes used up (for a checkpoint), `need`
//!   the bytes still wanted to complete a message (or, with a file, the bytes just read;
//!   0 there means the file is at its end). A damaged frame is skipped to the next separator.
//! - `hsr:decode_message(protobuf)`: makes that message the current one.
//! - `hsr:read_message(field, fi, ai)`: as `read_message`, on the current message.
//! - `inject_message(hsr)` injects the current message.
//!
//! The buffer holds at most one message of `max_message_size` and its header; a frame that
//! claims more is skipped, never allocated.

use bytes::Bytes;
use mlua::{AnyUserData, Lua, MultiValue, Table, UserData, Value};

use crate::message::{MessageIndex, MessageView};
use crate::sandbox::current;
use crate::sandbox::host::shared;

const RECORD_SEPARATOR: u8 = 0x1e;
const UNIT_SEPARATOR: u8 = 0x1f;
/// A frame header's largest size: separator, length byte, up to 255 header bytes, separator.
const MAX_HEADER: usize = 258;
/// The buffer's first size (stdio's BUFSIZ, as lua_sandbox's).
const FIRST_SIZE: usize = 8192;
const METHODS_KEY: &str = "blink.stream_reader.methods";

/// The message a reader found.
enum Found {
    Decoded(Bytes, MessageIndex),
    /// `find_message(buf, false)`: framed bytes that need not be a Heka message.
    Raw(Bytes),
}

pub(crate) struct StreamReader {
    name: String,
    /// Bytes not yet scanned start at `scan`; the buffer's end is `buf.len()`.
    buf: Vec<u8>,
    scan: usize,
    /// The length the current frame's header announced (0: not read yet).
    msglen: usize,
    /// The room the buffer has now (grows by powers of two up to `max`).
    size: usize,
    max: usize,
    message: Option<Found>,
}

impl UserData for StreamReader {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            lua.named_registry_value::<Table>(METHODS_KEY)
        });
    }
}

/// A frame header's message length (protobuf field 1), if it is one within `limit`.
fn header_length(header: &[u8], limit: usize) -> Option<usize> {
    let mut at = 0;
    let mut length = None;
    let varint = |at: &mut usize| -> Option<u64> {
        let (v, n) = crate::varint::decode_u64(header.get(*at..)?)?;
        *at += n;
        Some(v)
    };
    while at < header.len() {
        let key = varint(&mut at)?;
        match key & 7 {
            0 => {
                let v = varint(&mut at)?;
                if key >> 3 == 1 {
                    length = Some(v);
                }
            }
            2 => {
                let n = varint(&mut at)? as usize;
                at = at.checked_add(n).filter(|&e| e <= header.len())?;
            }
            _ => return None,
        }
    }
    length.map(|l| l as usize).filter(|&l| l > 0 && l <= limit)
}

impl StreamReader {
    fn new(name: String, max_message_size: usize) -> Self {
        let max = max_message_size + MAX_HEADER;
        StreamReader {
            name,
            buf: Vec::new(),
            scan: 0,
            msglen: 0,
            size: FIRST_SIZE.min(max),
            max,
            message: None,
        }
    }

    /// Moves what is unscanned to the front and makes room for `more` bytes.
    fn expand(&mut self, more: usize) -> mlua::Result<()> {
        if self.scan > 0 {
            self.buf.drain(..self.scan);
            self.scan = 0;
        }
        let wanted = self.buf.len() + more;
        if wanted > self.size {
            if wanted > self.max {
                return Err(mlua::Error::runtime(format!(
                    "buffer reallocation failed\tname:{}",
                    self.name
                )));
            }
            self.size = wanted.next_power_of_two().min(self.max);
        }
        Ok(())
    }

    /// Looks for the next whole message from `scan`; lua_sandbox's rules: bytes before a
    /// separator, a bad header and (when decoding) a message that is not Heka's are skipped.
    fn scan_for_message(&mut self, decode: bool) -> bool {
        loop {
            let read = self.buf.len();
            if read == self.scan {
                return false;
            }
            let Some(p) = self.buf[self.scan..]
                .iter()
                .position(|&b| b == RECORD_SEPARATOR)
            else {
                // No frame starts here: everything held is dropped.
                self.buf.clear();
                self.scan = 0;
                return false;
            };
            self.scan += p;
            if read - self.scan < 2 {
                return false;
            }
            let header_len = self.buf[self.scan + 1] as usize;
            let header_end = self.scan + header_len + 3;
            if header_end > read {
                return false;
            }
            if self.buf[header_end - 1] != UNIT_SEPARATOR {
                self.scan += 1;
                continue;
            }
            if self.msglen == 0 {
                let header = &self.buf[self.scan + 2..header_end - 1];
                self.msglen = header_length(header, self.max - MAX_HEADER).unwrap_or(0);
            }
            if self.msglen == 0 {
                self.scan += 1;
                continue;
            }
            let end = header_end + self.msglen;
            if end > read {
                return false;
            }
            let bytes = Bytes::copy_from_slice(&self.buf[header_end..end]);
            self.msglen = 0;
            if decode {
                match MessageView::parse(&bytes).map(|v| v.index()) {
                    Ok(index) => self.message = Some(Found::Decoded(bytes, index)),
                    Err(_) => {
                        self.scan += 1;
                        continue;
                    }
                }
            } else {
                self.message = Some(Found::Raw(bytes));
            }
            self.scan = end;
            return true;
        }
    }

    /// `find_message`'s three results, after `buf` (if any) was added.
    fn find(&mut self, decode: bool) -> (bool, usize, usize) {
        let (read_before, scan_before) = (self.buf.len(), self.scan);
        let found = self.scan_for_message(decode);
        if found {
            let need = if self.scan != self.buf.len() {
                0
            } else {
                self.size
            };
            return (true, self.scan - scan_before, need);
        }
        let consumed = if self.buf.is_empty() {
            read_before - scan_before
        } else {
            self.scan - scan_before
        };
        let need = if self.msglen > 0 {
            let header_len = self.buf[self.scan + 1] as usize;
            (self.msglen + header_len + 3).saturating_sub(self.buf.len() - self.scan)
        } else {
            (self.scan + self.size).saturating_sub(self.buf.len())
        };
        (false, consumed, need)
    }

    /// The current message's bytes (what `inject_message(hsr)` injects).
    pub fn current_bytes(&self) -> Option<Bytes> {
        match &self.message {
            Some(Found::Decoded(b, _)) | Some(Found::Raw(b)) => Some(b.clone()),
            None => None,
        }
    }
}

fn methods(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let add = |name: &str, f: mlua::Function| -> mlua::Result<()> {
        t.raw_set(name, crate::sandbox::modules::plain_error::wrap(lua, f)?)
    };
    // A file's `read(n)`, called from Rust.
    let read_file: mlua::Function = lua
        .load("return function(f, n) return f:read(n) end")
        .set_name("=[stream_reader]")
        .call(())?;
    add(
        "find_message",
        lua.create_function(move |_, (ud, args): (AnyUserData, MultiValue)| {
            let mut hsr = ud.borrow_mut::<StreamReader>()?;
            let mut args = args.into_iter();
            let source = args.next().unwrap_or(Value::Nil);
            let decode = match args.next() {
                None | Some(Value::Nil) => true,
                Some(Value::Boolean(b)) => b,
                Some(_) => return Err(mlua::Error::runtime("decode must be a boolean")),
            };
            let file = match source {
                Value::Nil => None,
                Value::String(s) => {
                    let data = s.as_bytes();
                    if !data.is_empty() {
                        hsr.expand(data.len())?;
                        hsr.buf.extend_from_slice(&data);
                    }
                    None
                }
                Value::UserData(f) if f.is::<StreamReader>() => {
                    return Err(mlua::Error::runtime(
                        "buffer must be a nil, string, userdata (FILE*)",
                    ));
                }
                Value::UserData(f) => Some(f),
                _ => {
                    return Err(mlua::Error::runtime(
                        "buffer must be a nil, string, userdata (FILE*)",
                    ));
                }
            };
            let (found, consumed, need) = hsr.find(decode);
            let Some(file) = file else {
                return Ok((found, consumed as f64, need as f64));
            };
            if found {
                return Ok((true, consumed as f64, 0.0));
            }
            hsr.expand(need)?;
            let room = hsr.size - hsr.buf.len();
            drop(hsr);
            let data: Option<mlua::LuaString> = read_file.call((file, room))?;
            let mut hsr = ud.borrow_mut::<StreamReader>()?;
            let data = data.map(|d| d.as_bytes().to_vec()).unwrap_or_default();
            let n = data.len().min(room);
            hsr.buf.extend_from_slice(&data[..n]);
            Ok((false, consumed as f64, n as f64))
        })?,
    )?;
    add(
        "decode_message",
        lua.create_function(|_, (ud, pb): (AnyUserData, Value)| {
            let mut hsr = ud.borrow_mut::<StreamReader>()?;
            hsr.buf.clear();
            hsr.scan = 0;
            hsr.msglen = 0;
            let Value::String(pb) = pb else {
                return Err(mlua::Error::runtime("buffer must be string"));
            };
            let bytes = Bytes::copy_from_slice(&pb.as_bytes());
            if bytes.is_empty() {
                return Err(mlua::Error::runtime("empty protobuf string"));
            }
            if bytes.len() > hsr.max {
                return Err(mlua::Error::runtime(format!(
                    "buffer reallocation failed\tname:{}",
                    hsr.name
                )));
            }
            let index = MessageView::parse(&bytes)
                .map(|v| v.index())
                .map_err(|_| mlua::Error::runtime("invalid protobuf string"))?;
            hsr.message = Some(Found::Decoded(bytes, index));
            Ok(())
        })?,
    )?;
    add(
        "read_message",
        lua.create_function(
            |lua, (ud, name, fi, ai): (AnyUserData, mlua::LuaString, Option<f64>, Option<f64>)| {
                let hsr = ud.borrow::<StreamReader>()?;
                let index = |v: Option<f64>| v.filter(|n| *n >= 0.0).map_or(0, |n| n as usize);
                let name = name.as_bytes();
                match &hsr.message {
                    Some(Found::Decoded(bytes, idx)) => {
                        current::read_value(lua, (bytes.clone(), *idx), &name, index(fi), index(ai))
                    }
                    Some(Found::Raw(bytes)) if &name[..] == b"raw" => {
                        Ok(Value::String(lua.create_string(bytes)?))
                    }
                    _ => Ok(Value::Nil),
                }
            },
        )?,
    )?;
    Ok(t)
}

/// Installs `create_stream_reader` (input plugins).
pub(super) fn install(lua: &Lua, g: &Table) -> mlua::Result<()> {
    lua.set_named_registry_value(METHODS_KEY, methods(lua)?)?;
    let create = lua.create_function(|lua, name: mlua::LuaString| {
        let name = name.to_string_lossy().to_string();
        if name.len() >= 255 {
            return Err(mlua::Error::runtime(
                "bad argument #1 to 'create_stream_reader' (name is too long)",
            ));
        }
        let max = shared(lua).borrow().max_message_size;
        Ok(StreamReader::new(name, max))
    })?;
    g.raw_set(
        "create_stream_reader",
        crate::sandbox::modules::plain_error::wrap(lua, create)?,
    )
}

/// Fuzzing: `data` fed to a reader in chunks (the first byte sets their size), every message
/// found; nothing may panic, and the buffer never holds more than one message and its header.
pub(crate) fn fuzz(data: &[u8]) {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = chunk as usize % 64 + 1;
    let mut r = StreamReader::new("fuzz".into(), 1024);
    for piece in data.chunks(chunk) {
        if r.expand(piece.len()).is_err() {
            // Full of an unfinished frame: what lua_sandbox reports too; start over.
            r = StreamReader::new("fuzz".into(), 1024);
            continue;
        }
        r.buf.extend_from_slice(piece);
        while r.find(true).0 {
            let bytes = r.current_bytes().expect("a message was found");
            assert!(MessageView::parse(&bytes).is_ok());
        }
        assert!(r.buf.len() <= r.max, "the buffer stays within one message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            crate::message::stream::frame(m, &mut out);
        }
        out
    }

    fn message(payload: &str) -> Vec<u8> {
        let m = crate::message::Message {
            uuid: [7; 16],
            timestamp: 1,
            r#type: None,
            logger: None,
            severity: None,
            payload: Some(payload.into()),
            env_version: None,
            pid: None,
            hostname: None,
            fields: Vec::new(),
        };
        m.to_bytes()
    }

    #[test]
    fn messages_are_found_across_chunks_and_damage_is_skipped() {
        let stream = framed(&[message("one"), message("two")]);
        let mut r = StreamReader::new("t".into(), 65536);
        // Part of the first frame: no whole message yet; all of it is held.
        let half = 10;
        r.expand(half).unwrap();
        r.buf.extend_from_slice(&stream[..half]);
        let (found, consumed, need) = r.find(true);
        assert!(!found && need > 0, "{consumed} {need}");
        r.expand(stream.len() - half).unwrap();
        r.buf.extend_from_slice(&stream[half..]);
        let (found, consumed, need) = r.find(true);
        assert!(found && consumed > 0 && need == 0, "more is held: {need}");
        let (found, _, need) = r.find(true);
        assert!(found && need == r.size, "the buffer is used up");
        assert!(!r.find(true).0);
        // Garbage, then a damaged frame, then a good one.
        let mut damaged = b"garbage".to_vec();
        damaged.extend_from_slice(&[RECORD_SEPARATOR, 2, 0x08, 0x7f]);
        damaged.extend(framed(&[message("three")]));
        r.expand(damaged.len()).unwrap();
        r.buf.extend_from_slice(&damaged);
        let (found, consumed, _) = r.find(true);
        assert!(found && consumed == damaged.len());
        match &r.message {
            Some(Found::Decoded(bytes, _)) => {
                assert_eq!(
                    MessageView::parse(bytes).unwrap().payload(),
                    Some(&b"three"[..])
                )
            }
            _ => panic!("decoded"),
        }
    }

    #[test]
    fn a_frame_claiming_more_than_the_limit_is_skipped_and_the_buffer_is_bounded() {
        let mut r = StreamReader::new("t".into(), 1024);
        let mut bogus = vec![RECORD_SEPARATOR, 4, 0x08, 0xff, 0xff, 0x03, UNIT_SEPARATOR];
        bogus.extend(framed(&[message("ok")]));
        r.expand(bogus.len()).unwrap();
        r.buf.extend_from_slice(&bogus);
        assert!(r.find(true).0, "the claim of 65535 bytes is not believed");
        assert!(
            r.expand(4096).is_err(),
            "no more than one message and its header"
        );
        assert_eq!(header_length(&[0x08, 0x05], 1024), Some(5));
        assert_eq!(header_length(&[0x08, 0x00], 1024), None);
        assert_eq!(
            header_length(&[0x08, 0x05, 0x1a, 0x02, 1, 2], 1024),
            Some(5)
        );
        assert_eq!(header_length(&[0x08, 0x05, 0x1a, 0x09], 1024), None);
    }
}
