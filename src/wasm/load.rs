//! Loading a route's guest at start-up: compile its module's bytes (as
//! `sources` gathered them) through the compile caches, then hand it to its
//! kind (`module::load`, `component::load`),
//! which checks it against its ABI, pre-links it and instantiates it once
//! as a trial. Anything wrong with a guest is found here, never at request
//! time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::precompiled::{Artifact, CompileCache};
use super::{Guest, GuestKind, Linkers, component, module};
use crate::config::WasmSpec;
use crate::sources::{LoadedModule, ModuleSource, Sha256Digest, SourceError};

/// Why a guest cannot serve its route. The caller adds where the route is.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Guests compiled so far, by content: routes that share a module (the
/// original samples use one for two routes) compile it once, a reload
/// does not compile again a module it already has, and with a compile
/// cache on disk a later start does not compile it at all.
pub struct ModuleCache {
    compiled: HashMap<Sha256Digest, Compiled>,
    disk: Option<CompileCache>,
}

impl ModuleCache {
    pub fn new(disk: Option<CompileCache>) -> ModuleCache {
        ModuleCache {
            compiled: HashMap::new(),
            disk,
        }
    }

    /// Forgets every compiled guest whose module is not in `keep` (after a
    /// reload: those only replaced generations used).
    pub fn retain(&mut self, keep: &HashSet<Sha256Digest>) {
        self.compiled.retain(|digest, _| keep.contains(digest));
    }
}

/// A compiled binary, of either guest kind.
#[derive(Clone)]
enum Compiled {
    Module(Module),
    Component(Component),
}

/// Loads and checks the guest of one route from its module's bytes.
pub fn load(
    engine: &Engine,
    Linkers {
        module: linker,
        component: component_linker,
    }: &Linkers,
    label: &str,
    spec: &WasmSpec,
    bytes: &LoadedModule,
    cache: &mut ModuleCache,
) -> Result<Arc<Guest>, LoadError> {
    let invalid = |message: String| LoadError::Invalid {
        path: spec.source.to_string(),
        message,
    };
    let compiled = match cache.compiled.get(&bytes.digest) {
        Some(compiled) => compiled.clone(),
        None => {
            let compiled = compile(engine, spec, bytes, cache.disk.as_ref()).map_err(&invalid)?;
            cache.compiled.insert(bytes.digest, compiled.clone());
            compiled
        }
    };
    let module = match compiled {
        Compiled::Module(module) => module,
        Compiled::Component(compiled) => {
            let guest = component::load(engine, component_linker, label, &compiled, spec).map_err(&invalid)?;
            return Ok(Arc::new(Guest {
                kind: GuestKind::Component(guest),
            }));
        }
    };
    let guest = module::load(engine, linker, label, &module, spec).map_err(&invalid)?;
    Ok(Arc::new(Guest {
        kind: GuestKind::Module(guest),
    }))
}

fn compile(
    engine: &Engine,
    spec: &WasmSpec,
    loaded: &LoadedModule,
    disk: Option<&CompileCache>,
) -> Result<Compiled, String> {
    let bytes = binary(&loaded.bytes)?;
    let (digest, source) = (&loaded.digest, &spec.source);
    if wasmparser::Parser::is_component(&bytes) {
        return compile_with::<Component>(engine, &bytes, digest, source, disk)
            .map(Compiled::Component)
            .map_err(|e| format!("invalid component: {e:#}"));
    }
    let bytes = module::prepare(bytes, spec)?;
    compile_with::<Module>(engine, &bytes, digest, source, disk)
        .map(Compiled::Module)
        .map_err(|e| format!("invalid wasm: {e:#}"))
}

fn compile_with<A: Artifact>(
    engine: &Engine,
    bytes: &[u8],
    digest: &Sha256Digest,
    source: &ModuleSource,
    disk: Option<&CompileCache>,
) -> wasmtime::Result<A> {
    match disk {
        Some(disk) => disk.get_or_compile(engine, bytes, digest, source),
        None => A::compile(engine, bytes),
    }
}

/// A `.wasm` binary as it is, or a `.wat` text module (which needs no
/// toolchain to edit) turned into one.
fn binary(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.to_vec());
    }
    wat::parse_bytes(bytes)
        .map(|b| b.into_owned())
        .map_err(|e| format!("is neither a wasm binary nor valid WAT text: {e}"))
}
