//! Wake-ups for readers of several partitions at once (an output reading both queues).
//!
//! Every append bumps a generation counter. A reader takes the generation, looks for data in all
//! its partitions, and only if there is none waits for the generation to move on: an append that
//! lands between the look and the wait has already moved it, so no wake-up is lost.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Notifier {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Notifier {
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after data is published.
    pub fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.changed.notify_all();
    }

    /// Waits until the generation differs from `seen` or `timeout` passes; true if it changed.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let guard = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |g| *g == seen)
            .unwrap_or_else(|e| e.into_inner());
        *guard != seen
    }
}
