//! The `[admin]` table: the admin listener, off when the table is absent.

use std::net::SocketAddr;

use super::{AdminConfig, ConfigError, Ctx, Settings, raw};

pub(super) fn admin_config(
    ctx: &Ctx<'_>,
    raw: Option<&raw::RawAdmin>,
    public: SocketAddr,
) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let s = Settings::new(ctx, "admin".into());
    let listen_address = s.address(&raw.listen_address, "listen_address")?;
    if overlaps(listen_address, public) {
        return Err(s.error(
            &raw.listen_address,
            "listen_address",
            format!("{listen_address} is where the routes are served (listen_address {public}): the admin listener needs a socket of its own"),
        ));
    }
    Ok(Some(AdminConfig { listen_address }))
}

/// Whether two listening addresses would take the same port on some
/// interface (port 0 picks a free port: never the same).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    let any = |addr: SocketAddr| addr.ip().is_unspecified();
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || any(a) || any(b))
}
