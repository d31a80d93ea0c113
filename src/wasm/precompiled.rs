//! The compile cache (`server.compile_cache_dir`): a guest compiled once
//! is loaded at the next start in milliseconds instead of being compiled
//! again (seconds for a component that carries an interpreter).
//!
//! An entry is named by the SHA-256 of the engine's compatibility hash
//! (wasmtime version, compiler settings, memory layout) and the module's
//! content digest, so a changed guest or a changed `[server]` engine
//! setting compiles afresh. Entries are written atomically
//! (`private_dir`) and carry a checksum of their code. Loading an entry runs native code that the directory supplies: a
//! directory or entry of another user (root excepted), or one that others
//! may write to, is refused. (The directories above it are not checked.)

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::{Module, Result};

use crate::private_dir;
use crate::sources::{ModuleSource, Sha256Digest};

/// A directory of compiled guests.
pub struct CompileCache {
    dir: PathBuf,
}

/// What the cache stores: both guest kinds serialize the same way.
#[allow(unsafe_code, reason = "deserializing compiled code is unsafe in wasmtime")]
pub trait Artifact: Sized {
    const KIND: &'static str;
    fn compile(engine: &Engine, bytes: &[u8]) -> Result<Self>;
    fn serialize(&self) -> Result<Vec<u8>>;
    /// # Safety
    /// `bytes` must be what `serialize` wrote for an engine like `engine`.
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Self>;
}

#[allow(unsafe_code, reason = "forwards deserialize to wasmtime, under its contract")]
impl Artifact for Module {
    const KIND: &'static str = "module";
    fn compile(engine: &Engine, bytes: &[u8]) -> Result<Self> {
        Module::from_binary(engine, bytes)
    }
    fn serialize(&self) -> Result<Vec<u8>> {
        Module::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Self> {
        // SAFETY: the caller's contract is wasmtime's.
        unsafe { Module::deserialize(engine, bytes) }
    }
}

#[allow(unsafe_code, reason = "forwards deserialize to wasmtime, under its contract")]
impl Artifact for Component {
    const KIND: &'static str = "component";
    fn compile(engine: &Engine, bytes: &[u8]) -> Result<Self> {
        Component::from_binary(engine, bytes)
    }
    fn serialize(&self) -> Result<Vec<u8>> {
        Component::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Self> {
        // SAFETY: the caller's contract is wasmtime's.
        unsafe { Component::deserialize(engine, bytes) }
    }
}

impl CompileCache {
    /// Creates the directory if needed (owner-only), and refuses one that
    /// other users may write to.
    pub fn open(dir: &Path) -> std::result::Result<CompileCache, String> {
        private_dir::open(dir, "the compile cache")?;
        Ok(CompileCache { dir: dir.to_path_buf() })
    }

    /// The compiled guest for `bytes`, whose content digest is `digest`:
    /// from the cache if it holds it, else compiled and stored. A cache
    /// that cannot be read or written only costs the compilation (and a
    /// warning).
    pub fn get_or_compile<A: Artifact>(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &Sha256Digest,
        source: &ModuleSource,
    ) -> Result<A> {
        let entry = self.dir.join(entry_name::<A>(engine, digest));
        match load::<A>(engine, &entry) {
            Ok(Some(artifact)) => {
                tracing::info!(source = %source, entry = %entry.display(), "{} loaded from the compile cache", A::KIND);
                return Ok(artifact);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(entry = %entry.display(), "unusable compile cache entry, compiling again: {why}")
            }
        }
        let artifact = A::compile(engine, bytes)?;
        let stored = artifact
            .serialize()
            .map_err(|e| format!("cannot serialize: {e:#}"))
            .and_then(|data| {
                private_dir::write_atomic(&entry, &[&Sha256::digest(&data), &data])
                    .map_err(|e| format!("cannot write: {e}"))
            });
        match stored {
            Ok(()) => {
                tracing::info!(source = %source, entry = %entry.display(), "{} compiled and cached", A::KIND)
            }
            Err(why) => tracing::warn!(entry = %entry.display(), "compile cache not updated: {why}"),
        }
        Ok(artifact)
    }
}

/// The compiled guest in `entry`, if there is a usable one.
#[allow(
    unsafe_code,
    reason = "runs native code that this cache wrote; see the SAFETY comment"
)]
fn load<A: Artifact>(engine: &Engine, entry: &Path) -> std::result::Result<Option<A>, String> {
    let Some(stored) = read_entry(entry)? else {
        return Ok(None);
    };
    // SAFETY: the entry was written by `get_or_compile`, from `serialize` on an
    // engine with the same compatibility hash (it is part of the name),
    // into a directory and a file that only this user (or root) may write
    // to, and its checksum matches (checked in `open` and `read_entry`);
    // wasmtime checks the header again and refuses an entry of another
    // version or setting.
    unsafe { A::deserialize(engine, &stored) }
        .map(Some)
        .map_err(|e| format!("{e:#}"))
}

/// Named by the engine's compatibility hash and the module's content
/// digest (the one the content cache and `sha256` pins use): a changed
/// guest or `[server]` engine setting compiles afresh. The kind and the
/// server's version are part of the name because a core module is
/// rewritten before it compiles (an imported memory becomes its own), so
/// its entry is not the bytes' alone.
fn entry_name<A: Artifact>(engine: &Engine, digest: &Sha256Digest) -> String {
    let mut hasher = Digesting(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(A::KIND.as_bytes());
    // What this version does to the bytes before compiling them (WAT text,
    // an imported memory made its own) is part of the entry too.
    hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.0.update(digest.as_bytes());
    let hex: String = hasher.0.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.cwasm")
}

/// Feeds what `Hash` writes into the digest (stable across Rust
/// releases, unlike `DefaultHasher`).
struct Digesting(Sha256);

impl Hasher for Digesting {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // never asked: the digest is read directly
    }
}

/// The compiled code of an entry, if there is one that this user (or
/// root) owns, no one else may write to, and whose checksum holds.
fn read_entry(entry: &Path) -> std::result::Result<Option<Vec<u8>>, String> {
    let Some(mut stored) = private_dir::read_owned(entry)? else {
        return Ok(None);
    };
    const DIGEST: usize = 32;
    if stored.len() < DIGEST || Sha256::digest(&stored[DIGEST..]).as_slice() != &stored[..DIGEST] {
        return Err("checksum mismatch (damaged or not ours)".into());
    }
    stored.drain(..DIGEST);
    Ok(Some(stored))
}
