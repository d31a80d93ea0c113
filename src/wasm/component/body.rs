//! Bodies handed to wasmtime-wasi-http: a bounded channel of frames, fed by
//! a task on the shard (the client connection's reader, or the outbound
//! client's response reader). The bound is the back-pressure: a producer
//! waits while the guest has not read what was sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use wasmtime_wasi_http::Error;

/// Frames in flight per body: with chunks of a read buffer (tens of KiB)
/// this keeps a streamed body's memory small.
const FRAMES_IN_FLIGHT: usize = 2;

/// The producing end.
pub struct BodySender {
    frames: mpsc::Sender<Result<Frame<Bytes>, Error>>,
}

impl BodySender {
    /// Sends a chunk, waiting while the guest lags behind. `false`: the
    /// guest dropped the body (it will never read more).
    pub async fn send(&self, data: Bytes) -> bool {
        self.frames.send(Ok(Frame::data(data))).await.is_ok()
    }

    /// Ends the body with an error the guest sees on its stream.
    pub async fn fail(self, error: Error) {
        let _ = self.frames.send(Err(error)).await;
    }

    /// Ends a client's request body early, for the server's reason.
    pub async fn end_early(self, why: BodyEnd) {
        let error = match why {
            BodyEnd::Refused => Error::HttpProtocolError,
            BodyEnd::ClientGone => Error::ConnectionTerminated,
        };
        self.fail(error).await;
    }
}

/// Why a client's request body ended before it was complete.
pub enum BodyEnd {
    /// Malformed, too large or too slow (the client gets a 4xx).
    Refused,
    /// The client closed the connection.
    ClientGone,
}

/// The consuming end, as wasmtime-wasi-http wants it.
pub struct ChannelBody {
    frames: mpsc::Receiver<Result<Frame<Bytes>, Error>>,
}

impl ChannelBody {
    pub fn boxed(self) -> wasmtime_wasi_http::WasiBody {
        BodyExt::boxed_unsync(self)
    }
}

/// A body the caller fills as it receives it.
pub fn channel() -> (BodySender, ChannelBody) {
    let (tx, rx) = mpsc::channel(FRAMES_IN_FLIGHT);
    (BodySender { frames: tx }, ChannelBody { frames: rx })
}

/// A body that is all here already.
pub fn whole(data: Vec<u8>) -> ChannelBody {
    let (tx, body) = mpsc::channel(FRAMES_IN_FLIGHT);
    if !data.is_empty() {
        // An empty channel has room for a frame.
        let _ = tx.try_send(Ok(Frame::data(Bytes::from(data))));
    }
    ChannelBody { frames: body }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.frames.poll_recv(cx)
    }
}
