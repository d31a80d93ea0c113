//! Loading a route's guest at start-up: read, compile (through the compile
//! caches), then hand it to its kind (`module::load`, `component::load`),
//! which checks it against its ABI, pre-links it and instantiates it once
//! as a trial. Anything wrong with a guest is found here, never at request
//! time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::precompiled::{Artifact, CompileCache};
use super::{Guest, GuestKind, Linkers, component, module};
use crate::config::WasmSpec;

/// Why a guest cannot serve its route. The caller adds where the route is.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Guests compiled so far at start-up, by file: routes that share a file
/// (the original samples use one module for two routes) compile it once;
/// with a compile cache on disk, a later start does not compile it at all.
pub struct ModuleCache {
    compiled: HashMap<PathBuf, Compiled>,
    disk: Option<CompileCache>,
}

impl ModuleCache {
    pub fn new(disk: Option<CompileCache>) -> ModuleCache {
        ModuleCache {
            compiled: HashMap::new(),
            disk,
        }
    }
}

/// A compiled binary, of either guest kind.
#[derive(Clone)]
enum Compiled {
    Module(Module),
    Component(Component),
}

/// Loads and checks the guest of one route.
pub fn load(
    engine: &Engine,
    Linkers {
        module: linker,
        component: component_linker,
    }: &Linkers,
    label: &str,
    spec: &WasmSpec,
    cache: &mut ModuleCache,
) -> Result<Arc<Guest>, LoadError> {
    let path = spec.file.display().to_string();
    let invalid = |message: String| LoadError::Invalid {
        path: path.clone(),
        message,
    };
    let compiled = match cache.compiled.get(&spec.file) {
        Some(compiled) => compiled.clone(),
        None => {
            let compiled = compile(engine, spec, cache.disk.as_ref()).map_err(|e| match e {
                ReadError::Io(source) => LoadError::Read {
                    path: path.clone(),
                    source,
                },
                ReadError::Invalid(message) => invalid(message),
            })?;
            cache.compiled.insert(spec.file.clone(), compiled.clone());
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

/// Whether `path` holds a component (by its header); unreadable files are
/// reported later, by `load`.
pub fn is_component_file(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| wasmparser::Parser::is_component(&header))
}

enum ReadError {
    Io(std::io::Error),
    Invalid(String),
}

fn compile(engine: &Engine, spec: &WasmSpec, disk: Option<&CompileCache>) -> Result<Compiled, ReadError> {
    let bytes = read_binary(&spec.file)?;
    if wasmparser::Parser::is_component(&bytes) {
        return compile_with::<Component>(engine, &bytes, &spec.file, disk)
            .map(Compiled::Component)
            .map_err(|e| ReadError::Invalid(format!("invalid component: {e:#}")));
    }
    let bytes = module::prepare(bytes, spec).map_err(ReadError::Invalid)?;
    compile_with::<Module>(engine, &bytes, &spec.file, disk)
        .map(Compiled::Module)
        .map_err(|e| ReadError::Invalid(format!("invalid wasm: {e:#}")))
}

fn compile_with<A: Artifact>(
    engine: &Engine,
    bytes: &[u8],
    file: &Path,
    disk: Option<&CompileCache>,
) -> wasmtime::Result<A> {
    match disk {
        Some(disk) => disk.get_or_compile(engine, bytes, file),
        None => A::compile(engine, bytes),
    }
}

/// Reads a `.wasm` binary, or a `.wat` text module (which needs no
/// toolchain to edit).
fn read_binary(path: &Path) -> Result<Vec<u8>, ReadError> {
    let bytes = std::fs::read(path).map_err(ReadError::Io)?;
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes);
    }
    wat::parse_bytes(&bytes)
        .map(|b| b.into_owned())
        .map_err(|e| ReadError::Invalid(format!("is neither a wasm binary nor valid WAT text: {e}")))
}
