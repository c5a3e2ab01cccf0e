//! Time as the runners see it, and when each plugin's `timer_event` is due.
//!
//! Live (`blink run`), time is the wall clock and a plugin's timer fires every
//! `ticker_interval` seconds of it. In batch mode (`blink run --batch`) time is the newest
//! message timestamp a runner has read, in whole seconds, as `hindsight_cli` keeps it: a day of
//! recorded data fires a day of `timer_event`s however fast it is read, so a detection's
//! windows and periods behave on replayed data as they did when the data was live. Each
//! runner thread has its own clock, as each Hindsight reader has its own `current_t`.

use std::time::{Duration, Instant};

/// How Blink runs: until stopped, or through what its inputs produce (docs/cli.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Until a signal; time is the wall clock.
    #[default]
    Live,
    /// Until every input has finished and everything they produced has been read; time
    /// follows the messages.
    Batch,
}

/// One runner thread's clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    mode: Mode,
    /// Batch mode: the newest message timestamp read, in seconds (0 before any).
    latest_s: i64,
}

const NANOS: i64 = 1_000_000_000;

impl Clock {
    pub fn new(mode: Mode) -> Self {
        Clock { mode, latest_s: 0 }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A message was read: in batch mode time moves to its timestamp if that is later.
    #[inline]
    pub fn observe(&mut self, timestamp_ns: i64) {
        if self.mode == Mode::Batch {
            self.latest_s = self.latest_s.max(timestamp_ns.div_euclid(NANOS));
        }
    }

    /// Now, in nanoseconds since the epoch: what `timer_event` is handed.
    pub fn now_ns(&self) -> i64 {
        match self.mode {
            Mode::Live => crate::time::now_nanos(),
            Mode::Batch => self.latest_s.saturating_mul(NANOS),
        }
    }
}

/// When a plugin's next `timer_event` is due.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ticker {
    /// `ticker_interval = 0`: only the final `timer_event(ns, true)`.
    Off,
    /// Live: at this instant, then every interval.
    Wall { next: Instant, interval: Duration },
    /// Batch: once the clock reaches this second, then every interval of message time.
    /// hindsight_cli starts its tickers at 0 and its readers ahead of its inputs, so every
    /// timer fires once at time 0, before the first message, then at the first message; the
    /// runners do the same (a plugin counting its timer events lines up with Hindsight's).
    Messages { next_s: i64, interval_s: i64 },
}

impl Ticker {
    pub fn new(mode: Mode, ticker_interval: u64) -> Self {
        if ticker_interval == 0 {
            return Ticker::Off;
        }
        match mode {
            Mode::Live => {
                let interval = Duration::from_secs(ticker_interval);
                Ticker::Wall {
                    next: Instant::now() + interval,
                    interval,
                }
            }
            Mode::Batch => Ticker::Messages {
                next_s: 0,
                interval_s: i64::try_from(ticker_interval).unwrap_or(i64::MAX),
            },
        }
    }

    /// Whether the timer is due by `clock`; if so the next tick is scheduled (a live timer
    /// that fell behind skips the ticks it missed rather than firing them in a burst).
    pub fn due(&mut self, clock: &Clock) -> bool {
        match self {
            Ticker::Off => false,
            Ticker::Wall { next, interval } => {
                let now = Instant::now();
                if *next > now {
                    return false;
                }
                *next = (*next + *interval).max(now);
                true
            }
            Ticker::Messages { next_s, interval_s } => {
                if clock.latest_s < *next_s {
                    return false;
                }
                *next_s = clock.latest_s.saturating_add(*interval_s);
                true
            }
        }
    }

    /// The wall-clock instant of the next tick (live timers only): how long an idle runner
    /// may sleep.
    pub fn next_wall(&self) -> Option<Instant> {
        match self {
            Ticker::Wall { next, .. } => Some(*next),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_time_is_the_newest_message_in_whole_seconds() {
        let mut clock = Clock::new(Mode::Batch);
        assert_eq!(clock.now_ns(), 0);
        clock.observe(1_700_000_000_900_000_000);
        assert_eq!(clock.now_ns(), 1_700_000_000 * NANOS);
        clock.observe(1_600_000_000 * NANOS);
        assert_eq!(
            clock.now_ns(),
            1_700_000_000 * NANOS,
            "time never goes back"
        );
    }

    #[test]
    fn live_clocks_ignore_messages() {
        let mut clock = Clock::new(Mode::Live);
        clock.observe(5 * NANOS);
        assert!(clock.now_ns() > 1_600_000_000 * NANOS);
    }

    #[test]
    fn a_batch_ticker_fires_at_0_and_the_first_message_then_every_interval_of_message_time() {
        let mut clock = Clock::new(Mode::Batch);
        let mut ticker = Ticker::new(Mode::Batch, 60);
        assert!(ticker.due(&clock), "at time 0, before any message");
        assert!(!ticker.due(&clock));
        let start = 1_700_000_000;
        let mut fired = Vec::new();
        // One message every 10 s for 5 minutes.
        for s in (start..start + 300).step_by(10) {
            clock.observe(s * NANOS);
            if ticker.due(&clock) {
                fired.push(s - start);
            }
        }
        assert_eq!(fired, [0, 60, 120, 180, 240]);
    }

    #[test]
    fn a_ticker_of_zero_never_fires() {
        let mut clock = Clock::new(Mode::Batch);
        clock.observe(100 * NANOS);
        assert!(!Ticker::new(Mode::Batch, 0).due(&clock));
        assert!(!Ticker::new(Mode::Live, 0).due(&clock));
    }

    #[test]
    fn a_live_ticker_waits_its_interval() {
        let clock = Clock::new(Mode::Live);
        let mut ticker = Ticker::new(Mode::Live, 3600);
        assert!(!ticker.due(&clock));
        assert!(ticker.next_wall().is_some());
    }
}
