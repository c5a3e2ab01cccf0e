//! One plugin's counters, as `plugins.tsv` and `plugin_status.tsv` show them: written by its runner, by its sandbox as
//! it injects, and by the host modules it uses; read by the stats writer on another thread.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One plugin's counters.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub inject_count: AtomicU64,
    pub inject_bytes: AtomicU64,
    pub process_count: AtomicU64,
    pub process_failures: AtomicU64,
    pub memory: AtomicU64,
    pub max_memory: AtomicU64,
    state: Mutex<String>,
    /// Warnings about the plugin's cfg (a likely misspelt key), shown as they are.
    warnings: Mutex<Vec<String>>,
    /// Named counts kept by the plugin's host modules (e.g. the `kafka` consumer's bad records).
    counts: Mutex<BTreeMap<String, u64>>,
}

impl PluginStats {
    pub fn set_state(&self, state: impl Into<String>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state.into();
    }

    pub fn state(&self) -> String {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the cfg warnings (a restarted plugin has a new cfg).
    pub fn set_warnings(&self, warnings: Vec<String>) {
        *self.warnings.lock().unwrap_or_else(|e| e.into_inner()) = warnings;
    }

    /// Adds `n` to the count `name`.
    pub fn count(&self, name: &str, n: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(name) {
            Some(c) => *c += n,
            None => {
                // Bounded: a plugin naming counts without end keeps its first 64.
                if counts.len() < 64 {
                    counts.insert(name.to_owned(), n);
                }
            }
        }
    }

    /// The Notes column: warnings, then `name=count` pairs.
    pub fn notes(&self) -> String {
        let warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut notes: Vec<String> = warnings.clone();
        notes.extend(counts.iter().map(|(name, n)| format!("{name}={n}")));
        notes.join("; ")
    }

    /// The counters both stats files show, in their column order: inject count and bytes,
    /// process_message count and failures, current and peak memory.
    pub fn counters(&self) -> [u64; 6] {
        [
            &self.inject_count,
            &self.inject_bytes,
            &self.process_count,
            &self.process_failures,
            &self.memory,
            &self.max_memory,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }

    /// Publishes the sandbox's inject totals. Only the plugin's own thread writes them, so a
    /// plain store is enough (no read-modify-write on the inject path).
    pub fn injected(&self, count: u64, bytes: u64) {
        self.inject_count.store(count, Ordering::Relaxed);
        self.inject_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Records the Lua state's current memory use.
    pub fn memory_now(&self, bytes: usize) {
        self.memory.store(bytes as u64, Ordering::Relaxed);
        self.max_memory.fetch_max(bytes as u64, Ordering::Relaxed);
    }
}
