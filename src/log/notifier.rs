//! Wake-ups for readers of several partitions at once (an output reading both queues).
//!
//! Every append bumps a generation counter. A reader takes the generation, looks for data in all
//! its partitions, and only if there is none waits for the generation to move on: an append that
//! lands between the look and the wait has already moved it, so no wake-up is lost.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug)]
pub struct Notifier {
    generation: Mutex<u64>,
    changed: Condvar,
    /// The same generation for async waiters (the Kafka server's long-polling fetches), so a
    /// waiting fetch holds no thread.
    watch: tokio::sync::watch::Sender<u64>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            generation: Mutex::new(0),
            changed: Condvar::new(),
            watch: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Notifier {
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after data is published.
    pub fn notify(&self) {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.watch.send_replace(*generation);
        drop(generation);
        self.changed.notify_all();
    }

    /// An async view of the generation: take it before looking for data, then
    /// `changed().await` ends when anything is appended after the look.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch.subscribe()
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
