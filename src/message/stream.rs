//! Hindsight's stream framing, for reading and writing Hindsight stream files.
//!
//! Hindsight's queue and output files hold messages framed as
//! `0x1E, header length (1 byte), header, 0x1F, message`, where the header is a small protobuf whose
//! field 1 is the message length (fields 3–6 carry an optional HMAC, which Blink reads past). A
//! reader that meets a bad frame reports it with its offset and resumes at the next 0x1E, as
//! lua_sandbox's reader does, so one damaged frame does not hide the rest of a file.

use super::MessageView;
use crate::varint;

const RECORD_SEPARATOR: u8 = 0x1e;
const UNIT_SEPARATOR: u8 = 0x1f;

/// Appends `message` (protobuf bytes) to `out` in Hindsight's framing.
pub fn frame(message: &[u8], out: &mut Vec<u8>) {
    let header_len = 1 + varint::len_u64(message.len() as u64);
    out.reserve(3 + header_len + message.len());
    out.push(RECORD_SEPARATOR);
    out.push(header_len as u8);
    out.push(0x08); // field 1, varint: message_length
    varint::put_u64(out, message.len() as u64);
    out.push(UNIT_SEPARATOR);
    out.extend_from_slice(message);
}

/// A damaged stretch of a stream file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad frame at byte {at}: {reason}; skipped {skipped} bytes to the next frame")]
pub struct FrameError {
    pub at: usize,
    pub skipped: usize,
    pub reason: String,
}

/// Iterates the messages of a Hindsight stream held in memory.
pub struct StreamReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> StreamReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        StreamReader { buf, pos: 0 }
    }

    /// Parses the frame at `at`: the message bytes and the offset just past them.
    fn frame_at(&self, at: usize) -> Result<(&'a [u8], usize), String> {
        let buf = self.buf;
        if buf[at] != RECORD_SEPARATOR {
            return Err(format!(
                "expected record separator 0x1E, found {:#04x}",
                buf[at]
            ));
        }
        let header_len = *buf.get(at + 1).ok_or("file ends inside the frame header")? as usize;
        let header_start = at + 2;
        let header = buf
            .get(header_start..header_start + header_len)
            .ok_or("file ends inside the frame header")?;
        if buf.get(header_start + header_len) != Some(&UNIT_SEPARATOR) {
            return Err("header is not followed by unit separator 0x1F".into());
        }
        let length = header_length(header)?;
        let start = header_start + header_len + 1;
        let end = start
            .checked_add(length)
            .filter(|&end| end <= buf.len())
            .ok_or_else(|| format!("message of {length} bytes runs past the end of the file"))?;
        let message = &buf[start..end];
        MessageView::parse(message).map_err(|e| e.to_string())?;
        Ok((message, end))
    }
}

/// Reads `message_length` from a frame header, skipping the HMAC fields.
fn header_length(mut header: &[u8]) -> Result<usize, String> {
    let mut length = None;
    while !header.is_empty() {
        let (key, n) = varint::decode_u64(header).ok_or("truncated header")?;
        header = &header[n..];
        let (value, n) = varint::decode_u64(header).ok_or("truncated header")?;
        header = &header[n..];
        match (key >> 3, key & 7) {
            (1, 0) => length = Some(value as usize),
            (3 | 5, 0) => {}
            (4 | 6, 2) => header = header.get(value as usize..).ok_or("truncated header")?,
            (tag, _) => return Err(format!("unknown header tag {tag}")),
        }
    }
    length.ok_or_else(|| "header has no message_length".into())
}

impl<'a> Iterator for StreamReader<'a> {
    /// A message's protobuf bytes and its frame's offset, or a damaged stretch.
    type Item = Result<(usize, &'a [u8]), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        match self.frame_at(at) {
            Ok((message, end)) => {
                self.pos = end;
                Some(Ok((at, message)))
            }
            Err(reason) => {
                let next = self.buf[at + 1..]
                    .iter()
                    .position(|&b| b == RECORD_SEPARATOR)
                    .map_or(self.buf.len(), |p| at + 1 + p);
                self.pos = next;
                Some(Err(FrameError {
                    at,
                    skipped: next - at,
                    reason,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn sample(ts: i64) -> Vec<u8> {
        let mut m = Message::new([7; 16], ts);
        m.payload = Some(b"hello".to_vec());
        m.to_bytes()
    }

    #[test]
    fn frames_round_trip() {
        let mut file = Vec::new();
        frame(&sample(1), &mut file);
        frame(&sample(2), &mut file);
        let read: Vec<_> = StreamReader::new(&file).map(Result::unwrap).collect();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].1, sample(1).as_slice());
        assert_eq!(read[1].1, sample(2).as_slice());
        assert_eq!(read[0].0, 0);
    }

    #[test]
    fn damage_is_reported_and_skipped() {
        let mut file = Vec::new();
        frame(&sample(1), &mut file);
        let first_len = file.len();
        file.extend_from_slice(b"garbage");
        frame(&sample(2), &mut file);
        let mut reader = StreamReader::new(&file);
        assert!(reader.next().unwrap().is_ok());
        let err = reader.next().unwrap().unwrap_err();
        assert_eq!(err.at, first_len);
        assert_eq!(err.skipped, 7);
        let (_, second) = reader.next().unwrap().unwrap();
        assert_eq!(second, sample(2).as_slice());
        assert!(reader.next().is_none());
    }

    #[test]
    fn truncated_file_reports_the_cut() {
        let mut file = Vec::new();
        frame(&sample(1), &mut file);
        file.truncate(file.len() - 3);
        let err = StreamReader::new(&file).next().unwrap().unwrap_err();
        assert!(err.reason.contains("runs past the end"), "{err}");
    }
}
