//! Redis-backed stores, spoken to from the shard: each shard keeps its own
//! few connections per store (no lock, no connection shared between
//! cores), RESP2 frames by `redis-protocol`, sockets on glommio's reactor.
//! Every operation is one command and one reply, bounded by the store's
//! `timeout_ms`; a connection that fails or times out is dropped, never
//! reused.

use std::cell::RefCell;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::sync::Semaphore;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame, Resp2Frame};

use super::{KeyPage, KvError, LIST_PAGE_KEYS};
use crate::config::{KeyValueLimits, RedisServer};
use crate::net::BackendStream;

const READ_CHUNK: usize = 16 << 10;
/// Most bytes one reply may take in memory.
const MAX_REPLY_BYTES: usize = 64 << 20;

pub(super) struct RedisPool {
    store: String,
    server: RedisServer,
    prefix: String,
    limits: KeyValueLimits,
    idle: RefCell<Vec<BackendStream>>,
    /// One per connection this shard may hold open.
    connections: Semaphore,
}

impl RedisPool {
    pub(super) fn new(store: &str, server: &RedisServer, prefix: &str, limits: KeyValueLimits) -> RedisPool {
        RedisPool {
            store: store.to_string(),
            server: server.clone(),
            prefix: prefix.to_string(),
            limits,
            idle: RefCell::new(Vec::new()),
            connections: Semaphore::new(limits.max_connections_per_shard as u64),
        }
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(self.prefix.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = self.key(key);
        let reply = self.call(&[b"GET", &key]).await?;
        self.value(reply)
    }

    pub(super) async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let key = self.key(key);
        self.call(&[b"SET", &key, value]).await.map(|_| ())
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, KvError> {
        let key = self.key(key);
        match self.call(&[b"EXISTS", &key]).await? {
            OwnedFrame::Integer(n) => Ok(n > 0),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let key = self.key(key);
        let delta = delta.to_string();
        match self.call(&[b"INCRBY", &key, delta.as_bytes()]).await? {
            OwnedFrame::Integer(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let cursor = cursor.unwrap_or(0).to_string();
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let count = LIST_PAGE_KEYS.to_string();
        let args: [&[u8]; 6] = [
            b"SCAN",
            cursor.as_bytes(),
            b"MATCH",
            pattern.as_bytes(),
            b"COUNT",
            count.as_bytes(),
        ];
        let OwnedFrame::Array(mut parts) = self.call(&args).await? else {
            return Err(KvError::Backend("SCAN: unexpected reply".into()));
        };
        let (Some(OwnedFrame::Array(found)), Some(OwnedFrame::BulkString(next))) = (parts.pop(), parts.pop()) else {
            return Err(KvError::Backend("SCAN: unexpected reply".into()));
        };
        let next: u64 = std::str::from_utf8(&next)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| KvError::Backend("SCAN: bad cursor".into()))?;
        let keys = found
            .into_iter()
            .filter_map(|frame| match frame {
                OwnedFrame::BulkString(key) => String::from_utf8(key).ok(),
                _ => None,
            })
            .filter_map(|key| key.strip_prefix(self.prefix.as_str()).map(str::to_string))
            .collect();
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    pub(super) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(Vec::as_slice));
        match self.call(&args).await? {
            OwnedFrame::Array(values) => values.into_iter().map(|v| self.value(v)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| self.key(k)).collect();
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for (key, (_, value)) in keys.iter().zip(pairs) {
            args.push(key);
            args.push(value);
        }
        self.call(&args).await.map(|_| ())
    }

    pub(super) async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| self.key(k)).collect();
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend(keys.iter().map(Vec::as_slice));
        self.call(&args).await.map(|_| ())
    }

    fn value(&self, frame: OwnedFrame) -> Result<Option<Vec<u8>>, KvError> {
        match frame {
            OwnedFrame::Null => Ok(None),
            OwnedFrame::BulkString(value) if value.len() > self.limits.max_value_bytes => Err(KvError::TooLarge {
                what: "a stored value",
                size: value.len(),
                limit: self.limits.max_value_bytes,
            }),
            OwnedFrame::BulkString(value) => Ok(Some(value)),
            other => Err(unexpected(&other)),
        }
    }

    /// One command, one reply, within the store's timeout (waiting for a
    /// connection included). A Redis error reply becomes a [`KvError`].
    async fn call(&self, args: &[&[u8]]) -> Result<OwnedFrame, KvError> {
        let timeout = self.limits.timeout;
        let exchange = async {
            let _permit = self
                .connections
                .acquire_permit(1)
                .await
                .map_err(|e| KvError::Backend(e.to_string()))?;
            let reused = self.idle.borrow_mut().pop();
            let (stream, reply) = match reused {
                Some(mut stream) => match command(&mut stream, args, self.reply_limit()).await {
                    // An idle connection Redis closed meanwhile (a restart,
                    // its `timeout`): the command never reached a server
                    // that could answer it, so it goes once more on a new one.
                    Err(Lost(_)) => {
                        let mut fresh = self.connect().await?;
                        let reply = command(&mut fresh, args, self.reply_limit()).await;
                        (fresh, reply)
                    }
                    other => (stream, other),
                },
                None => {
                    let mut stream = self.connect().await?;
                    let reply = command(&mut stream, args, self.reply_limit()).await;
                    (stream, reply)
                }
            };
            let reply = reply.map_err(KvError::from)?;
            self.idle.borrow_mut().push(stream);
            Ok(reply)
        };
        let timed = futures_lite::future::or(async { Some(exchange.await) }, async {
            glommio::timer::sleep(timeout).await;
            None
        });
        let reply = match timed.await {
            None => Err(KvError::Timeout(timeout)),
            Some(result) => result,
        };
        match reply {
            Ok(OwnedFrame::Error(message)) => Err(redis_error(&message)),
            Ok(frame) => Ok(frame),
            Err(e) => {
                if !matches!(e, KvError::NotANumber | KvError::Overflow) {
                    tracing::warn!(store = %self.store, server = %self.server, "key-value store: {e}");
                }
                Err(e)
            }
        }
    }

    /// A reply may carry a batch of values; past this a connection is
    /// dropped rather than buffer more.
    fn reply_limit(&self) -> usize {
        let batch = LIST_PAGE_KEYS * (self.limits.max_value_bytes.max(self.limits.max_key_bytes) + 64);
        batch.min(MAX_REPLY_BYTES)
    }

    /// A new connection, authenticated and on the configured database.
    async fn connect(&self) -> Result<BackendStream, KvError> {
        let mut stream = crate::net::connect(&self.server.endpoint, None, self.limits.timeout)
            .await
            .map_err(|e| KvError::Backend(format!("cannot connect: {e}")))?;
        if let Some(password) = &self.server.password {
            let reply = match &self.server.username {
                Some(user) => command(&mut stream, &[b"AUTH", user.as_bytes(), password.as_bytes()], 1024).await?,
                None => command(&mut stream, &[b"AUTH", password.as_bytes()], 1024).await?,
            };
            if let OwnedFrame::Error(message) = reply {
                // Redis' message names no secret ("WRONGPASS invalid username-password pair").
                return Err(KvError::Backend(format!("authentication failed: {message}")));
            }
        }
        if self.server.database != 0 {
            let db = self.server.database.to_string();
            if let OwnedFrame::Error(message) = command(&mut stream, &[b"SELECT", db.as_bytes()], 1024).await? {
                return Err(KvError::Backend(format!("SELECT {db}: {message}")));
            }
        }
        Ok(stream)
    }
}

/// Why a command got no reply.
enum CommandError {
    /// The connection failed before any byte of the reply came back.
    Lost(String),
    Other(KvError),
}
use CommandError::Lost;

impl From<CommandError> for KvError {
    fn from(error: CommandError) -> KvError {
        match error {
            Lost(why) => KvError::Backend(format!("connection lost: {why}")),
            CommandError::Other(e) => e,
        }
    }
}

/// Writes one command (an array of bulk strings) and reads one reply of
/// at most `limit` bytes.
async fn command(stream: &mut BackendStream, args: &[&[u8]], limit: usize) -> Result<OwnedFrame, CommandError> {
    let other = |why: String| CommandError::Other(KvError::Backend(why));
    let frames: Vec<BorrowedFrame<'_>> = args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
    let frame = BorrowedFrame::Array(&frames);
    let mut out = vec![0; frame.encode_len(false)];
    encode_borrowed(&mut out, &frame, false).map_err(|e| other(format!("encoding a command: {e}")))?;
    let lost = |e: std::io::Error| Lost(e.to_string());
    stream.write_all(&out).await.map_err(lost)?;
    stream.flush().await.map_err(lost)?;
    let mut input = Vec::new();
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        match decode(&input) {
            Ok(Some((frame, _used))) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(other(format!("bad reply from Redis: {e}"))),
        }
        if input.len() > limit {
            return Err(other(format!("reply larger than {limit} bytes")));
        }
        let read = stream.read(&mut chunk).await;
        match read {
            Ok(0) if input.is_empty() => return Err(Lost("closed by Redis".into())),
            Ok(0) => return Err(other("connection closed by Redis mid-reply".into())),
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e) if input.is_empty() => return Err(lost(e)),
            Err(e) => return Err(other(format!("connection lost mid-reply: {e}"))),
        }
    }
}

fn redis_error(message: &str) -> KvError {
    if message.contains("not an integer") {
        KvError::NotANumber
    } else if message.contains("overflow") {
        KvError::Overflow
    } else {
        KvError::Backend(message.to_string())
    }
}

fn unexpected(frame: &OwnedFrame) -> KvError {
    KvError::Backend(format!("unexpected reply from Redis: {:?}", frame.kind()))
}

/// `prefix` as a literal in a `SCAN MATCH` pattern.
fn glob_escape(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
