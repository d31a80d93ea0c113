//! A reload's decisions on arbitrary pairs of configurations: the input is
//! two config files split at the first NUL byte, each through validation
//! (`config::parse`), and when both are valid, through what a reload
//! decides from them: the restart-only settings that changed and the
//! routes added, removed and changed. Nothing may panic, and the diff must
//! be consistent: nothing changes from a config to itself, the
//! restart-only list does not depend on the direction, and what one
//! direction adds the other removes.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use serverless_wasm::config::{self, RouteChanges, restart_only_changes};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (old, new) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let path = Path::new("/nonexistent/fuzz/config.toml");
    let (Ok(old), Ok(new)) = (
        config::parse(path, &String::from_utf8_lossy(old)),
        config::parse(path, &String::from_utf8_lossy(new)),
    ) else {
        return;
    };
    assert!(restart_only_changes(&old, &old).is_empty());
    let forward: BTreeSet<_> = restart_only_changes(&old, &new).into_iter().collect();
    let backward: BTreeSet<_> = restart_only_changes(&new, &old).into_iter().collect();
    assert_eq!(forward, backward);

    assert_eq!(RouteChanges::between(&old.routes, &old.routes), RouteChanges::default());
    let there = RouteChanges::between(&old.routes, &new.routes);
    let back = RouteChanges::between(&new.routes, &old.routes);
    let sorted = |names: &[String]| names.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(sorted(&there.added), sorted(&back.removed));
    assert_eq!(sorted(&there.removed), sorted(&back.added));
    assert_eq!(sorted(&there.changed), sorted(&back.changed));
    let named = |routes: &[config::RouteSpec], name: &String| routes.iter().any(|r| &r.name == name);
    for name in &there.added {
        assert!(named(&new.routes, name) && !named(&old.routes, name), "{name}");
    }
    for name in &there.changed {
        assert!(named(&new.routes, name) && named(&old.routes, name), "{name}");
    }
});
