//! `gzfile`: reading files that may be gzip-compressed, line by line, with the API of
//! lua_sandbox_extensions' `gzfile` (zlib's `gz*` functions): `gzfile.open(name [, mode
//! [, buffer_size]])` → a file or `nil, "open failed"`; `gzf:lines([max_bytes])` (each line
//! with its line feed; a longer line is cut at `max_bytes`, default 1 MiB, and its rest
//! skipped); `gzf:lines_tail([striplf])` (complete lines only: a partial line at the end is
//! kept until the rest is written, for following a growing file); `gzf:seek([whence
//! [, offset]])` (`"set"` or `"cur"`, in uncompressed bytes); `gzf:close()`;
//! `gzfile.string(name [, mode [, buffer_size [, max_bytes]]])` (the whole file, at most
//! `max_bytes`, default 1 MiB); `gzfile.version()`.
//!
//! A file that does not start with gzip's magic bytes is read as it is, as zlib does;
//! concatenated gzip members read as one stream. Only reading is offered (the original has no
//! write method either). What a file holds outside Lua — the partial line kept between
//! `lines_tail` calls, a line being read — is bounded by the plugin's module memory, so a file
//! without line feeds, or a small gzip that inflates without end, is an error rather than an
//! allocation without bound.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use mlua::{AnyUserData, Function, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

/// The version of the original module whose API this is.
const VERSION: &str = "0.0.3";
/// `max_bytes` when not given, for `lines` and `string`.
const DEFAULT_MAX_BYTES: i64 = 1024 * 1024;
/// The largest read buffer a plugin may ask for.
const MAX_BUFFER: usize = 1 << 20;

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// An open file's uncompressed bytes.
struct Stream {
    path: String,
    buffer_size: usize,
    reader: Box<dyn BufRead>,
    gzip: bool,
    /// Uncompressed bytes consumed.
    position: u64,
    /// A gzip stream that reached the end of its file: reopened at `position` once the file
    /// has grown (the decoder goes on neither past a truncated member nor into a member
    /// appended after it finished). The file's length then, so an unchanged file is not
    /// inflated again on every poll.
    stale: bool,
    stale_len: u64,
}

impl Stream {
    fn open(path: &str, buffer_size: usize) -> std::io::Result<Stream> {
        let mut file = File::open(path)?;
        let mut magic = [0u8; 2];
        let gzip = file.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
        file.rewind()?;
        let reader: Box<dyn BufRead> = if gzip {
            let decoder = MultiGzDecoder::new(BufReader::with_capacity(buffer_size, file));
            Box::new(BufReader::with_capacity(buffer_size, decoder))
        } else {
            Box::new(BufReader::with_capacity(buffer_size, file))
        };
        Ok(Stream {
            path: path.to_owned(),
            buffer_size,
            reader,
            gzip,
            position: 0,
            stale: false,
            stale_len: 0,
        })
    }

    /// The next buffered bytes (empty at the end for now). A truncated gzip member counts as
    /// the end, to be read on from once the file has grown.
    fn fill(&mut self) -> std::io::Result<&[u8]> {
        if self.stale {
            if self.file_len() == self.stale_len {
                return Ok(&[]);
            }
            self.reopen_at(self.position)?;
            if self.stale {
                return Ok(&[]);
            }
        }
        let at_end = match self.reader.fill_buf() {
            Ok(chunk) => chunk.is_empty(),
            Err(e) if self.gzip && e.kind() == ErrorKind::UnexpectedEof => true,
            Err(e) => return Err(e),
        };
        if at_end && self.gzip {
            self.stale = true;
            self.stale_len = self.file_len();
            return Ok(&[]);
        }
        self.reader.fill_buf()
    }

    /// The compressed file's length now (0 if it cannot be read).
    fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn consume(&mut self, n: usize) {
        self.reader.consume(n);
        self.position += n as u64;
    }

    /// Opens the file again and skips to `target` (uncompressed).
    fn reopen_at(&mut self, target: u64) -> std::io::Result<()> {
        let mut fresh = Stream::open(&self.path, self.buffer_size)?;
        if !fresh.gzip {
            let mut file = File::open(&self.path)?;
            file.seek(SeekFrom::Start(target))?;
            fresh.reader = Box::new(BufReader::with_capacity(self.buffer_size, file));
            fresh.position = target;
        } else {
            while fresh.position < target {
                let available = fresh.fill()?.len();
                if available == 0 {
                    // Not written that far yet: try again once the file grows.
                    self.stale = true;
                    self.stale_len = fresh.stale_len;
                    return Ok(());
                }
                fresh.consume(available.min((target - fresh.position) as usize));
            }
        }
        *self = fresh;
        Ok(())
    }

    /// Appends bytes up to and including the next line feed to `line`, keeping at most
    /// `keep` bytes in it (the rest of a longer line is skipped). Returns whether a line
    /// feed ended it.
    fn read_line(&mut self, line: &mut Vec<u8>, keep: usize) -> std::io::Result<bool> {
        loop {
            let chunk = self.fill()?;
            if chunk.is_empty() {
                return Ok(false);
            }
            let (take, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = keep.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..take.min(room)]);
            self.consume(take);
            if ended {
                return Ok(true);
            }
        }
    }
}

/// An open file as a plugin holds it.
struct GzFile {
    stream: Option<Stream>,
    /// `lines_tail`: a partial line read up to the end of the file, completed by the next call.
    partial: Vec<u8>,
    partial_memory: Option<super::Reservation>,
    external: Rc<super::ExternalMemory>,
}

impl GzFile {
    /// The next line for `lines`: cut at `max_bytes`; `None` at the end.
    fn next_line(&mut self, max_bytes: usize) -> mlua::Result<Option<Vec<u8>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let mut line = Vec::new();
        // A read error ends the lines, as zlib's gzgets does.
        let _ = stream.read_line(&mut line, max_bytes.min(self.external.available()));
        Ok((!line.is_empty()).then_some(line))
    }

    /// The next complete line for `lines_tail`; `None` when none is complete yet.
    fn next_complete_line(&mut self, strip_lf: bool) -> mlua::Result<Option<Vec<u8>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let mut line = std::mem::take(&mut self.partial);
        self.partial_memory = None;
        let limit = self.external.available();
        let ended = stream
            .read_line(&mut line, limit.saturating_add(1))
            .map_err(|e| error(format!("gzfile error: {e}")))?;
        if line.len() > limit {
            return Err(error(format!(
                "gzfile error: a line of more than {limit} bytes (the plugin's memory limit)"
            )));
        }
        if ended {
            if strip_lf {
                line.pop();
            }
            return Ok(Some(line));
        }
        self.partial_memory = Some(self.external.reserve(line.len(), "a partial line")?);
        self.partial = line;
        Ok(None)
    }

    fn close(&mut self) {
        self.stream = None;
        self.partial = Vec::new();
        self.partial_memory = None;
    }
}

impl UserData for GzFile {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_function("close", |_, args: MultiValue| {
            let file = file_arg(&args, 1)?;
            file.borrow_mut::<GzFile>()?.close();
            Ok(())
        });
        methods.add_function("lines", |lua, args: MultiValue| {
            let file = file_arg(&args, 2)?;
            let max_bytes = match args.get(1) {
                None | Some(Value::Nil) => DEFAULT_MAX_BYTES,
                Some(v) => integer(lua, v, 2, "lines")?,
            };
            if max_bytes <= 0 {
                return Err(error("bad argument #2 to 'lines' (max_bytes must be > 0)"));
            }
            let max_bytes = max_bytes as usize;
            lua.create_function(move |lua, ()| {
                let line = file.borrow_mut::<GzFile>()?.next_line(max_bytes)?;
                line.map(|l| lua.create_string(l)).transpose()
            })
        });
        methods.add_function("lines_tail", |lua, args: MultiValue| {
            let file = file_arg(&args, 2)?;
            let strip_lf =
                matches!(args.get(1), Some(v) if !matches!(v, Value::Nil | Value::Boolean(false)));
            lua.create_function(move |lua, ()| {
                let line = file.borrow_mut::<GzFile>()?.next_complete_line(strip_lf)?;
                line.map(|l| lua.create_string(l)).transpose()
            })
        });
        methods.add_function("seek", |lua, args: MultiValue| {
            let file = file_arg(&args, 3)?;
            let whence = match args.get(1) {
                None | Some(Value::Nil) => "set".to_owned(),
                Some(Value::String(s)) => s.to_str()?.to_owned(),
                Some(other) => {
                    return Err(error(format!(
                        "bad argument #2 to 'seek' (string expected, got {})",
                        other.type_name()
                    )));
                }
            };
            let offset = match args.get(2) {
                None | Some(Value::Nil) => 0,
                Some(v) => integer(lua, v, 3, "seek")?,
            };
            let mut file = file.borrow_mut::<GzFile>()?;
            let Some(stream) = file.stream.as_mut() else {
                return Ok((Value::Nil, Some("file is closed".to_owned())));
            };
            let target = match whence.as_str() {
                "set" => offset,
                "cur" => stream.position as i64 + offset,
                other => {
                    return Err(error(format!(
                        "bad argument #2 to 'seek' (invalid option '{other}')"
                    )));
                }
            };
            if target < 0 {
                return Ok((Value::Nil, Some("negative offset".to_owned())));
            }
            file.partial.clear();
            file.partial_memory = None;
            let stream = file.stream.as_mut().expect("checked above");
            match stream.reopen_at(target as u64) {
                Ok(()) => Ok((Value::Number(stream.position as f64), None)),
                Err(e) => Ok((Value::Nil, Some(e.to_string()))),
            }
        });
    }
}

/// Argument 1, the file, with at most `most` arguments in all.
fn file_arg(args: &MultiValue, most: usize) -> mlua::Result<AnyUserData> {
    let file = match args.front() {
        Some(Value::UserData(ud)) if ud.is::<GzFile>() => ud.clone(),
        other => {
            return Err(error(format!(
                "bad argument #1 (mozsvc.gzfile expected, got {})",
                other.map_or("no value", |v| v.type_name())
            )));
        }
    };
    if args.len() > most {
        return Err(error("bad argument #0 (incorrect number of arguments)"));
    }
    Ok(file)
}

/// Argument `index` as an integer, as `luaL_checkint` takes it (a numeric string too).
fn integer(lua: &Lua, value: &Value, index: usize, function: &str) -> mlua::Result<i64> {
    super::lua_args::check_integer(lua, Some(value), index, function)
}

/// The name, mode and buffer size `open` and `string` take first.
fn open_args(lua: &Lua, args: &MultiValue, function: &str) -> mlua::Result<(String, usize)> {
    let name = match args.front() {
        Some(Value::String(s)) => s.to_str()?.to_owned(),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => lua
            .coerce_string(v.clone())?
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        other => {
            return Err(error(format!(
                "bad argument #1 to '{function}' (string expected, got {})",
                other.map_or("no value", |v| v.type_name())
            )));
        }
    };
    match args.get(1) {
        None | Some(Value::Nil | Value::String(_)) => {}
        Some(other) => {
            return Err(error(format!(
                "bad argument #2 to '{function}' (string expected, got {})",
                other.type_name()
            )));
        }
    }
    let buffer_size = match args.get(2) {
        None | Some(Value::Nil) => 8 * 1024,
        Some(v) => integer(lua, v, 3, function)?,
    };
    if buffer_size <= 0 {
        return Err(error(format!(
            "bad argument #3 to '{function}' (buffer_size must be > 0)"
        )));
    }
    Ok((name, (buffer_size as usize).min(MAX_BUFFER)))
}

/// Whether the mode reads (the only kind of file offered).
fn reads(args: &MultiValue) -> mlua::Result<bool> {
    Ok(match args.get(1) {
        Some(Value::String(mode)) => mode.to_str()?.starts_with('r'),
        _ => true,
    })
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let module = lua.create_table()?;
    let plain = |f: Function| super::plain_error::wrap(lua, f);
    let external = env.external.clone();
    module.raw_set(
        "open",
        plain(lua.create_function(move |lua, args: MultiValue| {
            if args.len() > 3 {
                return Err(error(
                    "bad argument #0 to 'open' (incorrect number of arguments)",
                ));
            }
            let (name, buffer_size) = open_args(lua, &args, "open")?;
            let stream = match reads(&args)? {
                true => Stream::open(&name, buffer_size).ok(),
                false => None,
            };
            let Some(stream) = stream else {
                return Ok((Value::Nil, Some("open failed")));
            };
            let file = GzFile {
                stream: Some(stream),
                partial: Vec::new(),
                partial_memory: None,
                external: external.clone(),
            };
            Ok((Value::UserData(lua.create_userdata(file)?), None))
        })?)?,
    )?;
    let external = env.external.clone();
    module.raw_set(
        "string",
        plain(lua.create_function(move |lua, args: MultiValue| {
            if args.len() > 4 {
                return Err(error(
                    "bad argument #0 to 'string' (incorrect number of arguments)",
                ));
            }
            let (name, buffer_size) = open_args(lua, &args, "string")?;
            let max_bytes = match args.get(3) {
                None | Some(Value::Nil) => DEFAULT_MAX_BYTES,
                Some(v) => integer(lua, v, 4, "string")?,
            };
            if max_bytes <= 0 {
                return Err(error("bad argument #4 to 'string' (max_bytes must be > 0)"));
            }
            let max_bytes = (max_bytes as usize).min(external.available());
            let mut stream = match reads(&args)? {
                true => Stream::open(&name, buffer_size).map_err(|_| error("open failed"))?,
                false => return Err(error("open failed")),
            };
            let mut out = Vec::new();
            loop {
                let chunk = stream.fill().map_err(|e| error(e.to_string()))?;
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len();
                if out.len() + n > max_bytes {
                    return Err(error("max_bytes exceeded"));
                }
                out.extend_from_slice(chunk);
                stream.consume(n);
            }
            lua.create_string(out)
        })?)?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok(VERSION))?)?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use mlua::Lua;

    use crate::plugin::PluginKind;
    use crate::sandbox::modules::ModuleEnv;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn lua_with_module(dir: &std::path::Path) -> Lua {
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Input, "gzfile");
        lua.globals()
            .set("dir", dir.to_str().unwrap().to_owned())
            .unwrap();
        lua
    }

    #[test]
    fn lines_cut_long_lines_and_read_plain_and_gzip_files_alike() {
        let dir = tempfile::tempdir().unwrap();
        let long = "0123456789".repeat(3000);
        let text = format!("line one\n{long}\nline 3\n");
        std::fs::write(dir.path().join("plain.log"), &text).unwrap();
        // Two gzip members, as a rotated log appended to is.
        let mut two = gzip(b"line one\n");
        two.extend(gzip(format!("{long}\nline 3\n").as_bytes()));
        std::fs::write(dir.path().join("two.gz"), two).unwrap();
        std::fs::write(dir.path().join("tail.log"), "no line feed").unwrap();
        let lua = lua_with_module(dir.path());
        lua.load(
            r#"
            assert(gzfile.version() == "0.0.3")
            local function read(name, max)
                local f = assert(gzfile.open(dir .. "/" .. name))
                local got = {}
                for line in f:lines(max) do got[#got + 1] = line end
                f:close()
                return got
            end
            for _, name in ipairs({"plain.log", "two.gz"}) do
                local cut = read(name, 80)
                assert(#cut == 3, name)
                assert(cut[1] == "line one\n" and cut[2] == string.rep("0123456789", 8), name)
                assert(cut[3] == "line 3\n", name)
                local whole = read(name)
                assert(#whole[2] == 30001, "a line within max_bytes keeps its line feed")
            end
            assert(read("tail.log")[1] == "no line feed", "the last line needs no line feed")

            local f, err = gzfile.open(dir .. "/missing")
            assert(f == nil and err == "open failed")
            assert(gzfile.string(dir .. "/two.gz") == "line one\n" .. string.rep("0123456789", 3000) .. "\nline 3\n")
            local ok, e = pcall(gzfile.string, dir .. "/plain.log", nil, nil, 50)
            assert(not ok and e == "max_bytes exceeded", e)
            ok, e = pcall(gzfile.string, dir .. "/missing")
            assert(not ok and e == "open failed", e)

            for _, bad in ipairs({
                function() gzfile.open() end,
                function() gzfile.open({}) end,
                function() gzfile.open("x", {}) end,
                function() gzfile.open("x", "rb", "s") end,
                function() gzfile.open(dir .. "/plain.log"):close(1) end,
                function() gzfile.open(dir .. "/plain.log"):lines("foo") end,
            }) do
                assert(not pcall(bad))
            end
            "#,
        )
        .exec()
        .unwrap();
    }

    #[test]
    fn lines_tail_keeps_a_partial_line_until_it_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("grow.log");
        let packed = dir.path().join("grow.gz");
        std::fs::write(&plain, "one\ntw").unwrap();
        std::fs::write(&packed, gzip(b"one\ntw")).unwrap();
        let lua = lua_with_module(dir.path());
        lua.load(
            r#"
            files = {}
            function take(name, strip)
                local got = {}
                for line in files[name]:lines_tail(strip) do got[#got + 1] = line end
                return table.concat(got, "|")
            end
            for _, name in ipairs({"grow.log", "grow.gz"}) do
                files[name] = assert(gzfile.open(dir .. "/" .. name))
                assert(take(name, true) == "one", name)
                assert(take(name, true) == "", name)
            end
            "#,
        )
        .exec()
        .unwrap();
        // The writer finishes the line and adds one; the gzip file gains a member.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&plain)
            .unwrap()
            .write_all(b"o\nthree\n")
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&packed)
            .unwrap()
            .write_all(&gzip(b"o\nthree\n"))
            .unwrap();
        lua.load(
            r#"
            assert(take("grow.log", false) == "two\n|three\n", take)
            assert(take("grow.gz", true) == "two|three")
            -- Seeking counts uncompressed bytes, in either kind of file.
            for _, name in ipairs({"grow.log", "grow.gz"}) do
                local f = files[name]
                assert(f:seek("set", 4) == 4)
                assert(take(name, true) == "two|three", name)
                assert(f:seek("cur", -6) == 8)
                assert(take(name, true) == "three", name)
            end
            "#,
        )
        .exec()
        .unwrap();
    }

    #[test]
    fn a_line_without_end_is_bounded_by_module_memory() {
        let dir = tempfile::tempdir().unwrap();
        // 8 MiB of zeros without a line feed, in a gzip of about 8 KiB.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![b'0'; 1 << 20];
        for _ in 0..8 {
            encoder.write_all(&zeros).unwrap();
        }
        std::fs::write(dir.path().join("bomb.gz"), encoder.finish().unwrap()).unwrap();
        let lua = Lua::new();
        let mut env = ModuleEnv::for_tests(PluginKind::Input);
        env.external = crate::sandbox::modules::ExternalMemory::new(1 << 20);
        let module = super::open(&lua, &env).unwrap().unwrap();
        lua.globals().set("gzfile", module).unwrap();
        lua.globals()
            .set(
                "name",
                dir.path().join("bomb.gz").to_str().unwrap().to_owned(),
            )
            .unwrap();
        lua.load(
            r#"
            local f = gzfile.open(name)
            local ok, e = pcall(function() for _ in f:lines_tail() do end end)
            assert(not ok and tostring(e):find("more than 1048576 bytes"), tostring(e))
            local line = f:seek("set", 0) and gzfile.open(name):lines()()
            assert(#line == 1048576, "lines cuts at the memory limit: " .. #line)
            ok, e = pcall(gzfile.string, name, nil, nil, 1e9)
            assert(not ok and e == "max_bytes exceeded", e)
            "#,
        )
        .exec()
        .unwrap();
    }
}
