//! `s3://bucket/key` modules, through object_store, configured the way AWS
//! tools are: the standard `AWS_*` environment variables (keys, session
//! token, region, `AWS_ENDPOINT_URL`), completed or overridden by the
//! `[sources]` table. Credentials stay inside object_store; nothing here
//! formats them.

use futures_lite::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientOptions, ObjectStoreExt, RetryConfig};

use super::{Body, Failure, with_causes};
use crate::config::SourcesConfig;

pub(super) async fn fetch(settings: &SourcesConfig, bucket: &str, key: &str, body: &mut Body) -> Result<(), Failure> {
    let store = builder(settings, bucket)
        .build()
        .map_err(|e| Failure::permanent(format!("cannot configure S3: {e}")))?;
    // Parsed, not converted: `Path::from` would percent-encode `~` or `#`
    // and fetch another key (address.rs refuses keys that do not parse).
    let path = object_store::path::Path::parse(key).map_err(|e| Failure::permanent(e.to_string()))?;
    let result = store.get(&path).await.map_err(classify)?;
    body.expect(Some(result.meta.size))?;
    let mut stream = result.into_stream();
    while let Some(chunk) = stream.next().await {
        body.push(&chunk.map_err(classify)?)?;
    }
    Ok(())
}

fn builder(settings: &SourcesConfig, bucket: &str) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        // Retries are ours (fetch/mod.rs), counted in fetch_attempts.
        .with_retry(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        })
        .with_client_options(ClientOptions::new().with_connect_timeout(settings.fetch_timeout));
    if let Some(endpoint) = &settings.s3_endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    // A plain http:// endpoint (set here or by AWS_ENDPOINT_URL) is an
    // S3-compatible server the operator named on purpose, often on loopback.
    let plain = builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .is_some_and(|endpoint| endpoint.starts_with("http://"));
    if plain {
        builder = builder.with_allow_http(true);
    }
    if let Some(region) = &settings.s3_region {
        builder = builder.with_region(region);
    }
    if let Some(path_style) = settings.s3_path_style {
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    builder
}

fn classify(error: object_store::Error) -> Failure {
    match error {
        object_store::Error::NotFound { .. } => Failure::permanent("no such object"),
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            Failure::permanent(format!("access refused: {}", without_body(&error)))
        }
        other => Failure::transient(without_body(&other)),
    }
}

/// The error and its causes, cut before the server's answer body: S3's
/// error documents can quote the signed request, session token included
/// (`SignatureDoesNotMatch` carries the canonical request).
fn without_body(error: &object_store::Error) -> String {
    const MAX_CHARS: usize = 300;
    let text = with_causes(error.to_string(), error);
    let text = text.split('<').next().unwrap_or_default().trim_end();
    text.chars().take(MAX_CHARS).collect()
}
