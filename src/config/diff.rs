//! What a reload would change: the settings that cannot change without a
//! restart, and the routes added, removed or changed. Pure functions of
//! two validated configurations (the `reload` fuzz target drives them).

use super::{Config, HandlerSpec, Location, RouteSpec};

/// The settings that differ between `old` and `new` but only take effect
/// at a start: they size the engine, bind sockets, or start threads and
/// executors. Named as in the file; empty when a reload may apply `new`.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.server, &new.server);
    let checks = [
        ("listen_address", old.listen_address != new.listen_address),
        (
            "admin.listen_address",
            old.admin.map(|a| a.listen_address) != new.admin.map(|a| a.listen_address),
        ),
        ("access_log", old.access_log != new.access_log),
        ("server.shards", a.shards != b.shards),
        ("server.cpus", a.cpus != b.cpus),
        ("server.listen_backlog", a.listen_backlog != b.listen_backlog),
        ("server.preempt_timer_us", a.preempt_timer != b.preempt_timer),
        ("server.spin_before_park_us", a.spin_before_park != b.spin_before_park),
        (
            "server.instance_slots_per_shard",
            a.engine.instance_slots_per_shard != b.engine.instance_slots_per_shard,
        ),
        (
            "server.keep_resident_bytes",
            a.engine.keep_resident_bytes != b.engine.keep_resident_bytes,
        ),
        (
            "server.max_wasm_stack_bytes",
            a.engine.max_wasm_stack_bytes != b.engine.max_wasm_stack_bytes,
        ),
        (
            "server.max_memory_limit",
            a.engine.max_memory_limit != b.engine.max_memory_limit,
        ),
        (
            "server.max_table_elements",
            a.engine.max_table_elements != b.engine.max_table_elements,
        ),
        ("server.log_buffer_bytes", a.log_buffer_bytes != b.log_buffer_bytes),
        ("server.compile_cache_dir", a.compile_cache_dir != b.compile_cache_dir),
        ("server.shard_header", a.shard_header != b.shard_header),
        ("server.state_dir", a.state_dir != b.state_dir),
        // Stores are opened (files, the store thread) or connected to once.
        ("key_value", old.key_value != new.key_value),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
}

/// Routes by name: which a reload adds, removes, or changes (a different
/// method, path, module address, `env`, limit or policy; where they are
/// written in the file does not count).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RouteChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl RouteChanges {
    pub fn between(old: &[RouteSpec], new: &[RouteSpec]) -> RouteChanges {
        let find = |routes: &'_ [RouteSpec], name: &str| routes.iter().find(|r| r.name == name).map(unplaced);
        let mut changes = RouteChanges::default();
        for route in new {
            match find(old, &route.name) {
                None => changes.added.push(route.name.clone()),
                Some(before) if before != unplaced(route) => changes.changed.push(route.name.clone()),
                Some(_) => {}
            }
        }
        changes.removed = (old.iter())
            .filter(|r| !new.iter().any(|n| n.name == r.name))
            .map(|r| r.name.clone())
            .collect();
        changes
    }
}

/// The route without where it is written.
fn unplaced(route: &RouteSpec) -> RouteSpec {
    let mut route = route.clone();
    route.index = 0;
    route.at = Location::default();
    if let HandlerSpec::Wasm(spec) = &mut route.handler {
        spec.file_at = Location::default();
        spec.function_at = Location::default();
    }
    route
}
