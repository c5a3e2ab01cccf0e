//! The Lua sandbox and the Hindsight API, function by function, including limits and escapes.

use std::path::Path;
use std::sync::Arc;

use blink::checkpoint::{CheckpointStore, CheckpointValue};
use blink::log::LogConfig;
use blink::log::{ANALYSIS_TOPIC, CheckpointTarget, INPUT_TOPIC, Log, PartitionReader};
use blink::message::{Field, FieldValues, Message, MessageView};
use blink::plugin::{PluginConfig, PluginKind};
use blink::sandbox::{Sandbox, SandboxSettings, Terminated};
use bytes::Bytes;

struct Env {
    dir: tempfile::TempDir,
    log: std::sync::Arc<Log>,
    store: Arc<CheckpointStore>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(Log::open(LogConfig::in_dir(dir.path().join("data"))).unwrap());
    let store = Arc::new(CheckpointStore::open(&dir.path().join("data")).unwrap());
    std::fs::create_dir_all(dir.path().join("lua_modules/util")).unwrap();
    Env { dir, log, store }
}

impl Env {
    fn settings(&self) -> SandboxSettings {
        SandboxSettings {
            lua_paths: vec![self.dir.path().join("lua_modules")],
            plugin_dir: self.dir.path().to_owned(),
            hostname: "test-host".into(),
            pid: 4242,
            max_message_size: 65536,
            log: Some(self.log.clone()),
            stats: None,
            deployment: blink::sandbox::Deployment {
                output_path: self.dir.path().join("data"),
                output_size: 1 << 20,
                sandbox_load_path: self.dir.path().join("hs_load"),
                sandbox_run_path: self.dir.path().to_owned(),
            },
        }
    }

    fn sandbox(&self, kind: PluginKind, cfg: &str, lua: &str) -> Result<Sandbox, Terminated> {
        std::fs::write(self.dir.path().join("plugin.lua"), lua).unwrap();
        let cfg = format!("filename = 'plugin.lua'\n{cfg}");
        let config = Arc::new(
            PluginConfig::parse(kind, &self.dir.path().join("p.cfg"), cfg.as_bytes()).unwrap(),
        );
        let appender = match kind {
            PluginKind::Input => Some(
                self.log
                    .appender(
                        INPUT_TOPIC,
                        0,
                        Some(CheckpointTarget {
                            store: self.store.clone(),
                            input: config.name.clone(),
                        }),
                    )
                    .unwrap(),
            ),
            PluginKind::Analysis => Some(self.log.appender(ANALYSIS_TOPIC, 0, None).unwrap()),
            PluginKind::Output => None,
        };
        Sandbox::new(
            config,
            &self.settings(),
            appender,
            blink::stop::StopToken::new(),
        )
    }

    fn messages(&self, topic: &str) -> Vec<Message> {
        let mut reader = PartitionReader::new(self.log.partition(topic, 0).unwrap(), 0);
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            out.push(Message::from(
                &MessageView::parse(r.value.as_deref().unwrap()).unwrap(),
            ));
        }
        out
    }
}

fn sample() -> Bytes {
    let mut m = Message::new(*b"0123456789abcdef", 1_700_000_000_000_000_000);
    m.r#type = Some(b"auth".to_vec());
    m.logger = Some(b"sshd".to_vec());
    m.severity = Some(4);
    m.payload = Some(b"Failed password".to_vec());
    m.env_version = Some(b"1".to_vec());
    m.pid = Some(99);
    m.hostname = Some(b"web-1".to_vec());
    m.fields = vec![
        Field::new("user", FieldValues::String(vec![b"root".to_vec()])),
        Field::new("ports", FieldValues::Integer(vec![22, 2222])),
        Field::new("user", FieldValues::String(vec![b"admin".to_vec()])),
        Field::new("ok", FieldValues::Bool(vec![false])),
    ];
    Bytes::from(m.to_bytes())
}

const PM_OK: &str = "function process_message() return 0 end\n";

#[test]
fn input_injects_tables_strings_and_checkpoints() {
    let e = env();
    let lua = r#"
        function process_message(cp)
            assert(cp == nil, "no checkpoint on first start")
            assert(is_running())
            inject_message({Type = "t1", Payload = "p", Fields = {user = "u", n = 5, ok = true, list = {1, 2}}}, 10)
            local raw = encode == nil and nil
            inject_message({Type = "t2", Uuid = "27150de5-4208-442d-a59a-1d802aedce38", Timestamp = 1e18, Logger = "own", Severity = 2, Pid = 7, Hostname = "h",
                            Fields = {{name = "typed", value = 7, value_type = 2, representation = "ms"}, {name = "b", value = "\0\1", value_type = 1}}}, "cp-2")
            inject_message(nil, 30)
            return 0
        end
    "#;
    let sandbox = e.sandbox(PluginKind::Input, "", lua).unwrap();
    assert_eq!(
        sandbox.process_message(Option::<f64>::None).unwrap(),
        (0, None)
    );
    sandbox.host().appender.as_ref().unwrap().flush().unwrap();
    let messages = e.messages(INPUT_TOPIC);
    assert_eq!(messages.len(), 2);
    let first = &messages[0];
    assert_eq!(first.r#type.as_deref(), Some(&b"t1"[..]));
    assert_eq!(
        first.logger.as_deref(),
        Some(&b"input.p"[..]),
        "Logger defaults to the plugin name"
    );
    assert_eq!(first.hostname.as_deref(), Some(&b"test-host"[..]));
    assert_eq!(first.pid, Some(4242));
    let field = |m: &Message, name: &str| {
        m.fields
            .iter()
            .find(|f| f.name == name.as_bytes())
            .unwrap()
            .values
            .clone()
    };
    assert_eq!(
        field(first, "user"),
        FieldValues::String(vec![b"u".to_vec()])
    );
    assert_eq!(field(first, "n"), FieldValues::Double(vec![5.0]));
    assert_eq!(field(first, "ok"), FieldValues::Bool(vec![true]));
    assert_eq!(field(first, "list"), FieldValues::Double(vec![1.0, 2.0]));
    let second = &messages[1];
    assert_eq!(
        blink::message::format_uuid(&second.uuid),
        "27150de5-4208-442d-a59a-1d802aedce38"
    );
    assert_eq!(second.timestamp, 1_000_000_000_000_000_000);
    assert_eq!((second.severity, second.pid), (Some(2), Some(7)));
    assert_eq!(second.fields[0].values, FieldValues::Integer(vec![7]));
    assert_eq!(second.fields[0].representation.as_deref(), Some(&b"ms"[..]));
    assert_eq!(
        second.fields[1].values,
        FieldValues::Bytes(vec![vec![0, 1]])
    );
    assert_eq!(
        e.store.input("input.p"),
        Some(CheckpointValue::Number(30.0)),
        "the last checkpoint, published after the write"
    );
}

#[test]
fn input_injects_protobuf_and_rejects_garbage() {
    let e = env();
    std::fs::write(e.dir.path().join("msg.pb"), sample()).unwrap();
    let lua = r#"
        require "io"
        function process_message()
            local f = assert(io.open(read_config("pb_path"), "rb"))
            local pb = f:read("*a")
            f:close()
            inject_message(pb)
            local ok, err = pcall(inject_message, "not protobuf")
            assert(not ok and err:match("inject_message%(%)"), err)
            local ok, err = pcall(inject_message, 42)
            assert(not ok and err:match("not a number"), err)
            return 0
        end
    "#;
    let cfg = format!(
        "pb_path = {:?}",
        e.dir.path().join("msg.pb").to_str().unwrap()
    );
    let sandbox = e.sandbox(PluginKind::Input, &cfg, lua).unwrap();
    assert_eq!(sandbox.process_message(0).unwrap().0, 0);
    sandbox.host().appender.as_ref().unwrap().flush().unwrap();
    let messages = e.messages(INPUT_TOPIC);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].to_bytes(),
        sample().to_vec(),
        "a protobuf inject is stored as given"
    );
}

#[test]
fn read_message_reads_every_header_and_field() {
    let e = env();
    let lua = r#"
        function process_message()
            assert(read_message("Uuid") == "0123456789abcdef")
            assert(read_message("Type") == "auth")
            assert(read_message("Logger") == "sshd")
            assert(read_message("Payload") == "Failed password")
            assert(read_message("EnvVersion") == "1")
            assert(read_message("Hostname") == "web-1")
            assert(read_message("Timestamp") == 1.7e18)
            assert(read_message("Severity") == 4)
            assert(read_message("Pid") == 99)
            assert(read_message("Fields[user]") == "root")
            assert(read_message("Fields[user]", 1) == "admin")
            assert(read_message("Fields[user]", 2) == nil)
            assert(read_message("Fields[ports]", 0, 1) == 2222)
            assert(read_message("Fields[ports]", 0, 2) == nil)
            assert(read_message("Fields[ok]") == false)
            assert(read_message("Fields[missing]") == nil)
            local raw = read_message("raw")
            assert(#raw == read_message("size"))
            local framed = read_message("framed")
            assert(framed:byte(1) == 0x1e and #framed > #raw)
            local m = decode_message(raw)
            assert(m.Type == "auth" and m.Pid == 99 and m.Severity == 4)
            assert(m.Fields[2].name == "ports" and m.Fields[2].value[2] == 2222 and m.Fields[2].value_type == 2)
            local ok, err = pcall(read_message, "Bogus")
            assert(not ok and err:find("read_message() field: 'Bogus' not supported/recognized", 1, true), err)
            return 0
        end
        function timer_event(ns)
            assert(read_message("Type") == nil, "no current message in timer_event")
        end
    "#;
    let sandbox = e
        .sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", lua)
        .unwrap();
    sandbox.set_current(Some(sample()));
    assert_eq!(sandbox.process_message(()).unwrap(), (0, None));
    sandbox.timer_event(0, false).unwrap();
}

#[test]
fn analysis_inject_limits_and_restricted_headers() {
    let e = env();
    let lua = r#"
        function process_message()
            inject_message({Type = "alert", Logger = "spoofed", Uuid = "0123456789abcdef", Payload = read_message("Fields[user]")})
            return 0
        end
        function timer_event(ns, shutdown)
            for i = 1, 10 do inject_message({Type = "tick"}) end
            local ok, err = pcall(inject_message, {Type = "one too many"})
            assert(not ok and err:match("exceeded InjectMessage count"), err)
            assert(err:match("timer_event_inject_limit = 10 in the cfg"), err)
        end
    "#;
    let refused = e
        .sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", lua)
        .unwrap();
    refused.set_current(Some(sample()));
    let err = refused.process_message(()).unwrap_err();
    assert!(
        err.0.starts_with(
            "process_message() plugin.lua:3: inject_message() exceeded InjectMessage count"
        ),
        "{err}"
    );
    // The error names the key and the value that fix it.
    assert!(
        err.0.contains(
            "process_message_inject_limit = 0 in the cfg; set process_message_inject_limit = 1"
        ),
        "{err}"
    );

    let allowed = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE' process_message_inject_limit = 1",
            lua,
        )
        .unwrap();
    allowed.set_current(Some(sample()));
    assert_eq!(allowed.process_message(()).unwrap().0, 0);
    allowed.timer_event(5, false).unwrap();
    allowed.host().appender.as_ref().unwrap().flush().unwrap();
    let messages = e.messages(ANALYSIS_TOPIC);
    assert_eq!(messages.len(), 11);
    let alert = &messages[0];
    assert_eq!(alert.payload.as_deref(), Some(&b"root"[..]));
    assert_eq!(
        alert.logger.as_deref(),
        Some(&b"analysis.p"[..]),
        "restricted headers"
    );
    assert_ne!(&alert.uuid, b"0123456789abcdef");
}

#[test]
fn payload_building_and_output_limit() {
    let e = env();
    let lua = r#"
        function process_message()
            add_to_payload("count=", 3, " ratio=", 0.5, " ", true, "\n")
            inject_payload("txt", "summary", "done")
            add_to_payload(string.rep("x", 2000))
            return 0
        end
    "#;
    let sandbox = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE' process_message_inject_limit = 5 output_limit = 1024",
            lua,
        )
        .unwrap();
    let err = sandbox.process_message(()).unwrap_err();
    assert_eq!(
        err.0,
        "process_message() plugin.lua:5: output_limit exceeded"
    );
    sandbox.host().appender.as_ref().unwrap().flush().unwrap();
    let messages = e.messages(ANALYSIS_TOPIC);
    assert_eq!(messages[0].r#type.as_deref(), Some(&b"inject_payload"[..]));
    assert_eq!(
        messages[0].payload.as_deref(),
        Some(&b"count=3 ratio=0.5 true\ndone"[..])
    );
    assert_eq!(
        messages[0].fields[0].values,
        FieldValues::String(vec![b"txt".to_vec()])
    );
    assert_eq!(
        messages[0].fields[1].values,
        FieldValues::String(vec![b"summary".to_vec()])
    );
}

#[test]
fn oversized_injects_are_refused() {
    let e = env();
    let lua = r#"
        function process_message()
            local ok, err = pcall(inject_message, {Type = "big", Payload = string.rep("x", 70000)})
            assert(not ok and err:find("inject_message() output_limit exceeded", 1, true), err)
            inject_message({Type = "fits", Payload = string.rep("x", 1000)})
            return 0
        end
    "#;
    let sandbox = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE' process_message_inject_limit = 2",
            lua,
        )
        .unwrap();
    assert_eq!(sandbox.process_message(()).unwrap().0, 0);
    sandbox.host().appender.as_ref().unwrap().flush().unwrap();
    let messages = e.messages(ANALYSIS_TOPIC);
    assert_eq!(
        messages.len(),
        1,
        "nothing of the refused message was written"
    );
    assert_eq!(messages[0].r#type.as_deref(), Some(&b"fits"[..]));

    // Above max_message_size (64 KiB here) even with a larger output_limit.
    let lua = r#"
        function process_message()
            inject_message({Type = "big", Payload = string.rep("x", 70000)})
            return 0
        end
    "#;
    let sandbox = e
        .sandbox(PluginKind::Input, "output_limit = 1048576", lua)
        .unwrap();
    let err = sandbox.process_message(()).unwrap_err();
    assert!(
        err.0.contains("inject_message() message of") && err.0.contains("max_message_size"),
        "{err}"
    );
}

#[test]
fn wrong_argument_types_are_errors() {
    let e = env();
    let lua = r#"
        function process_message()
            for _, bad in ipairs({
                function() inject_message({Type = "x", Fields = {f = function() end}}) end,
                function() inject_message({Type = "x", Fields = {f = {}}}) end,
                function() inject_message({Type = "x", Uuid = "short"}) end,
                function() inject_message({Type = "x", Timestamp = "soon"}) end,
                function() inject_message({Type = "x", Fields = {{value = 1}}}) end,
                function() inject_message({Type = "x", Fields = {f = {value = 1, value_type = 9}}}) end,
                function() add_to_payload({}) end,
            }) do
                local ok, err = pcall(bad)
                assert(not ok and type(err) == "string" and err:match("%(%)"), tostring(err))
            end
            return 0
        end
    "#;
    let sandbox = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE' process_message_inject_limit = 10",
            lua,
        )
        .unwrap();
    assert_eq!(sandbox.process_message(()).unwrap().0, 0);
}

#[test]
fn output_api() {
    let e = env();
    let lua = r#"
        local m = create_message_matcher("Fields[user] == 'root'")
        local other = create_message_matcher("Type == 'nope'")
        function process_message(sequence_id)
            assert(m:eval() and not other:eval())
            local pb = encode_message({Type = "x", Fields = {a = "b"}})
            assert(decode_message(pb).Fields[1].value[1] == "b")
            local framed = encode_message({Type = "x"}, true)
            assert(framed:byte(1) == 0x1e)
            update_checkpoint(sequence_id, 2)
            assert(inject_message == nil, "outputs do not inject")
            local ok, err = pcall(create_message_matcher, "Type = 1")
            assert(not ok and err:match("column 6"), err)
            return -5
        end
    "#;
    let sandbox = e
        .sandbox(PluginKind::Output, "message_matcher = 'TRUE'", lua)
        .unwrap();
    sandbox.set_current(Some(sample()));
    assert_eq!(sandbox.process_message(17).unwrap().0, -5);
    assert_eq!(sandbox.host().checkpoint_update, Some((17, 2)));
}

#[test]
fn read_config_returns_every_key() {
    let e = env();
    let lua = r#"
        assert(read_config("expect") == 2000000)
        assert(read_config("name") == "x")
        assert(read_config("tags")[2] == "b" and read_config("tags").k == true)
        assert(read_config("filename") == "plugin.lua")
        assert(read_config("message_matcher") == "TRUE")
        assert(read_config("missing") == nil)
        function process_message() return 0 end
    "#;
    e.sandbox(
        PluginKind::Analysis,
        "message_matcher = 'TRUE' expect = 2e6 name = 'x' tags = {'a', 'b', k = true}",
        lua,
    )
    .unwrap();
}

#[test]
fn require_finds_modules_only_in_lua_paths() {
    let e = env();
    std::fs::write(
        e.dir.path().join("lua_modules/util/greet.lua"),
        "local M = {} function M.hi() return 'hi' end return M",
    )
    .unwrap();
    let lua = r#"
        local greet = require "util.greet"
        assert(greet.hi() == "hi")
        assert(require "util.greet" == greet, "modules load once")
        for _, bad in ipairs({"../etc/passwd", "a/b", "x-y", ""}) do
            local ok, err = pcall(require, bad)
            assert(not ok and err:match("invalid module name"), bad)
        end
        local ok, err = pcall(require, "nope")
        assert(not ok and err:match("module 'nope' not found"), err)
        local os = require "os"
        assert(os.time and os.date and os.clock)
        assert(os.execute == nil and os.getenv == nil and os.remove == nil and os.exit == nil)
        local ok, err = pcall(require, "io")
        assert(not ok and err:match("not available"), err)
        assert(coroutine == nil and collectgarbage == nil)
        function process_message() return 0 end
    "#;
    e.sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", lua)
        .unwrap();
}

#[test]
fn dangerous_functions_are_gone() {
    let e = env();
    let lua = r#"
        assert(dofile == nil and loadfile == nil and newproxy == nil)
        assert(string.dump == nil and getmetatable("").__index.dump == nil)
        local f, err = loadstring("\27LuaQ\0\1\4\8\4\8\0")
        assert(f == nil and err:match("binary"), err)
        local f = loadstring("return 1 + 1")
        assert(f() == 2, "text chunks still load")
        local f, err = load(function() return nil end)
        assert(f ~= nil)
        function process_message() return 0 end
    "#;
    e.sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", lua)
        .unwrap();
    let input = r#"
        local io = require "io"
        assert(io.open and io.lines)
        assert(require "coroutine")
        function process_message() return 0 end
    "#;
    e.sandbox(PluginKind::Input, "", input).unwrap();
}

fn terminated(e: &Env, cfg: &str, lua: &str) -> String {
    let sandbox = e
        .sandbox(
            PluginKind::Analysis,
            &format!("message_matcher = 'TRUE' {cfg}"),
            lua,
        )
        .unwrap();
    sandbox.process_message(()).unwrap_err().0
}

#[test]
fn limits_terminate_with_hindsights_messages() {
    let e = env();
    assert_eq!(
        terminated(&e, "", "function process_message() while true do end end"),
        "process_message() instruction_limit exceeded"
    );
    assert_eq!(
        terminated(
            &e,
            "",
            "function process_message() while true do pcall(function() while true do end end) end end"
        ),
        "process_message() instruction_limit exceeded",
        "pcall cannot swallow the limit"
    );
    assert_eq!(
        // No instruction limit: only memory may stop it (which limit comes first is not the
        // point here).
        terminated(
            &e,
            "instruction_limit = 0",
            "function process_message() local s = 'x' while true do s = s .. s end end"
        ),
        "process_message() not enough memory"
    );
    assert_eq!(
        // No instruction limit: only memory may stop it (which limit comes first is not the
        // point here).
        terminated(
            &e,
            "instruction_limit = 0",
            "function process_message() local t = {} for i = 1, 1e8 do t[i] = i end end"
        ),
        "process_message() not enough memory"
    );
    assert_eq!(
        // No instruction limit: only memory may stop it (which limit comes first is not the
        // point here).
        terminated(
            &e,
            "instruction_limit = 0",
            "function process_message() local s = string.rep('x', 64 * 1024 * 1024) return 0 end"
        ),
        "process_message() not enough memory"
    );
    assert_eq!(
        terminated(&e, "", "function process_message() error('boom') end"),
        "process_message() plugin.lua:1: boom"
    );
    assert_eq!(
        terminated(&e, "", "function process_message() end"),
        "process_message() must return a numeric status code"
    );
    assert_eq!(
        terminated(&e, "", "function process_message() return 1, 'fatal' end"),
        "process_message() fatal"
    );
    let long = terminated(
        &e,
        "",
        &format!(
            "function process_message() error('{}') end",
            "y".repeat(400)
        ),
    );
    assert!(long.len() <= 255);
    // With the limit off, a long loop is fine.
    let sandbox = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE' instruction_limit = 0",
            "function process_message() for i = 1, 3e6 do end return 0 end",
        )
        .unwrap();
    assert_eq!(sandbox.process_message(()).unwrap().0, 0);
}

#[test]
fn failures_at_load_time_are_reported() {
    let e = env();
    let err = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE'",
            "function process_message( return 0 end",
        )
        .err()
        .unwrap();
    assert!(err.0.starts_with("lsb_init() plugin.lua:1:"), "{err}");
    let err = e
        .sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", "x = 1")
        .err()
        .unwrap();
    assert_eq!(err.0, "lsb_init() process_message() function was not found");
    let err = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE'",
            "while true do end",
        )
        .err()
        .unwrap();
    assert_eq!(err.0, "lsb_init() instruction_limit exceeded");
    let err = e
        .sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", "setmetatable(_G, {__newindex = function() end}) function process_message() return 0 end")
        .err()
        .unwrap();
    assert_eq!(err.0, "lsb_init() process_message() function was not found");
    let err = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE' ticker_interval = 5",
            PM_OK,
        )
        .err()
        .unwrap();
    assert_eq!(err.0, "lsb_init() timer_event() function was not found");
}

#[test]
fn a_terminated_plugin_leaves_others_working() {
    let e = env();
    let bad = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE'",
            "function process_message() while true do end end",
        )
        .unwrap();
    let good = e
        .sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", PM_OK)
        .unwrap();
    assert!(bad.process_message(()).is_err());
    for _ in 0..3 {
        assert_eq!(good.process_message(()).unwrap().0, 0);
    }
}

#[test]
fn plugin_files_are_relative_to_their_directory() {
    let e = env();
    assert!(Path::new(&e.settings().plugin_dir).is_dir());
}

#[test]
fn cjson_decodes_encodes_and_raises_plain_errors() {
    let e = env();
    let lua = r#"
        require "cjson"
        local t = cjson.decode('{"a":1,"b":[true,null,"x"],"c":{"d":"e"},"gone":null}')
        assert(t.a == 1 and t.b[1] == true and t.b[2] == cjson.null and t.b[3] == "x")
        assert(t.c.d == "e" and t.gone == nil)
        local again = cjson.decode(cjson.encode(t))
        assert(again.c.d == "e" and again.b[3] == "x" and again.a == 1)
        assert(cjson.encode({1, 2.5, "x"}) == '[1,2.5,"x"]', cjson.encode({1, 2.5, "x"}))
        assert(cjson.encode({k = "v"}) == '{"k":"v"}')
        local ok, err = pcall(cjson.decode, "{bad")
        assert(not ok and type(err) == "string" and err:match("^cjson.decode:"), tostring(err))
        ok, err = pcall(cjson.encode, {f = function() end})
        assert(not ok and err:match("Cannot serialise function: type not supported"), tostring(err))
        -- As lua-cjson writes: numbers as Lua prints them, '/' escaped, and an object's members
        -- in the table's own order, which for a decoded object follows the text's order (so
        -- what a plugin re-encodes compares equal to what lua_sandbox would have written).
        assert(cjson.encode({1/3, 2^53, 1e300}) == '[0.33333333333333,9.007199254741e+15,1e+300]', cjson.encode({1/3, 2^53, 1e300}))
        assert(cjson.encode({"a/b\n\1"}) == '["a\\/b\\n\\u0001"]', cjson.encode({"a/b\n\1"}))
        local order = {}
        for k in pairs(cjson.decode('{"zeta":1,"alpha":2,"mid":3,"beta":4}')) do order[#order + 1] = k end
        local expected = {}
        local t2 = {}
        t2.zeta = 1; t2.alpha = 2; t2.mid = 3; t2.beta = 4
        for k in pairs(t2) do expected[#expected + 1] = k end
        assert(table.concat(order, ",") == table.concat(expected, ","), table.concat(order, ","))
        local text = cjson.encode(t2)
        for i, k in ipairs(expected) do
            assert(text:find('"' .. k .. '"', 1, true), text)
        end
        function process_message() return 0 end
    "#;
    e.sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", lua)
        .unwrap();
}

#[test]
fn kafka_consumers_read_topics_and_resume_from_their_checkpoint() {
    let e = env();
    e.log.create_topic("events", 2).unwrap();
    for (partition, values) in [(0u32, ["a0", "a1"]), (1, ["b0", "b1"])] {
        let appender = e.log.appender("events", partition, None).unwrap();
        for v in values {
            appender.append(1000, v.as_bytes()).unwrap();
        }
        appender.flush().unwrap();
    }
    let lua = r#"
        require "kafka"
        local c = kafka.consumer({"events"})
        local seen = {}
        for _ = 1, 4 do
            local value, topic, partition, key, offset, timestamp = c:receive()
            assert(topic == "events" and timestamp == 1000 and key == nil)
            seen[#seen + 1] = value .. "@" .. partition .. ":" .. offset
        end
        table.sort(seen)
        assert(table.concat(seen, " ") == "a0@0:0 a1@0:1 b0@1:0 b1@1:1", table.concat(seen, " "))
        assert(c:receive() == nil)
        assert(c:checkpoint() == "events:0:2,events:1:2", c:checkpoint())
        -- A consumer made from a checkpoint resumes there.
        local resumed = kafka.consumer({"events"}, "events:0:1,events:1:2")
        assert(resumed:receive() == "a1")
        assert(resumed:receive() == nil)
        assert(not pcall(kafka.consumer, {"events"}, "events:x:1"))
        function process_message() return 0 end
    "#;
    e.sandbox(PluginKind::Input, "", lua).unwrap();
    // Only inputs consume.
    let refused = e.sandbox(
        PluginKind::Analysis,
        "message_matcher = 'TRUE'",
        "require 'kafka'\nfunction process_message() return 0 end",
    );
    assert!(refused.is_err());
}

/// An output plugin (it has `coroutine` and `load`) called once with the given limits.
fn output_terminated(e: &Env, cfg: &str, lua: &str) -> String {
    match e.sandbox(
        PluginKind::Output,
        &format!("message_matcher = 'TRUE' {cfg}"),
        &format!("local coroutine = require 'coroutine' {lua}"),
    ) {
        Err(t) => t.0,
        Ok(sandbox) => sandbox.process_message(()).unwrap_err().0,
    }
}

#[test]
fn coroutines_are_held_to_the_instruction_limit() {
    let e = env();
    // Created in process_message.
    assert_eq!(
        output_terminated(
            &e,
            "",
            "function process_message() local co = coroutine.create(function() while true do end end) \
             coroutine.resume(co) return 0 end"
        ),
        "process_message() instruction_limit exceeded"
    );
    // Created at load time, resumed later; and a resume loop cannot swallow the limit.
    assert_eq!(
        output_terminated(
            &e,
            "",
            "local co = coroutine.create(function() while true do end end) \
             function process_message() while true do coroutine.resume(co) end end"
        ),
        "process_message() instruction_limit exceeded"
    );
    assert_eq!(
        output_terminated(
            &e,
            "",
            "local co = coroutine.wrap(function() while true do end end) co() \
             function process_message() return 0 end"
        ),
        "lsb_init() instruction_limit exceeded"
    );
    // A coroutine nested in a coroutine.
    assert_eq!(
        output_terminated(
            &e,
            "",
            "function process_message() coroutine.wrap(function() \
             coroutine.wrap(function() while true do end end)() end)() return 0 end"
        ),
        "process_message() instruction_limit exceeded"
    );
}

#[test]
fn chunks_given_to_load_count_against_the_memory_limit() {
    let e = env();
    // The reader function never ends: its chunks are held by Blink until the limit says no.
    let reason = output_terminated(
        &e,
        "instruction_limit = 0 memory_limit = 8388608",
        "function process_message() load(function() return string.rep('x', 1048576) end) return 0 end",
    );
    assert_eq!(reason, "process_message() not enough memory");
    // A reader within the limit still loads.
    let sandbox = e
        .sandbox(
            PluginKind::Output,
            "message_matcher = 'TRUE'",
            "local parts = {'return ', '4', '2'} local i = 0 \
             local f = load(function() i = i + 1 return parts[i] end) \
             function process_message() if f() == 42 then return 0 end return -1 end",
        )
        .unwrap();
    assert_eq!(sandbox.process_message(()).unwrap().0, 0);
}

#[test]
fn hostile_plugins_are_terminated_alone() {
    let e = env();
    let cases: &[(&str, &str, &str)] = &[
        // A pattern that backtracks for hours in C's matcher; ours pays for every step.
        (
            "",
            "function process_message() string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b') return 0 end",
            "process_message() instruction_limit exceeded",
        ),
        (
            "",
            "function process_message() while true do pcall(string.gsub, string.rep('a', 30), string.rep('a-', 30) .. 'b', '') end end",
            "process_message() instruction_limit exceeded",
        ),
        (
            "",
            "function process_message() for w in string.gmatch(string.rep('a', 40), string.rep('a*', 40) .. 'b') do end return 0 end",
            "process_message() instruction_limit exceeded",
        ),
        // gsub's result is built outside Lua's allocator: it counts against memory_limit.
        (
            "instruction_limit = 0",
            "function process_message() local s = string.gsub(string.rep('x', 100000), 'x', string.rep('y', 1000)) return 0 end",
            "process_message() not enough memory",
        ),
        // An empty string repeated 2^31 times spun in C for seconds a call.
        (
            "",
            "function process_message() while true do string.rep('', 2^31 - 1) end end",
            "process_message() instruction_limit exceeded",
        ),
        // Deep recursion ends in Lua's own stack limit.
        (
            "",
            "local function f(n) return 1 + f(n + 1) end function process_message() f(1) return 0 end",
            "stack overflow",
        ),
        (
            "",
            "function process_message() local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x end",
            "stack overflow",
        ),
        // Memory through the host functions.
        (
            "instruction_limit = 0",
            "function process_message() local t = {} for i = 1, 1e7 do t[i] = read_config('message_matcher') .. i end return 0 end",
            "process_message() not enough memory",
        ),
        (
            "instruction_limit = 0",
            "function process_message() local s = string.rep('x', 1e6) local t = {} for i = 1, 1e4 do t[i] = s .. i end return 0 end",
            "process_message() not enough memory",
        ),
    ];
    for (cfg, lua, expected) in cases {
        let got = terminated(&e, cfg, lua);
        assert!(
            got.contains(expected),
            "{lua}\n  got: {got}\n  expected: {expected}"
        );
    }
    // A C module, asked for by name, is not found: the plugin fails to load, saying so.
    for module in ["socket", "zlib", "io.popen", "ffi", "debug"] {
        let failed = e
            .sandbox(
                PluginKind::Analysis,
                "message_matcher = 'TRUE'",
                &format!("require '{module}' function process_message() return 0 end"),
            )
            .err()
            .unwrap_or_else(|| panic!("require '{module}' loaded"));
        assert!(failed.0.contains(module), "{module}: {}", failed.0);
    }
}

#[test]
fn read_config_gives_hindsights_values_where_the_cfg_has_none() {
    let e = env();
    let dir = e.dir.path().display().to_string();
    let check = format!(
        r#"
        assert(read_config("Logger") == "mine too", "the cfg's own key wins")
        assert(read_config("Hostname") == "test-host")
        assert(read_config("Pid") == 4242)
        assert(read_config("output_path") == "{dir}/data", read_config("output_path"))
        assert(read_config("sandbox_load_path") == "{dir}/hs_load")
        assert(read_config("sandbox_run_path") == "{dir}")
        assert(read_config("output_size") == 1048576)
        assert(read_config("max_message_size") == 65536)
        assert(read_config("instruction_limit") == 1000000)
        assert(read_config("memory_limit") == 8388608)
        assert(read_config("output_limit") == 65536)
        assert(read_config("ticker_interval") == 5)
        assert(read_config("preserve_data") == false)
        assert(read_config("async_buffer_size") == 0)
        assert(read_config("path") == "{dir}/lua_modules/?.lua", read_config("path"))
        assert(read_config("my_key") == "mine")
        function process_message() return 0 end
        function timer_event() end
        "#
    );
    e.sandbox(
        PluginKind::Output,
        "message_matcher = 'TRUE' ticker_interval = 5 Logger = 'mine too' my_key = 'mine'",
        &check,
    )
    .unwrap();
    // Analysis plugins get no deployment paths, and their thread.
    e.sandbox(
        PluginKind::Analysis,
        "message_matcher = 'TRUE' thread = 2",
        "assert(read_config('output_path') == nil) assert(read_config('thread') == 2) \
         assert(read_config('Logger') == 'analysis.p') function process_message() return 0 end",
    )
    .unwrap();
}

#[test]
fn decode_message_keeps_absent_headers_absent_and_round_trips() {
    let e = env();
    let lua = r#"
        -- encode_message fills Logger, Hostname and Pid from the plugin, as lua_sandbox does;
        -- Severity, Payload and EnvVersion stay absent.
        local raw = encode_message({Uuid = string.rep("u", 16), Timestamp = 1e9, Type = "t",
                                    Fields = {a = "x", n = 1}})
        local m = decode_message(raw)
        assert(m.Severity == nil, "Severity " .. tostring(m.Severity))
        assert(m.Payload == nil and m.EnvVersion == nil)
        assert(m.Type == "t" and m.Timestamp == 1e9 and m.Pid == 4242)
        local again = encode_message(m)
        assert(again == raw, #again .. " bytes, not " .. #raw)
        local with = decode_message(encode_message({Timestamp = 0, Severity = 3, Pid = 9}))
        assert(with.Severity == 3 and with.Pid == 9)
        function process_message() return 0 end
    "#;
    e.sandbox(PluginKind::Output, "message_matcher = 'TRUE'", lua)
        .unwrap();
}

#[test]
fn inject_message_errors_read_as_lua_sandboxs() {
    let e = env();
    for (fields, expected) in [
        (
            "{a = {{}}}",
            "inject_message() failed: unsupported array type: table",
        ),
        (
            "{a = {1, 'x'}}",
            "inject_message() failed: array has mixed types",
        ),
        (
            "{a = function() end}",
            "inject_message() failed: unsupported type: function",
        ),
        ("{a = {}}", "inject_message() failed: unsupported type: nil"),
        (
            "{[1.5] = 'x'}",
            "inject_message() failed: field name must be a string",
        ),
        (
            "{a = {value = 'x', value_type = 2}}",
            "inject_message() failed: invalid string value_type: 2",
        ),
        (
            "{a = {value = 1, value_type = 0}}",
            "inject_message() failed: invalid numeric value_type: 0",
        ),
        (
            "{a = {value = true, value_type = 3}}",
            "inject_message() failed: invalid boolean value_type: 3",
        ),
    ] {
        let lua = format!(
            "function process_message() local ok, err = pcall(inject_message, {{Fields = {fields}}}) \
             error(tostring(err)) end"
        );
        let got = terminated(&e, "process_message_inject_limit = 5", &lua);
        assert!(got.contains(expected), "{fields}: {got}");
    }
}

#[test]
fn zero_copy_read_message_is_a_reference_read_again_on_each_use() {
    let e = env();
    // Analysis: into the payload.
    let lua = r#"
        local payload = read_message("Payload", nil, nil, true)
        local user = read_message("Fields[user]", 1, 0, true)
        local framed = read_message("framed", nil, nil, true)
        function process_message()
            assert(tostring(payload) == "Failed password", tostring(payload))
            assert(tostring(user) == "admin")
            assert(tostring(framed) == read_message("framed"))
            add_to_payload(payload, " by ", user)
            inject_payload("txt", "zc", "!")
            local ok, err = pcall(read_message, "Timestamp", nil, nil, true)
            assert(not ok and err:find("not supported/recognized for zero copy", 1, true), err)
            return 0
        end
        function timer_event()
            -- No current message: the reference reads nothing.
            assert(tostring(payload) == nil)
        end
    "#;
    let sandbox = e
        .sandbox(
            PluginKind::Analysis,
            "message_matcher = 'TRUE' process_message_inject_limit = 1",
            lua,
        )
        .unwrap();
    sandbox.set_current(Some(sample()));
    assert_eq!(sandbox.process_message(()).unwrap(), (0, None));
    sandbox.take_current();
    sandbox.timer_event(0, false).unwrap();
    sandbox.host().appender.as_ref().unwrap().flush().unwrap();
    let injected = e.messages(blink::log::ANALYSIS_TOPIC);
    assert_eq!(
        injected[0].payload.as_deref(),
        Some(&b"Failed password by admin!"[..])
    );
    // Output: a file's write takes the reference, as the heka encoders hand it over.
    let path = e.dir.path().join("out.pb");
    let lua = format!(
        r#"
        local io = require "io"
        local f = assert(io.open({path:?}, "wb"))
        local function encode() return read_message("framed", nil, nil, true) end
        function process_message()
            f:write(encode(), "|", read_message("Type", nil, nil, true))
            f:flush()
            return 0
        end
        function timer_event() end
        "#,
        path = path.to_str().unwrap()
    );
    let sandbox = e
        .sandbox(PluginKind::Output, "message_matcher = 'TRUE'", &lua)
        .unwrap();
    sandbox.set_current(Some(sample()));
    assert_eq!(sandbox.process_message(()).unwrap(), (0, None));
    let written = std::fs::read(&path).unwrap();
    let mut framed = Vec::new();
    blink::message::stream::frame(&sample(), &mut framed);
    framed.extend_from_slice(b"|auth");
    assert_eq!(written, framed);
}

#[test]
fn input_and_output_plugins_get_hindsights_os_and_analysis_plugins_do_not() {
    let e = env();
    let from = e.dir.path().join("a.txt");
    let to = e.dir.path().join("b.txt");
    std::fs::write(&from, "x").unwrap();
    let lua = format!(
        r#"
        local os = require "os"
        assert(os.getenv("PATH"))
        assert(os.rename({from:?}, {to:?}))
        assert(os.remove({to:?}))
        assert(os.execute and os.tmpname)
        assert(os.exit == nil and os.setlocale == nil, "never exit or setlocale")
        local io = require "io"
        assert(io.popen, "io as Hindsight gives it")
        function process_message() return 0 end
        function timer_event() end
        "#,
        from = from.to_str().unwrap(),
        to = to.to_str().unwrap()
    );
    e.sandbox(PluginKind::Output, "message_matcher = 'TRUE'", &lua)
        .unwrap();
    assert!(!from.exists() && !to.exists());
    e.sandbox(
        PluginKind::Input,
        "",
        "local os = require 'os' assert(os.getenv and os.execute and not os.exit) \
         function process_message() return 0 end",
    )
    .unwrap();
}

#[test]
fn bit_is_luabitop() {
    let e = env();
    let lua = r#"
        local bit = require "bit"
        assert(bit.tobit(0xffffffff) == -1 and bit.tobit(2^32 + 1) == 1)
        assert(bit.bnot(0) == -1)
        assert(bit.band(0x12345678, 0xff) == 0x78 and bit.band(7, 6, 3) == 2)
        assert(bit.bor(1, 2, 4, 8) == 15 and bit.bxor(0xff, 0x0f) == 0xf0)
        assert(bit.lshift(1, 31) == -2^31 and bit.lshift(1, 33) == 2, "shift counts are mod 32")
        assert(bit.rshift(-1, 28) == 15 and bit.arshift(-256, 4) == -16)
        assert(bit.rol(0x12345678, 8) == 0x34567812 and bit.ror(0x12345678, 8) == 0x78123456)
        assert(bit.bswap(0x12345678) == 0x78563412)
        assert(bit.tohex(255) == "000000ff" and bit.tohex(-1, -4) == "FFFF" and bit.tohex(0xabc, 2) == "bc")
        assert(bit.band("3", 1) == 1, "numeric strings are numbers")
        local ok, err = pcall(bit.band, {})
        assert(not ok and tostring(err):find("bad argument #1 to 'band' (number expected, got table)", 1, true), tostring(err))
        function process_message() return 0 end
    "#;
    e.sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", lua)
        .unwrap();
}

#[test]
fn lfs_lists_and_describes_files_and_io_plugins_make_directories() {
    let e = env();
    let dir = e.dir.path().join("tree");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "hello").unwrap();
    let lua = format!(
        r#"
        local lfs = require "lfs"
        local names = {{}}
        for name in lfs.dir({dir:?}) do names[#names + 1] = name end
        table.sort(names)
        assert(table.concat(names, ",") == ".,..,a.txt,sub", table.concat(names, ","))
        assert(lfs.attributes({dir:?} .. "/a.txt", "mode") == "file")
        assert(lfs.attributes({dir:?} .. "/a.txt").size == 5)
        assert(lfs.attributes({dir:?} .. "/sub", "mode") == "directory")
        assert(type(lfs.attributes({dir:?} .. "/a.txt", "modification")) == "number")
        assert(lfs.attributes({dir:?} .. "/a.txt", "ino") > 0)
        local missing, err = lfs.attributes({dir:?} .. "/nope")
        assert(missing == nil and err:find("No such file", 1, true), err)
        assert(not pcall(lfs.dir, {dir:?} .. "/nope"))
        assert(lfs.chdir("/") == nil, "chdir is refused")
        if lfs.mkdir then
            assert(lfs.mkdir({dir:?} .. "/made"))
            assert(lfs.attributes({dir:?} .. "/made", "mode") == "directory")
            assert(lfs.rmdir({dir:?} .. "/made"))
        end
        function process_message() return 0 end
        function timer_event() end
        "#,
        dir = dir.to_str().unwrap()
    );
    e.sandbox(PluginKind::Output, "message_matcher = 'TRUE'", &lua)
        .unwrap();
    e.sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", &lua)
        .unwrap();
    e.sandbox(
        PluginKind::Analysis,
        "message_matcher = 'TRUE'",
        "local lfs = require 'lfs' assert(lfs.mkdir == nil and lfs.attributes) \
         function process_message() return 0 end",
    )
    .unwrap();
}

#[test]
fn lpeg_grammars_run_in_plugins_and_runaway_ones_are_terminated() {
    let e = env();
    let lua = r#"
        local l = require "lpeg"
        l.locale(l)
        local sp = l.space^0
        local key = l.C((l.alnum + "_")^1)
        local value = l.C((1 - l.S", ")^0)
        local pair = l.Cg(key * sp * "=" * sp * value)
        local kv = l.Cf(l.Ct("") * (pair * (sp * "," * sp)^-1)^0, rawset)
        -- Two alternatives that both recurse to the end: 2^n steps on n "a"s.
        local slow = l.P{ "S", S = "a" * l.V"S" * "x" + "a" * l.V"S" * "y" + l.P(true) }
        function process_message()
            local t = kv:match("user = alice, ip=10.0.0.1")
            assert(t.user == "alice" and t.ip == "10.0.0.1", tostring(t.user))
            assert(slow:match("ax") == 3 and slow:match(string.rep("a", 8)), "small inputs are fine")
            return 0
        end
        function timer_event()
            slow:match(string.rep("a", 40))
        end
    "#;
    let sandbox = e
        .sandbox(PluginKind::Analysis, "message_matcher = 'TRUE'", lua)
        .unwrap();
    sandbox.set_current(Some(sample()));
    assert_eq!(sandbox.process_message(()).unwrap(), (0, None));
    let t = sandbox.timer_event(0, false).unwrap_err();
    assert!(t.0.contains("instruction_limit exceeded"), "{}", t.0);
}
