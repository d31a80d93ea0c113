//! Directories and files that only this user may write: what the two
//! caches on disk (compiled guests, fetched modules) need to trust what
//! they read back. Entries are written to a temporary file and renamed, so
//! a reader never sees half an entry.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` if needed (owner-only), and refuses one that other users
/// may write to. `what` names it in messages ("the compile cache").
pub fn open(dir: &Path, what: &str) -> Result<(), String> {
    let shown = dir.display();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {what} {shown}: {e}"))?;
    let metadata = std::fs::metadata(dir).map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    check_owned(&metadata).map_err(|why| {
        format!("{what} {shown} {why}: the server runs what it holds; use a directory of this user's that only it may write to")
    })
}

/// Owned by this user or root, and writable by no one else.
pub fn check_owned(metadata: &std::fs::Metadata) -> Result<(), String> {
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

/// The file's bytes, if it exists and passes [`check_owned`].
pub fn read_owned(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    check_owned(&metadata)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

/// Writes `parts` one after the other into a new owner-only file next to
/// `path`, then renames it over `path`: concurrent writers and crashes
/// leave either no entry or a whole one. The temporary name is unique per
/// process and write, and never opens an existing file. No fsync: callers
/// checksum what they read back.
pub fn write_atomic(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let partial = path.with_extension(format!("partial-{}-{nanos}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| parts.iter().try_for_each(|part| file.write_all(part)))
        .and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[allow(unsafe_code, reason = "libc call")]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
    unsafe { libc::geteuid() }
}
