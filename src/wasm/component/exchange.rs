//! A request in progress with a component, whatever its WASI version: the
//! connection gets an [`Exchange`], then the response head when the guest
//! sets it, then the body as the guest writes it.

use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::body::ChannelBody;
use super::p3::{P3Response, RequestSlot};
use crate::http::Request;
use crate::http::encode::is_framing_header;
use crate::wasm::failure::InvokeError;
use crate::wasm::route::RouteContext;
use crate::wasm::turns::{Turn, Turns};

pub(super) type P2Response = Result<http::Response<HyperOutgoingBody>, ErrorCode>;

/// Counts and logs a request that got no response from the guest.
pub(super) fn log_failure(context: &RouteContext, error: &InvokeError, fuel_used: u64) {
    if let Some(failure) = error.guest_failure() {
        context.stats.guest_failed(failure);
    }
    tracing::warn!(route = %context.label, status = error.status(), fuel_used, "{error}");
}

/// Counts a request to the route and takes its turn, within the route's
/// timeout (which is then the request's deadline); a refusal is counted and
/// logged here.
pub(super) async fn admit(context: &RouteContext, turns: &Turns) -> Result<(Instant, Turn), InvokeError> {
    context.stats.guest_requests.bump();
    let deadline = Instant::now() + context.limits.timeout;
    let turn = turns.take(deadline).await.inspect_err(|e| {
        context.stats.rejected.bump();
        log_failure(context, e, 0);
    })?;
    Ok((deadline, turn))
}

pub(super) fn to_http_request(request: &Request, body: ChannelBody) -> Result<http::Request<ChannelBody>, String> {
    let authority = request.header(b"host").unwrap_or(b"localhost");
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(request.target())
        .build()
        .map_err(|e| format!("request target or Host not usable as a URI: {e}"))?;
    let method = http::Method::from_bytes(request.method_bytes()).map_err(|e| e.to_string())?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    builder.body(body).map_err(|e| format!("invalid request header: {e}"))
}

/// A request in progress with its guest.
pub struct Exchange {
    response: Option<Pending>,
    guest: Option<Guest>,
}

/// The response head to come.
enum Pending {
    P2(oneshot::Receiver<P2Response>),
    P3(futures::channel::oneshot::Receiver<P3Response>),
}

/// The guest's side of the request.
enum Guest {
    /// A WASI 0.2 guest runs as its own task; its end says how it went.
    P2(glommio::Task<Result<(), InvokeError>>),
    /// A WASI 0.3 request is one of several in a shared instance; its slot
    /// holds the route turn and says whether the instance has failed.
    P3(RequestSlot),
}

impl Exchange {
    pub(super) fn p2(
        response: oneshot::Receiver<P2Response>,
        guest: glommio::Task<Result<(), InvokeError>>,
    ) -> Exchange {
        Exchange {
            response: Some(Pending::P2(response)),
            guest: Some(Guest::P2(guest)),
        }
    }

    pub(super) fn p3(response: futures::channel::oneshot::Receiver<P3Response>, slot: RequestSlot) -> Exchange {
        Exchange {
            response: Some(Pending::P3(response)),
            guest: Some(Guest::P3(slot)),
        }
    }

    /// Waits for the response head. The guest's deadline bounds the wait:
    /// a guest that times out or traps drops its side, and its end says why.
    pub async fn response(&mut self) -> Result<StreamedResponse, InvokeError> {
        match self.response.take() {
            Some(Pending::P2(response)) => match response.await {
                Ok(Ok(response)) => streamed(response, ResponseBody::P2),
                Ok(Err(code)) => Err(InvokeError::BadResponse(format!("guest answered with error {code:?}"))),
                Err(_) => Err(self.guest_end().await),
            },
            Some(Pending::P3(response)) => {
                let Some(Guest::P3(slot)) = &self.guest else {
                    return Err(InvokeError::BadResponse("request slot already released".into()));
                };
                let mut response = response;
                let response = std::future::poll_fn(|cx| {
                    slot.drive();
                    response.poll_unpin(cx)
                })
                .await;
                match response {
                    Ok(Ok(response)) => {
                        slot.head_sent();
                        streamed(response, ResponseBody::P3)
                    }
                    Ok(Err(e)) => Err(slot.failed(&e)),
                    Err(_) => Err(slot.instance_failure()),
                }
            }
            None => Err(InvokeError::BadResponse("response already taken".into())),
        }
    }

    /// Why a WASI 0.2 guest ended without a response.
    async fn guest_end(&mut self) -> InvokeError {
        let end = match self.guest.take() {
            Some(Guest::P2(guest)) => guest.await,
            _ => Ok(()),
        };
        end.err().unwrap_or(InvokeError::BadResponse(
            "guest returned without setting a response".into(),
        ))
    }

    /// Whether the guest has already ended in failure. wasi-http ends a
    /// body whose guest died as if it had been finished, so the connection
    /// asks this before it writes the end of the body.
    pub async fn guest_failed(&mut self) -> bool {
        match self.guest.as_mut() {
            None => false,
            Some(Guest::P3(slot)) => slot.instance_failed(),
            Some(Guest::P2(guest)) => match futures_lite::future::poll_once(guest).await {
                Some(end) => {
                    self.guest = None;
                    end.is_err()
                }
                None => false,
            },
        }
    }

    /// The response went out whole: let the guest finish on its own.
    pub fn finish(mut self) {
        match self.guest.take() {
            Some(Guest::P2(guest)) => drop(guest.detach()),
            // Releases the request's share of its instance.
            Some(Guest::P3(slot)) => drop(slot),
            None => {}
        }
    }
}

/// The response head as the guest set it, and its body to come.
pub struct StreamedResponse {
    pub status: u16,
    /// Without framing headers: the server frames the body.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The `content-length` the guest declared (wasi-http holds it to it).
    pub length: Option<u64>,
    pub body: ResponseBody,
}

/// A response body as wasi-http hands it over, per WASI version.
pub enum ResponseBody {
    P2(HyperOutgoingBody),
    P3(WasiBody),
}

pub enum BodyPart {
    Data(Bytes),
    Trailers(Vec<(Vec<u8>, Vec<u8>)>),
}

fn streamed<B>(response: http::Response<B>, body: fn(B) -> ResponseBody) -> Result<StreamedResponse, InvokeError> {
    let (parts, payload) = response.into_parts();
    let status = parts.status.as_u16();
    if status < 200 {
        return Err(InvokeError::BadResponse(format!(
            "status {status} cannot be a final response"
        )));
    }
    let mut length = None;
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH {
            let parsed = value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok());
            length = Some(parsed.ok_or_else(|| InvokeError::BadResponse("invalid content-length".into()))?);
            continue;
        }
        if is_framing_header(name.as_str().as_bytes()) {
            continue;
        }
        if !crate::http::is_field_value(value.as_bytes()) {
            return Err(InvokeError::BadResponse(format!("invalid value for header {name}")));
        }
        headers.push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
    Ok(StreamedResponse {
        status,
        headers,
        length,
        body: body(payload),
    })
}

impl ResponseBody {
    /// The next part of the body; `None` at its end, `Err` if the guest
    /// failed to finish it (trap, timeout, wrong length).
    pub async fn next(&mut self) -> Option<Result<BodyPart, String>> {
        let frame = match self {
            ResponseBody::P2(body) => body.frame().await?.map_err(|e| format!("{e:?}")),
            ResponseBody::P3(body) => body.frame().await?.map_err(|e| format!("{e:?}")),
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(match frame.into_data() {
            Ok(data) => BodyPart::Data(data),
            Err(frame) => {
                let trailers = frame.into_trailers().unwrap_or_default();
                let fields = trailers
                    .iter()
                    .filter(|(_, v)| crate::http::is_field_value(v.as_bytes()))
                    .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect();
                BodyPart::Trailers(fields)
            }
        }))
    }
}
