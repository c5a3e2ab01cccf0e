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
