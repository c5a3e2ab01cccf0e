//! `blink test [PATH...]`: runs detections against the cases in their `NAME.test.toml` files
//! and says, case by case, whether the alerts they raised are the ones expected.
//!
//! Each case runs in-process, as `blink run --batch` would run it, in a deployment of its own
//! in a temporary directory: the detection's cfg and Lua, an input injecting the case's events
//! (and, with `until`, one more message to move the clock), and an output recording every
//! `blink.alert`. Time is the events' own, so dedup periods, thresholds and merge windows are
//! tested as they behave on live data. Nothing reaches the network: batch mode has no Kafka
//! server.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use blink::config::Config;
use blink::plugin::{PluginConfig, PluginKind};
use blink::runner::Mode;
use blink::stop::StopToken;
use serde_json::{Map, Value};

use super::rule_cases::{self, Case};

/// The input that injects a case's events (from a JSON file the cfg names).
const EVENTS_INPUT: &str = r#"
require "cjson"
require "io"
local fh = assert(io.open(read_config("events_file")))
local events = cjson.decode(fh:read("*a"))
fh:close()
function process_message()
    for _, e in ipairs(events) do inject_message(e) end
    local until_ns = read_config("until_ns")
    if until_ns then inject_message({Type = "blink.test.clock", Timestamp = until_ns}) end
    return 0
end
"#;

/// The output that records every alert as a JSON line: Payload, Severity and its fields, with
/// `first_seen`/`last_seen` in seconds after the case's start.
const ALERTS_OUTPUT: &str = r#"
require "cjson"
require "io"
local out = assert(io.open(read_config("path"), "a"))
local start_ns = read_config("start_ns")
function process_message()
    local msg = decode_message(read_message("raw"))
    local alert = {Payload = msg.Payload, Severity = msg.Severity}
    for _, f in ipairs(msg.Fields or {}) do
        local v = f.value
        if type(v) == "table" and #v == 1 then v = v[1] end
        alert[f.name] = v
    end
    for _, name in ipairs({"first_seen", "last_seen"}) do
        if alert[name] then alert[name] = (alert[name] - start_ns) / 1e9 end
    end
    out:write(cjson.encode(alert), "\n")
    out:flush()
    return 0
end
function timer_event() end
"#;

pub fn test(paths: &[PathBuf], base: &Config) -> anyhow::Result<ExitCode> {
    let files = if paths.is_empty() {
        rule_cases::find(&[
            base.sandbox_run_path.clone(),
            base.sandbox_load_path.clone(),
        ])
    } else {
        let mut files = Vec::new();
        for path in paths {
            if path.is_dir() {
                files.extend(rule_cases::find(std::slice::from_ref(path)));
            } else if path.is_file() {
                files.push(path.clone());
            } else {
                bail!("{}: no such file or directory", path.display());
            }
        }
        files
    };
    if files.is_empty() {
        bail!(
            "no case files (NAME.test.toml beside a detection's NAME.cfg) in {}",
            if paths.is_empty() {
                format!(
                    "{} or {}",
                    base.sandbox_run_path.display(),
                    base.sandbox_load_path.display()
                )
            } else {
                "the paths given".to_owned()
            }
        );
    }
    let (mut passed, mut failed) = (0, 0);
    let mut out = std::io::stdout().lock();
    for file in &files {
        writeln!(out, "{}", file.display())?;
        let loaded = rule_cases::load(file).and_then(|f| Ok((f, rule_cases::rule_cfg(file)?)));
        let (cases, cfg) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                writeln!(out, "  ERROR {e:#}")?;
                failed += 1;
                continue;
            }
        };
        for case in &cases.cases {
            let problems = match run_case(base, &cfg, case) {
                Ok(alerts) => differences(&case.expect, &alerts),
                Err(e) => vec![format!("{e:#}")],
            };
            if problems.is_empty() {
                writeln!(out, "  ok    {}", case.name)?;
                passed += 1;
            } else {
                writeln!(out, "  FAIL  {}", case.name)?;
                for problem in problems {
                    writeln!(out, "        {problem}")?;
                }
                failed += 1;
            }
        }
    }
    let total = passed + failed;
    let noun = if total == 1 { "case" } else { "cases" };
    writeln!(out, "{total} {noun}: {passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one case; the alerts it raised, as JSON objects.
fn run_case(
    base: &Config,
    rule_cfg: &Path,
    case: &Case,
) -> anyhow::Result<Vec<Map<String, Value>>> {
    let dir = tempfile::tempdir().context("creating a directory for the case")?;
    let root = dir.path();
    for kind in ["input", "analysis", "output"] {
        std::fs::create_dir_all(root.join("hs_run").join(kind))?;
        std::fs::create_dir_all(root.join("hs_load").join(kind))?;
    }
    let rule = PluginConfig::load(PluginKind::Analysis, rule_cfg)?;
    let code = [
        rule_cfg.with_file_name(&rule.filename),
        base.sandbox_install_path
            .join("analysis")
            .join(&rule.filename),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| {
        format!(
            "{}: its filename {:?} is neither beside it nor in {}",
            rule_cfg.display(),
            rule.filename,
            base.sandbox_install_path.join("analysis").display()
        )
    })?;
    let analysis = root.join("hs_run/analysis");
    std::fs::copy(
        rule_cfg,
        analysis.join(rule_cfg.file_name().expect("a cfg file")),
    )?;
    std::fs::copy(&code, analysis.join(&rule.filename))?;

    let start_s = case.start_s()?;
    let events: Vec<Value> = case
        .events
        .iter()
        .enumerate()
        .map(|(i, event)| event_json(event, start_s).with_context(|| format!("event {}", i + 1)))
        .collect::<anyhow::Result<_>>()?;
    let events_file = root.join("events.json");
    std::fs::write(&events_file, serde_json::to_vec(&events)?)?;
    let until = case
        .until
        .map(|s| format!("until_ns = {}\n", (start_s as f64 + s) * 1e9))
        .unwrap_or_default();
    write_plugin(
        root,
        "input",
        "blink_test_events",
        &format!(
            "events_file = {:?}\n{until}",
            events_file.display().to_string()
        ),
        EVENTS_INPUT,
    )?;
    let alerts_file = root.join("alerts.json");
    write_plugin(
        root,
        "output",
        "blink_test_alerts",
        &format!(
            "message_matcher = \"Type == 'blink.alert'\"\npath = {:?}\nstart_ns = {}\n",
            alerts_file.display().to_string(),
            start_s as f64 * 1e9
        ),
        ALERTS_OUTPUT,
    )?;

    let mut config = base.clone();
    config.output_path = root.join("data");
    config.sandbox_run_path = root.join("hs_run");
    config.sandbox_load_path = root.join("hs_load");
    config.hostname = "blink-test".to_owned();
    let status = super::run::run_until_stopped(&config, Mode::Batch, &StopToken::new())?;
    if status != 0 {
        let err = std::fs::read_to_string(analysis.join(format!(
            "{}.err",
            rule_cfg.file_stem().unwrap_or_default().to_string_lossy()
        )))
        .unwrap_or_else(|_| format!("a plugin failed (status {status}); the log above says why"));
        bail!("the detection was terminated: {}", err.trim());
    }
    let text = std::fs::read_to_string(&alerts_file).unwrap_or_default();
    text.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(alert)) => Ok(alert),
            _ => bail!("an alert the recorder could not read: {line}"),
        })
        .collect()
}

/// A case's event as the input injects it: `at` becomes the Timestamp.
fn event_json(event: &toml::Table, start_s: i64) -> anyhow::Result<Value> {
    let mut event = event.clone();
    let at = match event.remove("at") {
        None => 0.0,
        Some(toml::Value::Integer(i)) => i as f64,
        Some(toml::Value::Float(f)) => f,
        Some(other) => bail!("`at` must be seconds after the case's start, not {other}"),
    };
    let mut json = serde_json::to_value(event)?;
    json["Timestamp"] = serde_json::json!((start_s as f64 + at) * 1e9);
    Ok(json)
}

fn write_plugin(root: &Path, kind: &str, name: &str, cfg: &str, lua: &str) -> anyhow::Result<()> {
    let dir = root.join("hs_run").join(kind);
    std::fs::write(dir.join(format!("{name}.lua")), lua)?;
    std::fs::write(
        dir.join(format!("{name}.cfg")),
        format!("filename = \"{name}.lua\"\n{cfg}"),
    )?;
    Ok(())
}

/// How the alerts raised differ from those expected, one line each; empty when they match.
fn differences(expected: &[toml::Table], actual: &[Map<String, Value>]) -> Vec<String> {
    let mut problems = Vec::new();
    if expected.len() != actual.len() {
        problems.push(match expected.len() {
            0 => format!("expected no alert, got {}", actual.len()),
            n => format!("expected {n} alert(s), got {}", actual.len()),
        });
    }
    for (i, want) in expected.iter().enumerate() {
        let Some(got) = actual.get(i) else {
            problems.push(format!("alert {} missing: {}", i + 1, toml_inline(want)));
            continue;
        };
        for (key, value) in want {
            match got.get(key) {
                None => problems.push(format!(
                    "alert {}: {key}: expected {}, the alert has none",
                    i + 1,
                    toml_inline_value(value)
                )),
                Some(v) if !same(value, v) => problems.push(format!(
                    "alert {}: {key}: expected {}, got {v}",
                    i + 1,
                    toml_inline_value(value)
                )),
                Some(_) => {}
            }
        }
    }
    for (i, extra) in actual.iter().enumerate().skip(expected.len()) {
        problems.push(format!(
            "alert {} not expected: {}",
            i + 1,
            Value::Object(extra.clone())
        ));
    }
    problems
}

fn same(want: &toml::Value, got: &Value) -> bool {
    match (want, got) {
        (toml::Value::String(a), Value::String(b)) => a == b,
        (toml::Value::Boolean(a), Value::Bool(b)) => a == b,
        (toml::Value::Integer(a), Value::Number(b)) => b.as_f64() == Some(*a as f64),
        (toml::Value::Float(a), Value::Number(b)) => {
            b.as_f64().is_some_and(|b| (a - b).abs() < 1e-9)
        }
        _ => false,
    }
}

fn toml_inline_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn toml_inline(table: &toml::Table) -> String {
    let parts: Vec<String> = table
        .iter()
        .map(|(k, v)| format!("{k} = {}", toml_inline_value(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}
