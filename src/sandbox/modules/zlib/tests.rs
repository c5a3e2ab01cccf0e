//! lua-zlib's documented behaviour, checked in Lua against flate2's own encoders.

use std::io::Write;

use mlua::Lua;

use crate::plugin::PluginKind;
use crate::sandbox::modules::ModuleEnv;

fn lua_with(memory_limit: usize) -> Lua {
    let lua = Lua::new();
    let env = ModuleEnv {
        memory_limit,
        ..ModuleEnv::for_tests(PluginKind::Input)
    };
    let zlib = super::open(&lua, &env).unwrap().unwrap();
    lua.globals().set("zlib", zlib).unwrap();
    lua
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn run(lua: &Lua, code: &str) {
    if let Err(e) = lua.load(code).exec() {
        panic!("{e}");
    }
}

#[test]
fn inflate_reads_gzip_zlib_and_raw_and_detects_which() {
    let lua = lua_with(0);
    let text = "hello hello hello hello, a line that compresses well".repeat(50);
    lua.globals().set("text", text.as_str()).unwrap();
    lua.globals()
        .set("gz", lua.create_string(gzip(text.as_bytes())).unwrap())
        .unwrap();
    run(
        &lua,
        r#"
        local out, eof, bytes_in, bytes_out = zlib.inflate(31)(gz)
        assert(out == text and eof == true and bytes_in == #gz and bytes_out == #text)
        assert(zlib.inflate(47)(gz) == text, "window 32+ detects gzip")
        -- In pieces: the header split, then the rest.
        local stream = zlib.inflate(31)
        local a = stream(gz:sub(1, 5))
        local b, eof2 = stream(gz:sub(6))
        assert(a .. b == text and eof2)
        -- Round trips through deflate, in each format.
        for _, window in ipairs({15, 31, -15}) do
            local packed = zlib.deflate(6, window)(text, "finish")
            local back = zlib.inflate(window == 31 and 47 or window)(packed)
            assert(back == text, "window " .. window)
        end
        local z = zlib.deflate()(text, "finish")
        assert(zlib.inflate(47)(z) == text, "window 32+ detects zlib")
        local ok, e = pcall(zlib.inflate(15), "not compressed at all")
        assert(not ok and type(e) == "string", tostring(e))
        assert(not pcall(zlib.inflate, 99))
    "#,
    );
}

#[test]
fn checksums_run_as_lua_zlibs_do() {
    let lua = lua_with(0);
    run(
        &lua,
        r#"
        assert(zlib.crc32()("123456789") == 0xCBF43926)
        local crc = zlib.crc32()
        crc("12345")
        assert(crc("6789") == 0xCBF43926, "running")
        assert(zlib.adler32()("Wikipedia") == 0x11E60398)
        assert(zlib.crc32()() == 0)
        local major, minor = zlib.version()
        assert(major == 1 and minor == 2)
    "#,
    );
}

#[test]
fn a_bomb_stops_at_the_memory_limit() {
    // 64 MiB of zeros compress to about 64 KiB; the plugin may hold 1 MiB.
    let lua = lua_with(1 << 20);
    lua.globals()
        .set(
            "bomb",
            lua.create_string(gzip(&vec![0u8; 64 << 20])).unwrap(),
        )
        .unwrap();
    run(
        &lua,
        r#"
        local ok, e = pcall(zlib.inflate(31), bomb)
        assert(not ok and e:find("exceeds the plugin's memory limit"), tostring(e))
    "#,
    );
}
