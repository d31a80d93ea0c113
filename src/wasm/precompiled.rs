//! The compile cache (`server.compile_cache_dir`): a guest compiled once
//! is loaded at the next start in milliseconds instead of being compiled
//! again (seconds for a component that carries an interpreter).
//!
//! An entry is named by the SHA-256 of the engine's compatibility hash
//! (wasmtime version, compiler settings, memory layout) and the wasm
//! bytes, so a changed guest or a changed `[server]` engine setting
//! compiles afresh. Entries are written to a temporary file and renamed,
//! so a reader never sees half an entry, and carry a checksum of their
//! code. Loading an entry runs native code that the directory supplies: a
//! directory or entry of another user (root excepted), or one that others
//! may write to, is refused. (The directories above it are not checked.)

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::{Module, Result};

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
        let shown = dir.display();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the compile cache {shown}: {e}"))?;
        let metadata = std::fs::metadata(dir).map_err(|e| format!("cannot read the compile cache {shown}: {e}"))?;
        check_owned(&metadata).map_err(|why| {
            format!("the compile cache {shown} {why}: its entries become native code in this server; use a directory of this user's that only it may write to")
        })?;
        Ok(CompileCache { dir: dir.to_path_buf() })
    }

    /// The compiled guest for `bytes`: from the cache if it holds it, else
    /// compiled and stored. A cache that cannot be read or written only
    /// costs the compilation (and a warning).
    pub fn get_or_compile<A: Artifact>(&self, engine: &Engine, bytes: &[u8], source: &Path) -> Result<A> {
        let entry = self.dir.join(entry_name(engine, bytes));
        match load::<A>(engine, &entry) {
            Ok(Some(artifact)) => {
                tracing::info!(file = %source.display(), entry = %entry.display(), "{} loaded from the compile cache", A::KIND);
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
            .and_then(|data| store(&entry, &data).map_err(|e| format!("cannot write: {e}")));
        match stored {
            Ok(()) => {
                tracing::info!(file = %source.display(), entry = %entry.display(), "{} compiled and cached", A::KIND)
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
    // SAFETY: the entry was written by `store`, from `serialize` on an
    // engine with the same compatibility hash (it is part of the name),
    // into a directory and a file that only this user (or root) may write
    // to, and its checksum matches (checked in `open` and `read_entry`);
    // wasmtime checks the header again and refuses an entry of another
    // version or setting.
    unsafe { A::deserialize(engine, &stored) }
        .map(Some)
        .map_err(|e| format!("{e:#}"))
}

#[allow(unsafe_code, reason = "libc call")]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
    unsafe { libc::geteuid() }
}

fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut digest = Digesting(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut digest);
    digest.0.update(bytes);
    let hex: String = digest.0.finalize().iter().map(|b| format!("{b:02x}")).collect();
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

/// Writes the entry (checksum, then the compiled code) next to `entry`,
/// then renames it over: concurrent starts and crashes leave either no
/// entry or a whole one. The temporary name is unique per process and
/// write, and never opens an existing file.
fn store(entry: &Path, data: &[u8]) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let partial = entry.with_extension(format!("partial-{}-{nanos}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        // No fsync: a torn entry after a crash fails its checksum.
        .and_then(|mut file| {
            file.write_all(&Sha256::digest(data))?;
            file.write_all(data)
        })
        .and_then(|()| std::fs::rename(&partial, entry));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// The compiled code of an entry, if there is one that this user (or
/// root) owns, no one else may write to, and whose checksum holds.
fn read_entry(entry: &Path) -> Result<Option<Vec<u8>>, String> {
    let mut file = match std::fs::File::open(entry) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    check_owned(&metadata)?;
    let mut stored = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut stored).map_err(|e| e.to_string())?;
    const DIGEST: usize = 32;
    if stored.len() < DIGEST || Sha256::digest(&stored[DIGEST..]).as_slice() != &stored[..DIGEST] {
        return Err("checksum mismatch (damaged or not ours)".into());
    }
    stored.drain(..DIGEST);
    Ok(Some(stored))
}

/// Owned by this user or root, and writable by no one else.
fn check_owned(metadata: &std::fs::Metadata) -> Result<(), String> {
    let owner = metadata.uid();
    if owner != effective_uid() && owner != 0 {
        return Err(format!("belongs to another user (uid {owner})"));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!("may be written by other users (mode {:o})", mode & 0o777));
    }
    Ok(())
}
