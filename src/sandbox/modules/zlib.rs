//! `zlib`: lua-zlib's streams and checksums, as lua_sandbox_extensions' ingest decoders use
//! them: `zlib.inflate([window_bits])` and `zlib.deflate([level [, window_bits]])` return a
//! stream function, `stream(input [, flush])` → `output, eof, bytes_in, bytes_out`;
//! `zlib.crc32()` and `zlib.adler32()` return a running checksum function, `f(data)` → the
//! checksum so far; `zlib.version()` → `1, 2, 13`.
//!
//! `window_bits` as zlib reads it: 8–15 the zlib format, +16 gzip, +32 (inflate) either,
//! negative raw deflate. Compression is flate2's. What a stream inflates is held outside Lua's
//! allocator until it becomes a string, so it is bounded by the plugin's `memory_limit` (1 GiB
//! without one): a small hostile input that inflates without end is an error, not an
//! allocation without bound.

use std::cell::RefCell;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};
use mlua::{Function, Lua, Table};

/// Inflated bytes a stream may produce per call when the plugin has no memory limit.
const UNLIMITED_OUTPUT: usize = 1 << 30;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Zlib,
    Gzip,
    Raw,
    /// Inflate: gzip or zlib, by the first bytes.
    Detect,
}

fn format_of(window_bits: i32) -> mlua::Result<Format> {
    Ok(match window_bits {
        -15..=-8 => Format::Raw,
        8..=15 => Format::Zlib,
        24..=31 => Format::Gzip,
        40..=47 => Format::Detect,
        other => {
            return Err(mlua::Error::runtime(format!(
                "invalid window size: {other}"
            )));
        }
    })
}

/// Inflate's state: the gzip header still to read, the deflate stream, the gzip trailer.
struct Inflater {
    format: Format,
    /// Input held until the header can be read whole.
    pending: Vec<u8>,
    inflate: Option<Decompress>,
    crc: Crc,
    done: bool,
    bytes_in: u64,
    bytes_out: u64,
    max_output: usize,
}

/// The length of a complete gzip header at the start of `b`; `Ok(None)` if more bytes are
/// needed.
fn gzip_header(b: &[u8]) -> Result<Option<usize>, String> {
    if b.len() < 10 {
        return Ok(None);
    }
    if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
        return Err("incorrect header check".into());
    }
    let flags = b[3];
    let mut at = 10;
    if flags & 4 != 0 {
        if b.len() < at + 2 {
            return Ok(None);
        }
        at += 2 + u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            match b.get(at..).and_then(|r| r.iter().position(|&c| c == 0)) {
                Some(p) => at += p + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    Ok((b.len() >= at).then_some(at))
}

impl Inflater {
    fn new(format: Format, max_output: usize) -> Self {
        Inflater {
            format,
            pending: Vec::new(),
            inflate: None,
            crc: Crc::new(),
            done: false,
            bytes_in: 0,
            bytes_out: 0,
            max_output,
        }
    }

    /// Inflates `input`; the output and whether the stream has ended.
    fn feed(&mut self, input: &[u8]) -> Result<(Vec<u8>, bool), String> {
        self.bytes_in += input.len() as u64;
        let buffered: Vec<u8>;
        let mut input = input;
        if self.inflate.is_none() {
            // The header decides the format: held until it has arrived whole.
            let mut held = std::mem::take(&mut self.pending);
            held.extend_from_slice(input);
            let format = match self.format {
                Format::Detect if held.len() < 2 => None,
                Format::Detect if held[..2] == [0x1f, 0x8b] => Some(Format::Gzip),
                Format::Detect => Some(Format::Zlib),
                f => Some(f),
            };
            let header = match format {
                Some(Format::Gzip) => gzip_header(&held)?,
                Some(_) => Some(0),
                None => None,
            };
            let (Some(format), Some(header)) = (format, header) else {
                self.pending = held;
                return Ok((Vec::new(), false));
            };
            self.format = format;
            self.inflate = Some(Decompress::new(format == Format::Zlib));
            held.drain(..header);
            buffered = held;
            input = &buffered;
        }
        let mut out = Vec::new();
        if self.done {
            return Ok((out, true));
        }
        let inflate = self.inflate.as_mut().expect("made above");
        let mut used = 0;
        loop {
            if out.len() >= self.max_output {
                return Err(format!(
                    "inflated data exceeds the plugin's memory limit ({} bytes)",
                    self.max_output
                ));
            }
            let room = (input.len() - used)
                .max(4096)
                .min(self.max_output - out.len());
            out.reserve(room);
            let (before_in, before_out) = (inflate.total_in(), inflate.total_out());
            let status = inflate
                .decompress_vec(&input[used..], &mut out, FlushDecompress::None)
                .map_err(|e| e.to_string())?;
            used += (inflate.total_in() - before_in) as usize;
            if status == Status::StreamEnd {
                self.done = true;
                break;
            }
            let progressed = inflate.total_in() > before_in || inflate.total_out() > before_out;
            // A full buffer may hide more output; otherwise the input is used up.
            if !progressed || (out.len() < out.capacity() && used >= input.len()) {
                break;
            }
        }
        if self.format == Format::Gzip {
            self.crc.update(&out);
            if self.done {
                let trailer = &input[used..];
                if trailer.len() >= 4 && trailer[..4] != self.crc.sum().to_le_bytes() {
                    return Err("incorrect data check".into());
                }
            }
        }
        self.bytes_out += out.len() as u64;
        Ok((out, self.done))
    }
}

/// Deflate's state.
struct Deflater {
    format: Format,
    deflate: Compress,
    header_written: bool,
    crc: Crc,
    done: bool,
    bytes_in: u64,
    bytes_out: u64,
}

impl Deflater {
    fn feed(&mut self, input: &[u8], flush: FlushCompress) -> Result<(Vec<u8>, bool), String> {
        if self.done {
            return Ok((Vec::new(), true));
        }
        self.bytes_in += input.len() as u64;
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        if self.format == Format::Gzip && !self.header_written {
            out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        }
        self.header_written = true;
        self.crc.update(input);
        let mut used = 0;
        loop {
            out.reserve(4096);
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(&input[used..], &mut out, flush)
                .map_err(|e| e.to_string())?;
            used += (self.deflate.total_in() - before) as usize;
            if status == Status::StreamEnd {
                self.done = true;
                break;
            }
            if used >= input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if self.done && self.format == Format::Gzip {
            out.extend_from_slice(&self.crc.sum().to_le_bytes());
            out.extend_from_slice(&(self.crc.amount()).to_le_bytes());
        }
        self.bytes_out += out.len() as u64;
        Ok((out, self.done))
    }
}

fn flush_of(v: Option<String>) -> mlua::Result<FlushCompress> {
    Ok(match v.as_deref() {
        None => FlushCompress::None,
        Some("sync") => FlushCompress::Sync,
        Some("full") => FlushCompress::Full,
        Some("finish") => FlushCompress::Finish,
        Some(other) => {
            return Err(mlua::Error::runtime(format!(
                "invalid flush option '{other}' (sync, full or finish)"
            )));
        }
    })
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let max_output = if env.memory_limit == 0 {
        UNLIMITED_OUTPUT
    } else {
        env.memory_limit
    };
    let zlib = lua.create_table()?;
    let plain = |f: Function| super::plain_error::wrap(lua, f);
    zlib.raw_set(
        "inflate",
        plain(lua.create_function(move |lua, window: Option<i32>| {
            let state = RefCell::new(Inflater::new(format_of(window.unwrap_or(15))?, max_output));
            let stream = lua.create_function(move |lua, input: Option<mlua::LuaString>| {
                let mut s = state.borrow_mut();
                let input = input.map(|i| i.as_bytes().to_vec()).unwrap_or_default();
                let (out, eof) = s.feed(&input).map_err(mlua::Error::runtime)?;
                Ok((
                    lua.create_string(out)?,
                    eof,
                    s.bytes_in as f64,
                    s.bytes_out as f64,
                ))
            })?;
            super::plain_error::wrap(lua, stream)
        })?)?,
    )?;
    zlib.raw_set(
        "deflate",
        plain(
            lua.create_function(|lua, (level, window): (Option<i32>, Option<i32>)| {
                let format = format_of(window.unwrap_or(15))?;
                if format == Format::Detect {
                    return Err(mlua::Error::runtime("invalid window size for deflate"));
                }
                let level = match level {
                    None | Some(-1) => Compression::default(),
                    Some(l @ 0..=9) => Compression::new(l as u32),
                    Some(other) => {
                        return Err(mlua::Error::runtime(format!(
                            "invalid compression level: {other}"
                        )));
                    }
                };
                let state = RefCell::new(Deflater {
                    format,
                    deflate: Compress::new(level, format == Format::Zlib),
                    header_written: false,
                    crc: Crc::new(),
                    done: false,
                    bytes_in: 0,
                    bytes_out: 0,
                });
                let stream = lua.create_function(
                    move |lua, (input, flush): (Option<mlua::LuaString>, Option<String>)| {
                        let mut s = state.borrow_mut();
                        let input = input.map(|i| i.as_bytes().to_vec()).unwrap_or_default();
                        let (out, eof) = s
                            .feed(&input, flush_of(flush)?)
                            .map_err(mlua::Error::runtime)?;
                        Ok((
                            lua.create_string(out)?,
                            eof,
                            s.bytes_in as f64,
                            s.bytes_out as f64,
                        ))
                    },
                )?;
                super::plain_error::wrap(lua, stream)
            })?,
        )?,
    )?;
    zlib.raw_set(
        "crc32",
        lua.create_function(|lua, ()| {
            let crc = RefCell::new(Crc::new());
            lua.create_function(move |_, data: Option<mlua::LuaString>| {
                let mut crc = crc.borrow_mut();
                if let Some(data) = data {
                    crc.update(&data.as_bytes());
                }
                Ok(crc.sum() as f64)
            })
        })?,
    )?;
    zlib.raw_set(
        "adler32",
        lua.create_function(|lua, ()| {
            let sums = RefCell::new((1u32, 0u32));
            lua.create_function(move |_, data: Option<mlua::LuaString>| {
                let mut sums = sums.borrow_mut();
                if let Some(data) = data {
                    for &b in data.as_bytes().iter() {
                        sums.0 = (sums.0 + b as u32) % 65521;
                        sums.1 = (sums.1 + sums.0) % 65521;
                    }
                }
                Ok(((sums.1 << 16) | sums.0) as f64)
            })
        })?,
    )?;
    zlib.raw_set("version", lua.create_function(|_, ()| Ok((1, 2, 13)))?)?;
    Ok(Some(zlib))
}

#[cfg(test)]
mod tests;
