//! A runner's thread and its stop token: the thread wrapper the three runners share.

use std::sync::Mutex;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crate::stop::StopToken;

pub struct Worker {
    /// Stopped to ask the thread to finish; the thread's body gets a clone.
    stop: StopToken,
    /// Stopped when the thread's body has returned (or panicked): what a join with a deadline
    /// waits on.
    finished: StopToken,
    thread: Thread,
    /// Taken by the first join; behind a lock so a shared worker can be joined through `&self`.
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// Marks the thread finished however its body ends, a panic included.
struct Finished(StopToken);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Worker {
    /// Starts `body` on a thread called `name`; `body` runs until the token it gets is stopped.
    /// Stopping it also unparks the thread, so a runner waiting in `park` sees it at once.
    pub fn spawn(
        name: String,
        body: impl FnOnce(StopToken) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop, finished) = (StopToken::new(), StopToken::new());
        let (token, done) = (stop.clone(), Finished(finished.clone()));
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            let _done = done;
            body(token)
        })?;
        let thread = handle.thread().clone();
        let unpark = thread.clone();
        stop.on_stop(move || unpark.unpark());
        Ok(Worker {
            stop,
            finished,
            thread,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// The token the thread runs under: a runner registers its own wake-ups on it.
    pub fn token(&self) -> &StopToken {
        &self.stop
    }

    /// Asks the thread to finish.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Unparks the thread: a runner with nothing to do waits in `std::thread::park_timeout`
    /// (not in a polling sleep), and is woken here when there is something to look at.
    pub fn wake(&self) {
        self.thread.unpark();
    }

    fn take_handle(&self) -> Option<JoinHandle<()>> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Whether the thread's body has returned.
    pub fn finished(&self) -> bool {
        self.finished.is_stopped()
    }

    /// Waits for the thread.
    pub fn join(&self) {
        if let Some(handle) = self.take_handle() {
            let _ = handle.join();
        }
    }

    /// Waits up to `timeout`; false if the thread is still running (it is then left behind).
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        if !self.finished.wait_timeout(timeout) {
            return false;
        }
        self.join();
        true
    }
}
