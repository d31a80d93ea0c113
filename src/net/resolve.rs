//! Backend addresses to socket addresses, for guests and key-value stores.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::config::Endpoint;

/// IP literals are used as they are; names resolve on the shard's blocking
/// thread, so a slow resolver never stalls the shard.
pub async fn resolve(endpoint: &Endpoint) -> std::io::Result<SocketAddr> {
    if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, endpoint.port));
    }
    let target = (endpoint.host.clone(), endpoint.port);
    let resolved = glommio::executor()
        .spawn_blocking(move || target.to_socket_addrs().map(|mut addrs| addrs.next()))
        .await?;
    resolved.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "name resolves to no address"))
}
