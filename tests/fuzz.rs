//! The fuzz targets (`blink::fuzz`) as part of the suite: the committed corpus and every
//! regression case, then a bounded number of mutations of them, per target. Longer,
//! coverage-guided runs use the same targets through `cargo fuzz` (fuzz/, docs/security.md).
//!
//! `BLINK_FUZZ_WRITE_SEEDS=1` adds generated Kafka request seeds (one per API and version Blink
//! serves) to `fuzz/corpus/kafka_request/` instead of checking that they are there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use blink::fuzz;

/// Mutations per target, and the time they may take (whichever ends first).
const MUTATIONS: usize = 200_000;
const TIME_PER_TARGET: Duration = Duration::from_secs(20);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<folder>/<target>/`, sorted by name.
fn files(folder: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join(folder).join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// A deterministic generator, so a failing mutation is reproduced by its round.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that find boundary mistakes: lengths and counts at their limits.
const INTERESTING: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x80, 0x00, 0x00, 0x00],
    &[0xff, 0xff],
    &[0x7f, 0xff],
    &[0x00, 0x00],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
];

/// One to four mutations of `input`: flips, interesting values, cuts, copies, splices.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let end = (at + value.len()).min(out.len());
                out.splice(at..end, value.iter().copied());
            }
            2 => out.truncate(at),
            3 if !out.is_empty() => {
                let from = rng.below(out.len());
                let len = rng.below(out.len() - from + 1).min(64);
                let copy = out[from..from + len].to_vec();
                out.splice(at..at, copy);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

/// Runs `target` over the corpus and regressions of `name`, then over mutations of them.
fn fuzz(name: &str, extra_seeds: Vec<Vec<u8>>, mut target: impl FnMut(&[u8])) {
    let corpus = files("corpus", name);
    let regressions = files("regressions", name);
    for (path, bytes) in corpus.iter().chain(&regressions) {
        eprintln!("{name}: {}", path.display());
        target(bytes);
    }
    let mut seeds: Vec<Vec<u8>> = corpus
        .into_iter()
        .chain(regressions)
        .map(|(_, b)| b)
        .collect();
    seeds.extend(extra_seeds);
    assert!(!seeds.is_empty(), "{name}: no corpus in fuzz/corpus/{name}");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ name.len() as u64);
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < MUTATIONS && started.elapsed() < TIME_PER_TARGET {
        let input = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let mutated = mutate(&mut rng, input, other);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&mutated)));
        if result.is_err() {
            let path = root().join("artifacts").join(name);
            std::fs::create_dir_all(&path).unwrap();
            let file = path.join(format!("crash-{rounds}"));
            std::fs::write(&file, &mutated).unwrap();
            panic!(
                "{name}: round {rounds} panicked; the input is in {} (add it to fuzz/regressions/{name}/ once fixed)",
                file.display()
            );
        }
        rounds += 1;
    }
    eprintln!("{name}: {rounds} mutations in {:?}", started.elapsed());
}

#[test]
fn every_target_has_a_corpus() {
    for target in fuzz::TARGETS {
        assert!(
            !files("corpus", target).is_empty(),
            "fuzz/corpus/{target}/ is empty"
        );
    }
}

#[test]
fn kafka_requests() {
    let served = blink::kafka::served_versions();
    let generated: Vec<Vec<u8>> = (0..served * 3)
        .map(|i| blink::kafka::sample_request(i, i as u64 * 7919 + 1))
        .collect();
    let corpus = root().join("corpus/kafka_request");
    if std::env::var_os("BLINK_FUZZ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&corpus).unwrap();
        for (i, frame) in generated.iter().enumerate().take(served) {
            std::fs::write(corpus.join(format!("seed-{i:03}")), frame).unwrap();
        }
    }
    assert!(
        files("corpus", "kafka_request").len() >= served,
        "fuzz/corpus/kafka_request/ should hold a seed for each of the {served} API versions (BLINK_FUZZ_WRITE_SEEDS=1 writes them)"
    );
    let dir = tempfile::tempdir().unwrap();
    let target = fuzz::KafkaTarget::new(dir.path());
    fuzz("kafka_request", generated, |frame| target.request(frame));
}

#[test]
fn heka_messages() {
    fuzz("heka_message", Vec::new(), fuzz::heka_message);
}

#[test]
fn record_batches() {
    fuzz("record_batch", Vec::new(), fuzz::record_batch);
}

#[test]
fn matchers() {
    fuzz("matcher", Vec::new(), fuzz::matcher);
}

#[test]
fn plugin_configs() {
    fuzz("plugin_config", Vec::new(), fuzz::plugin_config);
}

#[test]
fn blink_configs() {
    fuzz("blink_config", Vec::new(), fuzz::blink_config);
}

#[test]
fn sasl_exchanges() {
    fuzz("sasl_exchange", Vec::new(), fuzz::sasl_exchange);
}

#[test]
fn stream_frames() {
    fuzz("stream_frames", Vec::new(), fuzz::stream_frames);
}

#[test]
fn json_documents() {
    fuzz("json_document", Vec::new(), fuzz::json_document);
}

#[test]
fn injections() {
    fuzz("injection", Vec::new(), fuzz::injection);
}
