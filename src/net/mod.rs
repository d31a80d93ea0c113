//! Connections from a shard to backends, for guests (TCP, HTTP, HTTPS) and
//! key-value stores (Redis): name resolution off the shard, TLS with the
//! binary's one crypto provider, and the stream type both kinds share.

mod resolve;
mod stream;
mod tls;

pub use resolve::resolve;
pub use stream::{BackendStream, ConnectError, connect};
pub use tls::{TlsClient, TlsIdentity};
