//! `lookup`: enrichment tables shipped as files, for detections: `lookup.open(path [, key])`
//! loads a CSV file (a header row, then one row per entry; `key` names the key column, default
//! the first) or a JSON object (`{"key": {"column": value, …}}` or `{"key": value}`);
//! `t:get(key)` finds an entry by exact key, `t:cidr(ip)` the entry whose key is the most
//! specific IPv4 or IPv6 network (`10.0.0.0/8`, or a single address) holding `ip`; both return
//! the entry as a table of its columns (a JSON value as it is), or nil. `t:size()` counts the
//! entries.
//!
//! A table follows its file: when the file's modification time changes (looked at no more than
//! once a second) it is read again, and if the new file cannot be read the old entries stay and
//! the error is logged once. Paths are relative to the deployment (Blink's working directory)
//! and may not leave it (no `..`, not absolute): an analysis plugin reads its tables, not the
//! machine's files. What a table holds is counted in the plugin's module memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::{Instant, SystemTime};

use mlua::{Lua, Table, UserData, UserDataMethods, Value};

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// One entry: its columns, or a JSON value.
#[derive(Clone)]
enum Entry {
    Columns(Vec<(String, String)>),
    Json(serde_json::Value),
}

/// A table's entries, by key and by network.
struct Entries {
    by_key: HashMap<String, usize>,
    /// Per prefix length (most specific first): the masked network → entry.
    networks: Vec<(u8, bool, HashMap<u128, usize>)>,
    entries: Vec<Entry>,
}

struct LookupTable {
    path: PathBuf,
    key: Option<String>,
    modified: Option<SystemTime>,
    checked: Instant,
    entries: Entries,
    plugin: String,
    external: std::rc::Rc<super::ExternalMemory>,
    /// What the entries hold, reserved in module memory (about twice the file).
    memory: Option<super::Reservation>,
}

/// `path` as a plugin may name it: relative, inside the deployment.
fn allowed(path: &str) -> mlua::Result<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(error(format!(
            "lookup.open: {path:?} must be a path inside the deployment (relative, without '..')"
        )));
    }
    Ok(p.to_owned())
}

/// An address or network as (bits, prefix length, IPv6?).
fn network(text: &str) -> Option<(u128, u8, bool)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let (bits, v6, max) = match addr.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => (u32::from(a) as u128, false, 32),
        IpAddr::V6(a) => (u128::from(a), true, 128),
    };
    let len = len.unwrap_or(max);
    (len <= max).then(|| (mask(bits, len, max), len, v6))
}

fn mask(bits: u128, len: u8, max: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let keep = u128::MAX << (128 - len as u32);
    (bits << (128 - max as u32) & keep) >> (128 - max as u32)
}

/// Splits one CSV record (RFC 4180 quoting) starting at `pos`; the fields and where the next
/// record starts.
fn csv_record(text: &str, mut pos: usize) -> (Vec<String>, usize) {
    let bytes = text.as_bytes();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    while pos < bytes.len() {
        let c = bytes[pos];
        if quoted {
            if c == b'"' {
                if bytes.get(pos + 1) == Some(&b'"') {
                    field.push('"');
                    pos += 1;
                } else {
                    quoted = false;
                }
            } else {
                let ch = text[pos..].chars().next().unwrap_or('\u{fffd}');
                field.push(ch);
                pos += ch.len_utf8();
                continue;
            }
        } else if c == b'"' && field.is_empty() {
            quoted = true;
        } else if c == b',' {
            fields.push(std::mem::take(&mut field));
        } else if c == b'\n' || c == b'\r' {
            pos += 1;
            if c == b'\r' && bytes.get(pos) == Some(&b'\n') {
                pos += 1;
            }
            fields.push(field);
            return (fields, pos);
        } else {
            let ch = text[pos..].chars().next().unwrap_or('\u{fffd}');
            field.push(ch);
            pos += ch.len_utf8();
            continue;
        }
        pos += 1;
    }
    fields.push(field);
    (fields, pos)
}

/// Reads the file at `path` into entries; also its size. `limit` is the module memory the
/// table may take.
fn load(path: &Path, key: Option<&str>, limit: usize) -> Result<(Entries, usize), String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size as usize > limit / 4 {
        return Err(format!(
            "{size} bytes is more than the plugin's module memory allows for a table"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut keyed: Vec<(String, Entry)> = Vec::new();
    let is_json = path.extension().is_some_and(|e| e == "json");
    if is_json {
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let serde_json::Value::Object(map) = doc else {
            return Err("a JSON table is an object of entries".into());
        };
        keyed.extend(map.into_iter().map(|(k, v)| (k, Entry::Json(v))));
    } else {
        let (header, mut pos) = csv_record(&text, 0);
        let column = match key {
            None => 0,
            Some(name) => header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("no column {name:?} in the header"))?,
        };
        while pos < text.len() {
            let (row, next) = csv_record(&text, pos);
            pos = next;
            if row.len() == 1 && row[0].is_empty() {
                continue;
            }
            let Some(k) = row.get(column).cloned() else {
                continue;
            };
            let columns = header.iter().cloned().zip(row).collect();
            keyed.push((k, Entry::Columns(columns)));
        }
    }
    let mut entries = Entries {
        by_key: HashMap::new(),
        networks: Vec::new(),
        entries: Vec::with_capacity(keyed.len()),
    };
    for (k, entry) in keyed {
        let index = entries.entries.len();
        entries.entries.push(entry);
        if let Some((bits, len, v6)) = network(&k) {
            match entries
                .networks
                .iter_mut()
                .find(|(l, six, _)| *l == len && *six == v6)
            {
                Some((_, _, map)) => {
                    map.entry(bits).or_insert(index);
                }
                None => entries
                    .networks
                    .push((len, v6, HashMap::from([(bits, index)]))),
            }
        }
        entries.by_key.entry(k).or_insert(index);
    }
    entries.networks.sort_by_key(|n| std::cmp::Reverse(n.0));
    Ok((entries, size as usize))
}

impl LookupTable {
    /// Reads the file again if it changed (at most one look a second).
    fn refresh(&mut self) {
        if self.checked.elapsed().as_secs() < 1 {
            return;
        }
        self.checked = Instant::now();
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified.is_none() || modified == self.modified {
            return;
        }
        self.modified = modified;
        let held = self.memory.as_ref().map_or(0, super::Reservation::bytes);
        match load(
            &self.path,
            self.key.as_deref(),
            self.external.available() + held,
        ) {
            Ok((entries, size)) => {
                self.entries = entries;
                self.memory = None;
                self.memory = self
                    .external
                    .reserve(size.saturating_mul(2), "a lookup table")
                    .ok();
            }
            Err(e) => {
                tracing::warn!(plugin = %self.plugin, path = %self.path.display(), error = %e,
                "lookup table changed but cannot be read; keeping its previous entries")
            }
        }
    }

    fn entry(&self, lua: &Lua, index: usize) -> mlua::Result<Value> {
        match &self.entries.entries[index] {
            Entry::Columns(columns) => {
                let t = lua.create_table()?;
                for (name, value) in columns {
                    t.raw_set(name.as_str(), value.as_str())?;
                }
                Ok(Value::Table(t))
            }
            Entry::Json(v) => json_to_lua(lua, v),
        }
    }
}

fn json_to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(map) => {
            let t = lua.create_table()?;
            for (k, item) in map {
                t.raw_set(k.as_str(), json_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

impl UserData for LookupTable {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("get", |lua, t, key: Value| {
            t.refresh();
            let key = match &key {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(i) => i.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return Ok(Value::Nil),
            };
            match t.entries.by_key.get(&key) {
                Some(&i) => t.entry(lua, i),
                None => Ok(Value::Nil),
            }
        });
        methods.add_method_mut("cidr", |lua, t, ip: Value| {
            t.refresh();
            let Value::String(ip) = ip else {
                return Ok(Value::Nil);
            };
            let Some((bits, _, v6)) = network(&ip.to_string_lossy()) else {
                return Ok(Value::Nil);
            };
            let max = if v6 { 128 } else { 32 };
            let found = t
                .entries
                .networks
                .iter()
                .filter(|(_, six, _)| *six == v6)
                .find_map(|(len, _, map)| map.get(&mask(bits, *len, max)).copied());
            match found {
                Some(i) => t.entry(lua, i),
                None => Ok(Value::Nil),
            }
        });
        methods.add_method_mut("size", |_, t, ()| {
            t.refresh();
            Ok(t.entries.entries.len())
        });
    }
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let external = env.external.clone();
    let plugin = env.plugin.clone();
    let module = lua.create_table()?;
    module.raw_set(
        "open",
        super::plain_error::wrap(
            lua,
            lua.create_function(move |_, (path, key): (String, Option<String>)| {
                let path = allowed(&path)?;
                let (entries, size) = load(&path, key.as_deref(), external.available())
                    .map_err(|e| error(format!("lookup.open: {}: {e}", path.display())))?;
                // The entries take about twice the file (keys, columns, indexes).
                let memory = external.reserve(size.saturating_mul(2), "a lookup table")?;
                Ok(LookupTable {
                    modified: std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
                    checked: Instant::now(),
                    path,
                    key,
                    entries,
                    plugin: plugin.clone(),
                    external: external.clone(),
                    memory: Some(memory),
                })
            })?,
        )?,
    )?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {
    use crate::plugin::PluginKind;

    #[test]
    fn exact_and_network_lookups_from_csv_and_json_follow_their_files() {
        // Paths are relative to the working directory (the package root under cargo test).
        std::fs::create_dir_all("target").unwrap();
        let dir = tempfile::tempdir_in("target").unwrap();
        let base = dir
            .path()
            .strip_prefix(std::env::current_dir().unwrap())
            .unwrap_or(dir.path());
        let base = base.to_str().unwrap().to_owned();
        std::fs::create_dir(dir.path().join("lookups")).unwrap();
        std::fs::write(
            dir.path().join("lookups/owners.csv"),
            "network,team,note\n10.0.0.0/8,corp,\"internal, all\"\n10.1.0.0/16,lab,\n\
             2001:db8::/32,v6team,\n192.0.2.7,edge,\"a \"\"quoted\"\" note\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("lookups/users.json"),
            r#"{"alice": {"team": "sec", "admin": true}, "bob": "ops"}"#,
        )
        .unwrap();
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "lookup");
        lua.globals().set("base", base).unwrap();
        let result = lua
            .load(
                r#"
                local owners = lookup.open(base .. "/lookups/owners.csv")
                assert(owners:size() == 4)
                assert(owners:cidr("10.1.2.3").team == "lab", "the most specific network")
                assert(owners:cidr("10.200.0.1").team == "corp")
                assert(owners:cidr("10.200.0.1").note == "internal, all")
                assert(owners:cidr("192.0.2.7").note == 'a "quoted" note')
                assert(owners:cidr("2001:db8::1").team == "v6team")
                assert(owners:cidr("172.16.0.1") == nil and owners:cidr("not an ip") == nil)
                assert(owners:get("10.1.0.0/16").team == "lab")
                local by_team = lookup.open(base .. "/lookups/owners.csv", "team")
                assert(by_team:get("edge").network == "192.0.2.7")
                local users = lookup.open(base .. "/lookups/users.json")
                assert(users:get("alice").admin == true and users:get("bob") == "ops")
                assert(users:get("carol") == nil)
                assert(not pcall(lookup.open, "/etc/passwd"))
                assert(not pcall(lookup.open, base .. "/lookups/../../x.csv"))
                local ok, e = pcall(lookup.open, base .. "/lookups/missing.csv")
                assert(not ok and e:find("lookups/missing.csv", 1, true), e)
                return users
                "#,
            )
            .eval::<mlua::AnyUserData>();
        let users = result.unwrap();
        // The file changes: the table follows it (after its once-a-second look).
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(dir.path().join("lookups/users.json"), r#"{"carol": "new"}"#).unwrap();
        lua.globals().set("users", users).unwrap();
        let followed: bool = lua
            .load(r#"return users:get("carol") == "new" and users:get("alice") == nil"#)
            .eval()
            .unwrap();
        assert!(followed);
    }
}
