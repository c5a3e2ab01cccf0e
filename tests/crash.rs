//! Crash test: a child process appends in a loop and is killed with SIGKILL at a random moment,
//! several times over the same log. After every kill the log is reopened (recovery) and checked:
//! every acknowledged record is readable with the right value, the tail was cut cleanly,
//! appends continue at the right offset, and the checkpoints are consistent with the log.
//!
//! The child is this same test binary, re-run with an environment variable that makes the test
//! act as the writer (the usual way to get a killable child without a test-only binary).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blink::checkpoint::{CheckpointStore, CheckpointValue};
use blink::log::LogConfig;
use blink::log::{CheckpointTarget, INPUT_TOPIC, Log, PartitionReader};

const CHILD_DIR: &str = "BLINK_CRASH_TEST_CHILD_DIR";
const TEST_NAME: &str = "kill_9_while_appending_loses_nothing_acknowledged";

fn config(dir: &Path) -> LogConfig {
    let mut config = LogConfig::in_dir(dir);
    config.segment_bytes = 64 << 10; // roll often, so kills also land around rolls
    config.batch.max_messages = 37;
    config
}

fn value(offset: i64) -> Vec<u8> {
    format!(
        "crash-record-{offset}-{}",
        "y".repeat((offset % 50) as usize)
    )
    .into_bytes()
}

/// The writer: appends forever, printing each acknowledged (written) offset.
fn child(dir: &Path) -> ! {
    let log = Log::open(config(dir)).expect("child opens the log");
    let store = Arc::new(CheckpointStore::open(dir).expect("child opens checkpoints"));
    let target = CheckpointTarget {
        store: store.clone(),
        input: "input.crash".into(),
    };
    let appender = log.appender(INPUT_TOPIC, 0, Some(target)).unwrap();
    let mut next = log.partition(INPUT_TOPIC, 0).unwrap().next_offset();
    let mut i = 0u64;
    loop {
        let v = value(next);
        appender
            .append_encoded(
                next,
                v.len(),
                Some(CheckpointValue::Number(next as f64)),
                |out| out.extend_from_slice(&v),
            )
            .unwrap();
        next += 1;
        i += 1;
        if i.is_multiple_of(50)
            && let Some(appended) = appender.flush().unwrap()
        {
            println!("acked {}", appended.last_offset);
            // A reader that has processed half of what is written.
            store.set_position("output.crash", INPUT_TOPIC, 0, appended.last_offset / 2);
        }
        if i.is_multiple_of(500) {
            blink::durability::tick(&log, &store).unwrap();
        }
    }
}

#[test]
fn kill_9_while_appending_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(std::process::id() as u64);
    let mut expected_next = 0;
    for round in 0..8 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(None::<i64>));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("acked ") {
                        *acked.lock().unwrap() = Some(n.parse().unwrap());
                    }
                }
            })
        };
        // Let it acknowledge something, then kill it at a random moment.
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "round {round}: child never acknowledged a write"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let last_acked = acked.lock().unwrap().unwrap();

        // Recovery.
        let log = Log::open(config(dir.path())).unwrap();
        let partition = log.partition(INPUT_TOPIC, 0).unwrap();
        let next = partition.next_offset();
        assert!(
            next > last_acked,
            "round {round}: acknowledged {last_acked} but the log ends at {next}"
        );
        assert!(
            next >= expected_next,
            "round {round}: the log shrank below what an earlier round saw"
        );
        let mut reader = PartitionReader::new(partition.clone(), partition.log_start());
        let mut count = 0;
        while let Some(record) = reader.next_record().unwrap() {
            assert_eq!(
                record.value.as_deref(),
                Some(value(record.offset).as_slice()),
                "round {round} offset {}",
                record.offset
            );
            count += 1;
        }
        assert_eq!(
            count,
            next - partition.log_start(),
            "round {round}: every offset readable"
        );

        // Checkpoints: parseable, and never ahead of the recovered log.
        let store = CheckpointStore::open(dir.path()).unwrap();
        if let Some(CheckpointValue::Number(cp)) = store.input("input.crash") {
            assert!(
                (cp as i64) < next,
                "round {round}: input checkpoint {cp} is past the log end {next}"
            );
        }
        if let Some(position) = store.position("output.crash", INPUT_TOPIC, 0) {
            assert!(
                position <= next,
                "round {round}: reader checkpoint {position} past {next}"
            );
        }
        expected_next = next;
    }
    // Appends continue at the right offset after the last recovery.
    let log = Log::open(config(dir.path())).unwrap();
    let appender = log.appender(INPUT_TOPIC, 0, None).unwrap();
    appender.append(0, b"after the crashes").unwrap();
    assert_eq!(
        appender.flush().unwrap().unwrap().base_offset,
        expected_next
    );
}
