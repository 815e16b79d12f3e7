//! Client addresses as every layer sees them: IPv4-mapped IPv6 addresses
//! folded to IPv4, and the header that carries a client's address on.

use http::HeaderName;
use std::net::IpAddr;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) as plain IPv4.
#[inline]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
