//! The `blink` command line. Errors reach the user through `anyhow` with their whole cause chain.

mod cli;

fn main() -> std::process::ExitCode {
    cli::init_tracing();
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("blink: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
