//! Reloading the configuration while the server serves.
//!
//! A reload is asked for by SIGHUP (the `control` thread), `POST /reload`
//! (the `admin` thread) or a watched file that changed (`watch`); each is
//! an [`Event`] on the main thread's queue, and the main thread, idle
//! once the shards serve, is the one that reloads: no shard ever reads a
//! file, fetches or compiles. A reload reads and validates the whole file,
//! refuses it if a setting that only a restart applies changed, builds the
//! next [`Generation`] (modules already compiled are reused, by content),
//! and only then sends it to every shard ([`Switch`]). Each shard sets up
//! its pools for it, warms them while slots are to spare, and swaps it in
//! between requests; requests in flight finish on the generation they
//! started with, which is dropped, instances and all, after the last of
//! them. The reload is over when every shard has said so. A rejected
//! reload changes nothing.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Shared;
use super::generation;
use super::routes::Generation;
use super::shutdown::ShardFlags;
use super::watch::Watcher;
use crate::config::{self, ConfigError, RouteChanges};
use crate::error::StartupError;
use crate::kv::StoreThread;
use crate::sources::Progress;
use crate::stats::Counter;
use crate::wasm::{ModuleCache, Warmed};

/// After a watched file changes, how long to wait for it to stop changing
/// (an editor writes, renames, touches) before reloading once.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(300);

/// However often a watched file changes, a reload starts this long after
/// the first change at the latest.
const WATCH_DEBOUNCE_MAX: Duration = Duration::from_secs(3);

/// How long shards may take to set up and swap in a generation (pools and
/// warm instances) before the reload is reported incomplete.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(60);
/// While waiting for the shards, how often the reloader looks for a stop.
const STOP_LOOK: Duration = Duration::from_millis(100);

/// What the main thread is asked to do while the shards serve.
pub enum Event {
    Reload(ReloadRequest),
    /// A watched file changed (`--watch`).
    FilesChanged,
    /// A stop signal: the shards are draining; no more reloads.
    Stop,
}

/// One request for a reload.
pub struct ReloadRequest {
    pub trigger: Trigger,
    /// Told the outcome (the admin listener's answer to `POST /reload`).
    pub reply: Option<Reply>,
}

pub type Reply = Box<dyn FnOnce(&Outcome) + Send>;

/// Who asked for a reload, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    Admin,
    Watch,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Admin => "POST /reload",
            Trigger::Watch => "--watch",
        }
    }
}

/// What a shard is sent: serve `generation` from now on.
pub struct Switch {
    pub generation: Arc<Generation>,
    /// Told once the shard serves it.
    pub done: Sender<Switched>,
}

/// A shard's answer to a [`Switch`].
pub struct Switched {
    pub shard: usize,
    pub warmed: Warmed,
}

/// How reloads end, as the metric's `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Rejected,
    /// Built and sent, but some shard did not confirm in time (it switches
    /// when it next runs its loop).
    Incomplete,
}

impl ReloadResult {
    pub const ALL: [ReloadResult; 3] = [ReloadResult::Applied, ReloadResult::Rejected, ReloadResult::Incomplete];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Rejected => "rejected",
            ReloadResult::Incomplete => "incomplete",
        }
    }
}

/// The generation every shard serves, and the reload counters: written by
/// the main thread, read by the admin listener (`/config`, `/metrics`)
/// and the control thread (the stop settings).
pub struct Current {
    generation: Mutex<Arc<Generation>>,
    reloads: [Counter; ReloadResult::ALL.len()],
}

impl Current {
    pub fn new(generation: Arc<Generation>) -> Current {
        Current {
            generation: Mutex::new(generation),
            reloads: Default::default(),
        }
    }

    pub fn generation(&self) -> Arc<Generation> {
        self.generation.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, generation: Arc<Generation>) {
        *self.generation.lock().unwrap_or_else(PoisonError::into_inner) = generation;
    }

    pub fn reloads(&self, result: ReloadResult) -> u64 {
        self.reloads[result as usize].get()
    }
}

/// How one reload ended: what `POST /reload` answers (as JSON) and the log
/// says.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Applied {
        generation: u64,
        #[serde(flatten)]
        changes: Changes,
        /// From the request to the last shard's confirmation.
        elapsed_ms: u64,
        /// Shards that skipped warm-up to keep instance slots for requests.
        warm_up_skipped: Vec<usize>,
    },
    Rejected {
        /// The generation that keeps serving.
        generation: u64,
        error: ReloadError,
    },
    Incomplete {
        generation: u64,
        /// Shards that did not confirm.
        waiting: Vec<usize>,
    },
}

impl Outcome {
    /// A reload refused because the server is stopping; `generation` keeps
    /// serving until the end.
    pub fn stopping(generation: u64) -> Outcome {
        Outcome::Rejected {
            generation,
            error: ReloadError::stopping(),
        }
    }

    /// The status of `POST /reload`'s answer.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Applied { .. } => 200,
            Outcome::Rejected { error, .. } if error.stopping => 503,
            Outcome::Rejected { .. } => 422,
            Outcome::Incomplete { .. } => 500,
        }
    }

    pub fn to_json(&self) -> String {
        // Plain numbers and strings: it always serializes.
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    fn result(&self) -> ReloadResult {
        match self {
            Outcome::Applied { .. } => ReloadResult::Applied,
            Outcome::Rejected { .. } => ReloadResult::Rejected,
            Outcome::Incomplete { .. } => ReloadResult::Incomplete,
        }
    }
}

/// What a reload changed, by route name.
#[derive(Debug, Default, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Routes whose module's content changed.
    pub modules_replaced: Vec<String>,
    /// Routes with another setting changed (limits, `env`, policy, ...).
    pub changed: Vec<String>,
}

/// Why a reload was rejected, located in the file where that is possible.
#[derive(Debug, Serialize)]
pub struct ReloadError {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Refused because the server is stopping, not because of the file.
    #[serde(skip)]
    stopping: bool,
}

impl ReloadError {
    fn unlocated(message: String) -> ReloadError {
        ReloadError {
            message,
            file: None,
            line: None,
            column: None,
            key: None,
            stopping: false,
        }
    }

    fn stopping() -> ReloadError {
        ReloadError {
            stopping: true,
            ..ReloadError::unlocated("the server is stopping".into())
        }
    }
}

impl From<StartupError> for ReloadError {
    fn from(error: StartupError) -> ReloadError {
        let message = error.to_string();
        let (file, at, key) = match &error {
            StartupError::Config(ConfigError::At { path, at, key, .. }) => (path, *at, key),
            StartupError::Guest(guest) => (&guest.path, guest.at, &guest.key),
            StartupError::Config(ConfigError::Read { path, .. }) => {
                return ReloadError {
                    file: Some(path.display().to_string()),
                    ..ReloadError::unlocated(message)
                };
            }
            _ => return ReloadError::unlocated(message),
        };
        ReloadError {
            message,
            file: Some(file.display().to_string()),
            line: Some(at.line),
            column: Some(at.column),
            key: Some(key.clone()),
            stopping: false,
        }
    }
}

/// The main thread's state while the shards serve.
pub struct Reloader {
    /// The configuration file, read again at every reload.
    pub path: PathBuf,
    pub shared: Arc<Shared>,
    pub cache: ModuleCache,
    pub current: Arc<Current>,
    /// Each shard's mailbox, in shard order.
    pub shards: Vec<Sender<Switch>>,
    pub flags: Arc<ShardFlags>,
    /// With `--watch`: told which files to watch after each reload.
    pub watcher: Option<Watcher>,
    /// The `store` thread: a reload opens the embedded stores it needs.
    pub stores: StoreThread,
    /// The number of the last generation built. Numbers are never reused,
    /// even for a generation some shards got and others did not.
    pub last_number: u64,
}

impl Reloader {
    /// Serves reload requests until a stop (or until every sender is gone).
    pub fn serve(mut self, events: Receiver<Event>) {
        while let Ok(first) = events.recv() {
            let mut batch = Batch::default();
            batch.add(first);
            // Requests that queued up meanwhile share one reload; after a
            // file change, wait for the writes to settle (a file written
            // without pause still reloads within WATCH_DEBOUNCE_MAX).
            let settle_by = Instant::now() + WATCH_DEBOUNCE_MAX;
            loop {
                let next = if batch.files_changed && !batch.stop {
                    let wait = WATCH_DEBOUNCE.min(settle_by.saturating_duration_since(Instant::now()));
                    events.recv_timeout(wait).ok()
                } else {
                    events.try_recv().ok()
                };
                match next {
                    Some(event) => batch.add(event),
                    None => break,
                }
            }
            if batch.stop {
                batch.answer(&Outcome::stopping(self.current.generation().number));
                return;
            }
            let trigger = batch.trigger.unwrap_or(Trigger::Watch);
            let outcome = self.reload(trigger);
            self.current.reloads[outcome.result() as usize].bump();
            batch.answer(&outcome);
        }
    }

    /// Reloads the configuration file once.
    fn reload(&mut self, trigger: Trigger) -> Outcome {
        let started = Instant::now();
        let running = self.current.generation();
        tracing::info!(trigger = trigger.as_str(), "reloading {}", self.path.display());
        let outcome = match self.prepare(&running) {
            Ok(_) if self.flags.stop_requested() => Outcome::stopping(running.number),
            Ok((generation, changes)) => self.switch(Arc::new(generation), changes, started),
            Err(error) => Outcome::Rejected {
                generation: running.number,
                error,
            },
        };
        // Compiled guests only a rejected or replaced generation used go.
        let current = self.current.generation();
        self.cache.retain(&current.module_digests().collect());
        if let Some(watcher) = &mut self.watcher {
            watcher.watch(&current.config);
        }
        match &outcome {
            Outcome::Applied {
                generation,
                changes,
                elapsed_ms,
                warm_up_skipped,
            } => {
                tracing::info!(
                    trigger = trigger.as_str(),
                    elapsed_ms,
                    "generation {generation} active on all shards: added {:?}, removed {:?}, modules replaced {:?}, changed {:?}",
                    changes.added,
                    changes.removed,
                    changes.modules_replaced,
                    changes.changed
                );
                if !warm_up_skipped.is_empty() {
                    tracing::warn!(
                        shards = ?warm_up_skipped,
                        "warm-up skipped: instance slots are kept for requests; instances are made on demand"
                    );
                }
            }
            Outcome::Rejected { generation, error } => tracing::error!(
                trigger = trigger.as_str(),
                "reload rejected; generation {generation} keeps serving: {}",
                error.message
            ),
            Outcome::Incomplete { generation, waiting } => tracing::error!(
                trigger = trigger.as_str(),
                "generation {generation} was sent to every shard, but shard(s) {waiting:?} did not switch within {} s",
                SWITCH_TIMEOUT.as_secs()
            ),
        }
        outcome
    }

    /// Reads, validates, fetches and compiles the next generation.
    fn prepare(&mut self, running: &Generation) -> Result<(Generation, Changes), ReloadError> {
        let config = config::load(&self.path).map_err(|e| ReloadError::from(StartupError::Config(e)))?;
        // Compared with the start's: those are the ones in force.
        let restart_only = config::restart_only_changes(&self.shared.config, &config);
        if !restart_only.is_empty() {
            let keys = restart_only.join(", ");
            let message =
                format!("{keys} changed: these settings apply only when the server starts; restart it to change them");
            return Err(ReloadError {
                key: Some(keys),
                file: Some(self.path.display().to_string()),
                ..ReloadError::unlocated(message)
            });
        }
        super::open_used_stores(&self.stores, &config).map_err(ReloadError::unlocated)?;
        let routes = RouteChanges::between(&running.config.routes, &config.routes);
        let generation = generation::build(
            config,
            self.last_number + 1,
            &self.shared.runtime,
            &mut self.cache,
            &Progress::new(),
        )?;
        let modules_replaced = (generation.routes.iter())
            .filter(|r| {
                let before = running.module_digest(&r.name);
                before.is_some() && before != generation.module_digest(&r.name)
            })
            .map(|r| r.name.clone())
            .collect();
        let changes = Changes {
            added: routes.added,
            removed: routes.removed,
            modules_replaced,
            changed: routes.changed,
        };
        self.last_number = generation.number;
        Ok((generation, changes))
    }

    /// Sends `generation` to every shard and waits until all serve it.
    fn switch(&mut self, generation: Arc<Generation>, changes: Changes, started: Instant) -> Outcome {
        let number = generation.number;
        let (done, confirmations) = mpsc::channel();
        let mut waiting: Vec<usize> = Vec::new();
        let mut gone: Vec<usize> = Vec::new();
        for (shard, mailbox) in self.shards.iter().enumerate() {
            let switch = Switch {
                generation: generation.clone(),
                done: done.clone(),
            };
            match mailbox.send(switch) {
                Ok(()) => waiting.push(shard),
                Err(_) => gone.push(shard),
            }
        }
        drop(done);
        // Shards that got it switch whatever happens next: from here on it
        // is the current generation.
        self.current.set(generation);
        let deadline = Instant::now() + SWITCH_TIMEOUT;
        let mut warm_up_skipped = Vec::new();
        while !waiting.is_empty() && Instant::now() < deadline {
            // A draining shard no longer reads its inbox: a stop ends the
            // wait, so that the process is not held up by it.
            if self.flags.stop_requested() {
                break;
            }
            match confirmations.recv_timeout(STOP_LOOK.min(deadline.saturating_duration_since(Instant::now()))) {
                Ok(switched) => {
                    waiting.retain(|&s| s != switched.shard);
                    if switched.warmed == Warmed::SlotsShort {
                        warm_up_skipped.push(switched.shard);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        waiting.extend(gone);
        if !waiting.is_empty() {
            waiting.sort_unstable();
            return Outcome::Incomplete {
                generation: number,
                waiting,
            };
        }
        warm_up_skipped.sort_unstable();
        Outcome::Applied {
            generation: number,
            changes,
            elapsed_ms: started.elapsed().as_millis() as u64,
            warm_up_skipped,
        }
    }
}

/// Requests answered by one reload.
#[derive(Default)]
struct Batch {
    /// The first explicit request's trigger (a file change otherwise).
    trigger: Option<Trigger>,
    replies: Vec<Reply>,
    files_changed: bool,
    stop: bool,
}

impl Batch {
    fn add(&mut self, event: Event) {
        match event {
            Event::Reload(request) => {
                self.trigger.get_or_insert(request.trigger);
                self.replies.extend(request.reply);
            }
            Event::FilesChanged => self.files_changed = true,
            Event::Stop => self.stop = true,
        }
    }

    fn answer(self, outcome: &Outcome) {
        for reply in self.replies {
            reply(outcome);
        }
    }
}
