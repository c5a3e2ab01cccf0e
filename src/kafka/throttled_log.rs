//! Warnings a client can cause over and over — refused connections, failed authentications,
//! refused requests — logged at most once a second, with how many were left out since: a
//! client retrying every few milliseconds must not flood the log (or the disk under it).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of repeated warning.
#[derive(Debug)]
pub struct ThrottledLog {
    what: &'static str,
    /// When the last line was written, and how many were left out since.
    state: Mutex<(Option<Instant>, u64)>,
}

/// At most one line per kind in this long.
const EVERY: Duration = Duration::from_secs(1);

impl ThrottledLog {
    pub const fn new(what: &'static str) -> Self {
        ThrottledLog {
            what,
            state: Mutex::new((None, 0)),
        }
    }

    /// Logs `message()` as a warning unless one was logged less than a second ago; the
    /// message is only built when it is logged.
    pub fn warn(&self, message: impl FnOnce() -> String) {
        if let Some(left_out) = self.due() {
            tracing::warn!(left_out, "kafka: {}: {}", self.what, message());
        }
    }

    /// `Some(lines left out since the last one)` if a line is due now.
    fn due(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, left_out) = &mut *state;
        if last.is_some_and(|t| t.elapsed() < EVERY) {
            *left_out += 1;
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(left_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_counting_what_was_left_out() {
        let log = ThrottledLog::new("test");
        assert_eq!(log.due(), Some(0));
        for _ in 0..5 {
            assert_eq!(log.due(), None);
        }
        log.state.lock().unwrap().0 = Some(Instant::now() - EVERY);
        assert_eq!(log.due(), Some(5));
        assert_eq!(log.due(), None);
    }
}
