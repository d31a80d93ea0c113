//! Key-value stores for guests: what `wasi:keyvalue` (components) and the
//! `kv_v1` host functions (core modules) read and write. Knows nothing of
//! wasm.
//!
//! A store is embedded (a redb file, served by the `store` thread: no shard
//! ever waits on a disk) or a Redis server (spoken to by every shard over
//! its own small connection pool). Both give every shard the same data at
//! once and the same semantics: keys are strings, values bytes, increments
//! signed 64-bit on decimal text, as Redis `INCR`.

mod embedded;
mod redis;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::config::{KeyValueBackend, KeyValueConfig, KeyValueLimits};
use crate::stats::{KeyValueResult, RouteStats};

pub use embedded::StoreThread;

/// Keys one `list_keys` call returns at most.
pub const LIST_PAGE_KEYS: usize = 1000;

/// What a store operation can fail with; the guest gets it as its
/// interface's error (never a trap).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("no key-value store {0:?}")]
    NoSuchStore(String),
    #[error("the route may not open key-value store {0:?} (not in its key_value_stores)")]
    AccessDenied(String),
    #[error("{what} of {size} bytes is larger than the store's limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("the key is not valid UTF-8")]
    BadKey,
    #[error("the value is not a decimal 64-bit integer")]
    NotANumber,
    #[error("the increment overflows a signed 64-bit integer")]
    Overflow,
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the store failed: {0}")]
    Backend(String),
}

impl KvError {
    /// Counts the failure under its route and logs what an operator
    /// should see: a store the route may not open, a store that failed or
    /// did not answer. `operation` names the guest's call in the log.
    pub fn record(&self, stats: &RouteStats, route: &str, operation: std::fmt::Arguments<'_>) {
        let result = self.result();
        stats.key_value(result);
        if matches!(self, KvError::AccessDenied(_)) || result == KeyValueResult::Failed {
            tracing::warn!(route = %route, "{operation}: {self}");
        }
    }

    /// How a route's statistics count it.
    pub fn result(&self) -> KeyValueResult {
        match self {
            KvError::NoSuchStore(_) | KvError::AccessDenied(_) => KeyValueResult::Denied,
            KvError::TooLarge { .. } | KvError::BadKey | KvError::NotANumber | KvError::Overflow => {
                KeyValueResult::Refused
            }
            KvError::Timeout(_) | KvError::Backend(_) => KeyValueResult::Failed,
        }
    }
}

/// A page of keys and where the next one starts (`None`: no more).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    pub cursor: Option<u64>,
}

/// One store as a shard uses it.
pub struct Store {
    name: String,
    limits: KeyValueLimits,
    backend: Backend,
}

enum Backend {
    Embedded(embedded::Client),
    Redis(redis::RedisPool),
}

impl Store {
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check_key(key)?;
        match &self.backend {
            Backend::Embedded(db) => db.get(key).await,
            Backend::Redis(redis) => redis.get(key).await,
        }
    }

    pub async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.check_key(key)?;
        self.check_value(&value)?;
        match &self.backend {
            Backend::Embedded(db) => db.set_many(vec![(key.to_string(), value)]).await,
            Backend::Redis(redis) => redis.set(key, &value).await,
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.delete_many(vec![key.to_string()]).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.check_key(key)?;
        match &self.backend {
            Backend::Embedded(db) => db.exists(key).await,
            Backend::Redis(redis) => redis.exists(key).await,
        }
    }

    /// Adds `delta` to the decimal integer at `key` (0 when absent) and
    /// returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.check_key(key)?;
        match &self.backend {
            Backend::Embedded(db) => db.increment(key, delta).await,
            Backend::Redis(redis) => redis.increment(key, delta).await,
        }
    }

    /// Up to [`LIST_PAGE_KEYS`] keys from `cursor` (`None`: the start).
    /// Embedded: in key order. Redis: `SCAN` order, and a key may come twice.
    pub async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        match &self.backend {
            Backend::Embedded(db) => db.list_keys(cursor).await,
            Backend::Redis(redis) => redis.list_keys(cursor).await,
        }
    }

    pub async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.check_count(keys.len())?;
        for key in &keys {
            self.check_key(key)?;
        }
        match &self.backend {
            Backend::Embedded(db) => db.get_many(keys).await,
            Backend::Redis(redis) => redis.get_many(&keys).await,
        }
    }

    pub async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.check_count(pairs.len())?;
        for (key, value) in &pairs {
            self.check_key(key)?;
            self.check_value(value)?;
        }
        match &self.backend {
            Backend::Embedded(db) => db.set_many(pairs).await,
            Backend::Redis(redis) => redis.set_many(&pairs).await,
        }
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        self.check_count(keys.len())?;
        for key in &keys {
            self.check_key(key)?;
        }
        match &self.backend {
            Backend::Embedded(db) => db.delete_many(keys).await,
            Backend::Redis(redis) => redis.delete_many(&keys).await,
        }
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        let limit = self.limits.max_key_bytes;
        if key.len() > limit {
            return Err(KvError::TooLarge {
                what: "a key",
                size: key.len(),
                limit,
            });
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), KvError> {
        let limit = self.limits.max_value_bytes;
        if value.len() > limit {
            return Err(KvError::TooLarge {
                what: "a value",
                size: value.len(),
                limit,
            });
        }
        Ok(())
    }

    /// A batch is one message or command: bounded like a page of keys.
    fn check_count(&self, count: usize) -> Result<(), KvError> {
        if count > LIST_PAGE_KEYS {
            return Err(KvError::TooLarge {
                what: "a batch",
                size: count,
                limit: LIST_PAGE_KEYS,
            });
        }
        Ok(())
    }
}

/// Every store, as one shard reaches them: embedded ones through the
/// store thread, Redis ones through this shard's own connections.
pub struct ShardStores {
    stores: BTreeMap<String, Rc<Store>>,
}

impl ShardStores {
    /// Called on the shard's thread (Redis pools belong to it).
    pub fn new(configs: &BTreeMap<String, KeyValueConfig>, thread: &StoreThread) -> ShardStores {
        let stores = configs
            .values()
            .map(|config| {
                let backend = match &config.backend {
                    KeyValueBackend::Embedded { .. } => {
                        Backend::Embedded(thread.client(&config.name, config.limits.timeout))
                    }
                    KeyValueBackend::Redis { server, prefix } => {
                        Backend::Redis(redis::RedisPool::new(&config.name, server, prefix, config.limits))
                    }
                };
                let store = Store {
                    name: config.name.clone(),
                    limits: config.limits,
                    backend,
                };
                (config.name.clone(), Rc::new(store))
            })
            .collect();
        ShardStores { stores }
    }

    /// None: nothing declared (trial instances at start-up).
    pub fn empty() -> ShardStores {
        ShardStores {
            stores: BTreeMap::new(),
        }
    }

    /// The stores a route may open, from its `key_value_stores`.
    pub fn for_route(self: &Rc<Self>, allowed: &[String]) -> RouteStores {
        RouteStores {
            all: self.clone(),
            allowed: allowed
                .iter()
                .filter_map(|name| self.stores.get(name).cloned())
                .collect(),
        }
    }
}

/// What one route's guests may open.
#[derive(Clone)]
pub struct RouteStores {
    all: Rc<ShardStores>,
    allowed: Vec<Rc<Store>>,
}

impl RouteStores {
    pub fn none() -> RouteStores {
        RouteStores {
            all: Rc::new(ShardStores::empty()),
            allowed: Vec::new(),
        }
    }

    /// A store by name, if the route lists it; else why not.
    pub fn open(&self, name: &str) -> Result<Rc<Store>, KvError> {
        if let Some(store) = self.allowed.iter().find(|s| s.name == name) {
            return Ok(store.clone());
        }
        if self.all.stores.contains_key(name) {
            Err(KvError::AccessDenied(name.to_string()))
        } else {
            Err(KvError::NoSuchStore(name.to_string()))
        }
    }
}

/// `INCR` on text: the stored value must be a decimal i64 (absent: 0).
fn incremented(current: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    let current = match current {
        None => 0,
        Some(bytes) => redis_integer(bytes).ok_or(KvError::NotANumber)?,
    };
    current.checked_add(delta).ok_or(KvError::Overflow)
}

/// A decimal i64 written the one way Redis accepts for `INCR`: an
/// optional `-`, digits, no `+`, no leading zero, no `-0`, no spaces.
fn redis_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_like_redis() {
        assert_eq!(incremented(None, 5), Ok(5));
        assert_eq!(incremented(Some(b"-3"), 1), Ok(-2));
        assert_eq!(incremented(Some(b"abc"), 1), Err(KvError::NotANumber));
        assert_eq!(incremented(Some(b" 1"), 1), Err(KvError::NotANumber));
        assert_eq!(incremented(Some(b"0"), 1), Ok(1));
        for refused in [&b"+5"[..], b"007", b"-0", b"", b"-", b"1 ", b"99999999999999999999"] {
            assert_eq!(incremented(Some(refused), 1), Err(KvError::NotANumber), "{refused:?}");
        }
        assert_eq!(
            incremented(Some(i64::MAX.to_string().as_bytes()), 1),
            Err(KvError::Overflow)
        );
    }
}
