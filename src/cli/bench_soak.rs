//! `blink bench soak`: does a long-running Blink stay flat? A deployment with small segments
//! (1 MiB) and a size cap (32 MiB kept) runs the real binary while a paced input plugin injects
//! about 12 MB/s (40,000 messages of ~300 bytes a second) and an analysis and an output plugin
//! read everything; every `--every` seconds the process's open files and resident memory are
//! read from `/proc` and printed, then how they moved after the warm-up. Segments roll every
//! few hundred milliseconds and retention deletes them as fast, so a resource held per segment
//! shows as a slope. Nothing is asserted (the suite's `tests/log.rs` asserts the open files);
//! this is the opt-in, long version (docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Injects `rate` messages each tick (a second).
const SOAK_INPUT: &str = r#"
require "string"
local rate = read_config("rate")
local msg = {Type = "soak", Logger = "soak", Payload = string.rep("x", 200),
             Fields = {user = "alice", action = "login", n = 0}}
local n = 0
function process_message()
    for _ = 1, rate do
        n = n + 1
        msg.Fields.n = n
        inject_message(msg)
    end
    return 0
end
"#;

const COUNTER: &str = r#"
local seen = 0
function process_message() seen = seen + 1 return 0 end
function timer_event() end
"#;

/// Open files and resident memory (KiB) of process `pid`.
fn resources(pid: u32) -> anyhow::Result<(usize, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .context("no VmRSS")?;
    Ok((fds, rss))
}

fn write_soak_deployment(dir: &Path, rate: u64) -> anyhow::Result<()> {
    super::init::write_deployment(dir)?;
    let cfg = dir.join("cfg/blink.toml");
    let text = std::fs::read_to_string(&cfg)?
        .replace("127.0.0.1:9092", "127.0.0.1:0")
        .replace(
            "output_size       = 67108864",
            "output_size       = 1048576",
        )
        .replace("retention_bytes   = -1", "retention_bytes   = 33554432");
    std::fs::write(&cfg, text)?;
    for kind in ["input", "analysis", "output"] {
        for entry in std::fs::read_dir(dir.join("hs_run").join(kind))? {
            std::fs::remove_file(entry?.path())?;
        }
    }
    let plugin = |kind: &str, name: &str, lua: &str, cfg: String| -> anyhow::Result<()> {
        let base = dir.join("hs_run").join(kind);
        std::fs::write(base.join(format!("{name}.lua")), lua)?;
        std::fs::write(base.join(format!("{name}.cfg")), cfg)?;
        Ok(())
    };
    plugin(
        "input",
        "soak",
        SOAK_INPUT,
        format!(
            "filename = 'soak.lua'\nticker_interval = 1\ninstruction_limit = 0\nrate = {rate}\n"
        ),
    )?;
    plugin(
        "analysis",
        "counter",
        COUNTER,
        "filename = 'counter.lua'\nmessage_matcher = 'TRUE'\nticker_interval = 0\n".into(),
    )?;
    plugin(
        "output",
        "counter",
        COUNTER,
        "filename = 'counter.lua'\nmessage_matcher = 'TRUE'\nread_queue = 'input'\nticker_interval = 0\n"
            .into(),
    )?;
    Ok(())
}

pub fn bench_soak(
    root: &Path,
    seconds: u64,
    every: u64,
    rate: u64,
    binary: Option<PathBuf>,
) -> anyhow::Result<()> {
    let binary = super::bench_idle::binary_or_this(binary)?;
    let dir = root.join("soak");
    write_soak_deployment(&dir, rate)?;
    println!(
        "blink bench soak: {}, {rate} messages/s (~{:.0} MB/s), 1 MiB segments, 32 MiB kept, \
         {seconds} s, in {}",
        binary.display(),
        rate as f64 * 300.0 / 1e6,
        dir.display()
    );
    let mut child = super::bench_idle::start(&binary, &dir)?;
    let pid = child.id();
    let started = Instant::now();
    let warm_up = Duration::from_secs(every.max(10));
    let segments_dir = dir.join("data/blink.input-0");
    let mut samples = Vec::new();
    println!(
        "{:>6} {:>6} {:>10} {:>10}",
        "s", "fds", "RSS MiB", "segments"
    );
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(every.max(1)));
        let (fds, rss) = resources(pid)?;
        let segments = std::fs::read_dir(&segments_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .count()
            })
            .unwrap_or(0);
        let at = started.elapsed();
        println!(
            "{:>6.0} {fds:>6} {:>10.1} {segments:>10}",
            at.as_secs_f64(),
            rss as f64 / 1024.0
        );
        if at >= warm_up {
            samples.push((fds, rss));
        }
    }
    // SAFETY: kill with a pid we own and a valid signal.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let stats = std::fs::read_to_string(dir.join("data/plugins.tsv")).unwrap_or_default();
    let injected = stats
        .lines()
        .find(|l| l.starts_with("input.soak"))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap_or("?");
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let max_fds = samples.iter().map(|s| s.0).max().unwrap_or(0);
        let max_rss = samples.iter().map(|s| s.1).max().unwrap_or(0);
        println!(
            "after the warm-up ({} s): fds {} → {} (max {max_fds}), RSS {:.1} → {:.1} MiB (max {:.1}); \
             {injected} messages injected",
            warm_up.as_secs(),
            first.0,
            last.0,
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            max_rss as f64 / 1024.0
        );
    }
    Ok(())
}
