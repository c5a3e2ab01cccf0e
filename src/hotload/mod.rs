//! Hot-load directories: files dropped into `hs_load/{input,analysis,output}/` start, restart
//! and stop plugins while Blink runs.
//!
//! The directories are watched with inotify (through `notify`), and rescanned every second in
//! case an event was missed (a full event queue, a directory replaced). A file is acted on once it
//! has been quiet for [`QUIET`] and its size and modification time have not changed over that
//! time, so an editor saving in place, `cp` of a large file or a cfg written in several pieces is
//! read once, whole; temporary and editor files are ignored ([`files::classify`]). A rejected
//! file stays in `hs_load` with an `.err` beside it and is looked at again when it changes.

mod apply;
mod files;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

pub use apply::err_path;
pub use files::{Dropped, Ext, Fingerprint, classify, fingerprint};

use crate::plugin::PluginKind;
use crate::runner::{Pipeline, Worker};

/// How long a file must be left alone before it is read.
pub const QUIET: Duration = Duration::from_millis(100);
/// How often the directories are listed as a safety net for missed events.
const RESCAN: Duration = Duration::from_secs(1);

/// The hot-load thread.
pub struct HotLoader {
    worker: Worker,
}

/// What the hot-load thread waits for.
enum Wake {
    File(notify::Result<notify::Event>),
    Stop,
}

impl HotLoader {
    /// Watches `load_dir` (creating its three directories) and applies what appears there to
    /// `pipeline`. What is already there when it starts is applied first.
    pub fn start(load_dir: PathBuf, pipeline: Arc<Pipeline>) -> std::io::Result<Self> {
        for kind in PluginKind::ALL {
            std::fs::create_dir_all(load_dir.join(kind.dir()))?;
        }
        let (wake, inbox) = mpsc::channel();
        let events = wake.clone();
        let worker = Worker::spawn("blink-hotload".into(), move |stop| {
            let span = tracing::info_span!("hotload");
            let _entered = span.enter();
            let mut watch = Watch::new(load_dir, pipeline);
            watch.clear_stale_errors();
            watch.run(&stop, events, &inbox);
        })?;
        // The watcher waits on its event channel: a stop is one more event there.
        worker.token().on_stop(move || {
            let _ = wake.send(Wake::Stop);
        });
        Ok(HotLoader { worker })
    }

    /// Stops watching (a file being applied is finished first).
    pub fn stop(self) {
        self.worker.stop();
        self.worker.join();
    }
}

/// A refused file as it was refused.
struct Rejection {
    fingerprint: Option<Fingerprint>,
    code_missing: bool,
}

/// A file seen changing, waiting to be quiet.
struct Pending {
    last_change: Instant,
    fingerprint: Option<Fingerprint>,
}

struct Watch {
    /// As configured (often relative): the paths Blink shows and acts on.
    load_dir: PathBuf,
    /// The same directory as an absolute path: the watcher reports events under it.
    watched: PathBuf,
    pipeline: Arc<Pipeline>,
    pending: HashMap<PathBuf, Pending>,
    /// Files rejected as they are now: not retried until they change (or, for a cfg refused
    /// because its code was missing, until that code is dropped).
    rejected: HashMap<PathBuf, Rejection>,
    /// Code waiting for the cfg in `hs_load` that names it, as it is now: looked at again when
    /// it changes or when a cfg of its directory is applied, refused or removed.
    waiting: HashMap<PathBuf, Option<Fingerprint>>,
    /// The version of each waiting file whose arrival already gave the refused cfgs of its
    /// directory another try (once per version: a cfg refused for want of it may take it now).
    retried_for: HashMap<PathBuf, Option<Fingerprint>>,
}

impl Watch {
    fn new(load_dir: PathBuf, pipeline: Arc<Pipeline>) -> Self {
        // notify joins a relative directory to the current one; its events come back absolute.
        let watched = std::env::current_dir()
            .map(|cwd| cwd.join(&load_dir))
            .unwrap_or_else(|_| load_dir.clone());
        Watch {
            watched,
            load_dir,
            pipeline,
            pending: HashMap::new(),
            rejected: HashMap::new(),
            waiting: HashMap::new(),
            retried_for: HashMap::new(),
        }
    }

    /// `.err` files in `hs_load` from an earlier run describe files that are looked at afresh.
    fn clear_stale_errors(&self) {
        for kind in PluginKind::ALL {
            let Ok(entries) = std::fs::read_dir(self.load_dir.join(kind.dir())) else {
                continue;
            };
            for path in entries.filter_map(Result::ok).map(|e| e.path()) {
                if path.extension().is_some_and(|e| e == "err") {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }

    fn run(
        &mut self,
        stop: &crate::stop::StopToken,
        events: mpsc::Sender<Wake>,
        inbox: &mpsc::Receiver<Wake>,
    ) {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let _ = events.send(Wake::File(event));
        });
        let _watcher = match watcher {
            Ok(mut watcher) => {
                for kind in PluginKind::ALL {
                    let dir = self.watched.join(kind.dir());
                    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; relying on rescans every {RESCAN:?}");
                    }
                }
                Some(watcher)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no file watcher; relying on rescans every {RESCAN:?}");
                None
            }
        };
        tracing::info!(dir = %self.load_dir.display(), "watching for plugins to load");
        let mut next_rescan = Instant::now();
        while !stop.is_stopped() {
            let now = Instant::now();
            if now >= next_rescan {
                self.rescan(now);
                next_rescan = now + RESCAN;
            }
            let wake = self
                .pending
                .values()
                .map(|p| p.last_change + QUIET)
                .min()
                .unwrap_or(next_rescan)
                .min(next_rescan);
            // Until a file event, a stop, the next quiet file or the next rescan: no polling.
            let timeout = wake.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(timeout) {
                Ok(Wake::Stop) => break,
                Ok(Wake::File(event)) => {
                    self.note(event);
                    while let Ok(Wake::File(event)) = inbox.try_recv() {
                        self.note(event);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            self.apply_ready(Instant::now());
        }
    }

    fn note(&mut self, event: notify::Result<notify::Event>) {
        match event {
            Ok(event) => {
                use notify::EventKind::Access;
                use notify::event::{AccessKind, AccessMode};
                // Opening or reading a file changes nothing, and Blink reads what it checks:
                // acting on those events would look at every waiting file again and again.
                if matches!(event.kind, Access(kind) if kind != AccessKind::Close(AccessMode::Write))
                {
                    return;
                }
                let now = Instant::now();
                for path in event.paths {
                    // Back to the configured form, which `classify` and the messages use.
                    if let Ok(inside) = path.strip_prefix(&self.watched) {
                        self.touch(self.load_dir.join(inside), now, "event");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "file watcher error; the next rescan catches up"),
        }
    }

    /// Notes that `path` changed (or appeared) now; `via` says who saw it (an event or a rescan).
    fn touch(&mut self, path: PathBuf, now: Instant, via: &'static str) {
        if classify(&self.load_dir, &path).is_none() {
            return;
        }
        if !self.pending.contains_key(&path) {
            tracing::debug!(file = %path.display(), via, "hot-load: noticed");
        }
        let fingerprint = fingerprint(&path);
        let pending = self.pending.entry(path).or_insert(Pending {
            last_change: now,
            fingerprint,
        });
        pending.last_change = now;
        pending.fingerprint = fingerprint;
    }

    /// Lists the directories: files not pending and not rejected as they are become pending.
    fn rescan(&mut self, now: Instant) {
        for kind in PluginKind::ALL {
            let Ok(entries) = std::fs::read_dir(self.load_dir.join(kind.dir())) else {
                continue;
            };
            for path in entries.filter_map(Result::ok).map(|e| e.path()) {
                if self.pending.contains_key(&path) {
                    continue;
                }
                // Refused or waiting as it is now: nothing to look at (one stat to tell).
                let seen = self
                    .rejected
                    .get(&path)
                    .map(|r| r.fingerprint)
                    .or_else(|| self.waiting.get(&path).copied());
                if seen.is_some_and(|seen| seen == fingerprint(&path)) {
                    continue;
                }
                self.touch(path, now, "rescan");
            }
        }
        // A refused cfg that was removed may have held code back: let that code look again.
        let removed: Vec<PathBuf> = self
            .rejected
            .keys()
            .filter(|p| !p.exists())
            .cloned()
            .collect();
        for path in removed {
            self.rejected.remove(&path);
            self.stop_waiting_in(path.parent());
        }
        self.waiting.retain(|path, _| path.exists());
        self.retried_for.retain(|path, _| path.exists());
    }

    /// Code waiting in `dir` is looked at again on the next rescan.
    fn stop_waiting_in(&mut self, dir: Option<&Path>) {
        self.waiting.retain(|p, _| p.parent() != dir);
    }

    /// Applies the files that have been quiet for [`QUIET`] with an unchanged fingerprint.
    fn apply_ready(&mut self, now: Instant) {
        let mut ready = Vec::new();
        self.pending.retain(|path, pending| {
            if now < pending.last_change + QUIET {
                return true;
            }
            let current = fingerprint(path);
            if current.is_none() {
                return false; // gone (moved away, or a temporary name)
            }
            if current != pending.fingerprint {
                // Still being written: wait for another quiet period.
                pending.fingerprint = current;
                pending.last_change = now;
                return true;
            }
            ready.push(path.clone());
            false
        });
        let mut ready: Vec<Dropped> = ready
            .iter()
            .filter_map(|p| classify(&self.load_dir, p))
            .collect();
        if ready.is_empty() {
            return;
        }
        ready.sort_by(|a, b| (a.ext, &a.path).cmp(&(b.ext, &b.path)));
        // Owned, so the applier borrows nothing of `self` while its state is updated below.
        let (load_dir, pipeline) = (self.load_dir.clone(), self.pipeline.clone());
        let applier = apply::Applier {
            load_dir: &load_dir,
            pipeline: &pipeline,
        };
        for file in ready {
            if !file.path.exists() {
                continue; // applied with another file (a cfg takes its .lua along)
            }
            let started = Instant::now();
            let result = applier.apply(&file);
            if file.ext == Ext::Cfg {
                // Code this cfg named may be free to go now (or be gone with it).
                self.stop_waiting_in(file.path.parent());
            }
            match result {
                Ok(apply::Applied::WaitingForCfg) => {
                    let version = fingerprint(&file.path);
                    self.waiting.insert(file.path.clone(), version);
                    if self.retried_for.insert(file.path.clone(), version) != Some(version) {
                        // New code: a cfg refused because its code was missing may take it now.
                        let dir = file.path.parent().map(Path::to_owned);
                        self.rejected
                            .retain(|p, r| !r.code_missing || p.parent() != dir.as_deref());
                    }
                }
                Ok(apply::Applied::Done) => {
                    self.rejected.remove(&file.path);
                    if file.ext == Ext::Lua {
                        // Cfgs waiting for this code are worth another look.
                        let dir = file.path.parent().map(Path::to_owned);
                        self.rejected.retain(|p, _| p.parent() != dir.as_deref());
                    }
                    tracing::debug!(file = %file.path.display(), took = ?started.elapsed(), "hot-load: applied");
                }
                Err(rejected) => {
                    let rejection = Rejection {
                        fingerprint: fingerprint(&file.path),
                        code_missing: rejected.code_missing,
                    };
                    self.rejected.insert(file.path.clone(), rejection);
                }
            }
        }
    }
}
