//! `lfs`: LuaFileSystem's file and directory functions, as lua_sandbox_extensions' plugins use
//! them (input tails, decoders that reload their schemas).
//!
//! Every plugin kind may read: `attributes(path [, name | table])` and
//! `symlinkattributes(…)` (the table LuaFileSystem gives — `mode`, `size`, `modification`, `ino`,
//! … — or one of its entries; `nil, message, errno` when the path cannot be read), `dir(path)`
//! (an iterator over the names in a directory, `.` and `..` first, as LuaFileSystem's) and
//! `currentdir()`. Input and output plugins, which have `io` already, may also `mkdir`, `rmdir`
//! and `touch`. `chdir` would move the working directory of all of Blink and is refused.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use mlua::{Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use crate::plugin::PluginKind;

fn mode(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "link"
    } else if t.is_socket() {
        "socket"
    } else if t.is_fifo() {
        "named pipe"
    } else if t.is_char_device() {
        "char device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "other"
    }
}

/// `rwxr-xr-x` for the permission bits.
fn permissions(meta: &std::fs::Metadata) -> String {
    let bits = meta.permissions().mode();
    (0..9)
        .map(|i| {
            let on = bits & (1 << (8 - i)) != 0;
            match (on, i % 3) {
                (false, _) => '-',
                (true, 0) => 'r',
                (true, 1) => 'w',
                (true, _) => 'x',
            }
        })
        .collect()
}

/// LuaFileSystem's attribute table of `meta`.
fn attribute_table(lua: &Lua, meta: &std::fs::Metadata) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("dev", meta.dev() as f64)?;
    t.raw_set("ino", meta.ino() as f64)?;
    t.raw_set("mode", mode(meta))?;
    t.raw_set("nlink", meta.nlink() as f64)?;
    t.raw_set("uid", meta.uid() as f64)?;
    t.raw_set("gid", meta.gid() as f64)?;
    t.raw_set("rdev", meta.rdev() as f64)?;
    t.raw_set("access", meta.atime() as f64)?;
    t.raw_set("modification", meta.mtime() as f64)?;
    t.raw_set("change", meta.ctime() as f64)?;
    t.raw_set("size", meta.size() as f64)?;
    t.raw_set("permissions", permissions(meta))?;
    t.raw_set("blocks", meta.blocks() as f64)?;
    t.raw_set("blksize", meta.blksize() as f64)?;
    Ok(t)
}

/// `nil, message, errno`, LuaFileSystem's failure.
fn failure(lua: &Lua, message: String, e: &std::io::Error) -> mlua::Result<MultiValue> {
    lua.pack_multi((Value::Nil, message, e.raw_os_error().unwrap_or(0) as f64))
}

fn attributes(lua: &Lua, path: String, which: Value, follow: bool) -> mlua::Result<MultiValue> {
    let meta = if follow {
        std::fs::metadata(&path)
    } else {
        std::fs::symlink_metadata(&path)
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            return failure(
                lua,
                format!("cannot obtain information from file '{path}': {e}"),
                &e,
            );
        }
    };
    let all = attribute_table(lua, &meta)?;
    match which {
        Value::String(name) => {
            let name = name.to_str()?.to_owned();
            match all.raw_get::<Value>(name.as_str())? {
                Value::Nil => Err(mlua::Error::runtime(format!(
                    "invalid attribute name '{name}'"
                ))),
                v => lua.pack_multi(v),
            }
        }
        Value::Table(into) => {
            for pair in all.pairs::<Value, Value>() {
                let (k, v) = pair?;
                into.raw_set(k, v)?;
            }
            lua.pack_multi(into)
        }
        _ => lua.pack_multi(all),
    }
}

/// A directory being listed: `.` and `..`, then its entries as they are read.
struct DirIter {
    dots: u8,
    entries: Option<std::fs::ReadDir>,
}

impl UserData for DirIter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("next", |_, this, ()| Ok(this.next_name()));
        methods.add_method_mut("close", |_, this, ()| {
            this.entries = None;
            Ok(())
        });
    }
}

impl DirIter {
    fn next_name(&mut self) -> Option<mlua::BString> {
        if self.dots < 2 {
            self.dots += 1;
            return Some(if self.dots == 1 { "." } else { ".." }.into());
        }
        loop {
            let entries = self.entries.as_mut()?;
            match entries.next() {
                Some(Ok(entry)) => {
                    return Some(entry.file_name().as_encoded_bytes().to_vec().into());
                }
                Some(Err(_)) => continue,
                None => {
                    self.entries = None;
                    return None;
                }
            }
        }
    }
}

pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let lfs = lua.create_table()?;
    lfs.raw_set(
        "attributes",
        lua.create_function(|lua, (path, which): (String, Value)| {
            attributes(lua, path, which, true)
        })?,
    )?;
    lfs.raw_set(
        "symlinkattributes",
        lua.create_function(|lua, (path, which): (String, Value)| {
            attributes(lua, path, which, false)
        })?,
    )?;
    lfs.raw_set(
        "dir",
        lua.create_function(|lua, path: String| {
            let entries = std::fs::read_dir(&path)
                .map_err(|e| mlua::Error::runtime(format!("cannot open {path}: {e}")))?;
            let iter = lua.create_userdata(DirIter {
                dots: 0,
                entries: Some(entries),
            })?;
            let next = lua.create_function(|_, iter: mlua::AnyUserData| {
                Ok(iter.borrow_mut::<DirIter>()?.next_name())
            })?;
            Ok((next, iter))
        })?,
    )?;
    lfs.raw_set(
        "currentdir",
        lua.create_function(|_, ()| {
            Ok(std::env::current_dir()
                .ok()
                .map(|d| d.as_os_str().as_encoded_bytes().to_vec())
                .map(mlua::BString::from))
        })?,
    )?;
    lfs.raw_set(
        "chdir",
        lua.create_function(|lua, _: MultiValue| {
            lua.pack_multi((
                Value::Nil,
                "lfs.chdir is not available: it would move the working directory of all of Blink",
            ))
        })?,
    )?;
    if env.kind != PluginKind::Analysis {
        let io_result = |lua: &Lua, what: &str, path: &str, r: std::io::Result<()>| match r {
            Ok(()) => lua.pack_multi(true),
            Err(e) => failure(lua, format!("{what} {path}: {e}"), &e),
        };
        lfs.raw_set(
            "mkdir",
            lua.create_function(move |lua, path: String| {
                io_result(lua, "cannot create", &path, std::fs::create_dir(&path))
            })?,
        )?;
        lfs.raw_set(
            "rmdir",
            lua.create_function(move |lua, path: String| {
                io_result(lua, "cannot remove", &path, std::fs::remove_dir(&path))
            })?,
        )?;
        lfs.raw_set(
            "touch",
            lua.create_function(move |lua, path: String| {
                let touched = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(PathBuf::from(&path))
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                io_result(lua, "cannot touch", &path, touched)
            })?,
        )?;
    }
    Ok(Some(lfs))
}
