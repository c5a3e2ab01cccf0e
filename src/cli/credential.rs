//! `blink credential USER`: the SCRAM credentials for a password read from stdin, as the
//! `[[kafka.users]]` entry that `blink.toml` keeps instead of the password.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use blink::kafka::{Credential, Hash, MIN_ITERATIONS};

pub fn credential(user: &str, iterations: u32) -> anyhow::Result<ExitCode> {
    if user.is_empty() || user.contains(['"', '\\', '\n']) {
        bail!("a user name must be non-empty, without quotes, backslashes or newlines");
    }
    if iterations < MIN_ITERATIONS {
        bail!("--iterations {iterations}: at least {MIN_ITERATIONS}");
    }
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    // One line: the password, without its line ending.
    let password = input.lines().next().unwrap_or_default();
    if password.is_empty() {
        bail!(
            "no password on stdin (e.g. `read -rs P; printf '%s\\n' \"$P\" | blink credential {user}`)"
        );
    }
    let sha256 = Credential::new(Hash::Sha256, password, iterations).to_config();
    let sha512 = Credential::new(Hash::Sha512, password, iterations).to_config();
    println!(
        "[[kafka.users]]\nname = \"{user}\"\nscram_sha256 = \"{sha256}\"\nscram_sha512 = \"{sha512}\""
    );
    Ok(ExitCode::SUCCESS)
}
