//! `blink bench`: measure and print figures; nothing is asserted (see docs/benchmarks.md).
//!
//! `blink bench log` times the log alone on the reference workload's message shape (the same
//! message `bench/reference-workload/gen.lua` injects, about 300 bytes): appends into the page
//! cache, reads with decoding, and recovery of a 1 GiB partition. Each figure is the median of
//! `--runs` runs, every run on a fresh directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use blink::log::LogConfig;
use blink::log::batch::BatchBuilder;
use blink::log::{INPUT_TOPIC, Log};
use blink::message::{Field, FieldValues, Message, MessageView, new_uuid};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// The log: append, read + decode, recovery.
    Log {
        /// Messages per append/read run.
        #[arg(long, default_value_t = 2_000_000)]
        messages: u64,
        /// Size of the partition whose recovery is timed, in MiB.
        #[arg(long, default_value_t = 1024)]
        recovery_mib: u64,
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The reference workload (bench/reference-workload, Hindsight's plugins unchanged):
    /// inject, analysis and output rates, end-to-end time, peak memory.
    Pipeline {
        /// Messages the generator injects.
        #[arg(long, default_value_t = 2_000_000)]
        messages: u64,
        /// Times the analysis and output replays run over the written queue; each run and the
        /// median are printed (replays are cheap, and the median steadies a noisy machine).
        #[arg(long, default_value_t = 3)]
        replays: usize,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Idle cost: CPU and wake-ups of a `blink run` with nothing flowing.
    Idle {
        /// Length of each measured window.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Runs per figure; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Another blink executable to measure the same way (default: this one).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Hostile plugins: how fast count.lua runs beside each one on its analysis thread, and
    /// when each is terminated.
    Hostile {
        /// Messages queued for count.lua.
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Runs per case; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Soak: the real binary with small segments and a size cap under steady load; its open
    /// files and memory over time.
    Soak {
        /// How long to run.
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 5)]
        every: u64,
        /// Messages injected a second (each ~300 bytes).
        #[arg(long, default_value_t = 40_000)]
        rate: u64,
        /// Another blink executable to run (default: this one).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Hot-load: time from a cfg written to its plugin's first message, and the pause an
    /// analysis restart causes its thread.
    Hotload {
        /// Loads and restarts measured; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn bench(what: BenchCommand) -> anyhow::Result<ExitCode> {
    match what {
        BenchCommand::Log {
            messages,
            recovery_mib,
            runs,
            dir,
        } => {
            let scratch = scratch_dir(dir)?;
            bench_log(scratch.path(), messages, recovery_mib, runs.max(1))?;
        }
        BenchCommand::Pipeline {
            messages,
            replays,
            dir,
        } => {
            let scratch = scratch_dir(dir)?;
            super::bench_pipeline::bench_pipeline(scratch.path(), messages, replays.max(1))?;
        }
        BenchCommand::Idle {
            seconds,
            runs,
            binary,
            dir,
        } => {
            let scratch = scratch_dir(dir)?;
            super::bench_idle::bench_idle(scratch.path(), seconds.max(1), runs.max(1), binary)?;
        }
        BenchCommand::Hostile {
            messages,
            runs,
            dir,
        } => {
            let scratch = scratch_dir(dir)?;
            super::bench_hostile::bench_hostile(scratch.path(), messages.max(1), runs.max(1))?;
        }
        BenchCommand::Soak {
            seconds,
            every,
            rate,
            binary,
            dir,
        } => {
            let scratch = scratch_dir(dir)?;
            super::bench_soak::bench_soak(scratch.path(), seconds, every, rate.max(1), binary)?;
        }
        BenchCommand::Hotload { runs, dir } => {
            let scratch = scratch_dir(dir)?;
            super::bench_hotload::bench_hotload(scratch.path(), runs.max(1))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scratch_dir(dir: Option<PathBuf>) -> std::io::Result<tempfile::TempDir> {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("blink-bench-");
        b
    };
    match dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
}

/// The message gen.lua injects: Type "bench", Logger "gen", a 200-byte payload, three fields.
fn reference_message(n: u64) -> Message {
    let mut m = Message::new(new_uuid(), blink::time::now_nanos());
    m.r#type = Some(b"bench".to_vec());
    m.logger = Some(b"gen".to_vec());
    m.payload = Some(vec![b'x'; 200]);
    m.hostname = Some(b"bench-host".to_vec());
    m.pid = Some(std::process::id() as i32);
    m.fields = vec![
        Field::new("user", FieldValues::String(vec![b"alice".to_vec()])),
        Field::new("action", FieldValues::String(vec![b"login".to_vec()])),
        // Lua numbers are doubles, so Hindsight stores n as a DOUBLE field.
        Field::new("n", FieldValues::Double(vec![n as f64])),
    ];
    m
}

struct Figure {
    name: &'static str,
    items: u64,
    bytes: u64,
    times: Vec<Duration>,
}

impl Figure {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }

    fn print(&self) {
        let secs = self.median().as_secs_f64();
        let runs: Vec<String> = self
            .times
            .iter()
            .map(|t| format!("{:.3}", t.as_secs_f64()))
            .collect();
        if self.items > 0 {
            println!(
                "{:<34} {:>10.0} msgs/s {:>9.1} MB/s   median {:.3} s of runs [{}]",
                self.name,
                self.items as f64 / secs,
                self.bytes as f64 / secs / 1e6,
                secs,
                runs.join(", ")
            );
        } else {
            println!(
                "{:<34} {:>10.3} s   ({:.1} MB)   runs [{}]",
                self.name,
                secs,
                self.bytes as f64 / 1e6,
                runs.join(", ")
            );
        }
    }
}

fn fresh(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if path.exists() {
        std::fs::remove_dir_all(&path)?;
    }
    Ok(path)
}

fn bench_log(dir: &Path, messages: u64, recovery_mib: u64, runs: usize) -> anyhow::Result<()> {
    let sample = reference_message(1).to_bytes();
    println!(
        "blink bench log: {messages} messages of {} bytes (Heka protobuf), {runs} runs, in {}",
        sample.len(),
        dir.display()
    );

    let mut encode_append = Figure {
        name: "append (encode + batch + write)",
        items: messages,
        bytes: 0,
        times: vec![],
    };
    let mut raw_append = Figure {
        name: "append (pre-encoded values)",
        items: messages,
        bytes: 0,
        times: vec![],
    };
    let mut read_decode = Figure {
        name: "read + decode + Fields[user]",
        items: messages,
        bytes: 0,
        times: vec![],
    };
    let mut read_only = Figure {
        name: "read records",
        items: messages,
        bytes: 0,
        times: vec![],
    };
    for _ in 0..runs {
        // Encoding as a plugin inject does: a new Uuid, Timestamp and `n` for every message.
        let path = fresh(dir, "append")?;
        let log = Log::open(LogConfig::in_dir(&path))?;
        let appender = log.appender(INPUT_TOPIC, 0, None)?;
        let mut message = reference_message(0);
        let start = Instant::now();
        let mut bytes = 0u64;
        for n in 0..messages {
            message.uuid = new_uuid();
            message.timestamp = blink::time::now_nanos();
            message.fields[2].values = FieldValues::Double(vec![n as f64]);
            bytes += message.encoded_len() as u64;
            appender.append_message(&message, None)?;
        }
        appender.flush()?;
        encode_append.times.push(start.elapsed());
        encode_append.bytes = bytes;
        drop(appender);

        let partition = log.partition(INPUT_TOPIC, 0)?;
        let start = Instant::now();
        let mut reader = blink::log::PartitionReader::new(partition.clone(), 0);
        let mut alice = 0u64;
        while let Some(record) = reader.next_record()? {
            let value = record.value.as_deref().unwrap_or_default();
            let view = MessageView::parse(value).context("decoding a benchmark message")?;
            if view
                .field(b"user", 0)
                .and_then(|f| f.value(0))
                .is_some_and(|v| v.as_bytes() == b"alice")
            {
                alice += 1;
            }
        }
        read_decode.times.push(start.elapsed());
        read_decode.bytes = bytes;
        anyhow::ensure!(
            alice == messages,
            "read {alice} of {messages} messages back"
        );

        let start = Instant::now();
        let mut reader = blink::log::PartitionReader::new(partition, 0);
        let mut count = 0u64;
        while reader.next_record()?.is_some() {
            count += 1;
        }
        read_only.times.push(start.elapsed());
        read_only.bytes = bytes;
        anyhow::ensure!(count == messages, "read {count} of {messages} records");
        drop(log);

        let path = fresh(dir, "raw")?;
        let log = Log::open(LogConfig::in_dir(&path))?;
        let appender = log.appender(INPUT_TOPIC, 0, None)?;
        let start = Instant::now();
        for _ in 0..messages {
            appender.append(0, &sample)?;
        }
        appender.flush()?;
        raw_append.times.push(start.elapsed());
        raw_append.bytes = messages * sample.len() as u64;
    }
    encode_append.print();
    raw_append.print();
    read_decode.print();
    read_only.print();
    let _ = std::fs::remove_dir_all(dir.join("append"));
    let _ = std::fs::remove_dir_all(dir.join("raw"));

    // Recovery: a partition of `recovery_mib` in 64 MiB segments, left without a clean close
    // (no index for the tail, as after a crash), then opened again.
    let path = fresh(dir, "recovery")?;
    let target = recovery_mib << 20;
    {
        let log = Log::open(LogConfig::in_dir(&path))?;
        let partition = log.partition(INPUT_TOPIC, 0)?;
        let mut builder = BatchBuilder::with_capacity(1 << 20);
        // Batches of about 1 MB until the partition has `segments` segments and the tail one is
        // nearly full: recovery scans the tail in full, so this is its worst case.
        let segment_bytes = LogConfig::in_dir(&path).segment_bytes;
        let segments = (target / segment_bytes).max(1) as usize;
        let (mut active, mut in_active) = (partition.active_base(), 0u64);
        loop {
            for _ in 0..3000 {
                builder.push(0, None, &sample);
            }
            let batch = builder.finish();
            let len = batch.len() as u64;
            if partition.segment_count() == segments && in_active + 2 * len > segment_bytes {
                break;
            }
            partition.append(&batch)?;
            if partition.active_base() != active {
                (active, in_active) = (partition.active_base(), 0);
            }
            in_active += len;
        }
        let tail = std::fs::metadata(blink::log::segment::log_path(
            partition.dir(),
            partition.active_base(),
        ))?
        .len();
        println!(
            "recovery partition: {} segments, tail segment {:.1} MB",
            partition.segment_count(),
            tail as f64 / 1e6
        );
        log.sync()?;
        // Dropped without close(): the tail segment's index is never written.
    }
    let mut crash = Figure {
        name: "recovery after crash",
        items: 0,
        bytes: target,
        times: vec![],
    };
    for _ in 0..runs {
        let start = Instant::now();
        let log = Log::open(LogConfig::in_dir(&path))?;
        crash.times.push(start.elapsed());
        drop(log);
    }
    crash.print();
    // The worst case: every index lost, so every segment is scanned and its index rebuilt.
    let mut rebuild = Figure {
        name: "recovery, all indexes missing",
        items: 0,
        bytes: target,
        times: vec![],
    };
    let partition_dir = path.join(format!("{INPUT_TOPIC}-0"));
    for _ in 0..runs {
        for entry in std::fs::read_dir(&partition_dir)? {
            let entry = entry?.path();
            if entry.extension().is_some_and(|e| e == "index") {
                std::fs::remove_file(entry)?;
            }
        }
        let start = Instant::now();
        let log = Log::open(LogConfig::in_dir(&path))?;
        rebuild.times.push(start.elapsed());
        drop(log);
    }
    rebuild.print();
    let _ = std::fs::remove_dir_all(&path);
    Ok(())
}
