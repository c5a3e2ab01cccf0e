//! `blink run`: open the log, start every plugin in `hs_run/`, apply and watch `hs_load/`, stop
//! cleanly on a signal. With `--batch`, as `hindsight_cli`: no Kafka server, stop once every
//! input has finished and everything it produced has been processed, and exit with
//! hindsight_cli's status.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, bail};
use blink::checkpoint::CheckpointStore;
use blink::config::Config;
use blink::durability::Durability;
use blink::hotload::HotLoader;
use blink::kafka::KafkaListener;
use blink::log::Log;
use blink::runner::{Context, Mode, Pipeline, Stats};
use blink::stop::StopToken;
use signal_hook::consts::{SIGINT, SIGTERM};

/// How often `plugins.tsv` and `hotload.tsv` are rewritten.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Batch mode: how often the inputs are looked at to see whether all have finished.
const INPUTS_POLL: Duration = Duration::from_millis(50);

pub fn run(config: &Config, mode: Mode) -> anyhow::Result<ExitCode> {
    // Blink's own stop: a signal or a plugin's shutdown_on_terminate stops it, and the main
    // thread then stops everything in data-flow order.
    let stop = StopToken::new();
    stop_on_signals(&stop)?;
    run_until_stopped(config, mode, &stop).map(ExitCode::from)
}

/// SIGINT and SIGTERM stop `stop`; a second one exits at once (status 130).
fn stop_on_signals(stop: &StopToken) -> anyhow::Result<()> {
    let signalled = Arc::new(AtomicBool::new(false));
    // A signal writes a byte into this socket (the only thing a signal handler may safely do);
    // a thread waiting on it stops the token.
    let (mut wake, signal_pipe) =
        std::os::unix::net::UnixStream::pair().context("creating the signal pipe")?;
    for signal in [SIGINT, SIGTERM] {
        // A second signal while stopping exits at once (status 130), the first asks to stop.
        signal_hook::flag::register_conditional_shutdown(signal, 130, signalled.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(signal, signalled.clone())
            .context("installing signal handlers")?;
        signal_hook::low_level::pipe::register(signal, signal_pipe.try_clone()?)
            .context("installing signal handlers")?;
    }
    let on_signal = stop.clone();
    std::thread::Builder::new()
        .name("blink-signals".into())
        .spawn(move || {
            if std::io::Read::read(&mut wake, &mut [0u8; 16]).is_ok() {
                on_signal.stop();
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Runs the pipeline of `config` until `stop` (live) or until its inputs have finished and
/// everything is processed (batch); returns hindsight_cli's status in batch mode, else 0.
/// `blink test` runs each case through this, in-process.
pub fn run_until_stopped(config: &Config, mode: Mode, stop: &StopToken) -> anyhow::Result<u8> {
    let stop = stop.clone();
    // What can fail without touching the disk is checked first: a wrong directory or a busy
    // port leaves nothing behind.
    if !config.sandbox_run_path.is_dir() {
        let cwd = std::env::current_dir().unwrap_or_default();
        bail!(
            "no plugins to run: {} (sandbox_run_path of {}) is not a directory, looked for from {}.\n\
             Start Blink in a deployment (a directory holding cfg/blink.toml, hs_run/ and \
             hs_load/), or make one with the example pipeline: `blink init DIR`, then \
             `cd DIR && blink run`",
            config.sandbox_run_path.display(),
            config.source.display(),
            cwd.display()
        );
    }
    let kafka_listener = if config.kafka.listen.is_empty() || mode == Mode::Batch {
        None
    } else {
        // The error names the listener or TLS file at fault.
        Some(
            KafkaListener::bind(&config.kafka)
                .with_context(|| config.source.display().to_string())?,
        )
    };
    let log = Arc::new(
        Log::open(config.log())
            .with_context(|| format!("opening the log in {}", config.output_path.display()))?,
    );
    let checkpoints = Arc::new(CheckpointStore::open(&config.output_path)?);
    checkpoints.reconcile(|topic, id| log.partition(topic, id).ok().map(|p| p.next_offset()));
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
    let context = Context {
        log: log.clone(),
        checkpoints: checkpoints.clone(),
        data_dir: config.output_path.clone(),
        run_dir: config.sandbox_run_path.clone(),
        lua_paths: config.lua_path.clone(),
        io_lua_paths: config.io_lua_path.clone(),
        install_path: config.sandbox_install_path.clone(),
        defaults: Arc::new(config.plugin_defaults()?),
        hostname: config.hostname.clone(),
        max_message_size: config.max_message_size as usize,
        shutdown: stop.clone(),
        stats: Arc::new(Stats::default()),
        backpressure: config.backpressure,
        output_size: config.output_size,
        load_dir: config.sandbox_load_path.clone(),
        mode,
    };
    // Before the plugins: a client may produce as soon as Blink says it runs.
    let kafka = match kafka_listener {
        None => None,
        Some(listener) => Some(
            listener
                .serve(log.clone())
                .context("starting the Kafka server")?,
        ),
    };
    let stats = context.stats.clone();
    let stats_dir = config.output_path.clone();
    let pipeline = Arc::new(
        Pipeline::start(context, config.analysis_threads).context("starting plugin threads")?,
    );
    // After hs_run's plugins: what is waiting in hs_load is applied on top of them.
    let hotload = HotLoader::start(config.sandbox_load_path.clone(), pipeline.clone())
        .with_context(|| {
            format!(
                "watching the hot-load directory {}",
                config.sandbox_load_path.display()
            )
        })?;
    match mode {
        Mode::Live => {
            tracing::info!(output_path = %config.output_path.display(), fsync = ?config.fsync, "blink is running; SIGINT or SIGTERM stops it")
        }
        Mode::Batch => {
            tracing::info!(output_path = %config.output_path.display(), "blink is running in batch mode: until every input has finished")
        }
    }

    // Until the stop (or, in batch mode, until the inputs have finished), writing the stats
    // every STATS_EVERY.
    let mut stats_written = std::time::Instant::now();
    let poll = match mode {
        Mode::Live => STATS_EVERY,
        Mode::Batch => INPUTS_POLL,
    };
    while !stop.wait_timeout(poll) {
        if stats_written.elapsed() >= STATS_EVERY {
            if let Err(e) = stats.write(&stats_dir) {
                tracing::warn!(dir = %stats_dir.display(), error = %e, "cannot write plugin stats");
            }
            stats_written = std::time::Instant::now();
        }
        if mode == Mode::Batch && pipeline.inputs_finished() {
            tracing::info!("every input has finished; processing what they produced");
            break;
        }
    }
    tracing::info!("stopping: inputs, then analysis, then outputs");
    hotload.stop();
    if let Some(kafka) = kafka {
        kafka.stop();
    }
    pipeline.stop();
    durability.stop().context("final sync and checkpoint")?;
    if let Err(e) = stats.write(&stats_dir) {
        tracing::warn!(dir = %stats_dir.display(), error = %e, "cannot write plugin stats");
    }
    log.close().context("closing the log")?;
    tracing::info!("stopped cleanly");
    Ok(match mode {
        Mode::Live => 0,
        Mode::Batch => {
            let status = stats.batch_status();
            if status != 0 {
                tracing::warn!(
                    status,
                    "plugins failed (2: an input, 4: an analysis plugin, 8: an output; summed)"
                );
            }
            status
        }
    })
}
