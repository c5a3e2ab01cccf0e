//! Per-plugin statistics, written to `output_path` every second.
//!
//! Runners publish their counters now and then (at checkpoints, not per message); inject counts
//! are kept current by the sandbox as it injects, so an input that never returns from
//! `process_message` (a consumer loop) shows them too. Two files:
//!
//! - `plugins.tsv` is Hindsight's file, column for column, one row per *running* plugin, so
//!   the tools and plugins written for it (`plugins_tsv.lua` and the plugin monitors built on
//!   it) read Blink's unchanged: a plugin that stops or is terminated drops out, and they
//!   look for its `.err`. Hindsight's Max Output, Max Instructions and timing columns are not
//!   collected and read 0.
//! - `plugin_status.tsv` is Blink's: every plugin Blink has run, with its state (running,
//!   stopped, or terminated and why), its counters, and Notes — cfg warnings and the counters a
//!   plugin's modules keep (`kafka`: bad records).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::plugin::PluginKind;
pub use crate::plugin::PluginStats;

/// What the hot-load directories did since Blink started (`hotload.tsv`).
#[derive(Debug, Default)]
pub struct HotloadCounters {
    /// Plugins started by a dropped cfg or code.
    pub started: AtomicU64,
    /// Running plugins restarted with a new cfg or code.
    pub restarted: AtomicU64,
    /// Plugins stopped by a `.off`.
    pub stopped: AtomicU64,
    /// Dropped files refused (an `.err` beside them says why).
    pub rejected: AtomicU64,
    /// Accepted files whose plugin then failed to start.
    pub failed: AtomicU64,
    /// The last and the longest pause an analysis restart caused to its thread's other
    /// plugins (the swap happens between two of the thread's messages), in microseconds.
    pub last_swap_pause_us: AtomicU64,
    pub max_swap_pause_us: AtomicU64,
}

impl HotloadCounters {
    /// Records the pause one analysis restart caused.
    pub fn swap_pause(&self, pause: std::time::Duration) {
        let us = pause.as_micros() as u64;
        self.last_swap_pause_us.store(us, Ordering::Relaxed);
        self.max_swap_pause_us.fetch_max(us, Ordering::Relaxed);
    }

    /// The counters as TSV text, one per line.
    pub fn to_tsv(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "Action\tCount\nstarted\t{}\nrestarted\t{}\nstopped\t{}\nrejected\t{}\nfailed\t{}\nlast_swap_pause_us\t{}\nmax_swap_pause_us\t{}\n",
            n(&self.started),
            n(&self.restarted),
            n(&self.stopped),
            n(&self.rejected),
            n(&self.failed),
            n(&self.last_swap_pause_us),
            n(&self.max_swap_pause_us),
        )
    }
}

/// Every plugin's counters, and the hot-load directories'.
#[derive(Debug, Default)]
pub struct Stats {
    plugins: Mutex<BTreeMap<String, Arc<PluginStats>>>,
    pub hotload: HotloadCounters,
    /// Whether a plugin of each kind (input, analysis, output) was terminated or could not
    /// start: what `blink run --batch` exits with.
    failed: [AtomicBool; 3],
}

impl Stats {
    /// The counters of `plugin`, created (state "starting") on first use.
    pub fn plugin(&self, plugin: &str) -> Arc<PluginStats> {
        let mut plugins = self.plugins.lock().unwrap_or_else(|e| e.into_inner());
        plugins
            .entry(plugin.to_owned())
            .or_insert_with(|| {
                let stats = PluginStats::default();
                stats.set_state("starting");
                Arc::new(stats)
            })
            .clone()
    }

    /// Records that a plugin of `kind` was terminated or could not start.
    pub fn failed(&self, kind: PluginKind) {
        self.failed[kind as usize].store(true, Ordering::Relaxed);
    }

    /// hindsight_cli's exit status: 2 if an input failed, plus 4 if an analysis plugin did,
    /// plus 8 if an output did; 0 if none did.
    pub fn batch_status(&self) -> u8 {
        PluginKind::ALL
            .iter()
            .filter(|&&kind| self.failed[kind as usize].load(Ordering::Relaxed))
            .map(|&kind| match kind {
                PluginKind::Input => 2,
                PluginKind::Analysis => 4,
                PluginKind::Output => 8,
            })
            .sum()
    }

    /// `plugins.tsv`: Hindsight's columns, running plugins only.
    pub fn hindsight_tsv(&self) -> String {
        let mut out = String::from(
            "Plugin\tInject Message Count\tInject Message Bytes\tProcess Message Count\tProcess Message Failures\tCurrent Memory\tMax Memory\tMax Output\tMax Instructions\tMessage Matcher Avg (ns)\tMessage Matcher SD (ns)\tProcess Message Avg (ns)\tProcess Message SD (ns)\tTimer Event Avg (ns)\tTimer Event SD (ns)\n",
        );
        for (name, s) in self
            .plugins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if s.state() != "running" {
                continue;
            }
            out.push_str(name);
            for n in s.counters() {
                out.push_str(&format!("\t{n}"));
            }
            out.push_str("\t0\t0\t0\t0\t0\t0\t0\t0\n");
        }
        out
    }

    /// `plugin_status.tsv`: every plugin, its state, counters and notes.
    pub fn status_tsv(&self) -> String {
        let mut out = String::from(
            "Plugin\tState\tInject Message Count\tInject Message Bytes\tProcess Message Count\tProcess Message Failures\tCurrent Memory\tMax Memory\tNotes\n",
        );
        for (name, s) in self
            .plugins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.push_str(name);
            out.push('\t');
            out.push_str(&s.state().replace(['\t', '\n'], " "));
            for n in s.counters() {
                out.push_str(&format!("\t{n}"));
            }
            out.push('\t');
            out.push_str(&s.notes().replace(['\t', '\n'], " "));
            out.push('\n');
        }
        out
    }

    /// Writes `plugins.tsv`, `plugin_status.tsv` and `hotload.tsv` in `dir`, each replaced
    /// whole (temp file and rename: readers never see half).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        replace(&dir.join("plugins.tsv"), &self.hindsight_tsv())?;
        replace(&dir.join("plugin_status.tsv"), &self.status_tsv())?;
        replace(&dir.join("hotload.tsv"), &self.hotload.to_tsv())
    }
}

fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tsv.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_status_adds_hindsight_clis_bits_per_failed_kind() {
        let stats = Stats::default();
        assert_eq!(stats.batch_status(), 0);
        stats.failed(PluginKind::Analysis);
        assert_eq!(stats.batch_status(), 4);
        stats.failed(PluginKind::Analysis);
        stats.failed(PluginKind::Input);
        stats.failed(PluginKind::Output);
        assert_eq!(stats.batch_status(), 14);
    }

    #[test]
    fn plugins_tsv_has_hindsights_columns_and_only_running_plugins() {
        let stats = Stats::default();
        let running = stats.plugin("analysis.counter");
        running.set_state("running");
        running.process_count.store(90, Ordering::Relaxed);
        running.process_failures.store(10, Ordering::Relaxed);
        running.count("bad_records", 2);
        stats.plugin("input.gone").set_state("terminated: boom");

        let hindsight = stats.hindsight_tsv();
        let mut lines = hindsight.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        assert_eq!(header.len(), 15);
        assert_eq!(header[3], "Process Message Count");
        assert_eq!(header[14], "Timer Event SD (ns)");
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), 1, "{hindsight}");
        assert_eq!(rows[0][0], "analysis.counter");
        assert_eq!(rows[0].len(), 15);
        assert_eq!((rows[0][3], rows[0][4]), ("90", "10"));
        assert!(rows[0][1..].iter().all(|c| c.parse::<u64>().is_ok()));

        let status = stats.status_tsv();
        assert!(
            status.contains("analysis.counter\trunning\t0\t0\t90\t10\t0\t0\tbad_records=2\n"),
            "{status}"
        );
        assert!(
            status.contains("input.gone\tterminated: boom\t"),
            "{status}"
        );
    }
}
