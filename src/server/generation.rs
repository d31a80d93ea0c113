//! Building a route table [`Generation`] from a validated configuration:
//! the same steps at start-up and on every reload, on the thread that
//! asks (never a shard): gather the modules (`sources`), compile and
//! check each route's guest through the module cache (a module already
//! compiled, by content, is not compiled again), and share the result.

use std::sync::Arc;

use super::routes::{Generation, SharedAnswer, SharedRoute};
use crate::config::{Config, HandlerSpec, RouteSpec};
use crate::error::{GuestError, StartupError};
use crate::sources::{self, Progress, Unit};
use crate::wasm::{LoadError, ModuleCache, Runtime};

/// Builds generation `number` of `config`.
pub fn build(
    config: Config,
    number: u64,
    runtime: &Runtime,
    cache: &mut ModuleCache,
    progress: &Progress,
) -> Result<Generation, StartupError> {
    let modules = sources::gather(&config, progress).map_err(|e| {
        let error = LoadError::Source(e.error);
        match config.routes.iter().find(|r| r.index == e.route) {
            Some(route) => guest_error(&config, route, error),
            None => StartupError::Sources(error.to_string()),
        }
    })?;
    let guests = config
        .routes
        .iter()
        .filter(|r| matches!(r.handler, HandlerSpec::Wasm(_)))
        .count();
    let mut compiling =
        (guests > 0).then(|| progress.step(format!("compiling {guests} guest(s)"), Unit::Items, Some(guests as u64)));
    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        let answer = match &route.handler {
            HandlerSpec::Static(spec) => SharedAnswer::native(spec),
            HandlerSpec::Wasm(spec) => {
                if spec.outbound.allowed_from_env && !spec.outbound.allowed.is_empty() {
                    let names: Vec<String> = spec.outbound.allowed.iter().map(|e| e.to_string()).collect();
                    tracing::info!(route = %route.name, "no allowed_outbound: allowing the backend address(es) in its env: {}", names.join(", "));
                }
                if let Err((key, message)) = runtime.check_bounds(spec) {
                    return Err(located(
                        &config,
                        route,
                        key,
                        LoadError::Invalid {
                            path: spec.source.to_string(),
                            message,
                        },
                    ));
                }
                // gather() loaded every wasm route's module.
                let module = modules.get(spec).ok_or_else(|| {
                    let missing = LoadError::Invalid {
                        path: spec.source.to_string(),
                        message: "the module was not loaded".into(),
                    };
                    guest_error(&config, route, missing)
                })?;
                let guest = runtime
                    .load(&route.name, spec, module, cache)
                    .map_err(|e| guest_error(&config, route, e))?;
                if let Some(step) = &mut compiling {
                    step.advance(1);
                }
                SharedAnswer::Guest {
                    guest,
                    spec: spec.clone(),
                    digest: module.digest,
                }
            }
        };
        routes.push(SharedRoute::new(route, answer));
    }
    let max_body = config
        .routes
        .iter()
        .map(|r| r.max_body_bytes)
        .max()
        .unwrap_or(0)
        .max(config.server.framing.max_body);
    Ok(Generation {
        number,
        routes,
        max_body,
        config: Arc::new(config),
    })
}

/// A route's guest failed to load: located at its `file_path`.
fn guest_error(config: &Config, route: &RouteSpec, source: LoadError) -> StartupError {
    located(config, route, "file_path", source)
}

/// A route's guest cannot serve because of its `key` (located at the
/// route's `file_path`, the one place of a wasm route kept).
fn located(config: &Config, route: &RouteSpec, key: &str, source: LoadError) -> StartupError {
    let at = match &route.handler {
        HandlerSpec::Wasm(spec) => spec.file_at,
        HandlerSpec::Static(_) => route.at,
    };
    StartupError::Guest(Box::new(GuestError {
        path: config.source.clone(),
        at,
        key: format!("applications[{}].{key}", route.index),
        route: route.name.clone(),
        source,
    }))
}
