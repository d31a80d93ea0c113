//! The configuration: `config.toml` → [`raw::RawConfig`] (serde, no logic)
//! → [`Config`] (typed, validated, defaults applied).
//!
//! Everything that can be checked without wasm is checked here, at start-up:
//! a typo or a bad value stops the server with a message naming the file,
//! line, column and key. Checks that need the compiled modules (exports,
//! imports, memory sizes) happen in `wasm::load`, and their errors point at
//! the route's `file_path` through the [`Location`] kept here.

mod access_log;
mod admin;
mod defaults;
mod diff;
mod key_value;
mod model;
mod raw;
mod routes;
mod server;
mod size;
mod sources;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

pub use defaults::*;
pub use diff::{RouteChanges, restart_only_changes};
pub use model::*;
pub use size::ByteSize;

/// A configuration problem, located in the file where that is possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {key}: {message}", line = at.line, column = at.column)]
    At {
        path: PathBuf,
        at: Location,
        key: String,
        message: String,
    },
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validates configuration text; `path` is used for messages and to resolve
/// relative `file_path`s.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let ctx = Ctx { path, text };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| ctx.locate(s.start)).unwrap_or_default();
        ctx.error_at(at, "config", without_values(e.message()))
    })?;

    let listen_address = resolve_listen_address(&ctx, &raw.listen_address, "listen_address")?;
    let server = server::server_config(&ctx, &raw.server)?;
    let access_log = access_log::access_log_config(&ctx, raw.access_log.as_ref())?;
    let admin = admin::admin_config(&ctx, raw.admin.as_ref(), listen_address)?;
    let sources = sources::sources_config(&ctx, raw.sources.as_ref())?;
    let key_value = key_value::key_value_config(&ctx, &raw.key_value, &server.state_dir)?;
    let mut routes = Vec::with_capacity(raw.applications.len());
    for (index, app) in raw.applications.iter().enumerate() {
        let route = routes::route_spec(&ctx, index, app, &server, &key_value)?;
        if let Some(other) = routes
            .iter()
            .find(|r: &&RouteSpec| r.method == route.method && r.path == route.path)
        {
            return Err(ctx.error(
                &app.url_path,
                &format!("applications[{index}].url_path"),
                format!(
                    "duplicate route {} {}: already defined by applications[{}] at line {}",
                    route.method, route.path, other.index, other.at.line
                ),
            ));
        }
        if let Some(other) = routes.iter().find(|r| r.name == route.name) {
            // A default name is located at its route's `method`.
            let name_at = |app: &raw::RawApplication| app.name.as_ref().map_or(ctx.at(&app.method), |n| ctx.at(n));
            return Err(ctx.error_at(
                name_at(app),
                &format!("applications[{index}].name"),
                format!(
                    "duplicate route name {:?}: already used by applications[{}] at line {}",
                    route.name,
                    other.index,
                    name_at(&raw.applications[other.index]).line
                ),
            ));
        }
        routes.push(route);
    }
    Ok(Config {
        source: path.to_path_buf(),
        listen_address,
        server,
        access_log,
        routes,
        admin,
        sources,
        key_value,
    })
}

/// serde's type errors quote the value they found ("invalid type: integer
/// `1234`, expected a string"); under `env` that value may be a secret,
/// and these messages are logged and answered to `POST /reload`. The
/// location and key say where it is; the value is left out.
fn without_values(message: &str) -> String {
    let mut message = message.to_string();
    for marker in ["invalid type: ", "invalid value: "] {
        let Some(at) = message.find(marker).map(|i| i + marker.len()) else {
            continue;
        };
        let rest = &message[at..];
        if let (Some(open), Some(close)) = (rest.find(" `"), rest.rfind("`, expected"))
            && open < close
        {
            message = format!("{}{}", &message[..at + open], &rest[close + 1..]);
        }
    }
    message
}

/// Positions and messages for one config file.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn locate(&self, offset: usize) -> Location {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
        Location { line, column }
    }

    fn error_at(&self, at: Location, key: &str, message: String) -> ConfigError {
        ConfigError::At {
            path: self.path.to_path_buf(),
            at,
            key: key.to_string(),
            message,
        }
    }

    fn error<T>(&self, value: &Spanned<T>, key: &str, message: String) -> ConfigError {
        self.error_at(self.locate(value.span().start), key, message)
    }

    fn at<T>(&self, value: &Spanned<T>) -> Location {
        self.locate(value.span().start)
    }
}

/// A `host:port` to listen on; `key` names it in messages.
fn resolve_listen_address(ctx: &Ctx<'_>, addr: &Spanned<String>, key: &str) -> Result<SocketAddr, ConfigError> {
    let text = addr.get_ref();
    if let Ok(literal) = text.parse::<SocketAddr>() {
        return Ok(literal);
    }
    // Fuzzing feeds arbitrary host names: no resolver calls there.
    let resolved = if cfg!(fuzzing) {
        Err(std::io::ErrorKind::InvalidInput.into())
    } else {
        text.to_socket_addrs()
    };
    let mut resolved =
        resolved.map_err(|e| ctx.error(addr, key, format!("{text:?} is not a usable host:port: {e}")))?;
    resolved
        .next()
        .ok_or_else(|| ctx.error(addr, key, format!("{text:?} resolves to no address")))
}

/// The settings of one TOML table (`server`, `applications[2]`): their keys
/// in messages carry the table's name, and a numeric setting is one call
/// with its key, default and range, so `server.rs` and `routes.rs` read as
/// tables of settings.
struct Settings<'a> {
    ctx: &'a Ctx<'a>,
    table: String,
}

impl<'a> Settings<'a> {
    fn new(ctx: &'a Ctx<'a>, table: String) -> Self {
        Settings { ctx, table }
    }

    /// `server.max_body_bytes`: how messages name a key of this table.
    fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.table)
    }

    fn error<T>(&self, value: &Spanned<T>, key: &str, message: String) -> ConfigError {
        self.ctx.error(value, &self.key(key), message)
    }

    /// A `host:port` to listen on, resolved like the top-level `listen_address`.
    fn address(&self, value: &Spanned<String>, key: &str) -> Result<SocketAddr, ConfigError> {
        resolve_listen_address(self.ctx, value, &self.key(key))
    }

    /// For a key known only by where its value starts in the text.
    fn error_at(&self, offset: usize, key: &str, message: String) -> ConfigError {
        self.ctx.error_at(self.ctx.locate(offset), &self.key(key), message)
    }

    /// A value within `min..=max`, or `None` when the key is absent.
    fn optional<T: Copy + PartialOrd + fmt::Display>(
        &self,
        value: &Option<Spanned<T>>,
        key: &str,
        min: T,
        max: T,
    ) -> Result<Option<T>, ConfigError> {
        match value {
            None => Ok(None),
            Some(v) if *v.get_ref() >= min && *v.get_ref() <= max => Ok(Some(*v.get_ref())),
            Some(v) => Err(self.error(
                v,
                key,
                format!("{} is out of range: must be from {min} to {max}", v.get_ref()),
            )),
        }
    }

    /// A path relative to the config file's directory; not empty.
    fn path(&self, value: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        if value.get_ref().is_empty() {
            return Err(self.error(value, key, "the path is empty".into()));
        }
        let config_dir = self.ctx.path.parent().unwrap_or(Path::new("."));
        Ok(config_dir.join(value.get_ref()))
    }

    /// A number within `min..=max`, or `default` when the key is absent.
    fn int<T: Copy + PartialOrd + fmt::Display>(
        &self,
        value: &Option<Spanned<T>>,
        key: &str,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError> {
        Ok(self.optional(value, key, min, max)?.unwrap_or(default))
    }

    /// A byte size (`4096`, `"16MiB"`); messages give bytes.
    fn size(
        &self,
        value: &Option<Spanned<ByteSize>>,
        key: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let bytes = value.as_ref().map(|v| Spanned::new(v.span(), v.get_ref().0));
        self.int(&bytes, key, default as u64, min as u64, max as u64)
            .map(|v| v as usize)
    }

    /// A `*_ms` duration; bounds in milliseconds, as written.
    fn millis(
        &self,
        value: &Option<Spanned<u64>>,
        key: &str,
        default: Duration,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.int(value, key, default.as_millis() as u64, min, max)
            .map(Duration::from_millis)
    }

    /// A `*_us` duration; bounds in microseconds, as written.
    fn micros(
        &self,
        value: &Option<Spanned<u64>>,
        key: &str,
        default: Duration,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.int(value, key, default.as_micros() as u64, min, max)
            .map(Duration::from_micros)
    }
}

#[cfg(test)]
mod tests;
