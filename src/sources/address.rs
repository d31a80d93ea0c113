//! Where a route's module comes from: the forms `file_path` takes.
//!
//! - a local path (the original form, unchanged);
//! - `https://host/path.wasm`, or `http://…` when the route pins the bytes
//!   with `sha256` (plain HTTP is then only a transport);
//! - `s3://bucket/key`;
//! - `oci://registry/repository:tag` or `oci://registry/repository@sha256:…`.
//!
//! Addresses never carry credentials: they are logged and shown by
//! `check`, so a URL with a user or password is refused here, and S3 and
//! registry credentials come from the environment and the Docker config.

use std::fmt;
use std::path::PathBuf;

use super::digest::Sha256Digest;

/// A route's module source, parsed from its `file_path`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ModuleSource {
    /// Resolved against the config file's directory by `config`.
    File(PathBuf),
    Http(HttpAddress),
    S3 {
        bucket: String,
        key: String,
    },
    Oci(OciAddress),
}

/// An `https://` (or pinned `http://`) URL, without credentials. Debug
/// and Display hide its query (see Display).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HttpAddress {
    pub url: url::Url,
}

impl HttpAddress {
    pub fn is_plain(&self) -> bool {
        self.url.scheme() == "http"
    }
}

/// `oci://registry/repository` and a tag or a manifest digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OciAddress {
    /// `host` or `host:port`.
    pub registry: String,
    pub repository: String,
    pub reference: OciReference,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OciReference {
    Tag(String),
    /// Pins the manifest (and through it, the layer).
    Manifest(Sha256Digest),
}

impl ModuleSource {
    /// Parses `file_path`. Anything without a `scheme://` is a path.
    pub fn parse(text: &str) -> Result<ModuleSource, String> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(ModuleSource::File(PathBuf::from(text)));
        };
        match scheme {
            "https" | "http" => parse_http(text).map(ModuleSource::Http),
            "s3" => parse_s3(rest),
            "oci" => parse_oci(rest).map(ModuleSource::Oci),
            // The text is not echoed: it may hold credentials.
            _ => Err(format!(
                "unknown scheme {scheme:?}; a module address starts with https://, http://, s3:// or oci://, or is a path"
            )),
        }
    }

    /// Whether the module comes over the network (and so through the
    /// content cache).
    pub fn is_remote(&self) -> bool {
        !matches!(self, ModuleSource::File(_))
    }

    /// The address, when it is an OCI one that pins its manifest
    /// (`@sha256:`): the manifest, not the bytes, so the layer it resolved
    /// to is remembered by the content cache.
    pub fn oci_pinned_manifest(&self) -> Option<&OciAddress> {
        match self {
            ModuleSource::Oci(address) if matches!(address.reference, OciReference::Manifest(_)) => Some(address),
            _ => None,
        }
    }
}

fn parse_http(text: &str) -> Result<HttpAddress, String> {
    // The text is not echoed: it may hold credentials.
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Addresses are logged and shown: credentials do not belong in them.
        return Err("a module URL must not carry a user or password (it would be logged); use a pre-signed URL or another source".into());
    }
    let address = HttpAddress { url };
    if address.url.path().len() <= 1 {
        return Err(format!("{address}: the URL names no file"));
    }
    Ok(address)
}

fn parse_s3(rest: &str) -> Result<ModuleSource, String> {
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| format!("\"s3://{rest}\" is not s3://bucket/key"))?;
    // S3's bucket naming rules, loosely: what could reach a request line.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !bucket_ok {
        return Err(format!(
            "{bucket:?} is not an S3 bucket name (3 to 63 lower-case letters, digits, '-' and '.')"
        ));
    }
    if key.is_empty() || key.ends_with('/') {
        return Err(format!("\"s3://{rest}\": the key names no object"));
    }
    if key.chars().any(char::is_control) {
        return Err(format!("\"s3://{rest}\": the key holds control characters"));
    }
    // object_store addresses objects by paths without empty, `.` or `..`
    // parts: such a key would name another object (or none).
    if key.starts_with('/') || object_store::path::Path::parse(key).is_err() {
        return Err(format!(
            "\"s3://{rest}\": this key cannot be fetched as written (it has empty, '.' or '..' parts)"
        ));
    }
    Ok(ModuleSource::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
    })
}

/// `host` or `host:port` (IPv6 in brackets), as a registry is written in
/// an `oci://` address and in `oci_insecure_registries`.
pub fn is_registry_host(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

fn parse_oci(rest: &str) -> Result<OciAddress, String> {
    let shown = format!("oci://{rest}");
    let (registry, path) = rest.split_once('/').ok_or_else(|| {
        format!("{shown:?} is not oci://registry/repository:tag or oci://registry/repository@sha256:…")
    })?;
    if !is_registry_host(registry) {
        return Err(format!("{shown:?}: {registry:?} is not a registry host"));
    }
    let (repository, reference) = if let Some((repository, digest)) = path.split_once('@') {
        let digest = Sha256Digest::parse(digest).map_err(|e| format!("{shown:?}: {e}"))?;
        if !digest_text_ok(path) {
            return Err(format!("{shown:?}: a manifest digest is written @sha256:<hex>"));
        }
        (repository, OciReference::Manifest(digest))
    } else {
        // A ':' after the last '/' starts the tag.
        let last = path.rfind('/').map_or(0, |i| i + 1);
        match path[last..].find(':') {
            Some(colon) => {
                let (repository, tag) = path.split_at(last + colon);
                (repository, OciReference::Tag(tag[1..].to_string()))
            }
            None => {
                return Err(format!(
                    "{shown:?} names no tag or digest: write :tag or @sha256:… (an implicit \"latest\" would change under you)"
                ));
            }
        }
    };
    let repository_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        });
    if !repository_ok {
        return Err(format!(
            "{shown:?}: {repository:?} is not a repository name (lower-case letters, digits, '.', '_', '-' and '/')"
        ));
    }
    if let OciReference::Tag(tag) = &reference {
        let tag_ok = (1..=128).contains(&tag.len())
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !tag_ok {
            return Err(format!("{shown:?}: {tag:?} is not a tag"));
        }
    }
    Ok(OciAddress {
        registry: registry.to_string(),
        repository: repository.to_string(),
        reference,
    })
}

fn digest_text_ok(path: &str) -> bool {
    path.split_once('@').is_some_and(|(_, d)| d.starts_with("sha256:"))
}

impl fmt::Display for ModuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleSource::File(path) => write!(f, "{}", path.display()),
            ModuleSource::Http(address) => write!(f, "{address}"),
            ModuleSource::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            ModuleSource::Oci(address) => write!(f, "{address}"),
        }
    }
}

/// Without the query: a pre-signed URL's query is a credential, and
/// addresses are logged.
impl fmt::Display for HttpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.url;
        match url.query() {
            Some(query) if !query.is_empty() => write!(f, "{}?…", &url[..url::Position::AfterPath]),
            // An empty query (a bare `?`) hides nothing.
            _ => f.write_str(&url[..url::Position::AfterQuery]),
        }
    }
}

impl fmt::Debug for HttpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpAddress({self})")
    }
}

impl fmt::Display for OciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        match &self.reference {
            OciReference::Tag(tag) => write!(f, ":{tag}"),
            OciReference::Manifest(digest) => write!(f, "@sha256:{digest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModuleSource, String> {
        ModuleSource::parse(text)
    }

    #[test]
    fn paths_stay_paths() {
        for text in ["samples/hello.wasm", "/abs/x.wat", "c:x", "weird:/not-a-scheme"] {
            assert_eq!(parse(text), Ok(ModuleSource::File(PathBuf::from(text))), "{text}");
        }
    }

    #[test]
    fn addresses_parse_and_print_back() {
        let digest = "a".repeat(64);
        for text in [
            "https://example.com/m/hello.wasm".to_string(),
            "http://127.0.0.1:8000/hello.wasm".to_string(),
            "s3://modules/v1/hello.wasm".to_string(),
            "s3://modules/v1~beta/hello#2.wasm".to_string(),
            "oci://127.0.0.1:5000/team/hello:v1".to_string(),
            format!("oci://ghcr.io/team/hello@sha256:{digest}"),
        ] {
            let source = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(source.is_remote());
            assert_eq!(source.to_string(), text);
        }
        // A pre-signed URL's query is not shown.
        let signed = parse("https://example.com/hello.wasm?X-Amz-Signature=abc").unwrap();
        assert_eq!(signed.to_string(), "https://example.com/hello.wasm?…");
        // Found by the fuzzer: a bare `?` (here after control characters
        // that the URL parser drops) is shown as it is.
        let bare = parse("https://example.com/m/1ell?\u{1b}\0").unwrap();
        assert_eq!(parse(&bare.to_string()), Ok(bare));
        let Ok(ModuleSource::Oci(address)) = parse("oci://localhost:5000/a/b:1.0") else {
            panic!("not oci")
        };
        assert_eq!(address.registry, "localhost:5000");
        assert_eq!(address.repository, "a/b");
        assert_eq!(address.reference, OciReference::Tag("1.0".into()));
    }

    #[test]
    fn bad_addresses_say_why() {
        let digest = "a".repeat(64);
        for (text, why) in [
            ("ftp://host/x.wasm", "unknown scheme"),
            ("https://user:secret@host/x.wasm", "user or password"),
            ("https://[::1/x.wasm", "not a URL"),
            ("https://host/", "names no file"),
            ("s3://bucket", "s3://bucket/key"),
            ("s3://Bucket/x", "bucket name"),
            ("s3://bucket/", "names no object"),
            ("s3://bucket/dir/", "names no object"),
            ("s3://bucket/a//b.wasm", "cannot be fetched as written"),
            ("s3://bucket/a/../b.wasm", "cannot be fetched as written"),
            ("oci://registry", "oci://registry/repository"),
            ("oci://r.io/team/hello", "names no tag"),
            ("oci://r.io/Team/hello:v1", "repository name"),
            ("oci://r.io/hello:bad/tag", "names no tag"),
            ("oci://r.io/hello:", "is not a tag"),
            ("oci://r.io/hello@sha256:12", "64 hex digits"),
            (&format!("oci://r.io/hello@{digest}"), "@sha256:"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(why), "{text}: {error}");
        }
        // Credentials never reach the message.
        for text in [
            "https://user:secret@host/x.wasm",
            "ftps://user:secret@host/x.wasm",
            "https://h/?secret=1",
        ] {
            assert!(!parse(text).unwrap_err().contains("secret"), "{text}");
        }
    }
}
