//! `blink run`: open the log (recovering it), keep it durable, stop cleanly on a signal.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blink::checkpoint::CheckpointStore;
use blink::config::Config;
use blink::durability::Durability;
use blink::log::Log;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let log = Arc::new(
        Log::open(config.log())
            .with_context(|| format!("opening the log in {}", config.output_path.display()))?,
    );
    let checkpoints = Arc::new(CheckpointStore::open(&config.output_path)?);
    checkpoints.reconcile(&log);
    for (topic, partitions) in log.topics() {
        for id in 0..partitions as u32 {
            let p = log.partition(&topic, id)?;
            tracing::info!(partition = %p.name(), start = p.log_start(), end = p.next_offset(), bytes = p.size_bytes(), "opened");
        }
    }
    let durability = Durability::start(
        log.clone(),
        checkpoints.clone(),
        Duration::from_millis(config.fsync_interval_ms),
    );
    tracing::info!(output_path = %config.output_path.display(), fsync = ?config.fsync, "blink is running; SIGINT or SIGTERM stops it");

    let signal = signals.forever().next();
    tracing::info!(?signal, "stopping");
    // A second signal while shutting down exits at once.
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!("blink: second signal, exiting now");
            std::process::exit(130);
        }
    });
    durability.stop().context("final sync and checkpoint")?;
    log.close().context("closing the log")?;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
