//! Command-line parsing and dispatch: one file per subcommand.

mod bench;
mod bench_hotload;
mod bench_pipeline;
mod cat;
mod render;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use blink::config::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "blink",
    version,
    about = "A Hindsight-style stream processor whose stream is a Kafka-compatible log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open the log and keep it durable: recovery, fsync, checkpoints, retention.
    Run {
        /// Global config (TOML); defaults to cfg/blink.toml when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the records of a topic, or the messages of a Hindsight stream file.
    Cat(cat::CatArgs),
    /// Measure Blink's components and print figures.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run::run(&load_config(config.as_deref())?),
        Command::Cat(args) => cat::cat(args),
        Command::Bench { what } => bench::bench(what),
    }
}

/// The config at `path`, or `cfg/blink.toml` if it exists, or the built-in defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let default = Path::new("cfg/blink.toml");
    match path {
        Some(path) => Ok(Config::load(path)?),
        None if default.exists() => Config::load(default).context("loading the default config"),
        None => Ok(Config::parse("", Path::new("<defaults>"))?),
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
