//! `checkpoint_data`: an analysis plugin's state saved with its checkpoint, so `kill -9` at any
//! moment neither loses what it was counting nor makes it say something twice.
//!
//! Hindsight's `preserve_data` saves a plugin's globals at a clean shutdown only: after a crash
//! the plugin resumes from its checkpoint with the state of its last clean start, so a detection
//! forgets partial counts and raises again alerts it had raised. A `checkpoint_data` plugin's
//! globals are written (the `preserve_data` file, replaced whole) with a *mark*: the input offset
//! they correspond to and the end of `blink.analysis` once everything the plugin injected before
//! was written. The mark, not the checkpoint store, is where the plugin resumes, so state and
//! position cannot disagree. The plugin's position advances only when a snapshot is written (at
//! most once a second while it works, and at every clean stop), so a crash replays at most the
//! last second or so of its input.
//!
//! Messages it injected after the mark are in `blink.analysis` already. On the restart after a
//! crash they are collected ([`replayed_since`]) and the plugin's injects that repeat them are
//! dropped while it catches up ([`crate::sandbox::ReplayedInjects`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::log::{Partition, PartitionReader};
use crate::message::MessageView;
use crate::sandbox::ReplayedInjects;

/// The least time between two snapshots of a plugin while it works: each serialises all its
/// globals, so this bounds their cost, and a crash replays about this much input.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// A snapshot that took long (a large state) waits this many times as long before the next,
/// so saving state never takes more than a hundredth of the thread's time (nor stalls more
/// than a hundredth of its messages).
const COST_FACTOR: u32 = 100;

/// The most records of `blink.analysis` read for a plugin's earlier injects when it restarts
/// after a crash: the stream since its mark is normally the last second or so.
const MAX_SCANNED_RECORDS: u64 = 10_000_000;

/// What a state snapshot corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The next `blink.input` offset the plugin processes with this state.
    pub input: i64,
    /// The end of `blink.analysis` when the snapshot was written: everything the plugin
    /// injected before is below it.
    pub analysis: i64,
}

const PREFIX: &str = "-- blink checkpoint: ";

impl Mark {
    /// The mark as the first line of the preserved file (a Lua comment).
    pub fn header(&self) -> String {
        format!("{PREFIX}input={} analysis={}\n", self.input, self.analysis)
    }

    /// The mark at the head of the preserved file at `path`, if it has one.
    pub fn read(path: &Path) -> Option<Mark> {
        use std::io::{BufRead, Read};
        let file = std::fs::File::open(path).ok()?;
        let mut line = String::new();
        std::io::BufReader::new(file.take(256))
            .read_line(&mut line)
            .ok()?;
        Mark::parse(&line)
    }

    fn parse(line: &str) -> Option<Mark> {
        let rest = line.strip_prefix(PREFIX)?.trim_end();
        let (input, analysis) = rest.split_once(' ')?;
        Some(Mark {
            input: input.strip_prefix("input=")?.parse().ok()?,
            analysis: analysis.strip_prefix("analysis=")?.parse().ok()?,
        })
    }
}

/// What a `checkpoint_data` plugin's last state snapshot holds.
pub struct SavedState {
    pub at: Instant,
    /// How long it took to write.
    pub cost: Duration,
    /// The input offset it belongs to (the plugin's checkpointed position).
    pub position: i64,
    /// The plugin's inject count when it was taken: a timer that injected changed its state.
    pub injected: u64,
}

impl SavedState {
    /// The state saved when the plugin starts at `position`.
    pub fn new(position: i64) -> Self {
        SavedState {
            at: Instant::now(),
            cost: Duration::ZERO,
            position,
            injected: 0,
        }
    }

    /// Whether to save the state now: it changed (the plugin read on, or a timer injected),
    /// and the last snapshot is `SNAPSHOT_EVERY` old (or `COST_FACTOR` times what it cost), or
    /// the save is `force`d (a clean stop).
    pub fn wanted(&self, position: i64, injected: u64, now: Instant, force: bool) -> bool {
        let changed = position != self.position || injected != self.injected;
        let wait = SNAPSHOT_EVERY.max(self.cost * COST_FACTOR);
        changed && (force || now.duration_since(self.at) >= wait)
    }
}

/// A `checkpoint_data` plugin replaying, after a crash, input it had processed before: its
/// sandbox drops injects already in the stream.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// The input's end when it restarted: beyond it nothing was processed before the crash.
    pub until: i64,
    /// Where in `blink.analysis` its earlier injects start: the mark of every snapshot taken
    /// during the replay keeps it, so a second crash finds them all again.
    pub origin: i64,
    /// It has caught up and its timer fired once since (what a timer injected before the
    /// crash is dropped too).
    pub timer_after: bool,
}

impl Replay {
    /// The replay of plugin `name` restarting at `mark` while the input ends at `until`, and
    /// what it injected after the mark; `None` if it injected nothing there (no crash, or
    /// nothing to repeat).
    pub fn after_crash(
        analysis: &Arc<Partition>,
        mark: Mark,
        name: &str,
        until: i64,
    ) -> Option<(Replay, ReplayedInjects)> {
        let replayed = replayed_since(analysis, mark.analysis, name)?;
        tracing::info!(
            plugin = name,
            from = mark.input,
            until,
            repeats = replayed.len(),
            "replaying what the plugin processed before a crash; its repeated injects are dropped"
        );
        let replay = Replay {
            until,
            origin: mark.analysis,
            timer_after: false,
        };
        Some((replay, replayed))
    }

    /// Whether the replay is over at `position`: every earlier inject was seen again
    /// (`progress`: those left, and those dropped), or the plugin caught up and, if it has a
    /// `timer`, that fired once since.
    pub fn is_over(&self, position: i64, progress: Option<(usize, u64)>, timer: bool) -> bool {
        let caught_up = position >= self.until && (self.timer_after || !timer);
        caught_up || progress.is_none_or(|(left, _)| left == 0)
    }
}

/// The messages `logger` injected into `analysis` from offset `from` on: what a plugin
/// restarting from a mark will inject again. `None` if there are none.
fn replayed_since(analysis: &Arc<Partition>, from: i64, logger: &str) -> Option<ReplayedInjects> {
    let mut replayed = ReplayedInjects::default();
    let mut reader = PartitionReader::new(analysis.clone(), from.max(analysis.log_start()));
    let end = analysis.next_offset();
    let mut scanned = 0u64;
    while reader.position() < end {
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(plugin = logger, error = %e, "cannot read what the plugin injected before the crash; it may inject some of it again");
                break;
            }
        };
        scanned += 1;
        if scanned > MAX_SCANNED_RECORDS {
            tracing::warn!(
                plugin = logger,
                "more than {MAX_SCANNED_RECORDS} records since the plugin's snapshot; later ones may be injected again"
            );
            break;
        }
        let Some(value) = record.value else { continue };
        let Ok(view) = MessageView::parse(&value) else {
            continue;
        };
        if view.logger() == Some(logger.as_bytes()) && !replayed.add(&value) {
            tracing::warn!(
                plugin = logger,
                "the plugin injected too much since its snapshot to remember; later messages may be injected again"
            );
            break;
        }
    }
    (!replayed.is_empty()).then_some(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_saved_when_it_changed_once_a_second_or_at_a_hundredth_of_the_time() {
        let start = Instant::now();
        let saved = SavedState {
            at: start,
            cost: Duration::from_millis(10),
            position: 5,
            injected: 1,
        };
        let later = |ms| start + Duration::from_millis(ms);
        assert!(!saved.wanted(5, 1, later(5000), true), "unchanged");
        assert!(saved.wanted(6, 1, later(0), true), "a clean stop");
        assert!(!saved.wanted(6, 1, later(999), false));
        assert!(saved.wanted(5, 2, later(1000), false), "a timer injected");
        let slow = SavedState {
            cost: Duration::from_millis(40),
            ..saved
        };
        assert!(!slow.wanted(6, 1, later(3999), false));
        assert!(slow.wanted(6, 1, later(4000), false));
    }

    #[test]
    fn a_mark_reads_back_from_the_head_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("analysis.x.data");
        let mark = Mark {
            input: 42,
            analysis: 7,
        };
        std::fs::write(&path, format!("{}x = 1\n", mark.header())).unwrap();
        assert_eq!(Mark::read(&path), Some(mark));
        std::fs::write(&path, "-- preserved by Blink\nx = 1\n").unwrap();
        assert_eq!(Mark::read(&path), None, "a plain preserve_data file");
        assert_eq!(Mark::read(&dir.path().join("missing")), None);
        for bad in [
            "-- blink checkpoint: input=x analysis=1",
            "-- blink checkpoint: input=1",
            "-- blink checkpoint: analysis=1 input=2",
        ] {
            assert_eq!(Mark::parse(bad), None, "{bad}");
        }
    }
}
