//! `http`: HTTP and HTTPS requests for input and output plugins — how alerts reach webhooks
//! and Slack. `http.request{method = "POST", url = URL, headers = {…}, body = TEXT, timeout =
//! SECONDS}` → `status, body, headers` (header names in lower case), or `nil, error` when no
//! response came (refused, timed out, a TLS failure); `http.hmac_sha256_hex(key, data)` signs a
//! body for a webhook that checks signatures.
//!
//! A request blocks only its plugin's own thread (analysis plugins cannot load this), and for
//! at most its `timeout` (default 10 s, at most 60 s). Redirects are not followed (the 3xx is
//! the answer: a webhook that redirects elsewhere is not sent there silently); only `http` and
//! `https` URLs; response bodies are read up to 1 MiB. TLS is rustls with the Mozilla root
//! certificates compiled in. Each plugin keeps its client (one per timeout it uses), so
//! connections are reused: an alert to Slack does not pay a TLS handshake each time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, Table, Value};

/// The longest a request may take.
const MAX_TIMEOUT: f64 = 60.0;
/// The most of a response body that is read.
const MAX_BODY: u64 = 1 << 20;
/// The most a request body may hold.
const MAX_REQUEST_BODY: usize = 16 << 20;

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// A request as the plugin described it, checked.
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
}

fn request_of(spec: &Table) -> mlua::Result<Request> {
    let method = spec
        .get::<Option<String>>("method")?
        .unwrap_or_else(|| "GET".to_owned())
        .to_ascii_uppercase();
    if !matches!(
        method.as_str(),
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD"
    ) {
        return Err(error(format!(
            "http.request: unsupported method {method:?}"
        )));
    }
    let url: String = spec
        .get::<Option<String>>("url")?
        .ok_or_else(|| error("http.request: url is required"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(error(format!(
            "http.request: {url:?} is not an http:// or https:// URL"
        )));
    }
    let mut headers = Vec::new();
    if let Some(table) = spec.get::<Option<Table>>("headers")? {
        for pair in table.pairs::<String, String>() {
            let (name, value) = pair.map_err(|_| error("http.request: headers are name = text"))?;
            headers.push((name, value));
        }
    }
    let body = match spec.get::<Value>("body")? {
        Value::Nil => Vec::new(),
        Value::String(s) => s.as_bytes().to_vec(),
        other => {
            return Err(error(format!(
                "http.request: body must be a string, not {}",
                other.type_name()
            )));
        }
    };
    if body.len() > MAX_REQUEST_BODY {
        return Err(error("http.request: body is larger than 16 MiB"));
    }
    let timeout = spec.get::<Option<f64>>("timeout")?.unwrap_or(10.0);
    if !(timeout > 0.0 && timeout <= MAX_TIMEOUT) {
        return Err(error(
            "http.request: timeout must be between 0 and 60 seconds",
        ));
    }
    Ok(Request {
        method,
        url,
        headers,
        body,
        timeout: Duration::from_secs_f64(timeout),
    })
}

/// An answer: its status, body and headers.
type Answer = (u16, Vec<u8>, Vec<(String, String)>);

/// A plugin's clients, by timeout in milliseconds (a plugin uses one or two).
type Agents = Rc<RefCell<HashMap<u128, ureq::Agent>>>;
/// Clients a plugin keeps; with more distinct timeouts, the others are made per request.
const MAX_AGENTS: usize = 8;

/// The plugin's client for `timeout`.
fn agent(agents: &Agents, timeout: Duration) -> ureq::Agent {
    let key = timeout.as_millis();
    if let Some(agent) = agents.borrow().get(&key) {
        return agent.clone();
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut agents = agents.borrow_mut();
    if agents.len() < MAX_AGENTS {
        agents.insert(key, agent.clone());
    }
    agent
}

/// Sends `request`: the answer, or why there is none.
fn send(agents: &Agents, request: Request) -> Result<Answer, String> {
    let agent = agent(agents, request.timeout);
    let mut builder = ureq::http::Request::builder()
        .method(request.method.as_str())
        .uri(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let http_request = builder.body(request.body).map_err(|e| e.to_string())?;
    let mut response = agent.run(http_request).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .unwrap_or_default();
    Ok((status, body, headers))
}

/// Opens the module.
pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let module = lua.create_table()?;
    let agents = Agents::default();
    module.raw_set(
        "request",
        super::plain_error::wrap(
            lua,
            lua.create_function(move |lua, spec: Table| {
                let request = request_of(&spec)?;
                match send(&agents, request) {
                    Ok((status, body, headers)) => {
                        let table = lua.create_table()?;
                        for (name, value) in headers {
                            table.raw_set(name, value)?;
                        }
                        Ok((
                            Value::Integer(status.into()),
                            Value::String(lua.create_string(body)?),
                            Value::Table(table),
                        ))
                    }
                    Err(e) => Ok((Value::Nil, Value::String(lua.create_string(e)?), Value::Nil)),
                }
            })?,
        )?,
    )?;
    module.raw_set(
        "hmac_sha256_hex",
        lua.create_function(|_, (key, data): (mlua::LuaString, mlua::LuaString)| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.as_bytes());
            let tag = ring::hmac::sign(&key, &data.as_bytes());
            Ok(tag
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>())
        })?,
    )?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use crate::plugin::PluginKind;

    #[test]
    fn requests_answers_and_signatures() {
        // A one-shot server on loopback answering 429 with Retry-After.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"{\"a\":1}") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow")
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Output, "http");
        lua.globals().set("port", port).unwrap();
        lua.load(
            r#"
            local status, body, headers = http.request{method = "post",
                url = "http://127.0.0.1:" .. port .. "/hook",
                headers = {["Content-Type"] = "application/json", ["X-Sig"] = "s"},
                body = '{"a":1}', timeout = 5}
            assert(status == 429 and body == "slow" and headers["retry-after"] == "7", tostring(status))
            local none, err = http.request{url = "http://127.0.0.1:1/", timeout = 2}
            assert(none == nil and type(err) == "string", "refused: no response")
            assert(not pcall(http.request, {url = "file:///etc/passwd"}))
            assert(not pcall(http.request, {url = "http://x/", method = "CONNECT"}))
            assert(not pcall(http.request, {url = "http://x/", timeout = 600}))
            -- RFC 4231 test case 2.
            assert(http.hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
            "#,
        )
        .exec()
        .unwrap();
        let seen = server.join().unwrap();
        assert!(seen.starts_with("POST /hook HTTP/1.1\r\n"), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("x-sig: s\r\n"), "{seen}");
    }

    #[test]
    fn a_plugin_reuses_its_connection() {
        // A keep-alive server counting the connections it accepts; it answers every request.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(3) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut s = stream.unwrap();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 4096];
                    // Each request here is small and has no body: one read holds it.
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0
                            || s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Output, "http");
        lua.globals().set("port", port).unwrap();
        lua.load(
            r#"
            for i = 1, 3 do
                local status, body = http.request{url = "http://127.0.0.1:" .. port .. "/", timeout = 5}
                assert(status == 200 and body == "ok", tostring(body))
            end
            "#,
        )
        .exec()
        .unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
