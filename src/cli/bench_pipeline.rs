//! `blink bench pipeline`: the reference workload through real plugin threads, in process.
//!
//! The plugins are `bench/reference-workload/` compiled in unchanged (only their counts are set
//! from `--messages`): `gen.lua` injects, `count.lua` (analysis, matcher `Type == "bench" &&
//! Fields[action] == "login"`) counts and marks its first and last message, `outcount.lua`
//! (output, matcher `TRUE`) counts. Three runs:
//! 1. end to end, all three plugins together;
//! 2. analysis replay: only `count.lua`, over the queue run 1 wrote;
//! 3. output replay: only `outcount.lua` with `read_queue = "input"`, over the same queue.
//!
//! The replays run `--replays` times each (fresh checkpoints every time); every rate and the
//! median are printed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use blink::checkpoint::CheckpointStore;
use blink::log::LogConfig;
use blink::log::{ANALYSIS_TOPIC, INPUT_TOPIC, Log, PartitionReader};
use blink::message::MessageView;
use blink::runner::{Context, Pipeline};

const GEN_LUA: &str = include_str!("../../bench/reference-workload/gen.lua");
const GEN_CFG: &str = include_str!("../../bench/reference-workload/gen.cfg");
const COUNT_LUA: &str = include_str!("../../bench/reference-workload/count.lua");
const COUNT_CFG: &str = include_str!("../../bench/reference-workload/count.cfg");
const OUTCOUNT_LUA: &str = include_str!("../../bench/reference-workload/outcount.lua");
const OUTCOUNT_CFG: &str = include_str!("../../bench/reference-workload/outcount.cfg");

/// Writes a run directory with the given plugins; counts set to `n`.
pub(super) fn run_dir(
    root: &Path,
    name: &str,
    plugins: &[(&str, &str, &str, &str)],
    n: u64,
) -> anyhow::Result<std::path::PathBuf> {
    let dir = root.join(name);
    for kind in ["input", "analysis", "output"] {
        std::fs::create_dir_all(dir.join(kind))?;
    }
    for (kind, stem, lua, cfg) in plugins {
        std::fs::write(dir.join(kind).join(format!("{stem}.lua")), lua)?;
        let cfg = cfg.replace("2000000", &n.to_string());
        std::fs::write(dir.join(kind).join(format!("{stem}.cfg")), cfg)?;
    }
    Ok(dir)
}

pub(super) fn context(
    log: &Arc<Log>,
    checkpoints: &Arc<CheckpointStore>,
    run_dir: std::path::PathBuf,
) -> Context {
    Context {
        log: log.clone(),
        checkpoints: checkpoints.clone(),
        data_dir: log.dir().to_owned(),
        run_dir,
        lua_paths: vec![],
        io_lua_paths: vec![],
        install_path: Default::default(),
        defaults: Default::default(),
        hostname: "bench".into(),
        max_message_size: 65536,
        shutdown: blink::stop::StopToken::new(),
        stats: Arc::new(blink::runner::Stats::default()),
        backpressure: 0,
        output_size: 64 << 20,
        load_dir: "hs_load".into(),
        mode: blink::runner::Mode::Live,
    }
}

/// Polls `done` every millisecond until it holds or `limit` passes; returns when it held.
pub(super) fn wait_until(
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("the pipeline did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The `mark` messages count.lua injected from offset `from` of blink.analysis: (start, end) ns.
fn marks(log: &Log, from: i64) -> anyhow::Result<Option<(i64, i64)>> {
    let mut reader = PartitionReader::new(log.partition(ANALYSIS_TOPIC, 0)?, from);
    let (mut start, mut end) = (None, None);
    while let Some(record) = reader.next_record()? {
        let value = record.value.unwrap_or_default();
        let m = MessageView::parse(&value)?;
        match m.payload() {
            Some(b"start") => start = Some(m.timestamp()),
            Some(b"end") => end = Some(m.timestamp()),
            _ => {}
        }
    }
    Ok(start.zip(end))
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Prints the median rate, then every run's.
fn print_rates(what: &str, rates: &mut [f64]) {
    let runs: Vec<String> = rates.iter().map(|r| format!("{:.0}", r)).collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "{what:<40} {:>10.0} msgs/s   median of {}: {}",
        rates[rates.len() / 2],
        rates.len(),
        runs.join(" ")
    );
}

pub fn bench_pipeline(root: &Path, n: u64, replays: usize) -> anyhow::Result<()> {
    let limit = Duration::from_secs(600);
    let log = Arc::new(Log::open(LogConfig::in_dir(root.join("data")))?);
    let input = log.partition(INPUT_TOPIC, 0)?;
    let analysis = log.partition(ANALYSIS_TOPIC, 0)?;
    println!(
        "blink bench pipeline: {n} messages of the reference workload, in {}",
        root.display()
    );

    // 0. The input alone, into a log of its own: the rate the input side can sustain.
    {
        let alone = Arc::new(Log::open(LogConfig::in_dir(root.join("data-input-only")))?);
        let input_only = alone.partition(INPUT_TOPIC, 0)?;
        let dir = run_dir(root, "input-only", &[("input", "gen", GEN_LUA, GEN_CFG)], n)?;
        let checkpoints = Arc::new(CheckpointStore::open(&dir)?);
        let start = Instant::now();
        let pipeline = Pipeline::start(context(&alone, &checkpoints, dir), 1)?;
        let done = wait_until(limit, || input_only.next_offset() >= n as i64)?;
        pipeline.stop();
        let secs = (done - start).as_secs_f64();
        println!(
            "{:<40} {:>10.0} msgs/s   {:.3} s",
            "inject, input alone (gen.lua)",
            n as f64 / secs,
            secs
        );
        alone.close()?;
    }

    // 1. End to end.
    let dir = run_dir(
        root,
        "all",
        &[
            ("input", "gen", GEN_LUA, GEN_CFG),
            ("analysis", "count", COUNT_LUA, COUNT_CFG),
            ("output", "outcount", OUTCOUNT_LUA, OUTCOUNT_CFG),
        ],
        n,
    )?;
    let checkpoints = Arc::new(CheckpointStore::open(&dir)?);
    let start = Instant::now();
    let pipeline = Pipeline::start(context(&log, &checkpoints, dir), 1)?;
    let injected = wait_until(limit, || input.next_offset() >= n as i64)?;
    let analysed = wait_until(limit, || analysis.next_offset() >= 2)?;
    let output_done = wait_until(limit, || {
        checkpoints.position("output.outcount", INPUT_TOPIC, 0) == Some(n as i64)
            && checkpoints.position("output.outcount", ANALYSIS_TOPIC, 0) == Some(2)
    })?;
    let end_to_end = output_done.max(analysed) - start;
    pipeline.stop();
    let (mark_start, mark_end) = marks(&log, 0)?.context("count.lua injected no marks")?;
    let inject_secs = (injected - start).as_secs_f64();
    let analysis_secs = (mark_end - mark_start) as f64 / 1e9;
    println!(
        "{:<40} {:>10.0} msgs/s   {:.3} s",
        "inject, analysis and output running",
        n as f64 / inject_secs,
        inject_secs
    );
    println!(
        "{:<40} {:>10.0} msgs/s   {:.3} s",
        "analysis, live (count.lua marks)",
        (n - 1) as f64 / analysis_secs,
        analysis_secs
    );
    println!(
        "{:<40} {:>10.3} s",
        "end to end (all three plugins)",
        end_to_end.as_secs_f64()
    );

    // 2. Analysis replay over the written queue.
    let mut rates = Vec::new();
    for run in 0..replays {
        let dir = run_dir(
            root,
            &format!("analysis-{run}"),
            &[("analysis", "count", COUNT_LUA, COUNT_CFG)],
            n,
        )?;
        let checkpoints = Arc::new(CheckpointStore::open(&dir)?);
        let from = analysis.next_offset();
        let pipeline = Pipeline::start(context(&log, &checkpoints, dir), 1)?;
        wait_until(limit, || analysis.next_offset() >= from + 2)?;
        pipeline.stop();
        let (mark_start, mark_end) =
            marks(&log, from)?.context("count.lua injected no marks on replay")?;
        rates.push((n - 1) as f64 / ((mark_end - mark_start) as f64 / 1e9));
    }
    print_rates("analysis replay (count.lua marks)", &mut rates);

    // 3. Output replay of the input queue.
    let cfg = OUTCOUNT_CFG.to_owned() + "read_queue = \"input\"\n";
    let mut rates = Vec::new();
    for run in 0..replays {
        let dir = run_dir(
            root,
            &format!("output-{run}"),
            &[("output", "outcount", OUTCOUNT_LUA, &cfg)],
            n,
        )?;
        let checkpoints = Arc::new(CheckpointStore::open(&dir)?);
        let start = Instant::now();
        let pipeline = Pipeline::start(context(&log, &checkpoints, dir), 1)?;
        let done = wait_until(limit, || {
            checkpoints.position("output.outcount", INPUT_TOPIC, 0) == Some(n as i64)
        })?;
        pipeline.stop();
        rates.push(n as f64 / (done - start).as_secs_f64());
    }
    print_rates("output replay (outcount.lua, input)", &mut rates);
    println!(
        "{:<40} {:>10.1} MB",
        "peak RSS (whole process)",
        peak_rss_mb()
    );
    log.close()?;
    Ok(())
}
