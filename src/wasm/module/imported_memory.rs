//! Guests built by old toolchains import their memory as `env.memory`
//! instead of defining it. An imported memory would have to be created per
//! store and handed to the linker, which rules out the pre-linked
//! `InstancePre` and the pooling allocator's copy-on-write images. So such a
//! module is rewritten once, at load: the import becomes a defined memory
//! with the same limits, exported as `memory`. The guest cannot tell the
//! difference: nothing else ever shared that memory.

use std::ops::Range;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{ExportKind, ExportSection, ImportSection, MemorySection, Module, RawSection};
use wasmparser::{Parser, Payload, TypeRef};

/// The export name the host reads a guest's memory from.
pub const MEMORY_EXPORT: &str = "memory";

/// Section order in a core module (the binary section ids are not sorted).
fn section_rank(id: u8) -> u8 {
    match id {
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => 0,   // custom sections may appear anywhere
    }
}

/// What a module says about its memory.
#[derive(Debug, Default)]
pub struct MemoryInfo {
    /// Imported as `env.memory`, which [`define_imported_memory`] can turn
    /// into a defined memory.
    pub imported: bool,
    /// Initial size in 64 KiB pages, imported or defined.
    pub initial_pages: Option<u64>,
}

/// Finds the memory and checks imports; any other memory, table, global or
/// tag import is something the host does not provide.
pub fn inspect(wasm: &[u8]) -> Result<MemoryInfo, String> {
    let invalid = |e: wasmparser::BinaryReaderError| format!("invalid wasm: {e}");
    let mut found = MemoryInfo::default();
    for payload in Parser::new(0).parse_all(wasm) {
        let reader = match payload.map_err(invalid)? {
            Payload::ImportSection(reader) => reader,
            Payload::MemorySection(reader) => {
                for memory in reader {
                    found.initial_pages.get_or_insert(memory.map_err(invalid)?.initial);
                }
                continue;
            }
            _ => continue,
        };
        for import in reader.into_imports() {
            let import = import.map_err(invalid)?;
            match import.ty {
                TypeRef::Func(_) | TypeRef::FuncExact(_) => {}
                TypeRef::Memory(memory) if import.module == "env" && import.name == "memory" => {
                    found.imported = true;
                    found.initial_pages = Some(memory.initial);
                }
                other => {
                    let kind = match other {
                        TypeRef::Memory(_) => "memory",
                        TypeRef::Table(_) => "table",
                        TypeRef::Global(_) => "global",
                        _ => "tag",
                    };
                    return Err(format!(
                        "imports {kind} {}.{} which the host does not provide (only env.memory may be imported besides host functions)",
                        import.module, import.name
                    ));
                }
            }
        }
    }
    Ok(found)
}

/// Rewrites a module whose memory is imported as `env.memory` so that it
/// defines that memory itself and exports it as `memory`.
pub fn define_imported_memory(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let invalid = |e: wasmparser::BinaryReaderError| format!("invalid wasm: {e}");
    let mut out = Module::new();
    let mut reencoder = RoundtripReencoder;
    let mut memory = None;
    let mut memory_written = false;
    let mut export_written = false;

    let sections: Vec<(u8, Range<usize>, Payload<'_>)> = Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| match p {
            Ok(payload) => payload.as_section().map(|(id, range)| Ok((id, range, payload))),
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .map_err(invalid)?;

    for (id, range, payload) in sections {
        let rank = section_rank(id);
        // The defined memory goes where a memory section belongs, and the
        // export section must exist to carry its export.
        if rank > 5 && !memory_written {
            if let Some(ty) = memory {
                let mut section = MemorySection::new();
                section.memory(ty);
                out.section(&section);
            }
            memory_written = true;
        }
        if rank > 8 && !export_written {
            out.section(&memory_export(ExportSection::new()));
            export_written = true;
        }
        match payload {
            Payload::ImportSection(reader) => {
                let mut imports = ImportSection::new();
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    match import.ty {
                        TypeRef::Memory(ty) if import.module == "env" && import.name == "memory" => {
                            memory = Some(
                                reencoder
                                    .memory_type(ty)
                                    .map_err(|e| format!("cannot re-encode memory: {e}"))?,
                            );
                        }
                        ty => {
                            let ty = reencoder
                                .entity_type(ty)
                                .map_err(|e| format!("cannot re-encode import: {e}"))?;
                            imports.import(import.module, import.name, ty);
                        }
                    }
                }
                out.section(&imports);
            }
            Payload::MemorySection(_) if memory.is_some() => {
                return Err("defines a memory besides importing env.memory; only one memory is supported".into());
            }
            Payload::ExportSection(reader) => {
                let mut exports = ExportSection::new();
                for export in reader {
                    let export = export.map_err(invalid)?;
                    if export.name == MEMORY_EXPORT {
                        return Err(format!(
                            "imports env.memory but exports something else as {MEMORY_EXPORT:?}"
                        ));
                    }
                    let kind = reencoder
                        .export_kind(export.kind)
                        .map_err(|e| format!("cannot re-encode export: {e}"))?;
                    exports.export(export.name, kind, export.index);
                }
                out.section(&memory_export(exports));
                export_written = true;
            }
            _ => {
                out.section(&RawSection { id, data: &wasm[range] });
            }
        }
    }
    if !memory_written && let Some(ty) = memory {
        let mut section = MemorySection::new();
        section.memory(ty);
        out.section(&section);
    }
    if !export_written {
        out.section(&memory_export(ExportSection::new()));
    }
    Ok(out.finish())
}

fn memory_export(mut exports: ExportSection) -> ExportSection {
    exports.export(MEMORY_EXPORT, ExportKind::Memory, 0);
    exports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_memory_becomes_defined_and_exported() {
        let wasm = wat::parse_str(
            r#"(module
                (import "env" "log" (func $log (param i32 i64)))
                (import "env" "memory" (memory 2 10))
                (data (i32.const 16) "hi")
                (func (export "handle") (call $log (i32.const 16) (i64.const 2))))"#,
        )
        .unwrap();
        let info = inspect(&wasm).unwrap();
        assert!(info.imported);
        assert_eq!(info.initial_pages, Some(2));
        let rewritten = define_imported_memory(&wasm).unwrap();
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, &rewritten).unwrap();
        let imports: Vec<_> = module
            .imports()
            .map(|i| (i.module().to_string(), i.name().to_string()))
            .collect();
        assert_eq!(imports, vec![("env".to_string(), "log".to_string())]);
        match module.get_export(MEMORY_EXPORT) {
            Some(wasmtime::ExternType::Memory(m)) => {
                assert_eq!(m.minimum(), 2);
                assert_eq!(m.maximum(), Some(10));
            }
            other => panic!("no memory export: {other:?}"),
        }
        assert!(module.get_export("handle").is_some());
    }

    #[test]
    fn other_imports_are_refused() {
        let wasm = wat::parse_str(r#"(module (import "env" "table" (table 1 funcref)))"#).unwrap();
        let err = inspect(&wasm).err().unwrap();
        assert!(err.contains("table env.table"), "{err}");
    }
}
