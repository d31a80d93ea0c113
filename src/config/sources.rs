//! The `[sources]` table: how modules named by an address (`https://`,
//! `s3://`, `oci://`) are fetched and cached. S3 settings left out here
//! come from the standard `AWS_*` environment variables, read by the
//! fetcher; the table only overrides them.

use std::path::PathBuf;

use super::defaults::*;
use super::{ConfigError, Ctx, Settings, SourcesConfig, raw};
use crate::sources::is_registry_host;

pub(super) fn sources_config(ctx: &Ctx<'_>, raw: Option<&raw::RawSources>) -> Result<SourcesConfig, ConfigError> {
    const HOUR_MS: u64 = 3_600_000;
    let empty = raw::RawSources::default();
    let raw = raw.unwrap_or(&empty);
    let s = Settings::new(ctx, "sources".into());
    let s3_endpoint = match &raw.s3_endpoint {
        Some(endpoint) => {
            let text = endpoint.get_ref();
            match url::Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
                _ => return Err(s.error(endpoint, "s3_endpoint", "must be an http:// or https:// URL".into())),
            }
            Some(text.clone())
        }
        None => None,
    };
    let s3_region = match &raw.s3_region {
        Some(region) if region.get_ref().trim().is_empty() => {
            return Err(s.error(region, "s3_region", "the region is empty".into()));
        }
        other => other.as_ref().map(|r| r.get_ref().clone()),
    };
    let mut oci_insecure_registries = Vec::new();
    for registry in raw.oci_insecure_registries.iter().flatten() {
        let text = registry.get_ref();
        if !is_registry_host(text) {
            return Err(s.error(
                registry,
                "oci_insecure_registries",
                format!("{text:?} is not a registry (host or host:port)"),
            ));
        }
        oci_insecure_registries.push(text.clone());
    }
    let (cache_dir, cache_dir_is_default) = match &raw.cache_dir {
        Some(dir) => (Some(s.path(dir, "cache_dir")?), false),
        None => (default_cache_dir(), true),
    };
    // One line per setting: raw value, key, default, min, max.
    #[rustfmt::skip]
    let config = SourcesConfig {
        s3_endpoint,
        s3_region,
        s3_path_style: raw.s3_path_style,
        oci_insecure_registries,
        fetch_timeout:    s.millis(&raw.fetch_timeout_ms, "fetch_timeout_ms", DEFAULT_FETCH_TIMEOUT,    1,    HOUR_MS)?,
        fetch_attempts:   s.int(&raw.fetch_attempts,      "fetch_attempts",   DEFAULT_FETCH_ATTEMPTS,   1,    10)?,
        max_module_bytes: s.size(&raw.max_module_bytes,   "max_module_bytes", DEFAULT_MAX_MODULE_BYTES, 1024, 4 << 30)? as u64,
        cache_dir,
        cache_dir_is_default,
        cache_max_bytes:  s.size(&raw.cache_max_bytes,    "cache_max_bytes",  DEFAULT_CACHE_MAX_BYTES,  0,    1 << 40)? as u64,
    };
    Ok(config)
}

/// `$XDG_CACHE_HOME/serverless-wasm/modules`, else under `$HOME/.cache`;
/// `None` (no content cache) when neither is set, as for some services.
fn default_cache_dir() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = non_empty("XDG_CACHE_HOME").or_else(|| non_empty("HOME").map(|home| home.join(".cache")))?;
    Some(base.join("serverless-wasm").join("modules"))
}
