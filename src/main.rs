//! The `blink` command line. Errors reach the user through `anyhow` with their whole cause chain.

mod cli;

fn main() -> std::process::ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("blink: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
