//! The PROXY protocol (HAProxy's, versions 1 and 2) on a listener behind a
//! layer-4 balancer: the balancer opens the connection and first sends the
//! client's real address, which then stands for the peer everywhere
//! (X-Forwarded-For, affinity hashing, logs).
//!
//! Only sources in the listener's `trusted_sources` may connect; from them
//! the header is required. The header is read in the connection's own task,
//! byte-exact (peeked, then consumed up to its end), so whatever follows it,
//! the TLS handshake or the first request, stays in the socket untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The version 2 signature.
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 line is at most this long, CRLF included.
const V1_MAX: usize = 107;
/// Addresses plus TLVs in a version 2 header: at most this many bytes.
const V2_MAX_BODY: usize = 4096;

/// What a PROXY header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection from `source` to `destination`.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The balancer's own connection (a v2 LOCAL, a v1 UNKNOWN, or an
    /// address family other than TCP over IPv4/IPv6): the peer stays.
    Local,
}

/// Why a connection's PROXY header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    #[error("the connection closed before its PROXY header")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// Parses a complete version 1 line (`PROXY TCP4 ... \r\n`, CRLF included).
pub fn parse_v1(line: &[u8]) -> Result<Header, Refused> {
    let text = std::str::from_utf8(line).map_err(|_| Refused::Malformed("not ASCII"))?;
    let text = text
        .strip_suffix("\r\n")
        .ok_or(Refused::Malformed("no CRLF"))?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(Refused::NotProxy);
    }
    let family = parts.next().ok_or(Refused::Malformed("no protocol"))?;
    if family == "UNKNOWN" {
        return Ok(Header::Local);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(Refused::Malformed("expected 4 fields after the protocol"));
    };
    let ip = |s: &str| -> Result<IpAddr, Refused> {
        let ip = match family {
            "TCP4" => s.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => s.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => return Err(Refused::Malformed("protocol is not TCP4, TCP6 or UNKNOWN")),
        };
        ip.map_err(|_| Refused::Malformed("bad address"))
    };
    let port = |s: &str| -> Result<u16, Refused> {
        // Digits only, no sign, no leading zero (the spec's grammar).
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return Err(Refused::Malformed("bad port"));
        }
        s.parse().map_err(|_| Refused::Malformed("bad port"))
    };
    Ok(Header::Proxied {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    })
}

/// Parses the 16-byte fixed part of a version 2 header: the command and
/// family byte pair and the length of what follows.
fn v2_fixed(head: &[u8; 16]) -> Result<(u8, u8, usize), Refused> {
    if head[..12] != V2_SIG {
        return Err(Refused::NotProxy);
    }
    let (ver_cmd, family) = (head[12], head[13]);
    if ver_cmd >> 4 != 2 {
        return Err(Refused::Malformed("version is not 2"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_BODY {
        return Err(Refused::Malformed("header longer than 4 KiB"));
    }
    Ok((ver_cmd & 0x0f, family, len))
}

/// Parses a version 2 header's body (addresses, then TLVs, which are
/// skipped) given its command and family.
pub fn parse_v2_body(command: u8, family: u8, body: &[u8]) -> Result<Header, Refused> {
    match command {
        0 => return Ok(Header::Local),
        1 => {}
        _ => return Err(Refused::Malformed("command is not LOCAL or PROXY")),
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match family {
        // TCP over IPv4.
        0x11 => {
            let a = body
                .get(..12)
                .ok_or(Refused::Malformed("short IPv4 addresses"))?;
            let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            Ok(Header::Proxied {
                source: SocketAddr::new(ip(&a[0..4]), port(&a[8..10])),
                destination: SocketAddr::new(ip(&a[4..8]), port(&a[10..12])),
            })
        }
        // TCP over IPv6.
        0x21 => {
            let a = body
                .get(..36)
                .ok_or(Refused::Malformed("short IPv6 addresses"))?;
            let ip = |b: &[u8]| {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            Ok(Header::Proxied {
                source: SocketAddr::new(ip(&a[0..16]), port(&a[32..34])),
                destination: SocketAddr::new(ip(&a[16..32]), port(&a[34..36])),
            })
        }
        // UNSPEC, UDP, Unix sockets: nothing farmgate can use as a client
        // address; the connection is the balancer's.
        _ => Ok(Header::Local),
    }
}

/// Reads the PROXY header at the start of `stream`, consuming exactly its
/// bytes.
pub async fn read(stream: &mut TcpStream) -> Result<Header, Refused> {
    let io = |e: std::io::Error| Refused::Io(e.to_string());
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.map_err(io)? == 0 {
        return Err(Refused::Closed);
    }
    match first[0] {
        b'\r' => {
            let mut head = [0u8; 16];
            stream.read_exact(&mut head).await.map_err(eof)?;
            let (command, family, len) = v2_fixed(&head)?;
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).await.map_err(eof)?;
            parse_v2_body(command, family, &body)
        }
        b'P' => {
            // Peek, consume what holds no line end (all header), repeat:
            // the bytes after the CRLF are never taken from the socket.
            let mut line = Vec::with_capacity(V1_MAX);
            let mut peeked = [0u8; V1_MAX];
            loop {
                let room = V1_MAX - line.len();
                let n = stream.peek(&mut peeked[..room]).await.map_err(io)?;
                if n == 0 {
                    return Err(Refused::Closed);
                }
                let end = peeked[..n].iter().position(|&b| b == b'\n');
                let take = end.map_or(n, |i| i + 1);
                let at = line.len();
                line.resize(at + take, 0);
                stream.read_exact(&mut line[at..]).await.map_err(eof)?;
                if end.is_some() {
                    return parse_v1(&line);
                }
                if line.len() >= V1_MAX {
                    return Err(Refused::Malformed("version 1 line longer than 107 bytes"));
                }
            }
        }
        _ => Err(Refused::NotProxy),
    }
}

/// Parses a header at the start of `buf` (what `read` does, on bytes in
/// hand): the header and its length, or `Refused::Closed` when `buf` ends
/// before the header does.
pub fn parse(buf: &[u8]) -> Result<(Header, usize), Refused> {
    match buf.first() {
        None => Err(Refused::Closed),
        Some(b'\r') => {
            let head: &[u8; 16] = buf
                .get(..16)
                .and_then(|h| h.try_into().ok())
                .ok_or(Refused::Closed)?;
            let (command, family, len) = v2_fixed(head)?;
            let body = buf.get(16..16 + len).ok_or(Refused::Closed)?;
            Ok((parse_v2_body(command, family, body)?, 16 + len))
        }
        Some(b'P') => {
            let window = &buf[..buf.len().min(V1_MAX)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => Ok((parse_v1(&buf[..=i])?, i + 1)),
                None if window.len() >= V1_MAX => {
                    Err(Refused::Malformed("version 1 line longer than 107 bytes"))
                }
                None => Err(Refused::Closed),
            }
        }
        Some(_) => Err(Refused::NotProxy),
    }
}

fn eof(e: std::io::Error) -> Refused {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Refused::Closed
    } else {
        Refused::Io(e.to_string())
    }
}

/// A version 2 header for `source` -> `destination` (tests and the fuzz
/// target; the forwarder sends the same bytes, `proxy::send_proxy`).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    crate::proxy::send_proxy::Header::new(
        crate::proxy::send_proxy::Version::V2,
        source,
        destination,
    )
    .as_bytes()
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn version_1_lines() {
        assert_eq!(
            parse_v1(b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n"),
            Ok(Header::Proxied {
                source: addr("192.0.2.7:56324"),
                destination: addr("10.0.0.1:443")
            })
        );
        assert_eq!(
            parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n"),
            Ok(Header::Proxied {
                source: addr("[2001:db8::7]:4000"),
                destination: addr("[2001:db8::1]:80")
            })
        );
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Ok(Header::Local));
        assert_eq!(
            parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
            Ok(Header::Local)
        );
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\n"[..],
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 -1 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 0443 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY  TCP4 192.0.2.7 10.0.0.1 1 2\r\n",
        ] {
            assert!(
                matches!(parse_v1(bad), Err(Refused::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_v1(b"GET / HTTP/1.1\r\n"), Err(Refused::NotProxy));
    }

    #[test]
    fn parse_finds_where_the_header_ends() {
        let mut bytes = b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\nGET /".to_vec();
        let (h, used) = parse(&bytes).expect("v1");
        assert_eq!(&bytes[used..], b"GET /");
        assert!(matches!(h, Header::Proxied { .. }));
        bytes = encode_v2(addr("192.0.2.7:1"), addr("10.0.0.1:2"));
        let total = bytes.len();
        bytes.extend_from_slice(b"\x16\x03");
        assert_eq!(parse(&bytes).expect("v2").1, total);
        assert_eq!(
            parse(&bytes[..total - 1]),
            Err(Refused::Closed),
            "incomplete"
        );
        assert_eq!(parse(b"PROXY TCP4 1"), Err(Refused::Closed), "incomplete");
    }

    #[test]
    fn version_2_round_trips_and_skips_tlvs() {
        for (s, d) in [
            (addr("192.0.2.7:56324"), addr("10.0.0.1:443")),
            (addr("[2001:db8::7]:4000"), addr("[2001:db8::1]:80")),
        ] {
            let mut h = encode_v2(s, d);
            // A TLV (PP2_TYPE_AUTHORITY "x") after the addresses is skipped.
            let len = u16::from_be_bytes([h[14], h[15]]) + 4;
            h[14..16].copy_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[0x02, 0x00, 0x01, b'x']);
            let fixed: [u8; 16] = h[..16].try_into().expect("16");
            let (cmd, fam, len) = v2_fixed(&fixed).expect("fixed");
            assert_eq!(len, h.len() - 16);
            assert_eq!(
                parse_v2_body(cmd, fam, &h[16..]),
                Ok(Header::Proxied {
                    source: s,
                    destination: d
                })
            );
        }
        // LOCAL, and an unspecified family.
        assert_eq!(parse_v2_body(0, 0x11, &[]), Ok(Header::Local));
        assert_eq!(parse_v2_body(1, 0x00, &[]), Ok(Header::Local));
        assert!(parse_v2_body(1, 0x11, &[0; 11]).is_err(), "short");
        assert!(parse_v2_body(3, 0x11, &[0; 12]).is_err(), "command");
        let mut bad = [0u8; 16];
        bad[..12].copy_from_slice(&V2_SIG);
        bad[12] = 0x11;
        assert!(v2_fixed(&bad).is_err(), "version 1 in a v2 header");
    }
}
