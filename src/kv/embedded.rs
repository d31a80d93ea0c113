//! Embedded stores: redb database files, all served by one `store` thread.
//!
//! Why redb: pure Rust (nothing to install), ACID with copy-on-write
//! B-trees, and MVCC: readers never wait for the writer. Why one thread:
//! redb has one writer at a time anyway, and a thread that takes every
//! waiting operation at once turns them into one transaction with one
//! `fsync` (group commit), so concurrent increments cost one disk flush
//! per batch, not per request. Shards send operations as messages and
//! await the answer on their own executor: no shard ever touches the disk.
//!
//! Durability: an answered write is on disk (`Durability::Immediate`, the
//! transaction is committed and flushed before any operation of its batch
//! is answered). A crash loses only writes not yet answered; a write whose
//! guest saw a timeout may still have been applied.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{KeyPage, KvError, LIST_PAGE_KEYS, incremented};
use crate::config::{KeyValueBackend, KeyValueConfig};
use crate::deadline::{TimedOut, with_deadline};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Operations the thread takes into one transaction at most.
const MAX_BATCH: usize = 512;
/// Operations waiting for the thread, from all shards; past it an
/// operation fails at once ("busy") instead of queueing without bound.
const MAX_WAITING: usize = 1024;
/// Listing cursors remembered per store (the oldest is forgotten first).
const MAX_CURSORS: usize = 1024;

/// The `store` thread's inbox. Cloned into every shard.
#[derive(Clone)]
pub struct StoreThread {
    jobs: mpsc::SyncSender<Job>,
}

/// One embedded store as a shard uses it.
pub(super) struct Client {
    store: Arc<str>,
    jobs: mpsc::SyncSender<Job>,
    timeout: Duration,
}

struct Job {
    store: Arc<str>,
    op: Op,
    reply: oneshot::Sender<Result<Reply, KvError>>,
}

enum Op {
    Open,
    Get(Vec<String>),
    Exists(String),
    List(Option<u64>),
    Set(Vec<(String, Vec<u8>)>),
    Delete(Vec<String>),
    Increment(String, i64),
}

impl Op {
    fn writes(&self) -> bool {
        matches!(self, Op::Set(_) | Op::Delete(_) | Op::Increment(..))
    }
}

#[derive(Clone)]
enum Reply {
    Done,
    Values(Vec<Option<Vec<u8>>>),
    Exists(bool),
    Keys(KeyPage),
    Number(i64),
}

impl StoreThread {
    /// Starts the thread for the embedded stores of `configs`. Databases
    /// are opened when first used (or by [`StoreThread::open`]).
    pub fn start(configs: &BTreeMap<String, KeyValueConfig>) -> std::io::Result<StoreThread> {
        let paths: BTreeMap<Arc<str>, PathBuf> = configs
            .values()
            .filter_map(|c| match &c.backend {
                KeyValueBackend::Embedded { path } => Some((Arc::from(c.name.as_str()), path.clone())),
                KeyValueBackend::Redis { .. } => None,
            })
            .collect();
        let (jobs, inbox) = mpsc::sync_channel(MAX_WAITING);
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || serve(paths, inbox))?;
        Ok(StoreThread { jobs })
    }

    /// Opens (creating if needed) the database of each embedded store in
    /// `names`, waiting for the answers: a start or a reload that needs a
    /// store it cannot open says so at once. Not for a shard's thread.
    pub fn open(&self, names: &[&str]) -> Result<(), String> {
        for name in names {
            let answer = self.client(name, Duration::ZERO).send(Op::Open);
            // (A full queue at start or reload is not expected; it fails
            // like any other store error.)
            let opened =
                answer.and_then(|answer| futures_lite::future::block_on(answer).unwrap_or_else(|_| Err(stopped())));
            opened.map_err(|e| format!("key-value store {name:?}: {e}"))?;
        }
        Ok(())
    }

    pub(super) fn client(&self, name: &str, timeout: Duration) -> Client {
        Client {
            store: Arc::from(name),
            jobs: self.jobs.clone(),
            timeout,
        }
    }
}

fn stopped() -> KvError {
    KvError::Backend("the store thread has stopped".into())
}

type Answer = oneshot::Receiver<Result<Reply, KvError>>;

impl Client {
    fn send(&self, op: Op) -> Result<Answer, KvError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            store: self.store.clone(),
            op,
            reply,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => KvError::Backend(format!("busy: {MAX_WAITING} operations are waiting")),
            mpsc::TrySendError::Disconnected(_) => stopped(),
        })?;
        Ok(answer)
    }

    /// On a shard: the answer, within the store's timeout (glommio's timer).
    async fn call(&self, op: Op) -> Result<Reply, KvError> {
        let answer = self.send(op)?;
        match with_deadline(Instant::now() + self.timeout, answer).await {
            Err(TimedOut) => Err(KvError::Timeout(self.timeout)),
            Ok(Err(oneshot::Canceled)) => Err(stopped()),
            Ok(Ok(result)) => result,
        }
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut values = self.get_many(vec![key.to_string()]).await?;
        Ok(values.pop().flatten())
    }

    pub(super) async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        match self.call(Op::Get(keys)).await? {
            Reply::Values(values) => Ok(values),
            _ => Err(mismatch()),
        }
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, KvError> {
        match self.call(Op::Exists(key.to_string())).await? {
            Reply::Exists(found) => Ok(found),
            _ => Err(mismatch()),
        }
    }

    pub(super) async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        match self.call(Op::List(cursor)).await? {
            Reply::Keys(page) => Ok(page),
            _ => Err(mismatch()),
        }
    }

    pub(super) async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.call(Op::Set(pairs)).await.map(|_| ())
    }

    pub(super) async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        self.call(Op::Delete(keys)).await.map(|_| ())
    }

    pub(super) async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        match self.call(Op::Increment(key.to_string(), delta)).await? {
            Reply::Number(n) => Ok(n),
            _ => Err(mismatch()),
        }
    }
}

/// Where listings stopped: a cursor is a token for the last key a page
/// returned. Bounded: the oldest are forgotten (a listing that waits
/// through a thousand others gets an error, and starts again).
#[derive(Default)]
struct Cursors {
    next_token: u64,
    last_keys: std::collections::VecDeque<(u64, String)>,
}

impl Cursors {
    fn remember(&mut self, last_key: String) -> u64 {
        self.next_token += 1;
        if self.last_keys.len() == MAX_CURSORS {
            self.last_keys.pop_front();
        }
        self.last_keys.push_back((self.next_token, last_key));
        self.next_token
    }

    fn last_key(&self, token: u64) -> Option<String> {
        self.last_keys
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, key)| key.clone())
    }
}

fn mismatch() -> KvError {
    KvError::Backend("the store thread answered another operation".into())
}

/// The `store` thread: takes every waiting operation, runs each store's
/// share in one transaction, answers them all once it is committed.
fn serve(paths: BTreeMap<Arc<str>, PathBuf>, inbox: mpsc::Receiver<Job>) {
    let mut open: BTreeMap<Arc<str>, Database> = BTreeMap::new();
    let mut cursors: BTreeMap<Arc<str>, Cursors> = BTreeMap::new();
    while let Ok(first) = inbox.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut by_store: BTreeMap<Arc<str>, Vec<Job>> = BTreeMap::new();
        // A read whose asker gave up (timed out) is not worth doing; a
        // write is still applied (the docs say so).
        for job in batch
            .into_iter()
            .filter(|job| job.op.writes() || !job.reply.is_canceled())
        {
            by_store.entry(job.store.clone()).or_default().push(job);
        }
        for (store, jobs) in by_store {
            let Some(path) = paths.get(&store) else {
                answer_all(jobs, Err(KvError::NoSuchStore(store.to_string())));
                continue;
            };
            if !open.contains_key(&store) {
                match open_database(path) {
                    Ok(db) => {
                        tracing::info!(store = %store, path = %path.display(), "key-value store opened");
                        open.insert(store.clone(), db);
                    }
                    Err(why) => {
                        tracing::error!(store = %store, "key-value store unavailable: {why}");
                        answer_all(jobs, Err(KvError::Backend(why)));
                        continue;
                    }
                }
            }
            if let Some(db) = open.get(&store) {
                run_batch(&store, db, cursors.entry(store.clone()).or_default(), jobs);
            }
        }
    }
}

fn answer_all(jobs: Vec<Job>, result: Result<Reply, KvError>) {
    for job in jobs {
        let _ = job.reply.send(result.clone());
    }
}

fn open_database(path: &Path) -> Result<Database, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let db = Database::create(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // The table exists from the start, so read transactions can open it.
    let created = db.begin_write().map_err(|e| e.to_string()).and_then(|txn| {
        txn.open_table(TABLE).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())
    });
    created.map_err(|e| format!("cannot initialize {}: {e}", path.display()))?;
    Ok(db)
}

/// One store's share of a batch: a write transaction if anything in it
/// writes (operations see each other's effects in arrival order), else a
/// read transaction. Answers go out only after the commit.
fn run_batch(store: &str, db: &Database, cursors: &mut Cursors, jobs: Vec<Job>) {
    let result = if jobs.iter().any(|job| job.op.writes()) {
        write_batch(db, cursors, &jobs)
    } else {
        read_batch(db, cursors, &jobs)
    };
    match result {
        Ok(replies) => {
            for (job, reply) in jobs.into_iter().zip(replies) {
                let _ = job.reply.send(reply);
            }
        }
        Err(why) => {
            tracing::error!(store = %store, "key-value store: transaction failed: {why}");
            answer_all(jobs, Err(KvError::Backend(why)));
        }
    }
}

type Replies = Vec<Result<Reply, KvError>>;

fn read_batch(db: &Database, cursors: &mut Cursors, jobs: &[Job]) -> Result<Replies, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
    jobs.iter().map(|job| read(&table, cursors, &job.op)).collect()
}

fn write_batch(db: &Database, cursors: &mut Cursors, jobs: &[Job]) -> Result<Replies, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let replies = {
        let mut table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let reply = match &job.op {
                Op::Set(pairs) => {
                    for (key, value) in pairs {
                        table
                            .insert(key.as_str(), value.as_slice())
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(Reply::Done)
                }
                Op::Delete(keys) => {
                    for key in keys {
                        table.remove(key.as_str()).map_err(|e| e.to_string())?;
                    }
                    Ok(Reply::Done)
                }
                Op::Increment(key, delta) => {
                    let current = table.get(key.as_str()).map_err(|e| e.to_string())?;
                    let next = incremented(current.as_ref().map(|v| v.value()), *delta);
                    drop(current);
                    match next {
                        Ok(n) => {
                            table
                                .insert(key.as_str(), n.to_string().as_bytes())
                                .map_err(|e| e.to_string())?;
                            Ok(Reply::Number(n))
                        }
                        Err(e) => Err(e),
                    }
                }
                op => read(&table, cursors, op)?,
            };
            replies.push(reply);
        }
        replies
    };
    txn.commit().map_err(|e| e.to_string())?;
    Ok(replies)
}

fn read(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    cursors: &mut Cursors,
    op: &Op,
) -> Result<Result<Reply, KvError>, String> {
    let reply = match op {
        Op::Open => Reply::Done,
        Op::Get(keys) => {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                let value = table.get(key.as_str()).map_err(|e| e.to_string())?;
                values.push(value.map(|v| v.value().to_vec()));
            }
            Reply::Values(values)
        }
        Op::Exists(key) => Reply::Exists(table.get(key.as_str()).map_err(|e| e.to_string())?.is_some()),
        Op::List(cursor) => {
            // A page starts after the last key of the previous one: each
            // page costs its own keys, however far the listing has gone.
            let after = match cursor {
                None => None,
                Some(token) => match cursors.last_key(*token) {
                    Some(key) => Some(key),
                    None => return Ok(Err(KvError::Backend("unknown or expired list cursor".into()))),
                },
            };
            let range = match &after {
                None => table.range(..),
                Some(key) => table.range((Bound::Excluded(key.as_str()), Bound::Unbounded)),
            };
            let mut keys = Vec::new();
            let mut more = false;
            for entry in range.map_err(|e| e.to_string())? {
                if keys.len() == LIST_PAGE_KEYS {
                    more = true;
                    break;
                }
                let (key, _) = entry.map_err(|e| e.to_string())?;
                keys.push(key.value().to_string());
            }
            let cursor = match keys.last() {
                Some(last) if more => Some(cursors.remember(last.clone())),
                _ => None,
            };
            Reply::Keys(KeyPage { keys, cursor })
        }
        // Writes are handled by `write_batch`.
        Op::Set(_) | Op::Delete(_) | Op::Increment(..) => return Err("a write in a read transaction".into()),
    };
    Ok(Ok(reply))
}
