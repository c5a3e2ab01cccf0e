//! The `blink` binary: `cat` of Hindsight files and topics (text, JSON, follow), config errors,
//! and `run` starting and stopping cleanly on a signal.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use blink::log::LogConfig;
use blink::log::{INPUT_TOPIC, Log};
use blink::message::{Field, FieldValues, Message};
use serde_json::Value;

fn blink() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_blink"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hindsight")
        .join(name)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run blink")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn hindsight_file_decodes_exactly_as_hindsight_printed_it() {
    let output = run(blink()
        .args(["cat", "--hindsight"])
        .arg(fixture("varied.log")));
    assert!(output.status.success());
    let reference = std::fs::read_to_string(fixture("varied.txt")).unwrap();
    // lsb_heka_cat's first two lines are its summary (on stderr, unbuffered, so it came first
    // when the reference was captured with 2>&1); the rest is one block per message.
    let (summary, body) = reference.split_at(reference.find("\n\n").unwrap() + 2);
    assert_eq!(stdout(&output), body);
    assert_eq!(String::from_utf8_lossy(&output.stderr), summary);

    // -c's equivalent: the summary alone, on stdout.
    let count = run(blink()
        .args(["cat", "--count", "--hindsight"])
        .arg(fixture("varied.log")));
    assert!(count.status.success());
    assert_eq!(stdout(&count), "Processed: 8, matched: 8 messages\n");
}

#[test]
fn match_filters_a_hindsight_file_and_a_queue_with_a_message_matcher() {
    let count = run(blink()
        .args([
            "cat",
            "--count",
            "--match",
            "Type =~ '^t%.[abu]'",
            "--hindsight",
        ])
        .arg(fixture("varied.log")));
    assert!(count.status.success());
    // t.bool, t.arrays, t.utf8 of the eight.
    assert_eq!(stdout(&count), "Processed: 8, matched: 3 messages\n");

    let t = test_log();
    {
        let log = t.open();
        let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
        for n in 0..10 {
            appender.append(n, &heka(n)).unwrap();
        }
    }
    let some = t.cat(&["blink.input", "--json", "--match", "Fields[n] >= 7"]);
    assert!(some.status.success());
    let ns: Vec<i64> = json_lines(&some)
        .iter()
        .map(|m| m["Fields"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [7, 8, 9]);
    assert_eq!(
        String::from_utf8_lossy(&some.stderr),
        "blink cat: 3 matched \"Fields[n] >= 7\", 7 did not\n"
    );

    let bad = t.cat(&["blink.input", "--match", "Type == "]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--match \"Type == \" is not a message matcher") && err.contains("column 9"),
        "{err}"
    );
}

#[test]
fn hindsight_file_as_json() {
    let output = run(blink()
        .args(["cat", "--json", "--hindsight"])
        .arg(fixture("varied.log")));
    assert!(output.status.success());
    let messages = json_lines(&output);
    assert_eq!(messages.len(), 8);
    let first = &messages[0];
    assert_eq!(first["Uuid"], "27150de5-4208-442d-a59a-1d802aedce38");
    assert_eq!(first["Timestamp"], 1700000000000000000i64);
    assert_eq!(first["Type"], "t.string");
    assert_eq!(first["Severity"], 3);
    assert_eq!(first["Pid"], 42);
    assert_eq!(first["EnvVersion"], "1.0");
    assert_eq!(first["Hostname"], "host-a");
    assert_eq!(first["Fields"]["user"], "alice");
    assert_eq!(messages[1]["Fields"]["big"], 9007199254740992.0);
    assert_eq!(messages[2]["Fields"]["ok"], true);
    assert_eq!(
        messages[3]["Fields"]["names"],
        serde_json::json!(["a", "b", "c"])
    );
    assert_eq!(
        messages[3]["Fields"]["nums"],
        serde_json::json!([1.0, 2.0, 3.5])
    );
    assert_eq!(messages[4]["Fields"]["bytes"], "AAEC/w==");
    assert_eq!(messages[4]["Fields"]["ints"], serde_json::json!([1, 2, 3]));
    assert_eq!(messages[5]["Payload"].as_str().unwrap().len(), 1000);
    assert_eq!(messages[6]["Payload"], "");
    assert!(
        messages[1].get("Payload").is_none(),
        "absent headers are left out"
    );
    assert_eq!(messages[7]["Payload"], "héllo wörld ✓");
    assert_eq!(messages[7]["Fields"]["city"], "Zürich");
}

#[test]
fn reference_workload_stream_decodes() {
    let output = run(blink()
        .args(["cat", "--json", "--hindsight"])
        .arg(fixture("bench-1000.log")));
    assert!(output.status.success());
    let messages = json_lines(&output);
    assert_eq!(messages.len(), 1000);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["Type"], "bench");
        assert_eq!(m["Fields"]["n"], (i + 1) as f64);
        assert_eq!(m["Fields"]["action"], "login");
    }
}

#[test]
fn damaged_hindsight_file_reports_and_continues() {
    let mut bytes = std::fs::read(fixture("varied.log")).unwrap();
    let frames: Vec<usize> = blink::message::stream::StreamReader::new(&bytes)
        .map(|f| f.unwrap().0)
        .collect();
    let third = frames[2];
    assert_eq!(bytes[third], 0x1e);
    bytes[third + 6] = 0xff; // inside the message's Uuid header
    bytes[third + 5] = 0x7f; // an unknown tag
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.log");
    std::fs::write(&path, bytes).unwrap();
    let output = run(blink().args(["cat", "--json", "--hindsight"]).arg(&path));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        json_lines(&output).len(),
        7,
        "the other messages are printed"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("bad frame at byte {third}")),
        "{stderr}"
    );
}

fn heka(n: i64) -> Vec<u8> {
    let mut m = Message::new([n as u8; 16], 1_700_000_000_000_000_000 + n);
    m.r#type = Some(b"test".to_vec());
    m.payload = Some(format!("message {n}").into_bytes());
    m.fields = vec![Field::new("n", FieldValues::Integer(vec![n]))];
    m.to_bytes()
}

struct TestLog {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn test_log() -> TestLog {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("blink.toml");
    // Its own empty hs_run and hs_load, so `blink run` does not start the repository's example
    // plugins, and a Kafka port of its own.
    let run = dir.path().join("hs_run");
    for kind in ["input", "analysis", "output"] {
        std::fs::create_dir_all(run.join(kind)).unwrap();
    }
    let text = format!(
        "output_path = {:?}\nsandbox_run_path = {:?}\nsandbox_load_path = {:?}\n[kafka]\nlisten = \"127.0.0.1:0\"\n",
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        dir.path().join("hs_load").to_str().unwrap()
    );
    std::fs::write(&config, text).unwrap();
    TestLog { dir, config }
}

impl TestLog {
    fn open(&self) -> Log {
        Log::open(LogConfig::in_dir(self.dir.path().join("data"))).unwrap()
    }

    fn cat(&self, args: &[&str]) -> Output {
        run(blink()
            .arg("cat")
            .arg("--config")
            .arg(&self.config)
            .args(args))
    }
}

#[test]
fn cat_prints_queue_messages_from_any_offset() {
    let t = test_log();
    {
        let log = t.open();
        let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
        for n in 0..10 {
            appender.append(n, &heka(n)).unwrap();
        }
    }
    let all = t.cat(&["blink.input", "--json"]);
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let messages = json_lines(&all);
    assert_eq!(messages.len(), 10);
    assert_eq!(messages[3]["Payload"], "message 3");
    assert_eq!(messages[3]["Fields"]["n"], 3);

    let tail = t.cat(&["blink.input", "--json", "--from", "7"]);
    let messages = json_lines(&tail);
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["Fields"]["n"], 7);

    let text = t.cat(&["blink.input", "--from", "9"]);
    let text = stdout(&text);
    assert!(
        text.starts_with(":Offset: 9\n:Uuid: 09090909-0909-0909-0909-090909090909\n"),
        "{text}"
    );
    assert!(text.contains(":Payload: message 9\n"));
    assert!(text.contains("| name: n type: 2 representation: <nil> value: 9\n"));
}

#[test]
fn cat_prints_plain_topics_and_flags_bad_queue_records() {
    let t = test_log();
    {
        let log = t.open();
        log.create_topic("events", 3).unwrap();
        for p in 0..3 {
            let appender = log.appender("events", p, None).unwrap();
            appender
                .append(1000 + p as i64, format!("event in {p}").as_bytes())
                .unwrap();
        }
        let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
        appender.append(0, &heka(0)).unwrap();
        appender.append(0, b"not a heka message").unwrap();
        appender.append(0, &heka(2)).unwrap();
    }
    let events = t.cat(&["events", "--json"]);
    let records = json_lines(&events);
    assert_eq!(records.len(), 3);
    assert_eq!(records[2]["partition"], 2);
    assert_eq!(records[2]["value"], "event in 2");
    assert_eq!(records[2]["timestamp"], 1002);
    let one = t.cat(&["events", "--partition", "1"]);
    assert_eq!(stdout(&one), "1\t0\t1001\t<null>\tevent in 1\n");

    let queue = t.cat(&["blink.input", "--json"]);
    assert_eq!(
        queue.status.code(),
        Some(1),
        "a bad record makes the exit status fail"
    );
    assert_eq!(
        json_lines(&queue).len(),
        2,
        "the good records are still printed"
    );
    let stderr = String::from_utf8_lossy(&queue.stderr);
    assert!(stderr.contains("blink.input-0 offset 1"), "{stderr}");

    let unknown = t.cat(&["nope"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown topic \"nope\"") && stderr.contains("events"),
        "{stderr}"
    );

    let range = t.cat(&["events", "--from", "5"]);
    assert!(stdout(&range).is_empty());
    let below = t.cat(&["blink.input", "--from", "-3"]);
    assert!(String::from_utf8_lossy(&below.stderr).contains("out of range"));
}

#[test]
fn cat_follow_prints_what_is_appended_later() {
    let t = test_log();
    let log = t.open();
    let mut child = blink()
        .args(["cat", "--follow", "--json", "--config"])
        .arg(&t.config)
        .arg("blink.input")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
    for n in 0..5 {
        appender.append(n, &heka(n)).unwrap();
    }
    appender.flush().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.len() < 5 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(serde_json::from_str::<Value>(&line).unwrap());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seen.len(), 5, "follow printed every appended message");
    assert_eq!(seen[4]["Fields"]["n"], 4);
}

#[test]
fn cat_from_past_the_end_is_an_error_or_says_it_waits() {
    let t = test_log();
    let log = t.open();
    let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
    for n in 0..3 {
        appender.append(n, &heka(n)).unwrap();
    }
    appender.flush().unwrap();
    for from in ["5", "-1"] {
        let past = t.cat(&["blink.input", "--from", from]);
        assert!(!past.status.success(), "--from {from}");
        let stderr = String::from_utf8_lossy(&past.stderr);
        assert!(
            stderr.contains(&format!("--from {from} is out of range: blink.input-0"))
                && stderr.contains("holds offsets 0 to 2"),
            "{stderr}"
        );
    }
    // At the end exactly: nothing to print yet, and no error.
    let at_end = t.cat(&["blink.input", "--from", "3"]);
    assert!(at_end.status.success());
    assert_eq!(stdout(&at_end), "");

    // With --follow it says what it waits for, and prints from there once it exists.
    let mut child = blink()
        .args(["cat", "--follow", "--json", "--from", "5", "--config"])
        .arg(&t.config)
        .arg("blink.input")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    stderr.read_line(&mut said).unwrap();
    assert!(
        said.contains("blink.input-0 ends at offset 3; waiting for offset 5"),
        "{said}"
    );
    for n in 3..7 {
        appender.append(n, &heka(n)).unwrap();
    }
    appender.flush().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        (first["Fields"]["n"].clone(), second["Fields"]["n"].clone()),
        (5.into(), 6.into())
    );
}

#[test]
fn run_outside_a_deployment_says_where_it_looked_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(blink().arg("run").current_dir(dir.path()));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hs_run") && stderr.contains("blink init"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "created something"
    );
}

#[test]
fn a_busy_kafka_port_is_reported_before_anything_is_created() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hs_run")).unwrap();
    std::fs::write(
        dir.path().join("blink.toml"),
        format!("[kafka]\nlisten = \"{}\"\n", busy.local_addr().unwrap()),
    )
    .unwrap();
    let output = run(blink()
        .args(["run", "--config", "blink.toml"])
        .current_dir(dir.path()));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[kafka] listen") && stderr.contains("blink.toml"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "the log was created");
    assert!(!dir.path().join("hs_load").exists(), "hs_load was created");
}

#[test]
fn init_writes_a_deployment_that_runs_and_refuses_to_overwrite_one() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("blink-here");
    let output = run(blink().arg("init").arg(&deployment));
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("blink run"));
    for file in [
        "cfg/blink.toml",
        "hs_run/input/auth_events.cfg",
        "hs_run/analysis/ssh_brute_force.lua",
        "hs_run/analysis/ssh_brute_force.test.toml",
        "hs_run/output/alerts_file.cfg",
        "lua_modules/blink/rule.lua",
        "lookups/ip_countries.csv",
    ] {
        assert!(deployment.join(file).is_file(), "{file}");
    }
    // The shipped detection's cases pass in the user's deployment.
    let tested = run(blink().arg("test").current_dir(&deployment));
    assert!(
        tested.status.success() && stdout(&tested).ends_with("8 cases: 8 passed, 0 failed\n"),
        "{}{}",
        stdout(&tested),
        String::from_utf8_lossy(&tested.stderr)
    );
    for dir in [
        "hs_load/input",
        "hs_load/analysis",
        "hs_load/output",
        "lua_modules",
    ] {
        assert!(deployment.join(dir).is_dir(), "{dir}");
    }
    let again = run(blink().arg("init").arg(&deployment));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // It runs as written (on a port of its own), every example plugin started.
    let cfg = deployment.join("cfg/blink.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("127.0.0.1:9092", "127.0.0.1:0")).unwrap();
    let mut child = blink()
        .env("RUST_LOG", "info")
        .arg("run")
        .current_dir(&deployment)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stats = deployment.join("data/plugin_status.tsv");
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = || running_in(&std::fs::read_to_string(&stats).unwrap_or_default());
    while running() < 7 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = std::fs::read_to_string(&stats).unwrap_or_default();
    sigterm(child.id());
    assert!(child.wait().unwrap().success());
    assert_eq!(running_in(&seen), 7, "{seen}");
}

/// Asks process `pid` to stop, as Ctrl-C or a service manager would.
fn sigterm(pid: u32) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn running_in(stats: &str) -> usize {
    stats.lines().filter(|l| l.contains("\trunning")).count()
}

#[test]
fn help_says_what_run_runs() {
    let output = run(blink().arg("--help"));
    let text = stdout(&output);
    let run_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("run"))
        .unwrap();
    assert!(run_line.contains("plugins"), "{run_line}");
    assert!(text.contains("init"), "{text}");
}

#[test]
fn config_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "output_path = 'x'\nmax_mesage_size = 10\n").unwrap();
    let output = run(blink()
        .args(["cat", "--config"])
        .arg(&config)
        .arg("blink.input"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("max_mesage_size"),
        "{stderr}"
    );
}

#[test]
fn run_opens_the_log_and_stops_cleanly_on_sigterm() {
    let t = test_log();
    let mut child = blink()
        .env("RUST_LOG", "info")
        .args(["run", "--config"])
        .arg(&t.config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "blink run never said it was running"
        );
        let line = lines.next().expect("blink run exited early").unwrap();
        if line.contains("blink is running") {
            break;
        }
    }
    // While it runs, the log is locked against a second writer, said once with the holder,
    // but readable.
    let second = run(blink().arg("run").arg("--config").arg(&t.config));
    assert!(!second.status.success());
    let refusal = String::from_utf8_lossy(&second.stderr);
    assert!(
        refusal.contains(&format!(
            ".lock is locked by another Blink process (pid {})",
            child.id()
        )),
        "{refusal}"
    );
    assert_eq!(refusal.matches("lock").count(), 2, "{refusal}");
    assert!(t.cat(&["blink.input"]).status.success());
    assert!(t.cat(&["blink.input"]).status.success());

    sigterm(child.id());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        !rest.iter().any(|l| l.contains('\u{1b}')),
        "colour codes in a log that is not a terminal: {rest:?}"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("stopped cleanly")),
        "{rest:?}"
    );
    assert!(
        t.dir
            .path()
            .join("data/blink.input-0/00000000000000000000.index")
            .exists(),
        "clean close writes the index"
    );
}
