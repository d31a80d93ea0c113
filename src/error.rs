//! Everything that can stop the server before it serves its first request.
//! Request-time errors never come here: they become HTTP answers
//! (`http::answers`, `wasm::InvokeError`).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{ConfigError, Location};
use crate::wasm::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Guest(Box<GuestError>),
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    #[error("{0}")]
    CompileCache(String),
    #[error("{0}")]
    Sources(String),
    #[error("{0}")]
    Cpus(String),
    #[error("cannot start: {0}")]
    IoUring(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    KeyValue(String),
    #[error("cannot watch the configuration for changes: {0}")]
    Watch(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("shard {id} failed: {message}")]
    Shard { id: usize, message: String },
    #[error("a shard exited during start-up")]
    ShardExited,
    #[error("{waiting} of {total} shards did not start within {seconds} s")]
    ShardsStuck { waiting: usize, total: usize, seconds: u64 },
}

/// A route's guest cannot be loaded; located at the route's `file_path`.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{column}: {key}: route {route}: {source}", path = path.display(), line = at.line, column = at.column)]
pub struct GuestError {
    pub path: PathBuf,
    pub at: Location,
    pub key: String,
    pub route: String,
    pub source: LoadError,
}
