//! `blink run --batch`: runs until the inputs finish, drains analysis and outputs, keeps time
//! by the messages, and exits with hindsight_cli's status.

mod common;

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::Workspace;

/// Runs `blink run --batch` in `w` and returns its status and stderr; killed after 60 s.
fn run_batch(w: &Workspace) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blink"))
        .args(["run", "--batch", "--config", "blink.toml"])
        .current_dir(w.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("blink run --batch did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
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
    // Ticks at the first message, then every 60 s of message time; the final timer at the
    // newest message's time — whatever the wall clock did meanwhile.
    assert!(
        lines.contains(
            &"summary\tseen=60 ticks=0,60,120,180,240,300,360,420,480,540 final=590".to_owned()
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
