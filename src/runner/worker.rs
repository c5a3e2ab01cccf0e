//! A runner's thread and its stop flag: the thread wrapper the three runners share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

pub struct Worker {
    running: Arc<AtomicBool>,
    thread: Thread,
    /// Taken by the first join; behind a lock so a shared worker can be joined through `&self`.
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Starts `body` on a thread called `name`; `body` runs until the flag it gets turns false.
    pub fn spawn(
        name: String,
        body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || body(flag))?;
        Ok(Worker {
            running,
            thread: handle.thread().clone(),
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Asks the thread to finish, and wakes it if it is parked (see [`Worker::wake`]).
    pub fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        self.wake();
    }

    /// Unparks the thread: a runner with nothing to do waits in `std::thread::park_timeout`
    /// (not in a polling sleep), and is woken here when there is something to look at.
    pub fn wake(&self) {
        self.thread.unpark();
    }

    fn take_handle(&self) -> Option<JoinHandle<()>> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Waits for the thread.
    pub fn join(&self) {
        if let Some(handle) = self.take_handle() {
            let _ = handle.join();
        }
    }

    /// Waits up to `timeout`; false if the thread is still running (it is then left behind).
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        let Some(handle) = self.take_handle() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished = handle.is_finished();
        if finished {
            let _ = handle.join();
        }
        finished
    }
}
