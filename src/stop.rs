//! The one way anything in Blink is asked to stop, and waits to be.
//!
//! A [`StopToken`] is a flag that can be waited on: a thread blocks in [`StopToken::wait_timeout`]
//! (a condition variable), a tokio task awaits [`StopToken::stopped`], and anything else that
//! sleeps on its own terms (a parked thread, a reader waiting on the log's notifier) registers
//! an [`StopToken::on_stop`] callback that wakes it. Nothing polls the flag in a sleep loop.
//!
//! Tokens are independent: Blink stops in data-flow order (inputs, then analysis, then outputs)
//! by stopping one token after another, so there is no parent that stops everything at once.
//! The process-wide token (signals, a plugin's `shutdown_on_terminate`) only tells `blink run`
//! to begin that ordered stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A stop request that can be waited on. Clones share it.
#[derive(Clone, Default)]
pub struct StopToken(Arc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    /// Callbacks to run at the stop; taken (and so run once) by [`StopToken::stop`].
    waiting: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    wake: Condvar,
    notify: tokio::sync::Notify,
}

impl std::fmt::Debug for StopToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopToken")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl StopToken {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Box<dyn FnOnce() + Send>>> {
        self.0.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks everything waiting on this token to stop; later calls do nothing.
    pub fn stop(&self) {
        let callbacks = {
            let mut waiting = self.lock();
            if self.0.stopped.swap(true, Ordering::SeqCst) {
                return;
            }
            std::mem::take(&mut *waiting)
        };
        self.0.wake.notify_all();
        self.0.notify.notify_waiters();
        for callback in callbacks {
            callback();
        }
    }

    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// Runs `callback` once when the token is stopped (at once, here, if it already is): how a
    /// thread that waits on something else — parked, or on the log's notifier — is woken.
    pub fn on_stop(&self, callback: impl FnOnce() + Send + 'static) {
        let mut waiting = self.lock();
        if self.is_stopped() {
            drop(waiting);
            callback();
            return;
        }
        waiting.push(Box::new(callback));
    }

    /// Waits up to `timeout` for the stop (`Duration::MAX`: for ever); true if the token is
    /// stopped.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            self.wait();
            return true;
        };
        let mut waiting = self.lock();
        while !self.is_stopped() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            waiting = self
                .0
                .wake
                .wait_timeout(waiting, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Waits for the stop.
    pub fn wait(&self) {
        let mut waiting = self.lock();
        while !self.is_stopped() {
            waiting = self.0.wake.wait(waiting).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Resolves once the token is stopped (for tokio tasks).
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a stop between the two is not missed.
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StopToken;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn waiters_and_callbacks_see_the_stop_once() {
        let token = StopToken::new();
        assert!(!token.wait_timeout(Duration::from_millis(10)));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        token.on_stop(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let waiter = {
            let token = token.clone();
            std::thread::spawn(move || token.wait_timeout(Duration::from_secs(60)))
        };
        token.stop();
        token.stop();
        assert!(waiter.join().unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Registered after the stop: runs at once.
        let counted = calls.clone();
        token.on_stop(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(token.is_stopped());
        token.wait();
    }

    #[test]
    fn a_task_awaiting_the_stop_wakes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let token = StopToken::new();
        let stopper = token.clone();
        runtime.block_on(async move {
            let waiting = tokio::spawn({
                let token = token.clone();
                async move { token.stopped().await }
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            stopper.stop();
            waiting.await.unwrap();
            // Already stopped: resolves at once.
            token.stopped().await;
        });
    }
}
