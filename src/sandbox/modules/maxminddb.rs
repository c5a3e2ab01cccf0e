//! `maxminddb`: GeoIP lookups in MaxMind DB files, with lua-maxminddb's API as
//! lua_sandbox_extensions' decoders use it (`maxminddb.heka`, the moz_ingest decoders):
//! `db = maxminddb.open(path)`, `result = db:lookup("216.160.83.56")`,
//! `result:get("city", "names", "en")` (strings are map keys, numbers 0-based array indexes).
//! `lookup` raises when the address is not valid or not in the database, `get` when the path is
//! not in the record, so callers `pcall` them as they do with the original. A string, number or
//! boolean comes back as itself, a map or array as a table.
//!
//! The file is read with the `maxminddb` crate (MaxMind's format, checked as it is read, with
//! the crate's decoding limits), into memory once per process: every plugin that opens the
//! same unchanged file shares one copy, and a file replaced on disk is read afresh by the next
//! `open`. Input and output plugins open any path (it is one of Hindsight's io_modules);
//! analysis plugins (a detection's GeoIP enrichment) only files inside the deployment, named
//! by a relative path without `..`, as the `lookup` module's tables. The database is shared
//! and read-only, so it is not counted against a plugin's memory limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use maxminddb::{PathElement, Reader};
use mlua::{Lua, Table, UserData, UserDataMethods, Value, Variadic};

type Db = Reader<Vec<u8>>;

/// A file is the same while its size and modification time are.
type Identity = (PathBuf, u64, Option<SystemTime>);

/// The databases open in this process, shared by the plugins that open them.
static OPEN: Mutex<Option<HashMap<Identity, Weak<Db>>>> = Mutex::new(None);

/// How deep a map or array returned by `get` may nest (GeoIP records nest 3–4 levels).
const MAX_DEPTH: usize = 32;

fn open_shared(path: &Path) -> Result<Arc<Db>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let identity = (path.to_owned(), meta.len(), meta.modified().ok());
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(db) = open.get(&identity).and_then(Weak::upgrade) {
        return Ok(db);
    }
    let db = Arc::new(
        Reader::open_readfile(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?,
    );
    open.retain(|_, db| db.strong_count() > 0);
    open.insert(identity, Arc::downgrade(&db));
    Ok(db)
}

struct Database(Arc<Db>);

/// A lookup's record: the database and the address (looked up again by `get`, which walks a
/// few dozen tree nodes; a borrowed result could not outlive this call).
struct Record {
    db: Arc<Db>,
    address: IpAddr,
}

impl UserData for Database {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("lookup", |_, this, address: mlua::LuaString| {
            let text = address.to_str()?;
            let address: IpAddr = text
                .parse()
                .map_err(|_| mlua::Error::runtime(format!("invalid IP address: {text}")))?;
            let found = this
                .0
                .lookup(address)
                .map_err(|e| mlua::Error::runtime(e.to_string()))?;
            if !found.has_data() {
                return Err(mlua::Error::runtime(format!("{text} not found")));
            }
            Ok(Record {
                db: this.0.clone(),
                address,
            })
        });
    }
}

impl UserData for Record {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("get", |lua, this, path: Variadic<Value>| {
            let mut keys = Vec::with_capacity(path.len());
            for step in path.iter() {
                keys.push(match step {
                    Value::String(s) => Step::Key(s.to_str()?.to_string()),
                    Value::Integer(i) if *i >= 0 => Step::Index(*i as usize),
                    Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Step::Index(*n as usize),
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "a path is map keys (strings) and array indexes (numbers ≥ 0), not a {}",
                            other.type_name()
                        )));
                    }
                });
            }
            let elements: Vec<PathElement> = keys
                .iter()
                .map(|k| match k {
                    Step::Key(s) => PathElement::Key(s),
                    Step::Index(i) => PathElement::Index(*i),
                })
                .collect();
            let record = this
                .db
                .lookup(this.address)
                .map_err(|e| mlua::Error::runtime(e.to_string()))?;
            match record.decode_path::<serde_json::Value>(&elements) {
                Ok(Some(value)) => to_lua(lua, &value, 0),
                Ok(None) => Err(mlua::Error::runtime("not found")),
                Err(e) => Err(mlua::Error::runtime(e.to_string())),
            }
        });
    }
}

enum Step {
    Key(String),
    Index(usize),
}

fn to_lua(lua: &Lua, value: &serde_json::Value, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("record nested too deeply"));
    }
    Ok(match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(members) => {
            let t = lua.create_table_with_capacity(0, members.len())?;
            for (k, v) in members {
                t.raw_set(k.as_str(), to_lua(lua, v, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let confined = env.kind == crate::plugin::PluginKind::Analysis;
    let module = lua.create_table()?;
    module.raw_set(
        "open",
        lua.create_function(move |_, path: String| {
            let p = Path::new(&path);
            if confined
                && (p.is_absolute()
                    || p.components()
                        .any(|c| matches!(c, std::path::Component::ParentDir)))
            {
                return Err(mlua::Error::runtime(format!(
                    "maxminddb.open: {path:?} must be a path inside the deployment (relative, without '..')"
                )));
            }
            open_shared(p).map(Database).map_err(mlua::Error::runtime)
        })?,
    )?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests;
