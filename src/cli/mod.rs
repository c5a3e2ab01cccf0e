//! Command-line parsing and dispatch: one file per subcommand.

mod bench;
mod bench_hostile;
mod bench_hotload;
mod bench_idle;
mod bench_pipeline;
mod bench_soak;
mod cat;
mod config_file;
mod credential;
mod init;
mod render;
mod rule_cases;
mod rule_test;
mod run;
mod shadow;

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Run the pipeline: the plugins in hs_run/ (inputs, analysis, outputs) over the log, the
    /// Kafka server, and hot-loading of files dropped into hs_load/. Run it in a deployment
    /// (see `blink init`); SIGINT or SIGTERM stops it cleanly.
    Run {
        /// Global config (TOML); defaults to cfg/blink.toml when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run as hindsight_cli does: no Kafka server; stop once every input has finished and
        /// what they produced has been processed; timers follow message timestamps. Exits with
        /// 2 if an input failed, plus 4 for an analysis plugin, plus 8 for an output.
        #[arg(long)]
        batch: bool,
    },
    /// Write a new deployment into DIR: cfg/blink.toml, the example pipeline in hs_run/, and
    /// empty hs_load/ and lua_modules/.
    Init {
        /// Where to write it (created if missing; refused if it holds a deployment).
        dir: PathBuf,
    },
    /// Print the records of a topic, or the messages of a Hindsight stream file.
    Cat(cat::CatArgs),
    /// Run detections against the cases in their NAME.test.toml files (default: every case
    /// file in hs_run/ and hs_load/), in-process with the events' own time; exits 1 if a case
    /// fails.
    Test {
        /// Case files, or directories to look for them in.
        paths: Vec<PathBuf>,
        /// Global config (TOML); defaults to cfg/blink.toml when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Compare each detection running in shadow mode with the live one of the same rule id:
    /// alerts both raised, and those only one of them did (read from blink.analysis).
    Shadow {
        /// Global config (TOML); defaults to cfg/blink.toml when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also list the alert ids only one of them raised.
        #[arg(long)]
        list: bool,
    },
    /// Read a password from stdin and print the `[[kafka.users]]` entry for USER: SCRAM-SHA-256
    /// and SCRAM-SHA-512 credentials (salted, hashed), which also serve PLAIN. The password
    /// itself is kept nowhere.
    Credential {
        user: String,
        /// PBKDF2 iterations (at least 4096).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Measure Blink's components and print figures.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // `blink test` runs a pipeline per case: only warnings and errors are worth showing.
    init_tracing(if matches!(cli.command, Command::Test { .. }) {
        "warn"
    } else {
        "info"
    });
    match cli.command {
        Command::Run { config, batch } => {
            let mode = if batch {
                blink::runner::Mode::Batch
            } else {
                blink::runner::Mode::Live
            };
            run::run(&config_file::load_config(config.as_deref())?, mode)
        }
        Command::Init { dir } => init::init(&dir),
        Command::Cat(args) => cat::cat(args),
        Command::Shadow { config, list } => shadow::shadow(config.as_deref(), list),
        Command::Test { paths, config } => {
            rule_test::test(&paths, &config_file::load_config(config.as_deref())?)
        }
        Command::Credential { user, iterations } => credential::credential(&user, iterations),
        Command::Bench { what } => bench::bench(what),
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `default_level`). Colours only on a terminal (and
/// never with `NO_COLOR` set): a log file or a pipe gets plain text.
fn init_tracing(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}
