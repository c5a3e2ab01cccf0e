//! Helpers shared by the tests that run the real binary: a workspace with `hs_run`/`hs_load`,
//! a running `blink run` that is killed if a test fails, and waiting with a limit.
#![allow(dead_code)] // each test file uses its own subset

pub mod clients;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `blink run`, the `host:port` its Kafka server listens on, and the lines it has
/// logged so far (colours stripped).
pub struct Blink(pub Child, pub String, pub Arc<Mutex<Vec<String>>>);

impl Drop for Blink {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Blink {
    /// The logged lines that contain `text`.
    pub fn logged(&self, text: &str) -> Vec<String> {
        let lines = self.2.lock().unwrap();
        lines.iter().filter(|l| l.contains(text)).cloned().collect()
    }

    pub fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

pub struct Workspace {
    dir: tempfile::TempDir,
}

pub fn workspace() -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["input", "analysis", "output"] {
        std::fs::create_dir_all(dir.path().join("hs_run").join(kind)).unwrap();
        std::fs::create_dir_all(dir.path().join("hs_load").join(kind)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("lua_modules")).unwrap();
    std::fs::write(
        dir.path().join("blink.toml"),
        "output_path = \"data\"\nsandbox_run_path = \"hs_run\"\nsandbox_load_path = \"hs_load\"\nlua_path = \"lua_modules\"\nfsync_interval_ms = 100\n[kafka]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    Workspace { dir }
}

impl Workspace {
    /// Adds top-level keys to `blink.toml` (before its `[kafka]` table).
    pub fn global_config(&self, keys: &str) {
        let path = self.path().join("blink.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{keys}{text}")).unwrap();
    }

    /// Adds keys (and tables) at the end of `blink.toml`, inside its `[kafka]` table.
    pub fn kafka_config(&self, text: &str) {
        let path = self.path().join("blink.toml");
        let mut toml = std::fs::read_to_string(&path).unwrap();
        toml.push_str(text);
        std::fs::write(&path, toml).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plugin(&self, kind: &str, name: &str, cfg: &str, lua: &str) {
        let dir = self.path().join("hs_run").join(kind);
        std::fs::write(dir.join(format!("{name}.lua")), lua).unwrap();
        std::fs::write(
            dir.join(format!("{name}.cfg")),
            format!("filename = \"{name}.lua\"\n{cfg}"),
        )
        .unwrap();
    }

    /// Starts `blink run` and waits until it says it is running. The caller stops and reaps it.
    pub fn start(&self) -> Blink {
        self.start_logging("info")
    }

    /// [`Workspace::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(&self, filter: &str) -> Blink {
        self.start_with(filter, |_| {})
    }

    /// [`Workspace::start_logging`], with the command adjusted by `adjust` before it runs.
    #[allow(clippy::zombie_processes)]
    pub fn start_with(&self, filter: &str, adjust: impl FnOnce(&mut Command)) -> Blink {
        let mut command = Command::new(env!("CARGO_BIN_EXE_blink"));
        command
            .args(["run", "--config", "blink.toml"])
            .current_dir(self.path())
            .env("RUST_LOG", filter)
            .stderr(Stdio::piped());
        adjust(&mut command);
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let logged = Arc::new(Mutex::new(Vec::new()));
        let keep = logged.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_colours(&line);
                let mut kept = keep.lock().unwrap();
                // Bounded: a test keeps its first 100 k lines.
                if kept.len() < 100_000 {
                    kept.push(line.clone());
                }
                drop(kept);
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut kafka = String::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("blink is running") => {
                    // Keep draining stderr so the child never blocks on a full pipe.
                    std::thread::spawn(move || while rx.recv().is_ok() {});
                    return Blink(child, kafka, logged);
                }
                // The first listener is `listen`; others (TLS ones) are found in the log.
                Ok(line) if line.contains("kafka server listening") && kafka.is_empty() => {
                    kafka = kafka_address(&line);
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("blink run did not start");
                }
            }
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.file(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

pub fn sigterm(blink: &mut Blink) {
    let child = &mut blink.0;
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "blink exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("blink did not stop after SIGTERM");
}

pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `address=` of Blink's "kafka server listening" log line.
pub fn kafka_address(line: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .unwrap_or_default()
        .to_owned()
}

/// `line` without ANSI colour sequences (older builds coloured logs on pipes too).
fn strip_colours(line: &str) -> String {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI colour sequence: ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Runs `blink run --batch` in `w` and returns its status and stderr; killed after 60 s.
pub fn run_batch(w: &Workspace) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blink"))
        .args(["run", "--batch", "--config", "blink.toml"])
        .current_dir(w.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("blink run --batch did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}
