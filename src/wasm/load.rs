//! Loading a route's guest at start-up: read, compile, check every import
//! and export against the host ABI, pre-link, and instantiate once as a
//! trial. Anything wrong with a guest is found here, never at request time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use wasmtime::component::{self, Component};
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, Store};

use super::abi::{self, HOST_FUNCTIONS};
use super::component::state::ComponentState;
use super::host::HostState;
use super::imported_memory::{self, MEMORY_EXPORT};
use super::precompiled::{Artifact, CompileCache};
use super::route::RouteContext;
use super::{Guest, ModuleGuest};
use crate::config::{WASM_PAGE, WasmSpec};

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
    (linker, component_linker): (&Linker<HostState>, &component::Linker<ComponentState>),
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
            let guest = super::component::load(engine, component_linker, label, &compiled, spec).map_err(&invalid)?;
            return Ok(Arc::new(Guest::Component(guest)));
        }
    };
    check_imports(&module).map_err(&invalid)?;
    let entry = check_entry(&module, &spec.function).map_err(&invalid)?;
    let memory = check_memory(&module, spec).map_err(&invalid)?;
    let pre: InstancePre<HostState> = linker
        .instantiate_pre(&module)
        .map_err(|e| invalid(format!("cannot link: {e:#}")))?;
    let guest = ModuleGuest { pre, entry, memory };
    trial_instantiate(engine, &guest, label, spec).map_err(&invalid)?;
    Ok(Arc::new(Guest::Module(guest)))
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
    let memory = imported_memory::inspect(&bytes).map_err(ReadError::Invalid)?;
    // Checked before compiling: the engine would refuse such a module with
    // a message about its pooling allocator instead.
    if let Some(pages) = memory.initial_pages {
        check_initial_memory(pages, spec).map_err(ReadError::Invalid)?;
    }
    let bytes = if memory.imported {
        imported_memory::define_imported_memory(&bytes).map_err(ReadError::Invalid)?
    } else {
        bytes
    };
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

/// Every import must be a host function with exactly the host's signature.
fn check_imports(module: &Module) -> Result<(), String> {
    for import in module.imports() {
        let name = format!("{}.{}", import.module(), import.name());
        let ExternType::Func(func) = import.ty() else {
            return Err(format!("imports {name}, which the host does not provide"));
        };
        let wanted = HOST_FUNCTIONS
            .iter()
            .find(|f| import.module() == abi::MODULE && f.name == import.name());
        let Some(wanted) = wanted else {
            let available: Vec<&str> = HOST_FUNCTIONS.iter().map(|f| f.name).collect();
            return Err(format!(
                "imports {name}, which the host does not provide (the host provides, in module \"env\": {})",
                available.join(", ")
            ));
        };
        let got = abi::describe(func.params(), func.results());
        let expected = abi::describe(wanted.params.iter().cloned(), wanted.results.iter().cloned());
        if got != expected {
            return Err(format!(
                "imports {name} with signature {got}, but the host provides {expected}"
            ));
        }
    }
    Ok(())
}

/// The entry function: exported, no parameters, no results.
fn check_entry(module: &Module, function: &str) -> Result<wasmtime::ModuleExport, String> {
    match module.get_export(function) {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
        Some(ExternType::Func(f)) => {
            return Err(format!(
                "export {function:?} has signature {}, but an entry function takes no parameters and returns nothing",
                abi::describe(f.params(), f.results())
            ));
        }
        Some(_) => return Err(format!("export {function:?} is not a function")),
        None => {
            let functions: Vec<String> = module
                .exports()
                .filter(|e| matches!(e.ty(), ExternType::Func(_)))
                .map(|e| format!("{:?}", e.name()))
                .collect();
            return Err(format!(
                "no exported function {function:?} (exported functions: {})",
                if functions.is_empty() {
                    "none".to_string()
                } else {
                    functions.join(", ")
                }
            ));
        }
    }
    module
        .get_export_index(function)
        .ok_or_else(|| format!("no exported function {function:?}"))
}

/// The memory host functions read and write, and its size against the
/// route's `memory_limit`.
fn check_memory(module: &Module, spec: &WasmSpec) -> Result<Option<wasmtime::ModuleExport>, String> {
    let imports_functions = module.imports().next().is_some();
    let memories = module.resources_required().num_memories;
    if memories > 1 {
        return Err(format!(
            "defines {memories} memories; a core guest may have one (the host ABI reads and writes \"the\" memory)"
        ));
    }
    match module.get_export(MEMORY_EXPORT) {
        Some(ExternType::Memory(memory)) => {
            check_initial_memory(memory.minimum(), spec)?;
            Ok(module.get_export_index(MEMORY_EXPORT))
        }
        Some(_) => Err(format!("export {MEMORY_EXPORT:?} is not a memory")),
        None if imports_functions => Err(format!(
            "uses host functions but exports no memory named {MEMORY_EXPORT:?} (and imports no env.memory)"
        )),
        None => Ok(None),
    }
}

fn check_initial_memory(pages: u64, spec: &WasmSpec) -> Result<(), String> {
    let initial = pages.saturating_mul(WASM_PAGE as u64);
    if initial > spec.limits.memory_limit as u64 {
        return Err(format!(
            "its memory starts at {} KiB, more than the route's memory_limit of {} KiB",
            initial >> 10,
            spec.limits.memory_limit >> 10
        ));
    }
    Ok(())
}

/// Instantiates once (running any start function) so that a guest that
/// cannot be instantiated within its limits fails now, not per request.
fn trial_instantiate(engine: &Engine, guest: &ModuleGuest, label: &str, spec: &WasmSpec) -> Result<(), String> {
    let context = Rc::new(RouteContext::new(label.to_string(), spec));
    let mut store = Store::new(engine, HostState::new(context, true));
    store.limiter(|state| &mut state.limits);
    store.set_fuel(spec.limits.fuel).map_err(|e| e.to_string())?;
    futures_lite::future::block_on(guest.pre.instantiate_async(&mut store))
        .map(drop)
        .map_err(|e| format!("cannot be instantiated within its limits: {e:#}"))
}
