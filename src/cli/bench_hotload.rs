//! `blink bench hotload`: how fast a dropped plugin starts, and how long a restart pauses the
//! other plugins of its analysis thread.
//!
//! In process: a pipeline over a queue holding the reference workload's messages, with
//! `count.lua` (from `bench/reference-workload/`) busy on analysis thread 0 and the hot-load
//! directory watched as `blink run` watches it.
//! 1. Load latency: a probe plugin (code, then cfg; `initial_position = "start"`, thread 0) is
//!    dropped into `hs_load/analysis/` (relative to the working directory, as `cfg/blink.toml`
//!    configures it); its first `process_message` injects a mark, whose
//!    Timestamp (set by Blink) minus the moment the cfg was written is the latency.
//! 2. Restart pause: new code for `count.lua` is dropped while it is processing; the thread
//!    reports how long the swap held it (Blink's own `hotload.tsv` figure).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use blink::checkpoint::CheckpointStore;
use blink::hotload::HotLoader;
use blink::log::LogConfig;
use blink::log::{ANALYSIS_TOPIC, INPUT_TOPIC, Log, PartitionReader};
use blink::message::MessageView;
use blink::runner::Pipeline;

use super::bench_pipeline::{context, run_dir, wait_until};

const GEN_LUA: &str = include_str!("../../bench/reference-workload/gen.lua");
const GEN_CFG: &str = include_str!("../../bench/reference-workload/gen.cfg");
const COUNT_LUA: &str = include_str!("../../bench/reference-workload/count.lua");
const COUNT_CFG: &str = include_str!("../../bench/reference-workload/count.cfg");

/// Injects one mark, naming itself, at its first message.
const PROBE_LUA: &str = r#"
local name = read_config("probe")
local done = false
function process_message()
    if not done then
        done = true
        inject_message({Type = "probe", Payload = name})
    end
    return 0
end
"#;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The Timestamp of the probe mark `name` in `blink.analysis`, if it is there.
fn probe_mark(log: &Log, name: &str) -> anyhow::Result<Option<i64>> {
    let mut reader = PartitionReader::new(log.partition(ANALYSIS_TOPIC, 0)?, 0);
    while let Some(record) = reader.next_record()? {
        let value = record.value.unwrap_or_default();
        let m = MessageView::parse(&value)?;
        if m.r#type() == Some(b"probe") && m.payload() == Some(name.as_bytes()) {
            return Ok(Some(m.timestamp()));
        }
    }
    Ok(None)
}

pub fn bench_hotload(root: &Path, runs: usize) -> anyhow::Result<()> {
    let limit = Duration::from_secs(120);
    let n = 2_000_000u64;
    let log = Arc::new(Log::open(LogConfig::in_dir(root.join("data")))?);
    let input = log.partition(INPUT_TOPIC, 0)?;
    println!(
        "blink bench hotload: {runs} runs each, in {}",
        root.display()
    );
    let dir = run_dir(
        root,
        "run",
        &[
            ("input", "gen", GEN_LUA, GEN_CFG),
            ("analysis", "count", COUNT_LUA, COUNT_CFG),
        ],
        n,
    )?;
    let checkpoints = Arc::new(CheckpointStore::open(&dir)?);
    let ctx = context(&log, &checkpoints, dir.clone());
    let stats = ctx.stats.clone();
    let pipeline = Arc::new(Pipeline::start(ctx, 1)?);
    // The shipped layout: a relative `hs_load` in the directory Blink runs in.
    std::env::set_current_dir(root).with_context(|| format!("entering {}", root.display()))?;
    let load_dir = Path::new("hs_load").to_owned();
    let hotload = HotLoader::start(load_dir.clone(), pipeline.clone())?;
    wait_until(limit, || input.next_offset() >= 100_000)?;
    let analysis_dir = load_dir.join("analysis");

    // 1. Load latency.
    let mut latencies = Vec::new();
    for run in 0..runs {
        let name = format!("probe{run}");
        std::fs::write(analysis_dir.join(format!("{name}.lua")), PROBE_LUA)?;
        let cfg = format!(
            "filename = '{name}.lua'\nmessage_matcher = 'TRUE'\nprocess_message_inject_limit = 1\n\
             initial_position = 'start'\nthread = 0\nprobe = '{name}'\n"
        );
        let written = blink::time::now_nanos();
        std::fs::write(analysis_dir.join(format!("{name}.cfg")), cfg)?;
        let mut mark = None;
        wait_until(limit, || {
            mark = probe_mark(&log, &name).ok().flatten();
            mark.is_some()
        })
        .with_context(|| format!("{name} never processed a message"))?;
        let ms = (mark.expect("waited for it") - written) as f64 / 1e6;
        latencies.push(ms);
    }
    let runs_text: Vec<String> = latencies.iter().map(|l| format!("{l:.1}")).collect();
    println!(
        "{:<44} {:>8.1} ms   runs: {}",
        "load latency (cfg written → first message)",
        median(&mut latencies),
        runs_text.join(" ")
    );

    // 2. Restart pause of count.lua, while it processes.
    let mut pauses = Vec::new();
    for run in 0..runs {
        let before = stats.hotload.restarted.load(Ordering::Relaxed);
        let code = format!("-- version {run}\n{COUNT_LUA}");
        std::fs::write(analysis_dir.join("count.lua"), code)?;
        wait_until(limit, || {
            stats.hotload.restarted.load(Ordering::Relaxed) > before
        })?;
        pauses.push(stats.hotload.last_swap_pause_us.load(Ordering::Relaxed) as f64 / 1000.0);
    }
    let runs_text: Vec<String> = pauses.iter().map(|p| format!("{p:.2}")).collect();
    println!(
        "{:<44} {:>8.2} ms   runs: {}",
        "restart pause of the analysis thread",
        median(&mut pauses),
        runs_text.join(" ")
    );
    hotload.stop();
    pipeline.stop();
    log.close()?;
    Ok(())
}
