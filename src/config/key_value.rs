//! The `[key_value.NAME]` tables: the stores guests may open, each embedded
//! (a database file of the server's) or on a Redis server. A store named
//! `default`, embedded, exists without being declared.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::defaults::*;
use super::{ConfigError, Ctx, Endpoint, KeyValueBackend, KeyValueConfig, KeyValueLimits, RedisServer, Settings, raw};

/// Store names are log fields and file names: short and plain.
const MAX_STORE_NAME_BYTES: usize = 64;

pub(super) fn key_value_config(
    ctx: &Ctx<'_>,
    raw: &BTreeMap<String, Spanned<raw::RawKeyValue>>,
    state_dir: &Path,
) -> Result<BTreeMap<String, KeyValueConfig>, ConfigError> {
    let mut stores = BTreeMap::new();
    for (name, table) in raw {
        let s = Settings::new(ctx, format!("key_value.{name}"));
        if !is_store_name(name) {
            return Err(s.error(
                table,
                "name",
                format!(
                    "{name:?} is not a store name: letters, digits, '-' and '_', at most {MAX_STORE_NAME_BYTES} bytes"
                ),
            ));
        }
        stores.insert(name.clone(), store(&s, name, table.get_ref(), state_dir)?);
    }
    if !stores.contains_key(DEFAULT_KEY_VALUE_STORE) {
        stores.insert(
            DEFAULT_KEY_VALUE_STORE.to_string(),
            KeyValueConfig {
                name: DEFAULT_KEY_VALUE_STORE.to_string(),
                backend: KeyValueBackend::Embedded {
                    path: state_dir.join("kv").join(DEFAULT_KEY_VALUE_STORE),
                },
                limits: default_limits(),
            },
        );
    }
    Ok(stores)
}

fn default_limits() -> KeyValueLimits {
    KeyValueLimits {
        max_key_bytes: DEFAULT_MAX_KEY_BYTES,
        max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        timeout: DEFAULT_KEY_VALUE_TIMEOUT,
        max_connections_per_shard: DEFAULT_REDIS_CONNECTIONS_PER_SHARD,
    }
}

pub(super) fn is_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_STORE_NAME_BYTES
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn store(
    s: &Settings<'_>,
    name: &str,
    raw: &raw::RawKeyValue,
    state_dir: &Path,
) -> Result<KeyValueConfig, ConfigError> {
    let only_for = |value: Option<&Spanned<String>>, key: &str, kind: &str| match value {
        Some(v) => Err(s.error(v, key, format!("applies only to type = \"{kind}\""))),
        None => Ok(()),
    };
    let backend = match raw.kind.get_ref().as_str() {
        "embedded" => {
            only_for(raw.url.as_ref(), "url", "redis")?;
            only_for(raw.prefix.as_ref(), "prefix", "redis")?;
            if let Some(v) = &raw.max_connections_per_shard {
                return Err(s.error(
                    v,
                    "max_connections_per_shard",
                    "applies only to type = \"redis\"".into(),
                ));
            }
            let path = match &raw.path {
                Some(path) => s.path(path, "path")?,
                None => state_dir.join("kv").join(name),
            };
            KeyValueBackend::Embedded { path }
        }
        "redis" => {
            only_for(raw.path.as_ref(), "path", "embedded")?;
            let Some(url) = &raw.url else {
                return Err(s.error(
                    &raw.kind,
                    "url",
                    "a redis store needs url = \"redis://host:port\"".into(),
                ));
            };
            let server = parse_redis_url(url.get_ref()).map_err(|m| s.error(url, "url", m))?;
            let prefix = raw.prefix.as_ref().map(|p| p.get_ref().clone()).unwrap_or_default();
            KeyValueBackend::Redis { server, prefix }
        }
        other => {
            return Err(s.error(
                &raw.kind,
                "type",
                format!("{other:?} is not a store type: use \"embedded\" or \"redis\""),
            ));
        }
    };
    let defaults = default_limits();
    #[rustfmt::skip]
    let limits = KeyValueLimits {
        max_key_bytes:             s.size(&raw.max_key_bytes,            "max_key_bytes",             defaults.max_key_bytes,   1, MAX_KEY_BYTES)?,
        max_value_bytes:           s.size(&raw.max_value_bytes,          "max_value_bytes",           defaults.max_value_bytes, 0, MAX_VALUE_BYTES)?,
        timeout:                   s.millis(&raw.timeout_ms,             "timeout_ms",                defaults.timeout,         1, 600_000)?,
        max_connections_per_shard: s.int(&raw.max_connections_per_shard, "max_connections_per_shard", defaults.max_connections_per_shard, 1, 1024)?,
    };
    Ok(KeyValueConfig {
        name: name.to_string(),
        backend,
        limits,
    })
}

/// `redis://[[user]:password@]host[:port][/db]`. Messages never quote the
/// URL: it may hold the password.
fn parse_redis_url(text: &str) -> Result<RedisServer, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a redis:// URL: {e}"))?;
    if url.scheme() != "redis" {
        return Err(format!(
            "scheme {:?} is not supported: use redis:// (TLS to Redis is not supported)",
            url.scheme()
        ));
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
    let port = url.port().unwrap_or(6379);
    let endpoint = Endpoint::parse(&format!("{host}:{port}"))?;
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let username = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
    let password = url.password().map(decode);
    let database = match url.path().trim_start_matches('/') {
        "" => 0,
        db => db
            .parse()
            .map_err(|_| "the path must be a database number (redis://host:port/0)".to_string())?,
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL takes no query or fragment".into());
    }
    Ok(RedisServer {
        endpoint,
        username,
        password,
        database,
    })
}
