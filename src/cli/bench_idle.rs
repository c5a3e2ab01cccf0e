//! `blink bench idle`: what an idle Blink costs. A deployment as `blink init` writes it runs
//! (`blink run`, Kafka on an ephemeral loopback port) with nothing flowing but the example
//! input's few simulated logins a second, then with no plugins at all; over a measured window the
//! process's CPU time (user + system, from `/proc`) and its threads' context switches (each one
//! a wake-up) are read and printed, the median of `--runs` runs. `--binary` measures another
//! Blink build the same way, for before/after figures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// CPU ticks and context switches of a process so far.
struct Usage {
    ticks: u64,
    switches: u64,
}

fn usage(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) start after its ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields
        .get(11..13)
        .context("short /proc stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(Usage { ticks, switches })
}

/// `binary`, or this blink executable.
pub(super) fn binary_or_this(binary: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match binary {
        Some(b) => Ok(b),
        None => std::env::current_exe().context("finding this blink"),
    }
}

/// Starts `binary run` in `dir` and waits until it says it runs.
pub(super) fn start(binary: &Path, dir: &Path) -> anyhow::Result<Child> {
    let mut child = Command::new(binary)
        .args(["run", "--config", "cfg/blink.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("blink is running") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "{} run did not start in {}",
            binary.display(),
            dir.display()
        );
    }
    Ok(child)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn bench_idle(
    root: &Path,
    seconds: u64,
    runs: usize,
    binary: Option<PathBuf>,
) -> anyhow::Result<()> {
    let binary = binary_or_this(binary)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    println!(
        "blink bench idle: {} , {seconds} s windows, {runs} runs each, in {}",
        binary.display(),
        root.display()
    );
    for (label, plugins) in [
        ("example pipeline (5 simulated logins/s)", true),
        ("no plugins", false),
    ] {
        let (mut cpu, mut wakeups) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let dir = root.join(format!(
                "{}-{run}",
                if plugins { "example" } else { "empty" }
            ));
            super::init::write_deployment(&dir)?;
            let cfg = dir.join("cfg/blink.toml");
            let text = std::fs::read_to_string(&cfg)?;
            std::fs::write(&cfg, text.replace("127.0.0.1:9092", "127.0.0.1:0"))?;
            if !plugins {
                for kind in ["input", "analysis", "output"] {
                    for entry in std::fs::read_dir(dir.join("hs_run").join(kind))? {
                        std::fs::remove_file(entry?.path())?;
                    }
                }
            }
            let mut child = start(&binary, &dir)?;
            std::thread::sleep(Duration::from_secs(2)); // start-up settles
            let before = usage(child.id())?;
            let started = Instant::now();
            std::thread::sleep(Duration::from_secs(seconds));
            let after = usage(child.id())?;
            let elapsed = started.elapsed().as_secs_f64();
            // SAFETY: kill with a pid we own and a valid signal.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            cpu.push((after.ticks - before.ticks) as f64 / hz / elapsed * 100.0);
            wakeups.push((after.switches - before.switches) as f64 / elapsed);
        }
        let list = |v: &[f64], p: usize| {
            v.iter()
                .map(|x| format!("{x:.prec$}", prec = p))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (cpu_runs, wake_runs) = (list(&cpu, 2), list(&wakeups, 0));
        println!(
            "{label:<42} CPU {:>5.2} % of a core   runs: {cpu_runs}",
            median(&mut cpu)
        );
        println!(
            "{:<42} {:>5.0} context switches/s   runs: {wake_runs}",
            "",
            median(&mut wakeups)
        );
    }
    Ok(())
}
