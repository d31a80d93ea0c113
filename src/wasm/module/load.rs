//! Loading a core module: check every import and export against the ABI,
//! pre-link, and instantiate once as a trial.

use std::rc::Rc;

use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, Store};

use super::abi::{self, HOST_FUNCTIONS};
use super::host::HostState;
use super::imported_memory::{self, MEMORY_EXPORT};
use super::{COMMAND_ENTRY, INITIALIZE, ModuleGuest, wasi};
use crate::config::{WASM_PAGE, WasmSpec};
use crate::wasm::route::RouteContext;

/// Rewrites what must change before compiling: an imported `env.memory`
/// becomes a defined one. A memory larger than the route allows is refused
/// here, before the engine would refuse it with a message about its
/// pooling allocator instead.
pub fn prepare(bytes: Vec<u8>, spec: &WasmSpec) -> Result<Vec<u8>, String> {
    let memory = imported_memory::inspect(&bytes)?;
    if let Some(pages) = memory.initial_pages {
        check_initial_memory(pages, spec)?;
    }
    if memory.imported {
        imported_memory::define_imported_memory(&bytes)
    } else {
        Ok(bytes)
    }
}

/// Checks and pre-links a compiled module; `Err` says why it cannot serve
/// the route.
pub fn load(
    engine: &Engine,
    linker: &Linker<HostState>,
    label: &str,
    module: &Module,
    spec: &WasmSpec,
) -> Result<ModuleGuest, String> {
    check_imports(module)?;
    let entry = check_entry(module, &spec.function)?;
    let memory = check_memory(module, spec)?;
    let initialize = check_initialize(module)?;
    let pre: InstancePre<HostState> = linker
        .instantiate_pre(module)
        .map_err(|e| format!("cannot link: {e:#}"))?;
    let guest = ModuleGuest {
        pre,
        entry,
        memory,
        initialize,
        runs_once: spec.function == COMMAND_ENTRY,
        uses_wasi: module.imports().any(|i| i.module() == wasi::MODULE),
    };
    trial_instantiate(engine, &guest, label, spec)?;
    Ok(guest)
}

/// Every import must be a host function with exactly the host's signature.
/// WASI's are checked by the linker (wasmtime-wasi defines them), whose
/// error names the function.
fn check_imports(module: &Module) -> Result<(), String> {
    for import in module.imports().filter(|i| i.module() != wasi::MODULE) {
        let name = format!("{}.{}", import.module(), import.name());
        let ExternType::Func(func) = import.ty() else {
            return Err(format!("imports {name}, which the host does not provide"));
        };
        // An unknown import module is reported against `env`, the ABI's.
        let known = abi::IMPORT_MODULES
            .iter()
            .find(|(module, _)| *module == import.module());
        let (module, functions) = known.copied().unwrap_or((abi::MODULE, HOST_FUNCTIONS));
        let wanted = known.and_then(|_| functions.iter().find(|f| f.name == import.name()));
        let Some(wanted) = wanted else {
            let available: Vec<&str> = functions.iter().map(|f| f.name).collect();
            return Err(format!(
                "imports {name}, which the host does not provide (the host provides, in module {module:?}: {})",
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

/// A WASI reactor's `_initialize`, which runs once per instance before
/// its first request.
fn check_initialize(module: &Module) -> Result<Option<wasmtime::ModuleExport>, String> {
    match module.get_export(INITIALIZE) {
        None => Ok(None),
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {
            Ok(module.get_export_index(INITIALIZE))
        }
        Some(_) => Err(format!(
            "export {INITIALIZE:?} is not a function without parameters and results"
        )),
    }
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
    let context = Rc::new(RouteContext::trial(label, spec));
    let mut store = Store::new(engine, HostState::new(context, true));
    store.limiter(|state| &mut state.limits);
    store.set_fuel(spec.limits.fuel).map_err(|e| e.to_string())?;
    futures_lite::future::block_on(guest.pre.instantiate_async(&mut store))
        .map(drop)
        .map_err(|e| format!("cannot be instantiated within its limits: {e:#}"))
}
