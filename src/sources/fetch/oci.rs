//! `oci://` modules: the wasm layer of an artifact in an OCI registry,
//! through oci-client, with credentials from Docker's config file (and its
//! credential helpers). Both layouts in use are accepted, matched on the
//! layer's media type: the CNCF wasm artifact (`application/wasm`) and
//! Spin's (`application/vnd.wasm.content.layer.v1+wasm`).

use docker_credential::CredentialRetrievalError;
use futures_lite::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{Body, Failure, with_causes};
use crate::config::SourcesConfig;
use crate::sources::address::{OciAddress, OciReference};
use crate::sources::digest::Sha256Digest;

/// Layer media types that hold a wasm module or component.
pub const WASM_LAYER_TYPES: [&str; 2] = ["application/wasm", "application/vnd.wasm.content.layer.v1+wasm"];

pub(super) fn client(settings: &SourcesConfig) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(settings.oci_insecure_registries.clone()),
        // A module is one image manifest, never an index of platforms.
        platform_resolver: None,
        ..ClientConfig::default()
    })
}

/// Fetches the wasm layer; with `pin`, the layer with that digest.
pub(super) async fn fetch(
    client: &Client,
    address: &OciAddress,
    pin: Option<Sha256Digest>,
    body: &mut Body,
) -> Result<(), Failure> {
    let reference = match &address.reference {
        OciReference::Tag(tag) => {
            Reference::with_tag(address.registry.clone(), address.repository.clone(), tag.clone())
        }
        OciReference::Manifest(digest) => {
            Reference::with_digest(address.registry.clone(), address.repository.clone(), digest.oci())
        }
    };
    let auth = credentials(&address.registry).await;
    let (manifest, _) = client.pull_image_manifest(&reference, &auth).await.map_err(classify)?;
    let wasm: Vec<_> = manifest
        .layers
        .iter()
        .filter(|layer| WASM_LAYER_TYPES.contains(&layer.media_type.as_str()))
        .collect();
    let layer = match (pin, wasm.as_slice()) {
        (_, []) => {
            let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
            return Err(Failure::permanent(format!(
                "the artifact has no wasm layer ({} expected; its layers: {})",
                WASM_LAYER_TYPES.join(" or "),
                if types.is_empty() {
                    "none".into()
                } else {
                    types.join(", ")
                }
            )));
        }
        (Some(pin), layers) => match layers.iter().find(|l| l.digest == pin.oci()) {
            Some(layer) => *layer,
            // One layer: its bytes are checked against the pin after the
            // fetch, and the mismatch reported with both digests.
            None if layers.len() == 1 => layers[0],
            None => {
                return Err(Failure::permanent(format!(
                    "sha256 mismatch: expected {pin}, the artifact's wasm layers are {}",
                    layers.iter().map(|l| l.digest.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        },
        (None, [layer]) => *layer,
        (None, layers) => {
            return Err(Failure::permanent(format!(
                "the artifact has {} wasm layers: choose one with sha256 on the route",
                layers.len()
            )));
        }
    };
    body.expect(u64::try_from(layer.size).ok())?;
    let mut stream = client.pull_blob_stream(&reference, layer).await.map_err(classify)?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::transient(format!("the transfer failed: {e}")))?;
        body.push(&chunk)?;
    }
    Ok(())
}

/// The registry's credentials from Docker's config (`$DOCKER_CONFIG` or
/// `~/.docker/config.json`); anonymous when it has none. A credential
/// helper is a process: it runs on the blocking pool, not the runtime.
async fn credentials(registry: &str) -> RegistryAuth {
    let server = registry.to_string();
    let found = tokio::task::spawn_blocking(move || docker_credential::get_credential(&server)).await;
    match found {
        Ok(Ok(docker_credential::DockerCredential::UsernamePassword(user, password))) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(Ok(docker_credential::DockerCredential::IdentityToken(token))) => RegistryAuth::Bearer(token),
        Ok(Err(CredentialRetrievalError::ConfigNotFound | CredentialRetrievalError::NoCredentialConfigured)) => {
            tracing::debug!(registry, "no registry credentials: pulling anonymously");
            RegistryAuth::Anonymous
        }
        Ok(Err(CredentialRetrievalError::HelperFailure { helper, .. })) => {
            // Its output is not logged: a helper may print a secret.
            tracing::warn!(
                registry,
                "the Docker credential helper {helper} failed: pulling anonymously"
            );
            RegistryAuth::Anonymous
        }
        Ok(Err(e)) => {
            tracing::warn!(
                registry,
                "cannot read the Docker credentials ({e}): pulling anonymously"
            );
            RegistryAuth::Anonymous
        }
        Err(_) => RegistryAuth::Anonymous,
    }
}

fn classify(error: OciDistributionError) -> Failure {
    match &error {
        OciDistributionError::ImageManifestNotFoundError(_) => Failure::permanent(format!("not found: {error}")),
        OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
            Failure::permanent(format!("access refused: {error}"))
        }
        OciDistributionError::ServerError { code, .. } if *code < 500 && *code != 429 => {
            Failure::permanent(error.to_string())
        }
        OciDistributionError::RegistryError { .. } | OciDistributionError::DigestError(_) => {
            Failure::permanent(error.to_string())
        }
        OciDistributionError::RequestError(e) => Failure::transient(with_causes(error.to_string(), e)),
        _ => Failure::transient(error.to_string()),
    }
}
