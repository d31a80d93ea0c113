//! serverless-wasm: an HTTP/1.1 server that answers each request by running
//! a small, sandboxed WebAssembly guest, one pinned executor per CPU core.
//!
//! # Map
//!
//! - [`config`]: `config.toml` → validated [`config::Config`].
//! - [`router`]: (method, path) → route.
//! - [`server`]: start-up, the route table generations, shards (one glommio
//!   executor per core, each with its own SO_REUSEPORT listener), the
//!   connection loop, and shutdown.
//! - [`http`]: sans-IO HTTP/1.1 decoding, encoding and canned answers.
//! - [`wasm`]: the only module that touches wasmtime: a facade over the two
//!   guest kinds (core modules, `wasi:http` components).
//! - [`stats`]: every counter, per shard and per route.
//! - [`logging`]: the server's log and the access log, written off the
//!   shards by one `log-writer` thread.
//! - [`admin`]: the admin listener's thread: `/metrics` (the shards'
//!   counters, summed when scraped), `/healthz`, `/readyz`.
//! - [`error`]: start-up errors.
//!
//! `docs/architecture.md` follows one request through a shard.
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod config;
mod deadline;
pub mod error;
pub mod http;
pub mod kv;
pub mod logging;
pub mod net;
mod private_dir;
pub mod router;
pub mod server;
pub mod sources;
pub mod stats;
pub mod wasm;
