//! Which configuration a command uses when none is named.

use std::path::Path;

use anyhow::Context as _;
use blink::config::Config;

/// The config at `path`, or `cfg/blink.toml` if it exists, or the built-in defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let default = Path::new("cfg/blink.toml");
    match path {
        Some(path) => Ok(Config::load(path)?),
        None if default.exists() => Config::load(default).context("loading the default config"),
        None => Ok(Config::parse("", Path::new("<defaults>"))?),
    }
}

/// The log of `config`, read-only (beside a running Blink, changing nothing), or an error
/// saying there is none yet.
pub fn open_log_read_only(config: &Config) -> anyhow::Result<blink::log::Log> {
    if !config.output_path.is_dir() {
        anyhow::bail!(
            "no log at {} (output_path of {}): has `blink run` been started?",
            config.output_path.display(),
            config.source.display()
        );
    }
    blink::log::Log::open_read_only(config.log())
        .with_context(|| format!("opening the log in {}", config.output_path.display()))
}
