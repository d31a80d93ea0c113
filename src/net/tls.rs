//! The TLS client settings of outbound connections: which certificate
//! authorities a backend's certificate must chain to.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

/// Tells apart TLS connections verified against different roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlsIdentity(Option<[u8; 32]>);

/// Largest CA file read (a bundle of a few hundred certificates is ~300 KiB).
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// Roots: webpki's (Mozilla's list, built in, so the result is the same on
/// every machine and needs no file) plus an optional extra CA file, for
/// private authorities. Read-only once built; shared by every shard.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    ca_file: Option<PathBuf>,
    /// The CA file's content digest: a reload with a changed file changes
    /// the routes that use it.
    ca_digest: Option<[u8; 32]>,
}

impl TlsClient {
    /// Webpki's roots only.
    pub fn public_roots() -> TlsClient {
        static PUBLIC: OnceLock<TlsClient> = OnceLock::new();
        PUBLIC
            .get_or_init(|| TlsClient {
                config: client_config(webpki_root_store()),
                ca_file: None,
                ca_digest: None,
            })
            .clone()
    }

    /// Webpki's roots plus every certificate of the PEM file `ca_file`.
    /// Reads the file (call it off the shards).
    pub fn with_ca_file(ca_file: &Path) -> Result<TlsClient, String> {
        let size = std::fs::metadata(ca_file)
            .map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?
            .len();
        if size > MAX_CA_FILE_BYTES {
            return Err(format!(
                "{} is {size} bytes, more than a CA file may be ({MAX_CA_FILE_BYTES})",
                ca_file.display()
            ));
        }
        let pem = std::fs::read(ca_file).map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?;
        let mut roots = webpki_root_store();
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: not a PEM certificate file: {e}", ca_file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", ca_file.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{}: no PEM certificate in the file", ca_file.display()));
        }
        Ok(TlsClient {
            config: client_config(roots),
            ca_file: Some(ca_file.to_path_buf()),
            ca_digest: Some(Sha256::digest(&pem).into()),
        })
    }

    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Which roots verified a connection: the same for clients built from
    /// the same file content, different otherwise.
    pub fn identity(&self) -> TlsIdentity {
        TlsIdentity(self.ca_digest)
    }
}

fn webpki_root_store() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The binary's one provider (aws-lc-rs, the one `main` installs), named
/// here too so that a config parsed without `main` (tests, fuzzing)
/// builds the same client.
fn client_config(roots: rustls::RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(config) => Arc::new(config),
        // aws-lc-rs supports the default versions; this cannot fail.
        Err(e) => unreachable!("aws-lc-rs without TLS 1.2/1.3: {e}"),
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &TlsClient) -> bool {
        self.ca_file == other.ca_file && self.ca_digest == other.ca_digest
    }
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ca_file {
            None => f.write_str("TlsClient(webpki roots)"),
            Some(file) => write!(f, "TlsClient(webpki roots + {})", file.display()),
        }
    }
}
