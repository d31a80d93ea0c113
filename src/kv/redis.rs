//! Redis-backed stores, spoken to from the shard: each shard keeps its own
//! few connections per store (no lock, no connection shared between
//! cores), RESP2 frames by `redis-protocol`, sockets on glommio's reactor.
//! Every operation is one command and one reply, bounded by the store's
//! `timeout_ms`; a connection that fails or times out is dropped, never
//! reused.

use std::cell::RefCell;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::sync::Semaphore;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame, Resp2Frame};

use super::{KeyPage, KvError, LIST_PAGE_KEYS};
use crate::config::{KeyValueLimits, RedisServer};
use crate::deadline::{TimedOut, with_deadline};
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
            let reused = self.idle_connection();
            let (stream, reply) = match reused {
                Some(mut stream) => match command(&mut stream, args, self.reply_limits()).await {
                    // The connection broke before any reply (Redis closed it
                    // just as the command left): the command goes once more
                    // on a new one, unless running it twice could count
                    // twice (the server may have run it and died before
                    // answering).
                    Err(Lost(_)) if args.first() != Some(&&b"INCRBY"[..]) => {
                        let mut fresh = self.connect().await?;
                        let reply = command(&mut fresh, args, self.reply_limits()).await;
                        (fresh, reply)
                    }
                    other => (stream, other),
                },
                None => {
                    let mut stream = self.connect().await?;
                    let reply = command(&mut stream, args, self.reply_limits()).await;
                    (stream, reply)
                }
            };
            let reply = reply.map_err(KvError::from)?;
            self.idle.borrow_mut().push(stream);
            Ok(reply)
        };
        let reply = match with_deadline(Instant::now() + timeout, exchange).await {
            Err(TimedOut) => Err(KvError::Timeout(timeout)),
            Ok(result) => result,
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

    /// An idle connection Redis has not closed meanwhile (those are
    /// dropped), if any.
    fn idle_connection(&self) -> Option<BackendStream> {
        let mut idle = self.idle.borrow_mut();
        while let Some(stream) = idle.pop() {
            if !stream.peer_closed() {
                return Some(stream);
            }
        }
        None
    }

    /// What a reply may hold: one value or key is at most the store's
    /// limit (a larger one is refused when its length is read, before it
    /// is); a whole reply at most `MAX_REPLY_BYTES` (or one largest value).
    fn reply_limits(&self) -> ReplyLimits {
        let largest = self.limits.max_value_bytes.max(self.limits.max_key_bytes);
        ReplyLimits {
            max_bulk: largest,
            max_total: MAX_REPLY_BYTES.max(largest + 1024),
        }
    }

    /// A new connection, authenticated and on the configured database.
    async fn connect(&self) -> Result<BackendStream, KvError> {
        let mut stream = crate::net::connect(&self.server.endpoint, None, self.limits.timeout)
            .await
            .map_err(|e| KvError::Backend(format!("cannot connect: {e}")))?;
        if let Some(password) = &self.server.password {
            let reply = match &self.server.username {
                Some(user) => {
                    command(
                        &mut stream,
                        &[b"AUTH", user.as_bytes(), password.as_bytes()],
                        ReplyLimits::SMALL,
                    )
                    .await?
                }
                None => command(&mut stream, &[b"AUTH", password.as_bytes()], ReplyLimits::SMALL).await?,
            };
            if let OwnedFrame::Error(message) = reply {
                // Redis' message names no secret ("WRONGPASS invalid username-password pair").
                return Err(KvError::Backend(format!("authentication failed: {message}")));
            }
        }
        if self.server.database != 0 {
            let db = self.server.database.to_string();
            if let OwnedFrame::Error(message) =
                command(&mut stream, &[b"SELECT", db.as_bytes()], ReplyLimits::SMALL).await?
            {
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

/// Bounds on one reply.
#[derive(Clone, Copy)]
struct ReplyLimits {
    /// Bytes of one bulk string (a value or a key).
    max_bulk: usize,
    /// Bytes of the whole reply.
    max_total: usize,
}

impl ReplyLimits {
    /// For `AUTH` and `SELECT`.
    const SMALL: ReplyLimits = ReplyLimits {
        max_bulk: 1024,
        max_total: 4096,
    };
}

/// Arrays in a reply nest at most this deep (`SCAN`'s does, once).
const MAX_DEPTH: usize = 2;
/// Elements of one reply: a batch, or a `SCAN` page (its `COUNT` is only a
/// hint to Redis, so some room above it).
const MAX_ELEMENTS: usize = 10 * LIST_PAGE_KEYS + 2;

/// Finds where a RESP2 reply ends, as it arrives in pieces, without
/// recursion and without looking at a byte twice: `redis-protocol`'s
/// decoder (which recurses, and starts over on each try) then parses the
/// complete reply once. A reply over the limits or malformed is refused
/// before it is buffered whole.
#[derive(Default)]
struct ReplyScanner {
    /// Where the next element starts.
    at: usize,
    /// Elements still expected by each array being read, outermost first.
    open: Vec<usize>,
    elements: usize,
}

impl ReplyScanner {
    /// `Some(length)` once `input` holds a whole reply.
    fn scan(&mut self, input: &[u8], limits: ReplyLimits) -> Result<Option<usize>, KvError> {
        let bad = |why: &str| KvError::Backend(format!("bad reply from Redis: {why}"));
        loop {
            let rest = &input[self.at..];
            let Some(line_end) = memchr::memmem::find(rest, b"\r\n") else {
                return Ok(None);
            };
            let (kind, line) = (rest[0], &rest[1..line_end]);
            let header = line_end + 2;
            let number = || {
                std::str::from_utf8(line)
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| bad("not a length"))
            };
            match kind {
                b'+' | b'-' | b':' => self.at += header,
                b'$' => match usize::try_from(number()?) {
                    Err(_) => self.at += header, // $-1: null
                    Ok(n) if n > limits.max_bulk => {
                        return Err(KvError::TooLarge {
                            what: "a stored value",
                            size: n,
                            limit: limits.max_bulk,
                        });
                    }
                    Ok(n) if rest.len() < header + n + 2 => return Ok(None),
                    Ok(n) => self.at += header + n + 2,
                },
                b'*' => match usize::try_from(number()?) {
                    Err(_) => self.at += header, // *-1: null
                    Ok(n) => {
                        self.elements += n;
                        if self.open.len() == MAX_DEPTH || self.elements > MAX_ELEMENTS {
                            return Err(bad("arrays too deep or too long"));
                        }
                        self.at += header;
                        if n > 0 {
                            self.open.push(n);
                            continue;
                        }
                    }
                },
                _ => return Err(bad("unknown type")),
            }
            // An element ended: so may the arrays it closes.
            loop {
                match self.open.last_mut() {
                    None => return Ok(Some(self.at)),
                    Some(1) => {
                        self.open.pop();
                    }
                    Some(remaining) => {
                        *remaining -= 1;
                        break;
                    }
                }
            }
        }
    }
}

/// Writes one command (an array of bulk strings) and reads one reply.
async fn command(stream: &mut BackendStream, args: &[&[u8]], limits: ReplyLimits) -> Result<OwnedFrame, CommandError> {
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
    let mut scanner = ReplyScanner::default();
    loop {
        if let Some(end) = scanner.scan(&input, limits).map_err(CommandError::Other)? {
            return match decode(&input[..end]) {
                Ok(Some((frame, _))) => Ok(frame),
                Ok(None) | Err(_) => Err(other("bad reply from Redis".into())),
            };
        }
        if input.len() > limits.max_total {
            return Err(other(format!("reply larger than {} bytes", limits.max_total)));
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReplyLimits = ReplyLimits {
        max_bulk: 16,
        max_total: 1024,
    };

    fn scan_all(reply: &[u8]) -> Result<Option<usize>, KvError> {
        ReplyScanner::default().scan(reply, LIMITS)
    }

    #[test]
    fn finds_the_end_of_each_kind_of_reply() {
        for reply in [
            &b"+OK\r\n"[..],
            b"-ERR no\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"$5\r\nhello\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ] {
            assert_eq!(
                scan_all(reply),
                Ok(Some(reply.len())),
                "{}",
                String::from_utf8_lossy(reply)
            );
            // With a byte missing, it waits for more.
            assert_eq!(scan_all(&reply[..reply.len() - 1]), Ok(None));
        }
    }

    #[test]
    fn resumes_where_it_stopped() {
        let reply = b"*3\r\n$3\r\nabc\r\n$-1\r\n:7\r\n";
        let mut scanner = ReplyScanner::default();
        for end in 0..reply.len() {
            assert_eq!(scanner.scan(&reply[..end], LIMITS), Ok(None));
        }
        assert_eq!(scanner.scan(reply, LIMITS), Ok(Some(reply.len())));
    }

    #[test]
    fn refuses_deep_long_large_and_malformed_replies_early() {
        let deep = b"*1\r\n*1\r\n*1\r\n:1\r\n";
        assert!(matches!(scan_all(deep), Err(KvError::Backend(_))));
        let long = format!("*{}\r\n", MAX_ELEMENTS + 1);
        assert!(matches!(scan_all(long.as_bytes()), Err(KvError::Backend(_))));
        // Refused from its length alone, before the bytes arrive.
        assert!(matches!(scan_all(b"$17\r\n"), Err(KvError::TooLarge { size: 17, .. })));
        assert!(matches!(scan_all(b"?what\r\n"), Err(KvError::Backend(_))));
        assert!(matches!(scan_all(b"$x\r\n"), Err(KvError::Backend(_))));
    }
}
