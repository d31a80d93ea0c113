//! `--watch`, for development: a reload whenever the configuration file or
//! a route's local module file changes. The directories holding them are
//! watched rather than the files, because editors and build tools replace
//! a file (write a new one, rename it over the old) and a watch on the old
//! file would see nothing after the first save. The notify crate's thread
//! (inotify) filters the events and queues one [`Event::FilesChanged`];
//! the reloader waits for the writes to settle before it reloads.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use super::reload::Event;
use crate::config::{Config, HandlerSpec};
use crate::sources::ModuleSource;

pub struct Watcher {
    watcher: RecommendedWatcher,
    /// The files whose changes count, as absolute paths.
    files: Arc<Mutex<HashSet<PathBuf>>>,
    directories: HashSet<PathBuf>,
}

impl Watcher {
    /// Starts watching `config`'s file and local modules.
    pub fn start(config: &Config, events: Sender<Event>) -> Result<Watcher, notify::Error> {
        let files: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let watched = files.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                return;
            }
            let files = watched.lock().unwrap_or_else(PoisonError::into_inner);
            if event.paths.iter().any(|p| files.contains(p)) {
                // The reloader is gone only when the server stops.
                let _ = events.send(Event::FilesChanged);
            }
        })?;
        let mut watcher = Watcher {
            watcher,
            files,
            directories: HashSet::new(),
        };
        watcher.watch(config);
        Ok(watcher)
    }

    /// Watches the files `config` uses from now on (after a reload).
    pub fn watch(&mut self, config: &Config) {
        let modules = config.routes.iter().filter_map(|r| match &r.handler {
            HandlerSpec::Wasm(spec) => match &spec.source {
                ModuleSource::File(path) => Some(path.as_path()),
                _ => None,
            },
            HandlerSpec::Static(_) => None,
        });
        let files: HashSet<PathBuf> = std::iter::once(config.source.as_path())
            .chain(modules)
            .filter_map(|p| std::path::absolute(p).ok())
            .collect();
        let needed: HashSet<PathBuf> = files.iter().filter_map(|f| f.parent()).map(Path::to_path_buf).collect();
        for directory in self.directories.difference(&needed) {
            let _ = self.watcher.unwatch(directory);
        }
        self.directories.retain(|d| needed.contains(d));
        for directory in &needed {
            if !self.directories.contains(directory) {
                self.add_directory(directory);
            }
        }
        *self.files.lock().unwrap_or_else(PoisonError::into_inner) = files;
    }

    fn add_directory(&mut self, directory: &Path) {
        match self.watcher.watch(directory, RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::info!("watching {} for changes", directory.display());
                self.directories.insert(directory.to_path_buf());
            }
            Err(e) => tracing::warn!("cannot watch {}: {e}", directory.display()),
        }
    }
}
