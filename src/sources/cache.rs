//! The content cache (`[sources] cache_dir`): fetched modules on disk,
//! named by the SHA-256 of their bytes. A pinned module found here is not
//! fetched again, so a server whose modules are pinned starts with its
//! sources unreachable.
//!
//! - `sha256-<hex>.wasm`: a module's bytes. The name is the checksum: an
//!   entry whose bytes do not hash to its name is deleted, not used.
//! - `oci-<hex>.layer`: for an `oci://…@sha256:` address (a pinned
//!   manifest), the digest of the wasm layer it resolved to, so that such
//!   an address too starts offline.
//!
//! The directory and its files are owner-only and written atomically
//! (`private_dir`), as the compile cache's are. Its size is bounded by
//! `cache_max_bytes`: after each start the least recently used modules that
//! no route uses are removed (an entry's modification time is its last
//! use).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::address::OciAddress;
use super::digest::Sha256Digest;
use crate::private_dir;

/// A temporary file older than this is a crashed write, not one in progress.
const PARTIAL_WRITE_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct ContentCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// What [`ContentCache::evict`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Eviction {
    pub removed: usize,
    /// The modules left, in bytes.
    pub kept_bytes: u64,
}

impl ContentCache {
    pub fn open(dir: &Path, max_bytes: u64) -> Result<ContentCache, String> {
        private_dir::open(dir, "the module cache")?;
        Ok(ContentCache {
            dir: dir.to_path_buf(),
            max_bytes,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The module with this digest, if the cache holds an intact copy; its
    /// use is recorded for eviction.
    pub fn get(&self, digest: &Sha256Digest) -> Option<Vec<u8>> {
        let path = self.module_path(digest);
        match private_dir::read_owned(&path) {
            Ok(Some(bytes)) if Sha256Digest::of(&bytes) == *digest => {
                touch(&path);
                Some(bytes)
            }
            Ok(Some(_)) => {
                tracing::warn!(entry = %path.display(), "module cache entry does not match its digest (damaged): removed");
                let _ = std::fs::remove_file(&path);
                None
            }
            Ok(None) => None,
            Err(why) => {
                tracing::warn!(entry = %path.display(), "module cache entry not used: {why}");
                None
            }
        }
    }

    /// Keeps `bytes` (whose digest is `digest`). A failure to write only
    /// costs a fetch at the next start.
    pub fn put(&self, digest: &Sha256Digest, bytes: &[u8]) {
        let path = self.module_path(digest);
        if let Err(e) = private_dir::write_atomic(&path, &[bytes]) {
            tracing::warn!(entry = %path.display(), "module cache not updated: {e}");
        }
    }

    /// The layer a pinned OCI manifest resolved to when it was fetched.
    pub fn resolved_layer(&self, address: &OciAddress) -> Option<Sha256Digest> {
        let bytes = private_dir::read_owned(&self.layer_path(address)).ok()??;
        Sha256Digest::parse(std::str::from_utf8(&bytes).ok()?.trim()).ok()
    }

    pub fn remember_layer(&self, address: &OciAddress, layer: &Sha256Digest) {
        let path = self.layer_path(address);
        if let Err(e) = private_dir::write_atomic(&path, &[layer.to_string().as_bytes()]) {
            tracing::warn!(entry = %path.display(), "module cache not updated: {e}");
        }
    }

    /// Removes the least recently used modules not in `in_use` until the
    /// cache is within its bound (modules in use stay, even past it).
    pub fn evict(&self, in_use: &HashSet<Sha256Digest>) -> Eviction {
        self.remove_leftovers();
        let mut entries = self.modules();
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        // Oldest first.
        entries.sort_by_key(|e| e.used);
        let mut removed = 0;
        for entry in entries {
            if total <= self.max_bytes {
                break;
            }
            if in_use.contains(&entry.digest) {
                continue;
            }
            match std::fs::remove_file(&entry.path) {
                Ok(()) => {
                    total -= entry.bytes;
                    removed += 1;
                    tracing::info!(entry = %entry.path.display(), bytes = entry.bytes, "module cache: least recently used entry removed");
                }
                Err(e) => tracing::warn!(entry = %entry.path.display(), "module cache: cannot remove: {e}"),
            }
        }
        if total > self.max_bytes {
            tracing::warn!(
                bytes = total,
                cache_max_bytes = self.max_bytes,
                "the module cache is over its bound: the modules in use need more"
            );
        }
        Eviction {
            removed,
            kept_bytes: total,
        }
    }

    /// Temporary files of writes that a crash cut (old enough that no
    /// other start is still writing them), and remembered OCI layers whose
    /// module is gone: neither counts against the bound, so neither may
    /// pile up.
    fn remove_leftovers(&self) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for item in listing.filter_map(Result::ok) {
            let path = item.path();
            let name = item.file_name();
            let name = name.to_string_lossy();
            let stale = if name.contains(".partial-") {
                let age = item
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                age.is_some_and(|age| age > PARTIAL_WRITE_AGE)
            } else if name.starts_with("oci-") && name.ends_with(".layer") {
                let layer = private_dir::read_owned(&path).ok().flatten();
                let layer = layer.and_then(|b| Sha256Digest::parse(String::from_utf8_lossy(&b).trim()).ok());
                layer.is_none_or(|digest| !self.module_path(&digest).exists())
            } else {
                false
            };
            if stale {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn module_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.dir.join(format!("sha256-{digest}.wasm"))
    }

    fn layer_path(&self, address: &OciAddress) -> PathBuf {
        let name = Sha256Digest::of(address.to_string().as_bytes());
        self.dir.join(format!("oci-{name}.layer"))
    }

    fn modules(&self) -> Vec<Entry> {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        listing
            .filter_map(Result::ok)
            .filter_map(|item| {
                let name = item.file_name();
                let hex = name.to_str()?.strip_prefix("sha256-")?.strip_suffix(".wasm")?;
                let digest = Sha256Digest::parse(hex).ok()?;
                let metadata = item.metadata().ok()?;
                Some(Entry {
                    path: item.path(),
                    digest,
                    bytes: metadata.len(),
                    used: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect()
    }
}

struct Entry {
    path: PathBuf,
    digest: Sha256Digest,
    bytes: u64,
    used: SystemTime,
}

/// Records a use: eviction goes by modification time.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_verifies_and_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::open(&dir.path().join("modules"), 250).unwrap();
        let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 100]).collect();
        let digests: Vec<Sha256Digest> = blobs.iter().map(|b| Sha256Digest::of(b)).collect();
        for (blob, digest) in blobs.iter().zip(&digests) {
            cache.put(digest, blob);
        }
        // The first is the oldest by time; using it makes the second the oldest.
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        for (i, digest) in digests.iter().enumerate() {
            let file = std::fs::File::options()
                .append(true)
                .open(cache.module_path(digest))
                .unwrap();
            file.set_modified(old + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        assert_eq!(cache.get(&digests[0]).as_deref(), Some(&blobs[0][..]));
        let eviction = cache.evict(&HashSet::new());
        assert_eq!(
            eviction,
            Eviction {
                removed: 1,
                kept_bytes: 200
            }
        );
        assert!(cache.get(&digests[1]).is_none(), "the least recently used goes first");
        assert!(cache.get(&digests[0]).is_some() && cache.get(&digests[2]).is_some());

        // Modules in use stay even past the bound.
        let small = ContentCache::open(cache.dir(), 0).unwrap();
        let in_use: HashSet<_> = [digests[2]].into();
        assert_eq!(
            small.evict(&in_use),
            Eviction {
                removed: 1,
                kept_bytes: 100
            }
        );
        assert!(small.get(&digests[2]).is_some());

        // A damaged entry is removed, not used.
        std::fs::write(cache.module_path(&digests[2]), b"tampered").unwrap();
        assert!(cache.get(&digests[2]).is_none());
        assert!(!cache.module_path(&digests[2]).exists());
    }

    #[test]
    fn crashed_writes_and_orphan_layers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::open(dir.path(), 1 << 20).unwrap();
        let old = SystemTime::now() - PARTIAL_WRITE_AGE * 2;
        for (name, age) in [
            ("sha256-x.partial-1-2", old),
            ("sha256-y.partial-1-3", SystemTime::now()),
        ] {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
            let file = std::fs::File::options()
                .append(true)
                .open(dir.path().join(name))
                .unwrap();
            file.set_modified(age).unwrap();
        }
        std::fs::write(
            dir.path().join("oci-orphan.layer"),
            Sha256Digest::of(b"gone").to_string(),
        )
        .unwrap();
        cache.evict(&HashSet::new());
        assert!(
            !dir.path().join("sha256-x.partial-1-2").exists(),
            "a crashed write goes"
        );
        assert!(
            dir.path().join("sha256-y.partial-1-3").exists(),
            "a write in progress stays"
        );
        assert!(
            !dir.path().join("oci-orphan.layer").exists(),
            "a layer without its module goes"
        );
    }

    #[test]
    fn remembers_the_layer_of_a_pinned_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::open(dir.path(), 1 << 20).unwrap();
        let address = match super::super::ModuleSource::parse(&format!("oci://r.io/a@sha256:{}", "b".repeat(64))) {
            Ok(super::super::ModuleSource::Oci(address)) => address,
            other => panic!("{other:?}"),
        };
        assert_eq!(cache.resolved_layer(&address), None);
        let layer = Sha256Digest::of(b"layer");
        cache.remember_layer(&address, &layer);
        assert_eq!(cache.resolved_layer(&address), Some(layer));
    }
}
