//! Client addresses as every layer sees them: IPv4-mapped IPv6 addresses
//! folded to IPv4, and the header that carries a client's address on.

use super::error::Problems;
use http::uri::{Authority, Scheme};
use http::HeaderName;
use ipnet::IpNet;
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

/// Writes an IPv4 address as text (`10.0.0.1`) into `out`, returning the
/// length: for each new connection's X-Forwarded-For value, without the
/// formatting machinery and its `String`.
pub fn ipv4_text(ip: std::net::Ipv4Addr, out: &mut [u8; 15]) -> usize {
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            out[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            out[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        out[n] = b'0' + octet % 10;
        n += 1;
    }
    n
}

/// Addresses or CIDRs from a config list; each bad entry is a problem at
/// `key[i]`.
pub fn parse_nets(list: &[String], key: &str, p: &mut Problems) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (i, t) in list.iter().enumerate() {
        match t.parse::<IpNet>() {
            Ok(net) => nets.push(net),
            Err(_) => match t.parse::<IpAddr>() {
                Ok(ip) => nets.push(IpNet::from(ip)),
                Err(_) => p.add(
                    format!("{key}[{i}]"),
                    format!("{t:?} is not an IP address or CIDR (e.g. \"10.0.0.0/8\")"),
                ),
            },
        }
    }
    nets
}

/// Parses `host:port`, `http://host:port` or `https://host:port`.
pub fn parse_address(text: &str) -> Result<(Scheme, Authority), String> {
    let (scheme, rest) = if let Some(r) = text.strip_prefix("http://") {
        (Scheme::HTTP, r)
    } else if let Some(r) = text.strip_prefix("https://") {
        (Scheme::HTTPS, r)
    } else if text.contains("://") {
        return Err(format!(
            "address {text:?} has an unsupported scheme; use host:port, http:// or https://"
        ));
    } else {
        (Scheme::HTTP, text)
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!(
            "address {text:?} must not contain a path; give host:port only"
        ));
    }
    let authority: Authority = rest
        .parse()
        .map_err(|_| format!("address {text:?} is not a valid host:port"))?;
    if authority.host().is_empty() {
        return Err(format!("address {text:?} has no host"));
    }
    if authority.port_u16().is_none() {
        return Err(format!(
            "address {text:?} needs a port (e.g. \"{}:80\")",
            authority.host()
        ));
    }
    Ok((scheme, authority))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv4_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.10.100.9",
            "192.168.0.255",
        ] {
            let addr: std::net::Ipv4Addr = ip.parse().unwrap();
            let mut out = [0u8; 15];
            let n = super::ipv4_text(addr, &mut out);
            assert_eq!(&out[..n], addr.to_string().as_bytes());
        }
        // Every octet value in every place.
        for place in 0..4 {
            for v in 0..=255u8 {
                let mut octets = [9, 99, 199, 0];
                octets[place] = v;
                let addr = std::net::Ipv4Addr::from(octets);
                let mut out = [0u8; 15];
                let n = super::ipv4_text(addr, &mut out);
                assert_eq!(&out[..n], addr.to_string().as_bytes());
            }
        }
    }

    use super::*;

    #[test]
    fn addresses() {
        let (s, a) = parse_address("127.0.0.1:9001").expect("plain");
        assert_eq!(s, Scheme::HTTP);
        assert_eq!(a.as_str(), "127.0.0.1:9001");
        let (s, a) = parse_address("https://app.internal:8443").expect("https");
        assert_eq!(s, Scheme::HTTPS);
        assert_eq!(a.port_u16(), Some(8443));
        assert!(parse_address("127.0.0.1").is_err());
        assert!(parse_address("ftp://x:1").is_err());
        assert!(parse_address("x:1/path").is_err());
        assert!(parse_address("not an address").is_err());
    }
}
