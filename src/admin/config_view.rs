//! `GET /config`: the configuration generation every shard serves, as
//! JSON: its number, and each route with its module's address and digest
//! and its limits. Never the values of a route's `env` (they may hold
//! passwords, tokens, connection strings): only its keys; an
//! `allowed_outbound` taken from the `env` is shown as a count.

use serde_json::{Value, json};

use std::collections::BTreeMap;

use crate::config::{InstancePolicy, KeyValueBackend, KeyValueConfig, WasmSpec};
use crate::server::routes::{Generation, SharedAnswer, SharedRoute};

pub fn render(generation: &Generation) -> String {
    let routes: Vec<Value> = generation.routes.iter().map(route).collect();
    let view = json!({
        "generation": generation.number,
        "config_file": generation.config.source.display().to_string(),
        "routes": routes,
        "key_value": key_value(&generation.config.key_value),
    });
    // Plain strings and numbers: it always serializes.
    serde_json::to_string_pretty(&view).unwrap_or_default() + "\n"
}

fn route(route: &SharedRoute) -> Value {
    let mut view = json!({
        "name": route.name,
        "method": route.method.to_string(),
        "url_path": route.path.to_string(),
        "max_body_bytes": route.max_body_bytes,
    });
    let answer = match &route.answer {
        SharedAnswer::Static(response) => json!({
            "kind": "static",
            "status": response.status,
            "body_bytes": response.body.len(),
        }),
        SharedAnswer::Guest { guest, spec, digest } => {
            let mut module = wasm(spec);
            module["kind"] = json!(guest.kind());
            module["sha256"] = json!(digest.to_string());
            if guest.has_named_entry() {
                module["function"] = json!(spec.function);
            }
            module
        }
    };
    view["handler"] = answer;
    view
}

fn wasm(spec: &WasmSpec) -> Value {
    let limits = &spec.limits;
    // `None` in reuse mode: the guest kind's default.
    let (instance, max_requests, max_concurrent) = match limits.instance {
        InstancePolicy::Fresh => ("fresh", None, None),
        InstancePolicy::Reuse {
            max_requests,
            max_concurrent,
        } => ("reuse", max_requests, max_concurrent),
    };
    let outbound = &spec.outbound;
    let allowed: Value = if outbound.allowed_from_env {
        json!({ "from_env": outbound.allowed.len() })
    } else {
        json!(outbound.allowed.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    };
    json!({
        "address": spec.source.to_string(),
        "pinned_sha256": spec.sha256.map(|d| d.to_string()),
        "env_keys": spec.env.keys().collect::<Vec<_>>(),
        "instance": instance,
        "max_requests_per_instance": max_requests,
        "max_concurrent_requests_per_instance": max_concurrent,
        "fuel": limits.fuel,
        "timeout_ms": limits.timeout.as_millis() as u64,
        "memory_limit": limits.memory_limit,
        "table_elements_limit": limits.table_elements_limit,
        "max_response_bytes": limits.max_response_bytes,
        "max_concurrency": limits.max_concurrency,
        "max_queue": limits.max_queue,
        "warm_instances": limits.warm_instances,
        "allowed_outbound": allowed,
        "key_value_stores": spec.key_value_stores,
    })
}

/// The key-value stores: kind, where, limits. A Redis URL is shown
/// without its password (`RedisServer`'s `Display`).
fn key_value(stores: &BTreeMap<String, KeyValueConfig>) -> Value {
    let stores: serde_json::Map<String, Value> = stores
        .values()
        .map(|store| {
            let mut view = match &store.backend {
                KeyValueBackend::Embedded { path } => json!({
                    "type": "embedded",
                    "path": path.display().to_string(),
                }),
                KeyValueBackend::Redis { server, prefix } => json!({
                    "type": "redis",
                    "url": server.to_string(),
                    "prefix": prefix,
                }),
            };
            view["max_key_bytes"] = json!(store.limits.max_key_bytes);
            view["max_value_bytes"] = json!(store.limits.max_value_bytes);
            view["timeout_ms"] = json!(store.limits.timeout.as_millis() as u64);
            (store.name.clone(), view)
        })
        .collect();
    Value::Object(stores)
}
