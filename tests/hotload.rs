//! Hot-load directories on the real binary, with an input producing all the while: dropping a
//! cfg starts a plugin, new code restarts it between two messages, `.off` stops it, bad files are
//! refused with an `.err` while the old instance runs on, and restarts lose nothing.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{Workspace, sigterm, wait_for, workspace};

/// 200 sequence-numbered messages a second (batches on the ticker), checkpointed, for ever.
const SEQ_INPUT: &str = r#"
local n = 0
function process_message(cp)
    n = math.max(n, cp or 0)
    for _ = 1, 200 do
        n = n + 1
        inject_message({Type = "seq", Fields = {seq = n}}, n)
    end
    return 0
end
"#;

/// Tags every sequence number with its version, so the output shows who processed what.
fn tagger(version: &str) -> String {
    format!(
        r#"
function process_message()
    inject_message({{Type = "{version}", Payload = tostring(read_message("Fields[seq]"))}})
    return 0
end
"#
    )
}

/// Writes `Type Payload` lines to the file in cfg `path`.
const FILE_OUTPUT: &str = r#"
require "io"
local f = assert(io.open(read_config("path"), "a"))
function process_message()
    f:write(read_message("Type"), " ", read_message("Payload") or "", "\n")
    f:flush()
    return 0
end
"#;

fn steady_pipeline(w: &Workspace) -> PathBuf {
    w.plugin(
        "input",
        "seq",
        "ticker_interval = 1\ninstruction_limit = 0",
        SEQ_INPUT,
    );
    file_output(w)
}

/// The output writing every message but the raw `seq` ones to `out.txt`, whose path it returns.
fn file_output(w: &Workspace) -> PathBuf {
    let out = w.file("out.txt");
    w.plugin(
        "output",
        "file",
        &format!(
            "message_matcher = 'Type != \"seq\"'\npath = {:?}",
            out.to_str().unwrap()
        ),
        FILE_OUTPUT,
    );
    out
}

fn load_path(w: &Workspace, kind: &str, file: &str) -> PathBuf {
    w.path().join("hs_load").join(kind).join(file)
}

fn run_path(w: &Workspace, kind: &str, file: &str) -> PathBuf {
    w.path().join("hs_run").join(kind).join(file)
}

/// Sequence numbers each version tagged, in output order.
fn tagged(w: &Workspace) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in w.lines("out.txt") {
        if let Some((version, seq)) = line.split_once(' ')
            && let Ok(seq) = seq.parse::<f64>()
        {
            out.entry(version.to_owned()).or_default().push(seq as u64);
        }
    }
    out
}

fn consecutive(seqs: &[u64]) -> bool {
    seqs.windows(2).all(|w| w[1] == w[0] + 1)
}

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_dropped_cfg_starts_new_code_restarts_and_off_stops_with_no_gap() {
    let w = workspace();
    steady_pipeline(&w);
    let mut blink = w.start();

    // Drop a new analysis plugin: code and cfg.
    std::fs::write(load_path(&w, "analysis", "tag.lua"), tagger("v1")).unwrap();
    std::fs::write(
        load_path(&w, "analysis", "tag.cfg"),
        "filename = 'tag.lua'\nmessage_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1\n",
    )
    .unwrap();
    wait_for("v1 to process", WAIT, || {
        tagged(&w).get("v1").is_some_and(|s| s.len() >= 300)
    });
    assert!(run_path(&w, "analysis", "tag.cfg").exists());
    assert!(run_path(&w, "analysis", "tag.lua").exists());
    assert!(!load_path(&w, "analysis", "tag.cfg").exists());
    assert!(!load_path(&w, "analysis", "tag.lua").exists());

    // New code: the running plugin is swapped between two messages.
    std::fs::write(load_path(&w, "analysis", "tag.lua"), tagger("v2")).unwrap();
    wait_for("v2 to process", WAIT, || {
        tagged(&w).get("v2").is_some_and(|s| s.len() >= 300)
    });
    let t = tagged(&w);
    let (v1, v2) = (&t["v1"], &t["v2"]);
    assert!(consecutive(v1), "v1 skipped or repeated a message");
    assert!(consecutive(v2), "v2 skipped or repeated a message");
    assert_eq!(
        v2[0],
        v1.last().unwrap() + 1,
        "the new code starts exactly at the next message"
    );

    // .off: stopped, its cfg renamed, nothing processed afterwards.
    std::fs::write(load_path(&w, "analysis", "tag.off"), "").unwrap();
    wait_for("the cfg to become .off", WAIT, || {
        run_path(&w, "analysis", "tag.off").exists()
    });
    assert!(!run_path(&w, "analysis", "tag.cfg").exists());
    assert!(!load_path(&w, "analysis", "tag.off").exists());
    std::thread::sleep(Duration::from_millis(500));
    let after_stop = tagged(&w)["v2"].len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        tagged(&w)["v2"].len(),
        after_stop,
        "a stopped plugin processed"
    );
    let hotload = std::fs::read_to_string(w.file("data/hotload.tsv")).unwrap();
    assert!(hotload.contains("started\t1\n"), "{hotload}");
    assert!(hotload.contains("restarted\t1\n"), "{hotload}");
    assert!(hotload.contains("stopped\t1\n"), "{hotload}");
    sigterm(&mut blink);
}

#[test]
fn bad_files_are_refused_and_the_running_instance_keeps_running() {
    let w = workspace();
    steady_pipeline(&w);
    w.plugin(
        "analysis",
        "tag",
        "message_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1",
        &tagger("v1"),
    );
    let mut blink = w.start();
    let v1 = |w: &Workspace| tagged(w).get("v1").map_or(0, Vec::len);
    wait_for("v1 to process", WAIT, || v1(&w) > 0);

    // A cfg with a syntax error: refused, reason beside it, old instance untouched.
    let bad_cfg = load_path(&w, "analysis", "tag.cfg");
    std::fs::write(&bad_cfg, "filename = 'tag.lua'\nmessage_matcher = 'TRUE\n").unwrap();
    let err = load_path(&w, "analysis", "tag.err");
    wait_for("tag.err", WAIT, || err.exists());
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(text.contains("tag.cfg"), "{text}");
    assert!(text.contains(":2:"), "names the line: {text}");
    assert!(bad_cfg.exists(), "a refused cfg stays in hs_load");

    // A cfg whose matcher does not compile, and one naming code that is nowhere.
    std::fs::write(
        &bad_cfg,
        "filename = 'tag.lua'\nmessage_matcher = 'Type == '\n",
    )
    .unwrap();
    wait_for("the matcher error", WAIT, || {
        std::fs::read_to_string(&err).is_ok_and(|t| t.contains("message_matcher"))
    });
    std::fs::write(
        &bad_cfg,
        "filename = 'nowhere.lua'\nmessage_matcher = 'TRUE'\n",
    )
    .unwrap();
    wait_for("the missing-code error", WAIT, || {
        std::fs::read_to_string(&err).is_ok_and(|t| t.contains("nowhere.lua"))
    });
    std::fs::remove_file(&bad_cfg).unwrap();

    // Code that does not compile, and code that fails when it loads.
    let bad_lua = load_path(&w, "analysis", "tag.lua");
    let lua_err = load_path(&w, "analysis", "tag.lua.err");
    std::fs::write(&bad_lua, "function process_message(\n").unwrap();
    wait_for("tag.lua.err", WAIT, || lua_err.exists());
    assert!(
        std::fs::read_to_string(&lua_err)
            .unwrap()
            .contains("tag.lua")
    );
    std::fs::write(
        &bad_lua,
        "error('boom at load')\nfunction process_message() return 0 end\n",
    )
    .unwrap();
    wait_for("the load error", WAIT, || {
        std::fs::read_to_string(&lua_err).is_ok_and(|t| t.contains("boom at load"))
    });
    assert!(bad_lua.exists(), "refused code stays in hs_load");

    // The old instance ran on throughout, with its old code.
    let before = v1(&w);
    wait_for("v1 to keep processing", WAIT, || v1(&w) > before + 200);
    let t = tagged(&w);
    assert!(consecutive(&t["v1"]), "v1 skipped or repeated a message");
    assert_eq!(t.len(), 1, "only v1 ever ran: {:?}", t.keys());
    let running_code = std::fs::read_to_string(run_path(&w, "analysis", "tag.lua")).unwrap();
    assert!(running_code.contains("v1"));

    // Fixing the code loads it, and clears its .err.
    std::fs::write(&bad_lua, tagger("v2")).unwrap();
    wait_for("v2 to process", WAIT, || tagged(&w).contains_key("v2"));
    wait_for("the .err to go", WAIT, || !lua_err.exists());
    sigterm(&mut blink);
}

#[test]
fn a_cfg_written_in_pieces_or_renamed_into_place_is_loaded_once_whole() {
    let w = workspace();
    steady_pipeline(&w);
    std::fs::write(run_path(&w, "analysis", "tag.lua"), tagger("v1")).unwrap();
    let mut blink = w.start();
    let cfg = load_path(&w, "analysis", "tag.cfg");
    let pieces = [
        "filename = 'tag.lua'\n",
        "message_matcher = 'Type == \"seq\"'\n",
        "process_message_inject_limit = 1\n",
    ];
    let mut written = String::new();
    for piece in pieces {
        written.push_str(piece);
        std::fs::write(&cfg, &written).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    wait_for("v1 to process", WAIT, || tagged(&w).contains_key("v1"));

    // Written under a temporary name, then renamed into place: only the final name counts.
    let tmp = load_path(&w, "analysis", ".tag2.cfg.swp");
    std::fs::write(
        &tmp,
        "filename = 'tag.lua'\nmessage_matcher = 'Type == \"none\"'\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(tmp.exists(), "a temporary file was acted on");
    std::fs::rename(&tmp, load_path(&w, "analysis", "tag2.cfg")).unwrap();
    wait_for("tag2 to move", WAIT, || {
        run_path(&w, "analysis", "tag2.cfg").exists()
    });
    wait_for("the stats", WAIT, || {
        std::fs::read_to_string(w.file("data/hotload.tsv"))
            .is_ok_and(|t| t.contains("started\t2\n"))
    });
    let stats = std::fs::read_to_string(w.file("data/hotload.tsv")).unwrap();
    assert!(
        stats.contains("rejected\t0\n"),
        "a partial cfg was read: {stats}"
    );
    assert!(
        stats.contains("restarted\t0\n"),
        "loaded more than once: {stats}"
    );
    sigterm(&mut blink);
}

#[test]
fn restarting_inputs_and_outputs_resumes_where_they_were() {
    let w = workspace();
    let out = steady_pipeline(&w);
    w.plugin(
        "analysis",
        "tag",
        "message_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1",
        &tagger("v1"),
    );
    let mut blink = w.start();
    let count = |w: &Workspace| tagged(w).get("v1").map_or(0, Vec::len);
    wait_for("some output", WAIT, || count(&w) >= 200);
    // New cfgs for the input and the output: both restart.
    std::fs::write(
        load_path(&w, "input", "seq.cfg"),
        "filename = 'seq.lua'\nticker_interval = 1\ninstruction_limit = 0\nnote = 'restarted'\n",
    )
    .unwrap();
    std::fs::write(
        load_path(&w, "output", "file.cfg"),
        format!(
            "filename = 'file.lua'\nmessage_matcher = 'Type != \"seq\"'\npath = {:?}\n",
            out.to_str().unwrap()
        ),
    )
    .unwrap();
    wait_for("both cfgs to move", WAIT, || {
        !load_path(&w, "input", "seq.cfg").exists() && !load_path(&w, "output", "file.cfg").exists()
    });
    let at_restart = count(&w);
    wait_for("more output", WAIT, || count(&w) >= at_restart + 600);
    let t = tagged(&w);
    let mut seqs = t["v1"].clone();
    seqs.sort_unstable();
    let first = seqs[0];
    seqs.dedup();
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "no sequence number missing across the restarts"
    );
    // The output replays at most what it had not checkpointed.
    assert!(t["v1"].len() - seqs.len() <= 1024 + 200);
    sigterm(&mut blink);
    let hotload = std::fs::read_to_string(w.file("data/hotload.tsv")).unwrap();
    assert!(hotload.contains("restarted\t2\n"), "{hotload}");
}

#[test]
fn pending_files_are_applied_at_startup_and_stale_errors_cleared() {
    let w = workspace();
    steady_pipeline(&w);
    std::fs::write(load_path(&w, "analysis", "tag.lua"), tagger("v1")).unwrap();
    std::fs::write(
        load_path(&w, "analysis", "tag.cfg"),
        "filename = 'tag.lua'\nmessage_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1\n",
    )
    .unwrap();
    let stale = load_path(&w, "analysis", "old.err");
    std::fs::write(&stale, "an error from an earlier run").unwrap();
    let mut blink = w.start();
    wait_for("v1 to process", WAIT, || tagged(&w).contains_key("v1"));
    assert!(!stale.exists(), "a stale .err was left");
    sigterm(&mut blink);
}

#[test]
fn initial_position_start_replays_history_beside_a_live_plugin() {
    let w = workspace();
    steady_pipeline(&w);
    w.plugin(
        "analysis",
        "tag",
        "message_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1",
        &tagger("v1"),
    );
    let mut blink = w.start();
    wait_for("history to build up", WAIT, || {
        tagged(&w).get("v1").is_some_and(|s| s.len() >= 600)
    });
    // A second plugin on the same thread that wants everything from the start.
    let newest = *tagged(&w)["v1"].last().unwrap();
    std::fs::write(load_path(&w, "analysis", "late.lua"), tagger("late")).unwrap();
    std::fs::write(
        load_path(&w, "analysis", "late.cfg"),
        "filename = 'late.lua'\nmessage_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1\ninitial_position = 'start'\n",
    )
    .unwrap();
    wait_for("late to catch up", WAIT, || {
        tagged(&w)
            .get("late")
            .is_some_and(|l| l.last().is_some_and(|&s| s > newest))
    });
    let t = tagged(&w);
    assert_eq!(t["late"][0], 1, "replayed from the oldest message");
    assert!(
        consecutive(&t["late"]),
        "late skipped or repeated a message"
    );
    assert!(
        consecutive(&t["v1"]),
        "the live plugin saw the replay again or skipped messages"
    );
    sigterm(&mut blink);
}

/// Counts what it processed in a preserved global, and tags the count with its version.
fn counter(version: &str) -> String {
    format!(
        r#"
seen = 0
function process_message()
    seen = seen + 1
    inject_message({{Type = "{version}", Payload = tostring(seen)}})
    return 0
end
"#
    )
}

#[test]
fn preserved_data_carries_across_a_hot_restart() {
    let w = workspace();
    steady_pipeline(&w);
    w.plugin(
        "analysis",
        "count",
        "message_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1\npreserve_data = true",
        &counter("v1"),
    );
    let mut blink = w.start();
    wait_for("v1 to count", WAIT, || {
        tagged(&w).get("v1").is_some_and(|s| s.len() >= 200)
    });
    std::fs::write(load_path(&w, "analysis", "count.lua"), counter("v2")).unwrap();
    wait_for("v2 to count", WAIT, || tagged(&w).contains_key("v2"));
    let t = tagged(&w);
    assert_eq!(
        t["v2"][0],
        t["v1"].last().unwrap() + 1,
        "the count went on from the old instance's"
    );
    sigterm(&mut blink);
}

#[test]
fn moving_a_plugin_to_another_thread_loses_and_repeats_nothing() {
    let w = workspace();
    w.global_config("analysis_threads = 2\n");
    steady_pipeline(&w);
    let cfg = |thread: u32| {
        format!(
            "message_matcher = 'Type == \"seq\"'\nprocess_message_inject_limit = 1\nthread = {thread}\n"
        )
    };
    w.plugin("analysis", "tag", &cfg(0), &tagger("v1"));
    let mut blink = w.start();
    wait_for("v1 to process", WAIT, || {
        tagged(&w).get("v1").is_some_and(|s| s.len() >= 200)
    });
    std::fs::write(
        load_path(&w, "analysis", "tag.cfg"),
        format!("filename = 'tag.lua'\n{}", cfg(1)),
    )
    .unwrap();
    wait_for("the cfg to move", WAIT, || {
        !load_path(&w, "analysis", "tag.cfg").exists()
    });
    let at_move = tagged(&w)["v1"].len();
    wait_for("more output", WAIT, || {
        tagged(&w)["v1"].len() >= at_move + 400
    });
    assert!(
        consecutive(&tagged(&w)["v1"]),
        "a message was skipped or repeated across the move"
    );
    sigterm(&mut blink);
}

/// The shipped layout (`sandbox_load_path = "hs_load"`, relative) is watched through file
/// events, not found by the once-a-second rescan: the watcher's absolute event paths once never
/// matched the relative directory.
#[test]
fn a_relative_load_directory_is_watched_through_file_events() {
    let w = workspace();
    let mut blink = w.start_logging("info,blink::hotload=debug");
    let probes = 4;
    let mut by_event = 0;
    for n in 0..probes {
        let name = format!("probe{n}");
        std::fs::write(
            load_path(&w, "analysis", &format!("{name}.lua")),
            "function process_message() return 0 end\n",
        )
        .unwrap();
        std::fs::write(
            load_path(&w, "analysis", &format!("{name}.cfg")),
            format!("filename = '{name}.lua'\nmessage_matcher = 'TRUE'\n"),
        )
        .unwrap();
        let cfg = run_path(&w, "analysis", &format!("{name}.cfg"));
        wait_for("the plugin to load", WAIT, || cfg.exists());
        let noticed = blink.logged(&format!("file=hs_load/analysis/{name}.cfg"));
        if noticed
            .iter()
            .any(|l| l.contains("hot-load: noticed") && l.contains("via=\"event\""))
        {
            by_event += 1;
        }
    }
    // A rescan may see a file first now and then (it lists the directory once a second); with
    // the relative path unwatched, every file was found by a rescan.
    assert!(
        by_event >= probes - 1,
        "{by_event} of {probes} cfgs were seen through a file event: {:?}",
        blink.logged("hot-load: noticed")
    );
    sigterm(&mut blink);
}

/// One refused file: one log line, one `.err` naming the file once, and nothing moved — not even
/// the code dropped with a refused cfg.
#[test]
fn a_refused_cfg_moves_nothing_and_is_reported_once() {
    let w = workspace();
    let mut blink = w.start();
    let write = |file: &str, text: &str| {
        std::fs::write(load_path(&w, "analysis", file), text).unwrap();
    };
    let good_lua = "function process_message() return 0 end\n";

    // A matcher that does not compile, dropped with its code.
    write("x.lua", good_lua);
    write("x.cfg", "filename = 'x.lua'\nmessage_matcher = 'Type =='\n");
    let x_err = load_path(&w, "analysis", "x.err");
    wait_for("x.err", WAIT, || x_err.exists());
    let text = std::fs::read_to_string(&x_err).unwrap();
    let (_, message) = text.split_once('\t').unwrap();
    assert!(
        message.starts_with("hs_load/analysis/x.cfg: key `message_matcher`: column"),
        "{text}"
    );
    assert_eq!(message.matches("x.cfg").count(), 1, "{text}");

    // Code that does not compile, dropped with its cfg: the cfg's .err says why, in the same
    // form; the code waits with it.
    write("y.lua", "function process_message( return 0 end\n");
    write("y.cfg", "filename = 'y.lua'\nmessage_matcher = 'TRUE'\n");
    let y_err = load_path(&w, "analysis", "y.err");
    wait_for("y.err", WAIT, || y_err.exists());
    let text = std::fs::read_to_string(&y_err).unwrap();
    assert!(
        text.contains("\ths_load/analysis/y.cfg: y.lua:1:"),
        "{text}"
    );

    // A cfg with a Lua syntax error names its path once, with the line.
    write("z.cfg", "filename = 'z.lua'\nmessage_matcher = = 'TRUE'\n");
    let z_err = load_path(&w, "analysis", "z.err");
    wait_for("z.err", WAIT, || z_err.exists());
    let text = std::fs::read_to_string(&z_err).unwrap();
    assert!(text.contains("\ths_load/analysis/z.cfg:2: "), "{text}");
    assert_eq!(text.matches("z.cfg").count(), 1, "{text}");

    // Several rescans later: still one line per refusal, nothing moved, no .lua.err.
    std::thread::sleep(Duration::from_millis(2500));
    for (file, lines) in [
        ("x.cfg", 1),
        ("y.cfg", 1),
        ("z.cfg", 1),
        ("x.lua", 0),
        ("y.lua", 0),
    ] {
        let rejected = blink.logged("hot-load: rejected");
        let about: Vec<_> = rejected
            .iter()
            .filter(|l| l.contains(&format!("hs_load/analysis/{file}")))
            .collect();
        assert_eq!(about.len(), lines, "{file}: {rejected:?}");
    }
    for file in ["x.lua", "y.lua", "x.cfg", "y.cfg"] {
        assert!(load_path(&w, "analysis", file).exists(), "{file} moved");
        assert!(!run_path(&w, "analysis", file).exists(), "{file} moved");
    }
    for file in ["x.lua.err", "y.lua.err"] {
        assert!(!load_path(&w, "analysis", file).exists(), "{file}");
    }

    // Fixed, the cfg takes its code along and starts.
    write("x.cfg", "filename = 'x.lua'\nmessage_matcher = 'TRUE'\n");
    wait_for("x to start", WAIT, || {
        run_path(&w, "analysis", "x.cfg").exists() && run_path(&w, "analysis", "x.lua").exists()
    });
    wait_for("x.err to go", WAIT, || !x_err.exists());

    // A cfg refused because its code is nowhere yet takes the code when it arrives.
    write(
        "late.cfg",
        "filename = 'late.lua'\nmessage_matcher = 'TRUE'\n",
    );
    let late_err = load_path(&w, "analysis", "late.err");
    wait_for("late.err", WAIT, || late_err.exists());
    write("late.lua", good_lua);
    wait_for("late to start", WAIT, || {
        run_path(&w, "analysis", "late.cfg").exists()
            && run_path(&w, "analysis", "late.lua").exists()
    });

    // Code held back by a refused cfg goes on its own once that cfg is removed.
    std::fs::remove_file(load_path(&w, "analysis", "y.cfg")).unwrap();
    write("y.lua", good_lua);
    wait_for("y.lua to move alone", WAIT, || {
        run_path(&w, "analysis", "y.lua").exists()
    });
    sigterm(&mut blink);
}

/// An input that ignores `is_running()` injects sequence numbers (with checkpoints) for as long
/// as it can; the one tagged "new" stops when asked.
const STUBBORN_INPUT: &str = r#"
require "os"
local tag = read_config("tag")
function process_message(cp)
    local n = cp or 0
    while tag == "old" or is_running() do
        if pcall(inject_message, {Type = tag, Payload = tostring(n + 1)}, n + 1) then
            n = n + 1
        elseif tag ~= "old" then
            return 0
        end
        local t = os.clock()
        while os.clock() - t < 0.01 do end
    end
    return 0
end
"#;

/// An input that does not stop within the join deadline is left running while its replacement
/// starts; it is fenced, so it can neither append after the new instance nor move its checkpoint
/// back.
#[test]
fn an_input_that_will_not_stop_is_fenced_when_it_is_replaced() {
    let w = workspace();
    w.plugin(
        "input",
        "gen",
        "tag = 'old'\ninstruction_limit = 0",
        STUBBORN_INPUT,
    );
    file_output(&w);
    let mut blink = w.start();
    wait_for("old to inject", WAIT, || {
        tagged(&w).get("old").is_some_and(|s| s.len() >= 20)
    });
    std::fs::write(
        load_path(&w, "input", "gen.cfg"),
        "filename = 'gen.lua'\ntag = 'new'\ninstruction_limit = 0\n",
    )
    .unwrap();
    wait_for("new to inject", WAIT, || {
        tagged(&w).get("new").is_some_and(|s| s.len() >= 50)
    });
    // The old instance went on running meanwhile: give it time to write if it still could.
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&mut blink);
    assert!(
        !blink.logged("did not stop in time").is_empty(),
        "the old instance was meant to be left running"
    );
    let types: Vec<String> = w
        .lines("out.txt")
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(t, _)| t.to_owned()))
        .collect();
    let first_new = types.iter().position(|t| t == "new").unwrap();
    assert!(
        types[first_new..].iter().all(|t| t == "new"),
        "the old instance appended after the new one started"
    );
    let tagged = tagged(&w);
    let (old, new) = (&tagged["old"], &tagged["new"]);
    assert!(consecutive(old) && consecutive(new), "{old:?} {new:?}");
    assert_eq!(
        new[0],
        old.last().unwrap() + 1,
        "the new instance resumes right after the old one's last message"
    );
}
