//! The pipeline on the real binary: input → analysis → output, crash recovery, shutdown order,
//! and failing plugins.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running `blink run`, killed if a test fails before stopping it.
mod common;

use common::{sigterm, wait_for, workspace};

const SEQ_INPUT: &str = r#"
local N = read_config("count")
function process_message(cp)
    for n = (cp or 0) + 1, N do
        inject_message({Type = "seq", Fields = {seq = {value = n, value_type = 2}}}, n)
    end
    return 0
end
"#;

const PASS_ANALYSIS: &str = r#"
function process_message()
    inject_message({Type = "seen", Fields = {seq = {value = read_message("Fields[seq]"), value_type = 2}}})
    return 0
end
"#;

const FILE_OUTPUT: &str = r#"
require "io"
local f = assert(io.open(read_config("path"), "a"))
function process_message()
    f:write(read_message("Type"), " ", read_message("Fields[seq]") or read_message("Payload") or "", "\n")
    f:flush()
    return 0
end
function timer_event(ns, shutdown)
    if shutdown then f:write("shutdown\n") f:flush() end
end
"#;

#[test]
fn kill_9_mid_stream_loses_nothing() {
    let w = workspace();
    let n = 100_000;
    w.plugin(
        "input",
        "seq",
        &format!("count = {n}\ninstruction_limit = 0"),
        SEQ_INPUT,
    );
    w.plugin(
        "analysis",
        "pass",
        "message_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1",
        PASS_ANALYSIS,
    );
    let out = w.file("out.txt");
    w.plugin(
        "output",
        "file",
        &format!(
            "message_matcher = 'Type == \"seen\"'\npath = {:?}",
            out.to_str().unwrap()
        ),
        FILE_OUTPUT,
    );

    let mut blink = w.start();
    wait_for("some output", Duration::from_secs(120), || {
        w.lines("out.txt").len() >= 2000
    });
    blink.kill_9(); // SIGKILL, mid-stream
    let at_kill = w.lines("out.txt").len();

    let mut blink = w.start();
    let count = |lines: &[String]| {
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        for line in lines {
            if let Some(seq) = line.strip_prefix("seen ") {
                *seen.entry(seq.parse().unwrap()).or_default() += 1;
            }
        }
        seen
    };
    wait_for(
        "every message in the output",
        Duration::from_secs(300),
        || count(&w.lines("out.txt")).len() as u64 == n,
    );
    sigterm(&mut blink);
    let lines = w.lines("out.txt");
    let seen = count(&lines);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "no message lost"
    );
    let duplicates: u32 = seen.values().map(|c| c - 1).sum();
    eprintln!("{at_kill} lines at the kill, {duplicates} duplicates after the restart");
    // Each of the three stages (input, analysis, output) replays at most its last checkpoint
    // interval once, so a message can reach the output a handful of times, never more.
    assert!(
        seen.values().all(|&c| c <= 5),
        "{:?}",
        seen.iter()
            .filter(|&(_, &c)| c > 5)
            .take(5)
            .collect::<Vec<_>>()
    );
    // Replays come from checkpoints at most one interval (100 ms here) old: a fraction of the
    // stream, never a restart from scratch.
    assert!(
        (duplicates as u64) < n / 2,
        "{duplicates} duplicates of {n}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("shutdown"));
}

#[test]
fn shutdown_runs_timer_events_in_order_inputs_analysis_outputs() {
    let w = workspace();
    w.plugin("input", "one", "", r#"function process_message() inject_message({Type = "hello", Payload = "hi"}) return 0 end"#);
    w.plugin(
        "analysis",
        "bye",
        "message_matcher = 'Type == \"hello\"'\nticker_interval = 3600",
        r#"
        seen = 0
        function process_message() seen = seen + 1 return 0 end
        function timer_event(ns, shutdown)
            if shutdown then inject_message({Type = "seen", Payload = "bye after " .. seen}) end
        end
        "#,
    );
    let out = w.file("out.txt");
    w.plugin(
        "output",
        "file",
        &format!(
            "message_matcher = 'Type == \"seen\"'\npath = {:?}",
            out.to_str().unwrap()
        ),
        FILE_OUTPUT,
    );
    let mut blink = w.start();
    wait_for(
        "the input's message to be read",
        Duration::from_secs(60),
        || {
            // The analysis thread's checkpointed position moves past the message once read.
            let cp =
                std::fs::read_to_string(w.path().join("data/checkpoints.json")).unwrap_or_default();
            let cp: serde_json::Value = serde_json::from_str(&cp).unwrap_or_default();
            cp["readers"]["analysis-thread.0"]["blink.input"]["0"]
                .as_i64()
                .unwrap_or(0)
                >= 1
        },
    );
    sigterm(&mut blink);
    // The analysis plugin's shutdown inject was written before outputs stopped, so the output
    // delivered it before its own shutdown timer_event.
    assert_eq!(w.lines("out.txt"), ["seen bye after 1", "shutdown"]);
}

#[test]
fn a_failing_plugin_is_terminated_alone() {
    let w = workspace();
    w.plugin(
        "input",
        "gen",
        "ticker_interval = 1",
        r#"n = 0 function process_message() n = n + 1 inject_message({Type = "tick", Payload = tostring(n)}) return 0 end"#,
    );
    w.plugin(
        "analysis",
        "bad",
        "message_matcher = 'Type == \"tick\"'",
        "function process_message() error('broken on purpose') end",
    );
    w.plugin(
        "analysis",
        "loop",
        "message_matcher = 'Type == \"tick\"'",
        "function process_message() while true do end end",
    );
    w.plugin("analysis", "good", "message_matcher = 'Type == \"tick\"'\nprocess_message_inject_limit = 1", r#"function process_message() inject_message({Type = "seen", Payload = read_message("Payload")}) return 0 end"#);
    // Hostile in ways the sandbox used to miss: a pattern that backtracks for hours in C, and
    // a gsub whose result was built outside the memory limit.
    w.plugin(
        "analysis",
        "pattern",
        "message_matcher = 'Type == \"tick\"'",
        "function process_message() string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b') return 0 end",
    );
    w.plugin(
        "analysis",
        "gsub",
        "message_matcher = 'Type == \"tick\"'\ninstruction_limit = 0",
        "function process_message() string.gsub(string.rep('x', 100000), 'x', string.rep('y', 1000)) return 0 end",
    );
    w.plugin(
        "analysis",
        "invalid",
        "message_matcher = 'Type = 1'",
        "function process_message() return 0 end",
    );
    let out = w.file("out.txt");
    w.plugin(
        "output",
        "file",
        &format!(
            "message_matcher = 'Type == \"seen\"'\npath = {:?}",
            out.to_str().unwrap()
        ),
        FILE_OUTPUT,
    );
    let mut blink = w.start();
    wait_for(
        "the good plugin to keep working",
        Duration::from_secs(60),
        || w.lines("out.txt").len() >= 2,
    );
    sigterm(&mut blink);
    let err = |name: &str| {
        std::fs::read_to_string(w.path().join("hs_run/analysis").join(format!("{name}.err")))
            .unwrap_or_default()
    };
    assert!(
        err("bad").contains("\tprocess_message() bad.lua:1: broken on purpose"),
        "{}",
        err("bad")
    );
    assert!(
        err("loop").contains("\tprocess_message() instruction_limit exceeded"),
        "{}",
        err("loop")
    );
    assert!(
        err("pattern").contains("\tprocess_message() instruction_limit exceeded"),
        "{}",
        err("pattern")
    );
    assert!(
        err("gsub").contains("\tprocess_message() not enough memory"),
        "{}",
        err("gsub")
    );
    assert!(
        err("invalid").contains("key `message_matcher`: column 6"),
        "{}",
        err("invalid")
    );
    assert!(!w.path().join("hs_run/analysis/good.err").exists());
    let stamp = &err("bad")[..19];
    assert_eq!(stamp.len(), 19, "YYYY-MM-DDTHH:MM:SS");
    // plugin_status.tsv: one row a plugin, with its state and counters.
    let stats = std::fs::read_to_string(w.path().join("data/plugin_status.tsv")).unwrap();
    let row = |name: &str| -> Vec<String> {
        let line = stats
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("no row for {name}: {stats}"));
        line.split('\t').map(str::to_owned).collect()
    };
    assert!(
        stats.starts_with("Plugin\tState\tInject Message Count"),
        "{stats}"
    );
    assert_eq!(
        row("analysis.bad")[1],
        "terminated: process_message() bad.lua:1: broken on purpose"
    );
    let good = row("analysis.good");
    assert_eq!(good[1], "stopped");
    assert!(good[2].parse::<u64>().unwrap() >= 2, "injected: {good:?}");
    assert!(good[4].parse::<u64>().unwrap() >= 2, "processed: {good:?}");
    assert!(good[6].parse::<u64>().unwrap() > 0, "memory: {good:?}");
    assert!(row("input.gen")[2].parse::<u64>().unwrap() >= 2);
    // plugins.tsv is Hindsight's: its header, and only running plugins (none, once stopped).
    let hindsight = std::fs::read_to_string(w.path().join("data/plugins.tsv")).unwrap();
    assert!(
        hindsight.starts_with("Plugin\tInject Message Count\tInject Message Bytes\t"),
        "{hindsight}"
    );
    assert_eq!(hindsight.lines().count(), 1, "{hindsight}");
}

#[test]
fn preserve_data_survives_a_clean_restart() {
    let w = workspace();
    let input = r#"
        function process_message(cp)
            for n = (cp or 0) + 1, read_config("count") do inject_message({Type = "x"}, n) end
            return 0
        end
    "#;
    w.plugin("input", "gen", "count = 3", input);
    w.plugin(
        "analysis",
        "counter",
        "message_matcher = 'Type == \"x\"'\nprocess_message_inject_limit = 1\npreserve_data = true",
        r#"
        count = 0
        history = {seen = {}, label = "a \"quoted\"\nlabel"}
        function process_message()
            count = count + 1
            history.seen[#history.seen + 1] = count
            inject_message({Type = "seen", Payload = count .. "/" .. #history.seen .. "/" .. history.label:sub(1, 1)})
            return 0
        end
        "#,
    );
    let out = w.file("out.txt");
    w.plugin(
        "output",
        "file",
        &format!(
            "message_matcher = 'Type == \"seen\"'\npath = {:?}",
            out.to_str().unwrap()
        ),
        FILE_OUTPUT,
    );
    let mut blink = w.start();
    wait_for("three counts", Duration::from_secs(60), || {
        w.lines("out.txt").len() >= 3
    });
    sigterm(&mut blink);
    let saved =
        std::fs::read_to_string(w.path().join("data/preserve/analysis.counter.data")).unwrap();
    assert!(saved.contains("_G[\"count\"] = 3"), "{saved}");

    w.plugin("input", "gen", "count = 5", input);
    let mut blink = w.start();
    wait_for("two more counts", Duration::from_secs(60), || {
        w.lines("out.txt").len() >= 6
    });
    sigterm(&mut blink);
    let seen: Vec<String> = w
        .lines("out.txt")
        .into_iter()
        .filter(|l| l.starts_with("seen"))
        .collect();
    assert_eq!(
        seen,
        [
            "seen 1/1/a",
            "seen 2/2/a",
            "seen 3/3/a",
            "seen 4/4/a",
            "seen 5/5/a"
        ]
    );
}

#[test]
fn output_return_codes_decide_the_checkpoint() {
    let w = workspace();
    w.plugin("input", "five", "", r#"function process_message(cp) if cp then return 0 end for n = 1, 5 do inject_message({Type = "m", Payload = tostring(n)}, n) end return 0 end"#);
    let writer = |extra: &str| {
        format!(
            r#"
            require "io"
            local f = assert(io.open(read_config("path"), "a"))
            local function write(s) f:write(s, "\n") f:flush() end
            {extra}
            "#
        )
    };
    let cfg = |file: &str| {
        format!(
            "message_matcher = 'Type == \"m\"'\npath = {:?}",
            w.file(file).to_str().unwrap()
        )
    };
    // -4 and never confirmed: everything is delivered again after a restart.
    w.plugin(
        "output",
        "batch",
        &cfg("batch.txt"),
        &writer("function process_message() write(read_message('Payload')) return -4 end"),
    );
    // -5 with each message confirming the one before: only the last is delivered again.
    w.plugin(
        "output",
        "async",
        &cfg("async.txt"),
        &writer("function process_message(seq) write(read_message('Payload')) if seq > 1 then update_checkpoint(seq - 1) end return -5 end"),
    );
    // -3 once per message: each is retried, then sent, and not delivered again.
    w.plugin(
        "output",
        "retry",
        &cfg("retry.txt"),
        &writer(
            "tried = {} function process_message() local p = read_message('Payload') if not tried[p] then tried[p] = true write('retry ' .. p) return -3 end write('sent ' .. p) return 0 end",
        ),
    );
    let mut blink = w.start();
    wait_for("first deliveries", Duration::from_secs(60), || {
        w.lines("batch.txt").len() == 5
            && w.lines("async.txt").len() == 5
            && w.lines("retry.txt").len() == 10
    });
    sigterm(&mut blink);
    assert_eq!(w.lines("retry.txt")[..2], ["retry 1", "sent 1"]);

    let mut blink = w.start();
    wait_for("re-deliveries", Duration::from_secs(60), || {
        w.lines("batch.txt").len() == 10 && w.lines("async.txt").len() == 6
    });
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&mut blink);
    assert_eq!(
        w.lines("batch.txt")[5..],
        ["1", "2", "3", "4", "5"],
        "unconfirmed batch delivered again"
    );
    assert_eq!(
        w.lines("async.txt")[5..],
        ["5"],
        "only the unconfirmed async message again"
    );
    assert_eq!(
        w.lines("retry.txt").len(),
        10,
        "sent messages are not delivered again"
    );
}

/// Hindsight fires an output's timer while it retries (-3): a plugin that retries until its
/// timer has flushed a buffer (or a backoff has passed) must not wait for ever.
#[test]
fn an_output_retrying_a_message_keeps_its_timer_firing() {
    let w = workspace();
    w.plugin("input", "one", "", r#"function process_message(cp) if cp then return 0 end inject_message({Type = "m", Payload = "1"}, 1) return 0 end"#);
    w.plugin(
        "output",
        "retry",
        &format!(
            "message_matcher = 'Type == \"m\"'\nticker_interval = 1\npath = {:?}",
            w.file("retry.txt").to_str().unwrap()
        ),
        r#"
        require "io"
        local f = assert(io.open(read_config("path"), "a"))
        local function write(s) f:write(s, "\n") f:flush() end
        local timers = 0
        function process_message()
            local p = read_message("Payload")
            if timers < 2 then write("retry " .. tostring(p)) return -3 end
            write("sent " .. tostring(p))
            return 0
        end
        function timer_event(ns, shutdown)
            if not shutdown then timers = timers + 1 write("timer") end
        end
        "#,
    );
    let mut blink = w.start();
    wait_for(
        "the retried message sent after two timers",
        Duration::from_secs(30),
        || w.lines("retry.txt").iter().any(|l| l.starts_with("sent")),
    );
    sigterm(&mut blink);
    let lines = w.lines("retry.txt");
    assert!(
        lines.iter().filter(|l| *l == "timer").count() >= 2,
        "{lines:?}"
    );
    // After each timer the retried message is current again.
    for line in lines.iter().filter(|l| *l != "timer") {
        assert!(line.ends_with(" 1"), "{lines:?}");
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let w = workspace();
    // An input that ignores is_running(): the first SIGTERM waits for it (up to 5 s).
    w.plugin(
        "input",
        "stubborn",
        "instruction_limit = 0",
        "function process_message() while true do end end",
    );
    let mut blink = w.start();
    let pid = blink.0.id().to_string();
    let term = || {
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    term();
    std::thread::sleep(Duration::from_millis(300));
    term();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = blink.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "blink ignored the second signal"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130));
}

#[test]
fn backpressure_holds_inputs_back_for_a_stuck_reader() {
    let w = workspace();
    w.global_config("output_size = 4096\nmax_message_size = 1024\nbackpressure = 2\n");
    w.plugin(
        "input",
        "flood",
        &format!("count = {}\ninstruction_limit = 0", 20_000),
        SEQ_INPUT,
    );
    // An output that never gets past the first message.
    w.plugin(
        "output",
        "stuck",
        "message_matcher = 'TRUE'",
        "function process_message() return -3 end",
    );
    let mut blink = w.start();
    std::thread::sleep(Duration::from_secs(3));
    sigterm(&mut blink);
    let log = blink::log::Log::open_read_only(blink::log::LogConfig::in_dir(w.path().join("data")))
        .unwrap();
    let written = log
        .partition(blink::log::INPUT_TOPIC, 0)
        .unwrap()
        .next_offset();
    // A 4 KiB segment holds a few dozen of these messages; three segments' worth plus the
    // batch in flight, not the whole flood.
    assert!(
        written > 0 && written < 2_000,
        "{written} messages written despite backpressure"
    );
}

/// A detection written from the docs' minimal cfg (no `process_message_inject_limit`): its first
/// alert ends it, and the error says which cfg key and value fix that. A misspelt key is warned
/// about in the log and in plugin_status.tsv.
#[test]
fn the_inject_limit_error_names_the_fix_and_misspelt_keys_are_warned_about() {
    let w = workspace();
    w.plugin("input", "seq", "count = 3", SEQ_INPUT);
    w.plugin(
        "analysis",
        "first_alert",
        "message_matcher = 'Type == \"seq\"'",
        r#"function process_message()
            inject_message({Type = "detection"})
            return 0
        end"#,
    );
    w.plugin(
        "analysis",
        "typo",
        "message_matcher = 'Type == \"seq\"'\ninstruction_limt = 5\nthreshold = 3",
        "function process_message() return 0 end",
    );
    let mut blink = w.start();
    let err = w.path().join("hs_run/analysis/first_alert.err");
    wait_for(
        "the alert to end the plugin",
        Duration::from_secs(60),
        || err.exists(),
    );
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(
        text.contains("exceeded InjectMessage count: process_message_inject_limit = 0 in the cfg; set process_message_inject_limit = 1"),
        "{text}"
    );
    let stats = w.path().join("data/plugin_status.tsv");
    wait_for(
        "the warning in plugin_status.tsv",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&stats).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.starts_with("analysis.typo\t")
                        && l.contains(
                            "unknown key `instruction_limt`: did you mean `instruction_limit`?",
                        )
                })
            })
        },
    );
    let warned = blink.logged("did you mean `instruction_limit`?");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains("analysis.typo"),
        "{warned:?}"
    );
    // A user key (`threshold`) is the plugin's own: no warning about it.
    assert!(blink.logged("`threshold`").is_empty());
    sigterm(&mut blink);
}

/// A Blink started the moment the last one was killed (`kill -9`, not yet reaped) gets the data
/// directory: the lock goes with the process, and the newcomer waits the instant it takes.
#[test]
fn a_restart_right_after_kill_9_gets_the_lock() {
    let w = workspace();
    for round in 0..3 {
        let mut blink = w.start();
        // SIGKILL without waiting for the process to be gone, as `kill -9 PID; blink run` does.
        assert!(
            std::process::Command::new("kill")
                .args(["-KILL", &blink.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let mut next = w.start();
        sigterm(&mut next);
        let _ = blink.0.wait();
        assert!(
            next.logged("locked by another").is_empty(),
            "round {round}: {:?}",
            next.logged("lock")
        );
    }
}

/// Stopping a plugin that takes its time (an input that ignores `is_running()` holds its join
/// for the full deadline) keeps nobody else waiting: the pipeline's lock is not held across it.
#[test]
fn a_slow_stop_does_not_lock_the_pipeline() {
    use std::sync::Arc;

    use blink::checkpoint::CheckpointStore;
    use blink::log::LogConfig;
    use blink::log::{INPUT_TOPIC, Log};
    use blink::plugin::{PluginConfig, PluginKind};
    use blink::runner::{Context, Pipeline, Stats};

    let w = workspace();
    w.plugin(
        "input",
        "stubborn",
        "instruction_limit = 0",
        r#"require "os"
        function process_message()
            local n = 0
            while true do
                n = n + 1
                pcall(inject_message, {Type = "tick"}, n)
                local t = os.clock() while os.clock() - t < 0.01 do end
            end
        end"#,
    );
    w.plugin(
        "analysis",
        "later",
        "message_matcher = 'FALSE'",
        "function process_message() return 0 end",
    );
    let log = Arc::new(Log::open(LogConfig::in_dir(w.path().join("data"))).unwrap());
    let checkpoints = Arc::new(CheckpointStore::open(&w.path().join("data")).unwrap());
    let run_dir = w.path().join("hs_run");
    let later = Arc::new(
        PluginConfig::load(PluginKind::Analysis, &run_dir.join("analysis/later.cfg")).unwrap(),
    );
    std::fs::remove_file(run_dir.join("analysis/later.cfg")).unwrap();
    let context = Context {
        log: log.clone(),
        checkpoints,
        data_dir: w.path().join("data"),
        run_dir,
        lua_paths: vec![],
        io_lua_paths: vec![],
        install_path: Default::default(),
        defaults: Default::default(),
        hostname: "test".into(),
        max_message_size: 65536,
        shutdown: blink::stop::StopToken::new(),
        stats: Arc::new(Stats::default()),
        backpressure: 0,
        output_size: 64 << 20,
        load_dir: w.path().join("hs_load"),
        mode: blink::runner::Mode::Live,
    };
    let pipeline = Arc::new(Pipeline::start(context, 1).unwrap());
    let input = log.partition(INPUT_TOPIC, 0).unwrap();
    wait_for("the input to inject", Duration::from_secs(30), || {
        input.next_offset() > 0
    });
    let unloading = {
        let pipeline = pipeline.clone();
        std::thread::spawn(move || pipeline.unload("input.stubborn"))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !unloading.is_finished(),
        "the stubborn input should hold its join"
    );
    // Both need the pipeline's lock; both answer while the join still waits.
    assert_eq!(pipeline.configs().len(), 0);
    pipeline.load(later).unwrap();
    assert!(
        !unloading.is_finished(),
        "configs() and load() waited for the stubborn input's join"
    );
    assert!(unloading.join().unwrap(), "the input was running");
    assert_eq!(pipeline.configs().len(), 1);
    pipeline.stop();
}

#[test]
fn shutdown_leaves_a_plugin_that_never_returns_behind() {
    let w = workspace();
    w.plugin(
        "input",
        "gen",
        "ticker_interval = 1",
        r#"function process_message() inject_message({Type = "tick"}) return 0 end"#,
    );
    // No instruction limit and a loop that never ends: nothing can stop this output.
    w.plugin(
        "output",
        "wedged",
        "message_matcher = 'Type == \"tick\"'\ninstruction_limit = 0",
        "function process_message() while true do end end",
    );
    let mut blink = w.start();
    wait_for(
        "the output to take a message",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(w.path().join("data/plugins.tsv"))
                .is_ok_and(|s| s.lines().any(|l| l.starts_with("output.wedged\t")))
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let asked = Instant::now();
    sigterm(&mut blink);
    let took = asked.elapsed();
    eprintln!("stopped {took:?} after SIGTERM");
    assert!(
        !blink.logged("left behind").is_empty(),
        "the wedged output is named as left behind"
    );
}
