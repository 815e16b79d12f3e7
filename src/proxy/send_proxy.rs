//! The PROXY protocol header farmgate sends to servers that expect it
//! (`farms[].proxy_protocol: v2 | v1`), so a server behind farmgate learns
//! the client's address and port at the TCP level, as HAProxy's
//! `send-proxy-v2` does. The header is written first on each new
//! connection (before a TLS handshake), built on the stack.
//!
//! A header names one client connection, so such a backend connection is
//! only ever reused for requests of the same client connection (same
//! source and destination): the pool keeps it under the header's tag.

use std::net::{IpAddr, SocketAddr};

/// The version sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// An encoded header: at most 107 bytes (v1's longest line).
#[derive(Clone, Copy)]
pub struct Header {
    buf: [u8; 108],
    len: u8,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("bytes", &self.as_bytes())
            .finish()
    }
}

impl Header {
    /// The header for a client connection from `source` to `destination`
    /// (IPv4 when both are IPv4 socket addresses; else IPv6, an IPv4
    /// address then written IPv4-mapped).
    pub fn new(version: Version, source: SocketAddr, destination: SocketAddr) -> Header {
        let mut h = Header {
            buf: [0; 108],
            len: 0,
        };
        let (s, d) = (source.ip(), destination.ip());
        match version {
            Version::V2 => {
                h.push(&V2_SIGNATURE);
                // Version 2, command PROXY.
                h.push(&[0x21]);
                match (s, d) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        h.push(&[0x11, 0, 12]);
                        h.push(&s.octets());
                        h.push(&d.octets());
                    }
                    (s, d) => {
                        h.push(&[0x21, 0, 36]);
                        h.push(&v6(s).octets());
                        h.push(&v6(d).octets());
                    }
                }
                h.push(&source.port().to_be_bytes());
                h.push(&destination.port().to_be_bytes());
            }
            Version::V1 => {
                use std::io::Write;
                let family = match (s, d) {
                    (IpAddr::V4(_), IpAddr::V4(_)) => "TCP4",
                    _ => "TCP6",
                };
                let (s, d) = if family == "TCP6" {
                    (IpAddr::V6(v6(s)), IpAddr::V6(v6(d)))
                } else {
                    (s, d)
                };
                let mut cur = std::io::Cursor::new(&mut h.buf[..]);
                let _ = write!(
                    cur,
                    "PROXY {family} {s} {d} {} {}\r\n",
                    source.port(),
                    destination.port()
                );
                h.len = cur.position() as u8;
            }
        }
        h
    }

    fn push(&mut self, bytes: &[u8]) {
        let at = usize::from(self.len);
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len() as u8;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The pool tag of connections that sent this header (never 0, the
    /// tag of connections that sent none).
    pub fn tag(&self) -> u64 {
        crate::limits::key::hash(self.as_bytes()) | 1
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn v2_over_ipv4_and_ipv6() {
        let h = Header::new(
            Version::V2,
            addr("192.0.2.1:5000"),
            addr("198.51.100.2:443"),
        );
        let b = h.as_bytes();
        assert_eq!(b.len(), 16 + 12);
        assert_eq!(&b[..12], &V2_SIGNATURE);
        assert_eq!(&b[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&b[16..20], &[192, 0, 2, 1]);
        assert_eq!(&b[24..28], &[0x13, 0x88, 0x01, 0xbb]);
        let h6 = Header::new(Version::V2, addr("[2001:db8::1]:1"), addr("10.0.0.1:80"));
        assert_eq!(h6.as_bytes().len(), 16 + 36);
        assert_eq!(h6.as_bytes()[13], 0x21);
        assert_ne!(h.tag(), h6.tag());
    }

    #[test]
    fn v1_lines() {
        let h = Header::new(Version::V1, addr("192.0.2.1:5000"), addr("127.0.0.1:80"));
        assert_eq!(h.as_bytes(), b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\n");
        let h = Header::new(Version::V1, addr("[2001:db8::1]:1"), addr("127.0.0.1:80"));
        assert_eq!(
            h.as_bytes(),
            b"PROXY TCP6 2001:db8::1 ::ffff:127.0.0.1 1 80\r\n"
        );
    }
}
