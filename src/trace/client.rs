//! The exporter thread's HTTP/1.1 client: one POST at a time over a
//! kept-alive connection (plain, or TLS with the system's roots), every
//! step bounded by `trace.export.timeout`. Blocking on purpose: it runs on
//! the exporter's own thread, never on the request path's runtime.

use super::spec::ExportSpec;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;

/// A collector's answer head is read up to this size.
const MAX_HEAD: usize = 16 << 10;
/// A longer answer body is not read: the connection is closed instead.
const MAX_BODY: usize = 1 << 20;

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct Client {
    spec: ExportSpec,
    /// The request head, all but Content-Length and the final CRLF.
    head: String,
    conn: Option<Stream>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    pub fn new(spec: &ExportSpec) -> Self {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nUser-Agent: farmgate/{}\r\n",
            spec.path,
            spec.authority,
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in &spec.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        Client {
            spec: spec.clone(),
            head,
            conn: None,
            tls: None,
        }
    }

    /// POSTs `body`; the collector's status. A kept connection the
    /// collector closed meanwhile is replaced once, unseen.
    pub fn post(&mut self, body: &[u8]) -> io::Result<u16> {
        let mut request = Vec::with_capacity(self.head.len() + 32 + body.len());
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        loop {
            let (mut stream, reused) = match self.conn.take() {
                Some(s) => (s, true),
                None => (self.connect()?, false),
            };
            match exchange(&mut stream, &request) {
                Ok((status, keep)) => {
                    if keep {
                        self.conn = Some(stream);
                    }
                    return Ok(status);
                }
                Err(_) if reused => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn connect(&mut self) -> io::Result<Stream> {
        let timeout = self.spec.timeout;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        for addr in self.spec.authority.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(tcp) => {
                    tcp.set_read_timeout(Some(timeout))?;
                    tcp.set_write_timeout(Some(timeout))?;
                    tcp.set_nodelay(true)?;
                    return self.wrap(tcp);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn wrap(&mut self, tcp: TcpStream) -> io::Result<Stream> {
        if !self.spec.tls {
            return Ok(Stream::Plain(tcp));
        }
        let config = match &self.tls {
            Some(c) => c.clone(),
            None => {
                let c = tls_config()?;
                self.tls = Some(c.clone());
                c
            }
        };
        let host = self
            .spec
            .authority
            .rsplit_once(':')
            .map_or(self.spec.authority.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

/// The system's trusted roots, as for `https://` servers without a `ca`.
fn tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends `request`, reads the answer; its status and whether the
/// connection may carry the next one.
fn exchange(stream: &mut Stream, request: &[u8]) -> io::Result<(u16, bool)> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (status, head_len, length, close) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut fields);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let field = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let length = field("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                let close = field("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    || resp.version == Some(0);
                break (status, len, length, close);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "answer head too long",
                ))
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    };
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    let length = if no_body { Some(0) } else { length };
    // Without a length (chunked, or to the end) the body is not read: the
    // connection closes after it.
    let Some(length) = length.filter(|n| *n <= MAX_BODY) else {
        return Ok((status, false));
    };
    let mut have = buf.len() - head_len;
    while have < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok((status, false));
        }
        have += n;
    }
    Ok((status, !close && have == length))
}
