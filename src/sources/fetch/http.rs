//! `https://` and pinned `http://` modules. reqwest directly rather than
//! object_store's HTTP store: that store speaks to WebDAV-like servers by
//! path and drops query strings, which pre-signed URLs need.

use super::{Body, Failure, with_causes};
use crate::config::SourcesConfig;
use crate::sources::address::HttpAddress;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

pub(super) fn client(settings: &SourcesConfig) -> Result<reqwest::Client, String> {
    // An https:// address that redirects to http:// would lose the
    // transport's integrity that made the address acceptable unpinned.
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http" && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            attempt.error("redirected from https:// to http://")
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .redirect(redirects)
        .connect_timeout(settings.fetch_timeout)
        .user_agent(concat!("serverless-wasm/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

pub(super) async fn fetch(client: &reqwest::Client, address: &HttpAddress, body: &mut Body) -> Result<(), Failure> {
    let mut response = client
        .get(address.url.clone())
        .send()
        .await
        .map_err(|e| Failure::transient(describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let message = format!("the server answered {status}");
        // Only a server in trouble may do better on a second try.
        let transient = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        return Err(Failure { transient, message });
    }
    body.expect(response.content_length())?;
    while let Some(chunk) = response.chunk().await.map_err(|e| Failure::transient(describe(&e)))? {
        body.push(&chunk)?;
    }
    Ok(())
}

/// What went wrong, with its causes (the useful part is often a cause:
/// "connection refused", "certificate expired"), without reqwest's own
/// line, which repeats the URL (a pre-signed URL's query is a credential).
fn describe(error: &reqwest::Error) -> String {
    let message = String::from(if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_redirect() {
        "bad redirect"
    } else if error.is_body() || error.is_decode() {
        "the transfer failed"
    } else {
        "the request failed"
    });
    with_causes(message, error)
}
