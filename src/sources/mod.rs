//! Module sources: where each route's module comes from, and getting its
//! bytes before anything compiles.
//!
//! A route's `file_path` is a local path or an address (`address`); a
//! route's `sha256` pins the bytes (`digest`). [`gather`] reads local
//! files, takes pinned modules from the content cache on disk (`cache`),
//! and fetches the rest (`fetch`: HTTPS, S3, OCI registries), off the
//! shards, saying how far along it is (`progress`). It runs before the
//! engine is built: what the modules are decides how the engine is sized.

mod address;
mod cache;
mod digest;
mod fetch;
mod progress;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

pub use address::{HttpAddress, ModuleSource, OciAddress, OciReference, is_registry_host};
pub use cache::ContentCache;
pub use digest::Sha256Digest;
pub use progress::{Progress, Step, Unit};

use crate::config::{Config, HandlerSpec, SourcesConfig, WasmSpec};

/// A module's bytes, ready to compile.
pub struct LoadedModule {
    pub bytes: Vec<u8>,
    /// The SHA-256 of `bytes`: what was actually loaded.
    pub digest: Sha256Digest,
    pub origin: Origin,
}

/// Where a module's bytes came from this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    File,
    Cache,
    Network,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::File => "file",
            Origin::Cache => "module cache",
            Origin::Network => "fetched",
        })
    }
}

/// A module is fetched once per source and pin, however many routes use it.
type ModuleKey = (ModuleSource, Option<Sha256Digest>);

/// Every wasm route's module.
pub struct Modules {
    loaded: HashMap<ModuleKey, Arc<LoadedModule>>,
}

impl Modules {
    /// The module of a route of the configuration these were gathered for.
    pub fn get(&self, spec: &WasmSpec) -> Option<&Arc<LoadedModule>> {
        self.loaded.get(&(spec.source.clone(), spec.sha256))
    }

    /// Whether some module is a component (the engine is sized for them).
    pub fn any_component(&self) -> bool {
        self.loaded.values().any(|m| wasmparser::Parser::is_component(&m.bytes))
    }
}

/// Why a route's module could not be had. The caller adds where the
/// route is.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot fetch {address}: {message}")]
    Fetch { address: String, message: String },
    #[error("{address}: sha256 mismatch: expected {expected}, received {received}")]
    Mismatch {
        address: String,
        expected: Sha256Digest,
        received: Sha256Digest,
    },
    #[error("{0}")]
    Cache(String),
}

/// A [`SourceError`] and the `[[applications]]` index of the first route
/// that names the module.
#[derive(Debug)]
pub struct RouteSourceError {
    pub route: usize,
    pub error: SourceError,
}

/// Gets the bytes of every wasm route's module: local files read, pinned
/// modules from the content cache, the rest fetched (and then cached).
/// An unpinned address is always fetched: a server never starts silently
/// on a stale version of it.
pub fn gather(config: &Config, progress: &Progress) -> Result<Modules, RouteSourceError> {
    let mut wanted: Vec<(ModuleKey, usize)> = Vec::new();
    for route in &config.routes {
        if let HandlerSpec::Wasm(spec) = &route.handler {
            let key = (spec.source.clone(), spec.sha256);
            if !wanted.iter().any(|(k, _)| *k == key) {
                wanted.push((key, route.index));
            }
        }
    }
    let mut loaded = HashMap::new();
    let mut remote = Vec::new();
    for ((source, pin), route) in wanted {
        let ModuleSource::File(path) = &source else {
            remote.push(((source, pin), route));
            continue;
        };
        let bytes = std::fs::read(path).map_err(|e| RouteSourceError {
            route,
            error: SourceError::Read {
                path: path.display().to_string(),
                source: e,
            },
        })?;
        let module = checked(&source, pin, bytes, Origin::File).map_err(|error| RouteSourceError { route, error })?;
        loaded.insert((source, pin), Arc::new(module));
    }
    if !remote.is_empty() {
        gather_remote(&config.sources, remote, progress, &mut loaded)?;
    }
    for ((source, _), module) in &loaded {
        tracing::info!(
            source = %source,
            sha256 = %module.digest,
            bytes = module.bytes.len(),
            from = %module.origin,
            "module loaded"
        );
    }
    Ok(Modules { loaded })
}

fn gather_remote(
    settings: &SourcesConfig,
    remote: Vec<(ModuleKey, usize)>,
    progress: &Progress,
    loaded: &mut HashMap<ModuleKey, Arc<LoadedModule>>,
) -> Result<(), RouteSourceError> {
    let cache = match &settings.cache_dir {
        Some(dir) => match ContentCache::open(dir, settings.cache_max_bytes) {
            Ok(cache) => Some(cache),
            Err(e) if settings.cache_dir_is_default => {
                tracing::warn!("no module cache: {e}; set [sources] cache_dir to keep fetched modules");
                None
            }
            Err(e) => {
                return Err(RouteSourceError {
                    route: remote[0].1,
                    error: SourceError::Cache(e),
                });
            }
        },
        None => {
            tracing::warn!(
                "no module cache (no [sources] cache_dir, HOME or XDG_CACHE_HOME): modules are fetched at every start, and a pinned module cannot start offline"
            );
            None
        }
    };
    let mut to_fetch = Vec::new();
    for ((source, pin), route) in remote {
        // A pinned manifest's layer is known from the last fetch.
        let known = pin.or_else(|| cache.as_ref()?.resolved_layer(source.oci_pinned_manifest()?));
        let cached = known.and_then(|digest| Some((digest, cache.as_ref()?.get(&digest)?)));
        match cached {
            Some((digest, bytes)) => {
                let module = LoadedModule {
                    bytes,
                    digest,
                    origin: Origin::Cache,
                };
                loaded.insert((source, pin), Arc::new(module));
            }
            None => to_fetch.push(((source, pin), route)),
        }
    }
    let jobs: Vec<ModuleKey> = to_fetch.iter().map(|(key, _)| key.clone()).collect();
    let results = if jobs.is_empty() {
        Vec::new()
    } else {
        fetch::fetch_all(settings, &jobs, progress)
    };
    for (((source, pin), route), result) in to_fetch.into_iter().zip(results) {
        let failed = |error| RouteSourceError { route, error };
        let fetched = result.map_err(|message| {
            failed(SourceError::Fetch {
                address: source.to_string(),
                message,
            })
        })?;
        let module = checked(&source, pin, fetched.bytes, Origin::Network).map_err(failed)?;
        tracing::info!(source = %source, bytes = module.bytes.len(), ms = fetched.elapsed.as_millis() as u64, "module fetched");
        if let Some(cache) = &cache {
            cache.put(&module.digest, &module.bytes);
            if let Some(address) = source.oci_pinned_manifest() {
                cache.remember_layer(address, &module.digest);
            }
        }
        loaded.insert((source, pin), Arc::new(module));
    }
    if let Some(cache) = &cache {
        let in_use: HashSet<Sha256Digest> = loaded.values().map(|m| m.digest).collect();
        cache.evict(&in_use);
    }
    Ok(())
}

/// The module, if its bytes match the route's pin.
fn checked(
    source: &ModuleSource,
    pin: Option<Sha256Digest>,
    bytes: Vec<u8>,
    origin: Origin,
) -> Result<LoadedModule, SourceError> {
    let digest = Sha256Digest::of(&bytes);
    if let Some(expected) = pin
        && expected != digest
    {
        return Err(SourceError::Mismatch {
            address: source.to_string(),
            expected,
            received: digest,
        });
    }
    Ok(LoadedModule { bytes, digest, origin })
}
