//! `blink run --batch`: runs until the inputs finish, drains analysis and outputs, keeps time
//! by the messages, and exits with hindsight_cli's status.

mod common;

use common::{Workspace, run_batch};

/// Replaces the workspace's `blink.toml` with the usual paths and `text`.
fn write_config(w: &Workspace, text: &str) {
    std::fs::write(
        w.path().join("blink.toml"),
        format!("output_path = \"data\"\nsandbox_run_path = \"hs_run\"\nsandbox_load_path = \"hs_load\"\n{text}"),
    )
    .unwrap();
}

/// An input that injects `count` messages, one every `step` seconds of message time from
/// 1,700,000,000 s, then returns (it has no ticker_interval, so it runs once).
fn stepped_input(count: u32, step: u32) -> String {
    format!(
        r#"
function process_message()
    for i = 0, {count} - 1 do
        inject_message({{Type = "event", Timestamp = (1700000000 + i * {step}) * 1e9, Payload = tostring(i)}})
    end
    return 0
end
"#
    )
}

/// An output that writes every message's Type and Payload to `out.txt`, a line each.
const RECORDING_OUTPUT: &str = r#"
require "io"
local out = assert(io.open("out.txt", "a"))
function process_message()
    out:write(read_message("Type"), "\t", read_message("Payload") or "", "\n")
    out:flush()
    return 0
end
function timer_event() end
"#;

#[test]
fn timers_follow_message_time_and_everything_produced_is_processed_before_exit() {
    let w = common::workspace();
    w.plugin("input", "gen", "", &stepped_input(60, 10));
    // Timer times and the count, reported at the final timer_event as one injected message.
    w.plugin(
        "analysis",
        "ticks",
        "message_matcher = \"Type == 'event'\"\nticker_interval = 60",
        r#"
require "table"
local seen, ticks = 0, {}
function process_message()
    seen = seen + 1
    return 0
end
function timer_event(ns, shutdown)
    local s = math.floor(ns / 1e9) - 1700000000
    if shutdown then
        inject_message({Type = "summary", Payload = string.format("seen=%d ticks=%s final=%d", seen, table.concat(ticks, ","), s)})
    else
        ticks[#ticks + 1] = s
    end
end
"#,
    );
    w.plugin(
        "output",
        "record",
        "message_matcher = \"TRUE\"",
        RECORDING_OUTPUT,
    );
    let (status, log) = run_batch(&w);
    assert!(status.success(), "exit {status}; log:\n{log}");
    let lines = w.lines("out.txt");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("event\t")).count(),
        60,
        "every event reaches the output"
    );
    // Ticks at time 0 (as hindsight_cli's, before any message), at the first message, then
    // every 60 s of message time; the final timer at the newest message's time — whatever the
    // wall clock did meanwhile.
    assert!(
        lines.contains(
            &"summary\tseen=60 ticks=-1700000000,0,60,120,180,240,300,360,420,480,540 final=590"
                .to_owned()
        ),
        "the analysis summary, injected at its final timer_event, is delivered: {lines:?}"
    );
    assert!(
        log.contains("every input has finished"),
        "the log says why it stopped:\n{log}"
    );
}

#[test]
fn the_exit_status_sums_the_kinds_that_failed() {
    let w = common::workspace();
    w.plugin("input", "gen", "", &stepped_input(3, 1));
    w.plugin(
        "input",
        "broken",
        "",
        "function process_message() return 1, 'the source is gone' end",
    );
    w.plugin(
        "analysis",
        "fails",
        "message_matcher = \"Type == 'event'\"",
        "function process_message() error('boom') end function timer_event() end",
    );
    let (status, log) = run_batch(&w);
    assert_eq!(status.code(), Some(2 + 4), "log:\n{log}");
    assert!(log.contains("the source is gone"), "{log}");
    let err = std::fs::read_to_string(w.path().join("hs_run/analysis/fails.err")).unwrap();
    assert!(err.contains("boom"), "{err}");

    // An output that fails adds 8; a cfg that cannot start counts for its kind too.
    let w = common::workspace();
    w.plugin("input", "gen", "", &stepped_input(3, 1));
    w.plugin(
        "output",
        "fails",
        "message_matcher = \"TRUE\"",
        "function process_message() error('no route') end function timer_event() end",
    );
    std::fs::write(
        w.path().join("hs_run/analysis/invalid.cfg"),
        "filename = 'missing.lua'\nmessage_matcher = 'TRUE'",
    )
    .unwrap();
    let (status, log) = run_batch(&w);
    assert_eq!(status.code(), Some(4 + 8), "log:\n{log}");
}

#[test]
fn a_clean_run_exits_zero_without_a_kafka_server() {
    let w = common::workspace();
    w.plugin("input", "gen", "", &stepped_input(5, 1));
    w.plugin(
        "output",
        "record",
        "message_matcher = \"TRUE\"",
        RECORDING_OUTPUT,
    );
    let (status, log) = run_batch(&w);
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(w.lines("out.txt").len(), 5);
    assert!(
        !log.contains("kafka server listening"),
        "batch mode serves no Kafka clients:\n{log}"
    );
}

#[test]
fn a_hindsight_deployment_runs_with_installed_sandboxes_io_modules_and_defaults() {
    let w = common::workspace();
    let root = w.path();
    write_config(
        &w,
        "lua_path = [\"lua_modules\", \"shared_modules\"]\nio_lua_path = \"io_modules\"\nsandbox_install_path = \"installed\"\n[analysis_defaults]\ninstruction_limit = 0\nticker_interval = 3600\nprocess_message_inject_limit = 1\n",
    );
    for dir in ["shared_modules", "io_modules", "installed/analysis"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("shared_modules/greeting.lua"), "return 'hello'").unwrap();
    std::fs::write(root.join("io_modules/sink.lua"), "return {}").unwrap();
    // The input uses both module directories.
    w.plugin(
        "input",
        "gen",
        "",
        r#"
local greeting, sink = require "greeting", require "sink"
function process_message()
    inject_message({Type = "event", Timestamp = 1700000000e9, Payload = greeting})
    return 0
end
"#,
    );
    // The analysis plugin's code is only in the install directory; its cfg sets no limits.
    std::fs::write(
        root.join("installed/analysis/report.lua"),
        r#"
local io_module = pcall(require, "sink")
local settings = string.format("io=%s limit=%s ticker=%s", tostring(io_module),
    tostring(read_config("instruction_limit")), tostring(read_config("ticker_interval")))
function process_message()
    inject_message({Type = "report", Payload = read_message("Payload") .. " " .. settings})
    return 0
end
function timer_event() end
"#,
    )
    .unwrap();
    std::fs::write(
        root.join("hs_run/analysis/report.cfg"),
        "filename = 'report.lua'\nmessage_matcher = \"Type == 'event'\"",
    )
    .unwrap();
    w.plugin(
        "output",
        "record",
        "message_matcher = \"Type == 'report'\"",
        RECORDING_OUTPUT,
    );
    let (status, log) = run_batch(&w);
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(
        w.lines("out.txt"),
        ["report\thello io=false limit=0 ticker=3600"],
        "analysis plugins do not get io_lua_path; the defaults fill what the cfg leaves out"
    );

    // A cfg naming code that is in neither place says where it looked.
    std::fs::write(
        root.join("hs_run/analysis/lost.cfg"),
        "filename = 'lost.lua'\nmessage_matcher = 'TRUE'",
    )
    .unwrap();
    let (status, _) = run_batch(&w);
    assert_eq!(status.code(), Some(4));
    let err = std::fs::read_to_string(root.join("hs_run/analysis/lost.err")).unwrap();
    assert!(
        err.contains("lost.lua does not exist in") && err.contains("installed/analysis"),
        "{err}"
    );
}

#[test]
fn a_default_a_kind_cannot_have_is_refused_naming_the_config() {
    let w = common::workspace();
    write_config(&w, "[input_defaults]\nmessage_matcher = 'TRUE'\n");
    let (status, log) = run_batch(&w);
    assert!(!status.success());
    assert!(
        log.contains("input_defaults") && log.contains("`message_matcher` cannot have a default"),
        "{log}"
    );
}

#[test]
fn a_stream_reader_reads_a_hindsight_file_from_a_handle_and_from_strings() {
    let w = common::workspace();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hindsight/bench-1000.log");
    // From a file handle, with checkpoints counted from `consumed`; then the same file fed as
    // strings of 100 bytes, to exercise messages split across calls.
    w.plugin(
        "input",
        "file",
        "",
        &format!(
            r#"
require "io"
require "string"
local path = "{}"
function process_message()
    local hsr = create_stream_reader("file")
    local fh = assert(io.open(path, "rb"))
    local found, consumed, read, offset, count = nil, 0, 0, 0, 0
    repeat
        repeat
            found, consumed, read = hsr:find_message(fh)
            offset = offset + consumed
            if found then
                inject_message(hsr)
                count = count + 1
            end
        until not found
    until read == 0
    fh:close()
    local size = #assert(io.open(path, "rb")):read("*a")
    assert(offset == size, string.format("consumed %d of %d bytes", offset, size))
    -- In pieces.
    local data = assert(io.open(path, "rb")):read("*a")
    local pieces = create_stream_reader("pieces")
    local again = 0
    for at = 1, #data, 100 do
        found = pieces:find_message(data:sub(at, at + 99))
        while found do
            again = again + 1
            found = pieces:find_message(nil)
        end
    end
    assert(again == count, again .. " vs " .. count)
    local t = pieces:read_message("Timestamp")
    assert(type(t) == "number" and t > 0)
    pieces:decode_message(pieces:read_message("raw"))
    assert(pieces:read_message("Timestamp") == t)
    assert(not pcall(pieces.decode_message, pieces, "not a message"))
    inject_message({{Type = "count", Payload = tostring(count)}})
    return 0
end
"#,
            fixture.display()
        ),
    );
    w.plugin(
        "output",
        "record",
        "message_matcher = \"Type == 'count'\"",
        RECORDING_OUTPUT,
    );
    let (status, log) = run_batch(&w);
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(w.lines("out.txt"), ["count\t1000"]);
}

/// An analysis plugin keeping one object of every stateful module, with preserve_data.
const KEEPER: &str = r#"
require "circular_buffer"
require "hyperloglog"
require "bloom_filter"
require "cuckoo_filter"
require "cuckoo_filter_expire"
require "sax"
require "string"
local cms = require "streaming_algorithms.cm_sketch"
local p2 = require "streaming_algorithms.p2"
local tsm = require "streaming_algorithms.time_series"

runs, seen = 0, {}
cb = circular_buffer.new(10, 1, 1)
cb:set_header(1, "events", "count", "max")
hll, bf, cf = hyperloglog.new(), bloom_filter.new(100, 0.01), cuckoo_filter.new(64)
cfe, sketch = cuckoo_filter_expire.new(1024, 1), cms.new(0.01, 0.01)
q, ts, win = p2.quantile(0.5), tsm.new(10, 1e9), sax.window.new(4, 2, 4)
word = sax.word.new("AD", 4)
nested = {buffers = {cb}}

function process_message()
    local ns, v = read_message("Timestamp"), read_message("Payload")
    local n = tonumber(v)
    seen[#seen + 1] = n
    cb:add(ns, 1, n)
    hll:add(v); bf:add(v); cf:add(v); cfe:add(v, ns); sketch:update(v)
    q:add(n); ts:add(ns, 1); win:add(n)
    return 0
end

function timer_event(ns, shutdown)
    if not shutdown then return end
    runs = runs + 1
    local fresh_q, fresh_win = p2.quantile(0.5), sax.window.new(4, 2, 4)
    for _, n in ipairs(seen) do fresh_q:add(n); fresh_win:add(n) end
    local t0 = 1700000000e9
    local report = string.format(
        "runs=%d seen=%d cb=%s/%s/%s hll=%d bf=%d cf=%d cfe=%d/%s sketch=%d q=%s ts=%s win=%s word=%s nested=%s",
        runs, #seen, tostring(cb:get(t0, 1)), cb:get_header(1), tostring(cb:get(t0 + 7e9, 1)),
        hll:count(), bf:count(), cf:count(), cfe:count(), tostring(cfe:query("0")),
        sketch:item_count(), tostring(q:estimate(2) == fresh_q:estimate(2)), tostring(ts:get(t0)),
        tostring(tostring(win) == tostring(fresh_win)) .. ":" .. tostring(win), tostring(word),
        tostring(nested.buffers[1]:get(t0, 1)))
    inject_message({Type = "summary", Payload = report})
end
"#;

#[test]
fn module_objects_survive_a_clean_restart_with_preserve_data() {
    let w = common::workspace();
    let keeper_cfg = "message_matcher = \"Type == 'event'\"\npreserve_data = true\nticker_interval = 0\ntimer_event_inject_limit = 1";
    w.plugin("analysis", "keeper", keeper_cfg, KEEPER);
    w.plugin(
        "output",
        "record",
        "message_matcher = \"Type == 'summary'\"",
        RECORDING_OUTPUT,
    );
    // First run: values 0..3, one a second from 1,700,000,000 s.
    w.plugin("input", "gen", "", &stepped_input(4, 1));
    let (status, log) = run_batch(&w);
    assert!(status.success(), "exit {status}; log:\n{log}");
    let saved = std::fs::read_to_string(w.path().join("data/preserve/analysis.keeper.data"))
        .unwrap_or_else(|e| panic!("{e}; log:\n{log}"));
    assert!(
        saved.contains("__blink_restore(\"circular_buffer\""),
        "{saved}"
    );

    // Second run: values 4..7 go on from where the first left off.
    let second = r#"
function process_message()
    for i = 4, 7 do
        inject_message({Type = "event", Timestamp = (1700000000 + i) * 1e9, Payload = tostring(i)})
    end
    return 0
end
"#;
    w.plugin("input", "gen", "", second);
    let (status, log) = run_batch(&w);
    assert!(status.success(), "exit {status}; log:\n{log}");
    let lines = w.lines("out.txt");
    assert_eq!(
        lines.last().map(String::as_str),
        Some(
            "summary\truns=2 seen=8 cb=0/events/7 hll=8 bf=8 cf=8 cfe=8/true sketch=8 q=true ts=1 \
             win=true:AD word=AD nested=0"
        ),
        "{lines:?}\nlog:\n{log}"
    );
}
