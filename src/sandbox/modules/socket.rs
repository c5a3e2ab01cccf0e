//! `socket`: the part of LuaSocket that heka's TCP and UDP inputs and outputs use, so a syslog
//! or Heka-protocol receiver runs as a plain input plugin: `socket.bind(address, port)` (a
//! listening TCP server), `socket.tcp()` and `socket.connect(address, port)`, `socket.udp()`,
//! `socket.select(receivers, senders, timeout)`, `socket.sleep(s)`, `socket.gettime()`; on the
//! objects `accept`, `receive("*l" | "*a" | n)` → `data` or `nil, "timeout" | "closed",
//! partial`, `send(data)`, `settimeout(s)` (nil or negative: block), `getpeername`,
//! `getsockname`, `setsockname` and `receivefrom`/`sendto` (UDP), `setoption` (accepted,
//! ignored), `close`. Errors are returned as LuaSocket returns them (`nil, message`), not
//! raised.
//!
//! Input and output plugins only. A plugin may hold at most 256 sockets at once (a plugin
//! cannot take every file descriptor Blink has); one `receive` reads at most 1 MiB beyond what
//! it returns, so a peer that never ends its line costs the plugin's own (Lua) memory, not
//! Blink's. A blocking call waits at most the timeout set, and `select` at most its own.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{AnyUserData, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

/// Sockets one plugin may hold open.
const MAX_SOCKETS: usize = 256;
/// What one `receive` reads ahead at most.
const READ_LIMIT: usize = 1 << 20;
/// The longest a blocking call waits when no timeout was set (LuaSocket would wait for ever;
/// a plugin's stop must not be held up longer than this).
const BLOCK_LIMIT: Duration = Duration::from_secs(1);

/// The sockets a plugin holds (shared by its objects, to enforce [`MAX_SOCKETS`]).
#[derive(Clone, Default)]
struct Count(Rc<Cell<usize>>);

impl Count {
    fn take(&self) -> Result<Slot, String> {
        if self.0.get() >= MAX_SOCKETS {
            return Err(format!(
                "too many sockets (a plugin may hold {MAX_SOCKETS})"
            ));
        }
        self.0.set(self.0.get() + 1);
        Ok(Slot(self.0.clone()))
    }
}

/// One socket's place in its plugin's count, given back when it closes.
struct Slot(Rc<Cell<usize>>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

enum Inner {
    /// `socket.tcp()` before `connect` or `bind`: only its timeout is known.
    Fresh,
    Listener(TcpListener),
    Stream(TcpStream),
    Udp(UdpSocket),
    Closed,
}

struct Socket {
    inner: Inner,
    /// None: block (up to [`BLOCK_LIMIT`]).
    timeout: Option<Duration>,
    /// Bytes received and not yet returned.
    buffer: Vec<u8>,
    count: Count,
    _slot: Option<Slot>,
}

/// A new socket object, or LuaSocket's `nil, message` when the plugin holds too many.
fn new_object(lua: &Lua, inner: Inner, count: &Count) -> mlua::Result<MultiValue> {
    match Socket::new(inner, count) {
        Ok(s) => Ok(MultiValue::from_vec(vec![Value::UserData(
            lua.create_userdata(s)?,
        )])),
        Err(e) => fail(lua, e),
    }
}

fn fail(lua: &Lua, message: impl Into<String>) -> mlua::Result<MultiValue> {
    let message = lua.create_string(message.into())?;
    Ok(MultiValue::from_vec(vec![
        Value::Nil,
        Value::String(message),
    ]))
}

fn resolve(address: &str, port: u16) -> Result<SocketAddr, String> {
    let address = if address == "*" { "0.0.0.0" } else { address };
    (address, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("cannot resolve {address}"))
}

/// Waits until `fd` is readable (or writable) or `timeout` passes; true if it is.
fn wait(fd: RawFd, write: bool, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: if write { libc::POLLOUT } else { libc::POLLIN },
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, its count, and a bounded timeout.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    ready > 0
}

impl Socket {
    fn new(inner: Inner, count: &Count) -> Result<Self, String> {
        Ok(Socket {
            inner,
            timeout: None,
            buffer: Vec::new(),
            count: count.clone(),
            _slot: Some(count.take()?),
        })
    }

    fn fd(&self) -> Option<RawFd> {
        match &self.inner {
            Inner::Listener(l) => Some(l.as_raw_fd()),
            Inner::Stream(s) => Some(s.as_raw_fd()),
            Inner::Udp(u) => Some(u.as_raw_fd()),
            _ => None,
        }
    }

    fn wait_time(&self) -> Duration {
        self.timeout.unwrap_or(BLOCK_LIMIT).min(BLOCK_LIMIT)
    }

    /// Reads what is there into the buffer, waiting up to the timeout for the first byte;
    /// Ok(false) at the end of the stream.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        let Inner::Stream(stream) = &mut self.inner else {
            return Err("not connected".into());
        };
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !wait(stream.as_raw_fd(), false, left) {
                        return Err("timeout".into());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// `receive(pattern)`: the data, or the error and what was received so far.
    fn receive(&mut self, pattern: &Value) -> Result<Vec<u8>, (String, Vec<u8>)> {
        enum Want {
            Line,
            All,
            Bytes(usize),
        }
        let want = match pattern {
            Value::Nil => Want::Line,
            Value::String(s) if s.as_bytes().starts_with(b"*l") => Want::Line,
            Value::String(s) if s.as_bytes().starts_with(b"*a") => Want::All,
            Value::Integer(n) if *n >= 0 => Want::Bytes(*n as usize),
            Value::Number(n) if *n >= 0.0 => Want::Bytes(*n as usize),
            _ => return Err(("invalid receive pattern".into(), Vec::new())),
        };
        let deadline = Instant::now() + self.wait_time();
        loop {
            match want {
                Want::Line => {
                    if let Some(p) = self.buffer.iter().position(|&b| b == b'\n') {
                        let mut line: Vec<u8> = self.buffer.drain(..=p).collect();
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        return Ok(line);
                    }
                }
                Want::Bytes(n) if self.buffer.len() >= n => {
                    return Ok(self.buffer.drain(..n).collect());
                }
                _ => {}
            }
            if self.buffer.len() >= READ_LIMIT {
                return Err(("timeout".into(), std::mem::take(&mut self.buffer)));
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => {
                    let rest = std::mem::take(&mut self.buffer);
                    if matches!(want, Want::All) {
                        return Ok(rest);
                    }
                    return Err(("closed".into(), rest));
                }
                Err(e) => return Err((e, std::mem::take(&mut self.buffer))),
            }
        }
    }
}

impl UserData for Socket {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("settimeout", |_, s, t: Option<f64>| {
            s.timeout = t
                .filter(|t| *t >= 0.0 && t.is_finite())
                .map(Duration::from_secs_f64);
            Ok(1)
        });
        methods.add_method("setoption", |_, _, _: MultiValue| Ok(1));
        methods.add_method_mut("close", |_, s, ()| {
            s.inner = Inner::Closed;
            s._slot = None;
            Ok(1)
        });
        methods.add_method_mut("bind", |lua, s, (address, port): (String, u16)| {
            let addr = match resolve(&address, port) {
                Ok(a) => a,
                Err(e) => return fail(lua, e),
            };
            match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => {
                    s.inner = Inner::Listener(l);
                    Ok(MultiValue::from_vec(vec![Value::Integer(1)]))
                }
                Err(e) => fail(lua, e.to_string()),
            }
        });
        methods.add_method("listen", |_, _, _: MultiValue| Ok(1));
        methods.add_method_mut("connect", |lua, s, (address, port): (String, u16)| {
            let addr = match resolve(&address, port) {
                Ok(a) => a,
                Err(e) => return fail(lua, e),
            };
            let timeout = s.wait_time().max(Duration::from_millis(1));
            match TcpStream::connect_timeout(&addr, timeout)
                .and_then(|t| t.set_nonblocking(true).map(|()| t))
            {
                Ok(t) => {
                    s.inner = Inner::Stream(t);
                    Ok(MultiValue::from_vec(vec![Value::Integer(1)]))
                }
                Err(e) => fail(lua, e.to_string()),
            }
        });
        methods.add_method_mut("accept", |lua, s, ()| {
            let Inner::Listener(listener) = &s.inner else {
                return fail(lua, "not a server");
            };
            let deadline = Instant::now() + s.wait_time();
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(true).is_err() {
                            return fail(lua, "cannot use the connection");
                        }
                        return new_object(lua, Inner::Stream(stream), &s.count);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() || !wait(listener.as_raw_fd(), false, left) {
                            return fail(lua, "timeout");
                        }
                    }
                    Err(e) => return fail(lua, e.to_string()),
                }
            }
        });
        methods.add_method_mut("receive", |lua, s, pattern: Value| {
            Ok(match s.receive(&pattern) {
                Ok(data) => MultiValue::from_vec(vec![Value::String(lua.create_string(data)?)]),
                Err((e, partial)) => MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string(e)?),
                    Value::String(lua.create_string(partial)?),
                ]),
            })
        });
        methods.add_method_mut("send", |lua, s, data: mlua::LuaString| {
            let data = data.as_bytes();
            let deadline = Instant::now() + s.wait_time();
            let Inner::Stream(stream) = &mut s.inner else {
                return fail(lua, "closed");
            };
            let mut sent = 0;
            while sent < data.len() {
                match stream.write(&data[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() || !wait(stream.as_raw_fd(), true, left) {
                            let mut out = fail(lua, "timeout")?.into_vec();
                            out.push(Value::Number(sent as f64));
                            return Ok(MultiValue::from_vec(out));
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        let mut out = fail(lua, e.to_string())?.into_vec();
                        out.push(Value::Number(sent as f64));
                        return Ok(MultiValue::from_vec(out));
                    }
                }
            }
            Ok(MultiValue::from_vec(vec![Value::Number(sent as f64)]))
        });
        for (name, peer) in [("getpeername", true), ("getsockname", false)] {
            methods.add_method(name, move |lua, s, ()| {
                let addr = match (&s.inner, peer) {
                    (Inner::Stream(t), true) => t.peer_addr(),
                    (Inner::Stream(t), false) => t.local_addr(),
                    (Inner::Listener(l), false) => l.local_addr(),
                    (Inner::Udp(u), true) => u.peer_addr(),
                    (Inner::Udp(u), false) => u.local_addr(),
                    _ => return fail(lua, "not connected"),
                };
                match addr {
                    Ok(a) => Ok(MultiValue::from_vec(vec![
                        Value::String(lua.create_string(a.ip().to_string())?),
                        Value::Number(a.port() as f64),
                    ])),
                    Err(e) => fail(lua, e.to_string()),
                }
            });
        }
        methods.add_method_mut("setsockname", |lua, s, (address, port): (String, u16)| {
            let addr = match resolve(&address, port) {
                Ok(a) => a,
                Err(e) => return fail(lua, e),
            };
            match UdpSocket::bind(addr).and_then(|u| u.set_nonblocking(true).map(|()| u)) {
                Ok(u) => {
                    s.inner = Inner::Udp(u);
                    Ok(MultiValue::from_vec(vec![Value::Integer(1)]))
                }
                Err(e) => fail(lua, e.to_string()),
            }
        });
        methods.add_method_mut("receivefrom", |lua, s, size: Option<f64>| {
            let size = size.map_or(8192, |n| (n.max(1.0) as usize).min(65536));
            let deadline = Instant::now() + s.wait_time();
            if matches!(s.inner, Inner::Fresh) {
                // LuaSocket binds an unbound UDP socket on first use.
                match UdpSocket::bind("0.0.0.0:0").and_then(|u| u.set_nonblocking(true).map(|()| u))
                {
                    Ok(u) => s.inner = Inner::Udp(u),
                    Err(e) => return fail(lua, e.to_string()),
                }
            }
            let Inner::Udp(udp) = &s.inner else {
                return fail(lua, "not a UDP socket");
            };
            let mut buf = vec![0u8; size];
            loop {
                match udp.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        return Ok(MultiValue::from_vec(vec![
                            Value::String(lua.create_string(&buf[..n])?),
                            Value::String(lua.create_string(from.ip().to_string())?),
                            Value::Number(from.port() as f64),
                        ]));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() || !wait(udp.as_raw_fd(), false, left) {
                            return fail(lua, "timeout");
                        }
                    }
                    Err(e) => return fail(lua, e.to_string()),
                }
            }
        });
        methods.add_method_mut(
            "sendto",
            |lua, s, (data, address, port): (mlua::LuaString, String, u16)| {
                if matches!(s.inner, Inner::Fresh) {
                    match UdpSocket::bind("0.0.0.0:0") {
                        Ok(u) => s.inner = Inner::Udp(u),
                        Err(e) => return fail(lua, e.to_string()),
                    }
                }
                let Inner::Udp(udp) = &s.inner else {
                    return fail(lua, "not a UDP socket");
                };
                let addr = match resolve(&address, port) {
                    Ok(a) => a,
                    Err(e) => return fail(lua, e),
                };
                match udp.send_to(&data.as_bytes(), addr) {
                    Ok(n) => Ok(MultiValue::from_vec(vec![Value::Number(n as f64)])),
                    Err(e) => fail(lua, e.to_string()),
                }
            },
        );
    }
}

/// `socket.select(receivers, senders, timeout)`: the sockets ready to read and to write, as
/// arrays (also keyed by the socket), or empty ones and "timeout".
fn select(
    lua: &Lua,
    (receivers, senders, timeout): (Option<Table>, Option<Table>, Option<f64>),
) -> mlua::Result<MultiValue> {
    let mut watched: Vec<(AnyUserData, bool)> = Vec::new();
    for (table, write) in [(&receivers, false), (&senders, true)] {
        if let Some(t) = table {
            for v in t.sequence_values::<Value>() {
                if let Value::UserData(u) = v?
                    && u.is::<Socket>()
                {
                    watched.push((u, write));
                }
                if watched.len() > MAX_SOCKETS * 2 {
                    return Err(mlua::Error::runtime("select: too many sockets"));
                }
            }
        }
    }
    let mut fds = Vec::with_capacity(watched.len());
    for (u, write) in &watched {
        let s = u.borrow::<Socket>()?;
        // A socket with buffered data is ready at once.
        let buffered = !s.buffer.is_empty();
        fds.push(libc::pollfd {
            fd: s.fd().unwrap_or(-1),
            events: if *write { libc::POLLOUT } else { libc::POLLIN },
            revents: if buffered { libc::POLLIN } else { 0 },
        });
    }
    let any_buffered = fds.iter().any(|p| p.revents != 0);
    let ms = if any_buffered {
        0
    } else {
        timeout
            .filter(|t| *t >= 0.0)
            .map_or(BLOCK_LIMIT, Duration::from_secs_f64)
            .min(BLOCK_LIMIT)
            .as_millis() as i32
    };
    let buffered: Vec<bool> = fds.iter().map(|p| p.revents != 0).collect();
    // SAFETY: `fds` is a valid array of its length; fds of -1 are ignored by poll.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    let (readable, writable) = (lua.create_table()?, lua.create_table()?);
    for (i, (u, write)) in watched.into_iter().enumerate() {
        let ready = buffered[i] || fds[i].revents != 0;
        if ready {
            let t = if write { &writable } else { &readable };
            t.raw_set(t.raw_len() + 1, u.clone())?;
            t.raw_set(u, true)?;
        }
    }
    let nothing = readable.raw_len() == 0 && writable.raw_len() == 0;
    let mut out = vec![Value::Table(readable), Value::Table(writable)];
    if nothing {
        out.push(Value::String(lua.create_string("timeout")?));
    }
    Ok(MultiValue::from_vec(out))
}

/// Opens the module.
pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let count = Count::default();
    let socket = lua.create_table()?;
    let c = count.clone();
    socket.raw_set(
        "tcp",
        lua.create_function(move |lua, ()| new_object(lua, Inner::Fresh, &c))?,
    )?;
    let c = count.clone();
    socket.raw_set(
        "udp",
        lua.create_function(move |lua, ()| new_object(lua, Inner::Fresh, &c))?,
    )?;
    let c = count.clone();
    socket.raw_set(
        "bind",
        lua.create_function(move |lua, (address, port): (String, u16)| {
            let addr = match resolve(&address, port) {
                Ok(a) => a,
                Err(e) => return fail(lua, e),
            };
            let listener =
                match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                    Ok(l) => l,
                    Err(e) => return fail(lua, e.to_string()),
                };
            new_object(lua, Inner::Listener(listener), &c)
        })?,
    )?;
    let c = count;
    socket.raw_set(
        "connect",
        lua.create_function(move |lua, (address, port): (String, u16)| {
            let addr = match resolve(&address, port) {
                Ok(a) => a,
                Err(e) => return fail(lua, e),
            };
            let stream = match TcpStream::connect_timeout(&addr, BLOCK_LIMIT)
                .and_then(|t| t.set_nonblocking(true).map(|()| t))
            {
                Ok(t) => t,
                Err(e) => return fail(lua, e.to_string()),
            };
            new_object(lua, Inner::Stream(stream), &c)
        })?,
    )?;
    socket.raw_set("select", lua.create_function(select)?)?;
    socket.raw_set(
        "sleep",
        lua.create_function(|_, seconds: f64| {
            if seconds > 0.0 && seconds.is_finite() {
                // Bounded: a plugin's stop waits for it.
                std::thread::sleep(Duration::from_secs_f64(seconds.min(60.0)));
            }
            Ok(())
        })?,
    )?;
    socket.raw_set(
        "gettime",
        lua.create_function(|_, ()| Ok(crate::time::now_nanos() as f64 / 1e9))?,
    )?;
    Ok(Some(socket))
}

#[cfg(test)]
mod tests;
