//! `blink bench hostile`: what a hostile analysis plugin costs the plugin beside it.
//!
//! In process: the input queue is filled once with the reference workload's messages; then, for
//! each hostile plugin, a pipeline runs `count.lua` (from `bench/reference-workload/`) and the
//! hostile plugin on the same analysis thread, both reading the queue from its start. Printed
//! per case: how fast `count.lua` got through the queue (and as a share of its rate alone), and
//! what happened to the hostile plugin, and when; the median of `--runs` runs. Nothing is
//! asserted: a plugin that runs away holds its thread until its instruction or memory limit stops
//! it, and this shows for how long. (Coroutines, which analysis plugins do not have, are held
//! to the same limits in input and output plugins: tests/sandbox.rs.)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blink::checkpoint::CheckpointStore;
use blink::log::LogConfig;
use blink::log::{INPUT_TOPIC, Log};
use blink::runner::Pipeline;

use super::bench_pipeline::{context, run_dir, wait_until};

const GEN_LUA: &str = include_str!("../../bench/reference-workload/gen.lua");
const GEN_CFG: &str = include_str!("../../bench/reference-workload/gen.cfg");
const COUNT_LUA: &str = include_str!("../../bench/reference-workload/count.lua");
const COUNT_CFG: &str = include_str!("../../bench/reference-workload/count.cfg");

/// The hostile plugins: a name, cfg lines beyond the matcher, and the code. Each runs away at
/// its first message.
const CASES: &[(&str, &str, &str)] = &[
    (
        "infinite loop",
        "",
        "function process_message() while true do end end",
    ),
    (
        "catastrophic string.find",
        "",
        "function process_message() string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b') return 0 end",
    ),
    (
        "gsub memory bomb",
        "",
        "function process_message() string.gsub(string.rep('x', 100000), 'x', string.rep('y', 1000)) return 0 end",
    ),
    (
        "string.rep('', 2^31) loop",
        "",
        "function process_message() while true do string.rep('', 2^31 - 1) end end",
    ),
    (
        "deep recursion",
        "",
        "local function f(n) return 1 + f(n + 1) end function process_message() return f(1) end",
    ),
    (
        "table memory bomb",
        "instruction_limit = 0",
        "function process_message() local t = {} for i = 1, 1e8 do t[i] = i end return 0 end",
    ),
    (
        "load() reader memory bomb",
        "instruction_limit = 0",
        "function process_message() load(function() return string.rep('x', 1048576) end) return 0 end",
    ),
    (
        "read_config memory bomb",
        "instruction_limit = 0",
        "function process_message() local t = {} for i = 1, 1e7 do t[i] = read_config('message_matcher') .. i end return 0 end",
    ),
];

/// One run: count.lua (and the hostile plugin, if any) over the queue from its start. Returns
/// count.lua's rate and, if the hostile plugin was terminated, when and with what state.
fn run_case(
    root: &Path,
    log: &Arc<Log>,
    n: u64,
    name: &str,
    case: Option<&(&str, &str, &str)>,
) -> anyhow::Result<(f64, Option<(Duration, String)>)> {
    let mut plugins = vec![("analysis", "count", COUNT_LUA, COUNT_CFG.to_owned())];
    if let Some((_, cfg, lua)) = case {
        plugins.push((
            "analysis",
            "hostile",
            lua,
            format!("filename = 'hostile.lua'\nmessage_matcher = 'TRUE'\nthread = 0\n{cfg}\n"),
        ));
    }
    let plugins: Vec<_> = plugins
        .iter()
        .map(|(kind, stem, lua, cfg)| (*kind, *stem, *lua, cfg.as_str()))
        .collect();
    let dir = run_dir(root, name, &plugins, n)?;
    let checkpoints = Arc::new(CheckpointStore::open(&dir)?);
    let ctx = context(log, &checkpoints, dir);
    let stats = ctx.stats.clone();
    let start = Instant::now();
    let pipeline = Pipeline::start(ctx, 1)?;
    let mut ended = None;
    let done = wait_until(Duration::from_secs(300), || {
        if ended.is_none() && case.is_some() {
            let state = stats.plugin("analysis.hostile").state();
            if state.starts_with("terminated") {
                ended = Some((start.elapsed(), state));
            }
        }
        checkpoints.position("analysis.count", INPUT_TOPIC, 0) == Some(n as i64)
    })?;
    pipeline.stop();
    Ok((n as f64 / (done - start).as_secs_f64(), ended))
}

pub fn bench_hostile(root: &Path, n: u64, runs: usize) -> anyhow::Result<()> {
    let limit = Duration::from_secs(300);
    let log = Arc::new(Log::open(LogConfig::in_dir(root.join("data")))?);
    let input = log.partition(INPUT_TOPIC, 0)?;
    println!(
        "blink bench hostile: count.lua over {n} queued messages, beside each hostile plugin on \
         its analysis thread; median of {runs} runs, in {}",
        root.display()
    );
    {
        let dir = run_dir(root, "fill", &[("input", "gen", GEN_LUA, GEN_CFG)], n)?;
        let checkpoints = Arc::new(CheckpointStore::open(&dir)?);
        let pipeline = Pipeline::start(context(&log, &checkpoints, dir), 1)?;
        wait_until(limit, || input.next_offset() >= n as i64)?;
        pipeline.stop();
    }
    let mut alone = None;
    for (i, case) in std::iter::once(None)
        .chain(CASES.iter().map(Some))
        .enumerate()
    {
        let mut rates = Vec::new();
        let mut ends = Vec::new();
        for run in 0..runs {
            let (rate, ended) = run_case(root, &log, n, &format!("case{i}-{run}"), case)?;
            rates.push(rate);
            ends.extend(ended);
        }
        rates.sort_by(f64::total_cmp);
        let rate = rates[rates.len() / 2];
        let Some((name, _, _)) = case else {
            println!("{:<28} {rate:>10.0} msgs/s  (count.lua alone)", "none");
            alone = Some(rate);
            continue;
        };
        let share = alone.map_or(0.0, |a| rate / a * 100.0);
        let outcome = match ends.first() {
            Some((_, state)) if ends.len() == runs => {
                let mut ms: Vec<f64> = ends.iter().map(|(t, _)| t.as_secs_f64() * 1e3).collect();
                ms.sort_by(f64::total_cmp);
                format!("{state}, after {:.0} ms", ms[ms.len() / 2])
            }
            _ => format!("not terminated in {} of {runs} runs", runs - ends.len()),
        };
        println!("{name:<28} {rate:>10.0} msgs/s  {share:>5.1} %   hostile: {outcome}");
    }
    log.close()?;
    Ok(())
}
