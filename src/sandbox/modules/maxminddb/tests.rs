//! The module against small MaxMind DB files written here, from the format's specification
//! (a binary search tree over address bits, a data section, a metadata map).

use std::sync::Arc;

use mlua::Lua;

use super::*;
use crate::plugin::PluginKind;
use crate::sandbox::modules::ModuleEnv;

/// A value of the MaxMind DB data format.
enum Data {
    Str(&'static str),
    U16(u16),
    U32(u32),
    U64(u64),
    Double(f64),
    Bool(bool),
    Map(Vec<(&'static str, Data)>),
    Array(Vec<Data>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (first, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else {
        let n = size - 285;
        (30, vec![(n >> 8) as u8, n as u8])
    };
    if kind <= 7 {
        out.push((kind << 5) | first);
    } else {
        out.push(first);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn encode(out: &mut Vec<u8>, d: &Data) {
    match d {
        Data::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Data::Double(f) => {
            control(out, 3, 8);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Data::U16(n) => uint(out, 5, *n as u64),
        Data::U32(n) => uint(out, 6, *n as u64),
        Data::U64(n) => uint(out, 9, *n),
        Data::Map(members) => {
            control(out, 7, members.len());
            for (k, v) in members {
                encode(out, &Data::Str(k));
                encode(out, v);
            }
        }
        Data::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
        Data::Bool(b) => control(out, 14, *b as usize),
    }
}

fn uint(out: &mut Vec<u8>, kind: u8, n: u64) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

/// An IPv4 database (24-bit records) mapping each network to its record.
fn database(networks: &[(&str, u8, Data)]) -> Vec<u8> {
    // The trie: node i has two children, each a node, a record (by its data offset) or nothing.
    #[derive(Clone, Copy)]
    enum Link {
        Empty,
        Node(usize),
        Record(usize),
    }
    let mut nodes: Vec<[Link; 2]> = vec![[Link::Empty, Link::Empty]];
    let mut data = Vec::new();
    for (address, prefix, record) in networks {
        let offset = data.len();
        encode(&mut data, record);
        let bits = u32::from(address.parse::<std::net::Ipv4Addr>().unwrap());
        let mut node = 0;
        for depth in 0..*prefix {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == *prefix {
                nodes[node][bit] = Link::Record(offset);
            } else {
                node = match nodes[node][bit] {
                    Link::Node(next) => next,
                    _ => {
                        nodes.push([Link::Empty, Link::Empty]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Link::Node(next);
                        next
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for link in node {
            let value = match *link {
                Link::Empty => count,
                Link::Node(n) => n,
                Link::Record(offset) => count + 16 + offset,
            };
            out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend(data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    encode(
        &mut out,
        &Data::Map(vec![
            ("node_count", Data::U32(count as u32)),
            ("record_size", Data::U16(24)),
            ("ip_version", Data::U16(4)),
            ("database_type", Data::Str("Blink-Test")),
            ("languages", Data::Array(vec![Data::Str("en")])),
            ("binary_format_major_version", Data::U16(2)),
            ("binary_format_minor_version", Data::U16(0)),
            ("build_epoch", Data::U64(1_700_000_000)),
            ("description", Data::Map(vec![("en", Data::Str("test"))])),
        ]),
    );
    out
}

fn city_database() -> Vec<u8> {
    database(&[(
        "216.160.83.56",
        29,
        Data::Map(vec![
            (
                "city",
                Data::Map(vec![(
                    "names",
                    Data::Map(vec![("en", Data::Str("Milton"))]),
                )]),
            ),
            ("country", Data::Map(vec![("iso_code", Data::Str("US"))])),
            (
                "subdivisions",
                Data::Array(vec![Data::Map(vec![("iso_code", Data::Str("WA"))])]),
            ),
            (
                "location",
                Data::Map(vec![("latitude", Data::Double(47.2513))]),
            ),
            ("is_anycast", Data::Bool(false)),
        ]),
    )])
}

/// tests/fixtures/geoip/city.mmdb, which integration tests use (a detection's GeoIP
/// enrichment), is exactly `city_database()`: regenerate it by writing that out.
#[test]
fn the_geoip_fixture_is_the_test_database() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geoip/city.mmdb"
    );
    assert!(std::fs::read(fixture).unwrap() == city_database());
}

#[test]
fn analysis_plugins_open_only_files_inside_the_deployment() {
    let lua = Lua::new();
    let env = ModuleEnv::for_tests(PluginKind::Analysis);
    lua.globals()
        .set("maxminddb", open(&lua, &env).unwrap().unwrap())
        .unwrap();
    for path in [
        "/etc/GeoLite2-City.mmdb",
        "../outside.mmdb",
        "lookups/../../x.mmdb",
    ] {
        let err = lua
            .load(format!("maxminddb.open({path:?})"))
            .exec()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("must be a path inside the deployment"),
            "{err}"
        );
    }
    let err = lua
        .load("maxminddb.open('missing.mmdb')")
        .exec()
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open missing.mmdb"), "{err}");
}

fn run(code: &str, path: &std::path::Path) {
    let lua = Lua::new();
    let env = ModuleEnv::for_tests(PluginKind::Input);
    let module = open(&lua, &env).unwrap().unwrap();
    lua.globals().set("maxminddb", module).unwrap();
    lua.globals()
        .set("path", path.display().to_string())
        .unwrap();
    if let Err(e) = lua.load(code).exec() {
        panic!("{e}");
    }
}

#[test]
fn lookups_and_paths_as_lua_maxminddb_gives_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    std::fs::write(&path, city_database()).unwrap();
    run(
        r#"
        local db = maxminddb.open(path)
        local r = db:lookup("216.160.83.57")
        assert(r:get("city", "names", "en") == "Milton")
        assert(r:get("country", "iso_code") == "US")
        assert(r:get("subdivisions", 0, "iso_code") == "WA", "array indexes count from 0")
        assert(r:get("location", "latitude") == 47.2513 and r:get("is_anycast") == false)
        assert(r:get("country").iso_code == "US", "a map comes back as a table")
        assert(not pcall(r.get, r, "subdivisions", 1, "iso_code"), "past the array")
        assert(not pcall(r.get, r, "postal", "code"), "not in the record")
        assert(not pcall(db.lookup, db, "192.168.1.1"), "not in the database")
        assert(not pcall(db.lookup, db, "foobar"), "not an address")
        assert(not pcall(maxminddb.open, path .. ".missing"))
    "#,
        &path,
    );
}

#[test]
fn the_same_unchanged_file_is_read_once_and_a_replaced_one_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    std::fs::write(&path, city_database()).unwrap();
    let a = open_shared(&path).unwrap();
    let b = open_shared(&path).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    std::fs::write(&path, database(&[("10.0.0.0", 8, Data::Str("ten"))])).unwrap();
    let c = open_shared(&path).unwrap();
    assert!(
        !Arc::ptr_eq(&a, &c),
        "a file of another size is another database"
    );
    let missing = open_shared(&dir.path().join("none.mmdb")).err().unwrap();
    assert!(
        missing.contains("cannot open") && missing.contains("none.mmdb"),
        "{missing}"
    );
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"not a database").unwrap();
    assert!(open_shared(&junk).err().unwrap().contains("junk.mmdb"));
}
