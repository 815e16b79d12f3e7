//! How farmgate reaches backends: TCP with `TCP_NODELAY`, then for
//! `https://` servers a TLS handshake with the farm's settings (SNI from the
//! address host, ALPN http/1.1, or `h2` for the HTTP/2 path:
//! [`Connector::connect`]). Connect and handshake together are bounded
//! by the current `proxy.connect_timeout`; timeout and TLS settings are read
//! per connect, so a reload changes them without rebuilding the pool.
//! Plain HTTP pays one scheme comparison per connect and an enum branch per
//! read or write.

use super::body::BoxError;
use super::protocol::Alpn;
use super::send_proxy::Header;
use crate::farm::Server;
use crate::tls::backend::BackendTlsMap;
use arc_swap::ArcSwap;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tower::Service;

/// Connecting took longer than `connect_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out")]
pub struct ConnectTimeout;

/// An `https://` server has no TLS settings (cannot happen with a built
/// snapshot; kept as an error rather than a panic).
#[derive(Debug, thiserror::Error)]
#[error("no TLS settings for backend {0}")]
pub struct NoTlsSettings(String);

#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    timeout_ms: Arc<AtomicU64>,
    tls: Arc<ArcSwap<BackendTlsMap>>,
}

impl Connector {
    pub fn new(connect_timeout: Duration, tls: Arc<BackendTlsMap>) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        Connector {
            http,
            timeout_ms: Arc::new(AtomicU64::new(connect_timeout.as_millis() as u64)),
            tls: Arc::new(ArcSwap::new(tls)),
        }
    }

    pub fn set_timeout(&self, t: Duration) {
        self.timeout_ms
            .store(t.as_millis() as u64, Ordering::Relaxed);
    }

    /// TLS settings for new backend connections (a reload).
    pub fn set_tls(&self, tls: Arc<BackendTlsMap>) {
        self.tls.store(tls);
    }
}

impl Service<http::Uri> for Connector {
    type Response = TokioIo<BackendStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        self.connect(uri, Alpn::Http1, None)
    }
}

impl Connector {
    /// A connection to `uri`'s server offering `alpn` in its TLS handshake
    /// (plain TCP ignores it). The HTTP/2 path asks for `h2`; the
    /// HTTP/1.1 path goes through [`Service::call`] (ALPN http/1.1).
    /// `preface` (a PROXY protocol header) is written first when given,
    /// before any TLS handshake.
    pub fn connect(
        &mut self,
        uri: http::Uri,
        alpn: Alpn,
        preface: Option<Header>,
    ) -> Pin<Box<dyn Future<Output = Result<TokioIo<BackendStream>, BoxError>> + Send>> {
        self.connect_at(uri, None, alpn, preface)
    }

    /// A connection to `server`: to the address it resolved to when it is
    /// a member of a DNS-named server (TLS still names the host), else to
    /// its address.
    pub fn connect_server(
        &mut self,
        server: &Server,
        alpn: Alpn,
        preface: Option<Header>,
    ) -> Pin<Box<dyn Future<Output = Result<TokioIo<BackendStream>, BoxError>> + Send>> {
        let uri = match http::Uri::builder()
            .scheme(server.scheme.clone())
            .authority(server.authority.clone())
            .path_and_query("/")
            .build()
        {
            Ok(uri) => uri,
            Err(e) => return Box::pin(async move { Err(Box::new(e) as BoxError) }),
        };
        self.connect_at(uri, server.connect_to(), alpn, preface)
    }

    /// [`Connector::connect`], the TCP connection going to `at` when given
    /// (no lookup of `uri`'s host, which TLS still uses).
    pub fn connect_at(
        &mut self,
        uri: http::Uri,
        at: Option<SocketAddr>,
        alpn: Alpn,
        preface: Option<Header>,
    ) -> Pin<Box<dyn Future<Output = Result<TokioIo<BackendStream>, BoxError>> + Send>> {
        let tls = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            let authority = uri.authority().map_or("", |a| a.as_str());
            match self.tls.load().get(authority) {
                Some(t) => Some(t.clone()),
                None => {
                    let e = NoTlsSettings(authority.to_string());
                    return Box::pin(async move { Err(Box::new(e) as BoxError) });
                }
            }
        } else {
            None
        };
        let target = match at {
            None => uri,
            Some(at) => match http::Uri::try_from(format!("http://{at}/")) {
                Ok(u) => u,
                Err(e) => return Box::pin(async move { Err(Box::new(e) as BoxError) }),
            },
        };
        let tcp = self.http.call(target);
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed));
        Box::pin(async move {
            let connect = async move {
                let mut tcp = tcp.await?.into_inner();
                if let Some(h) = preface {
                    tokio::io::AsyncWriteExt::write_all(&mut tcp, h.as_bytes()).await?;
                }
                match tls {
                    None => Ok(TokioIo::new(BackendStream::Plain(tcp))),
                    Some(t) => {
                        let config = match alpn {
                            Alpn::Http1 => t.config.clone(),
                            // Once per new connection, and HTTP/2
                            // connections are few and long-lived.
                            Alpn::H2 | Alpn::Both => {
                                let mut c = (*t.config).clone();
                                c.alpn_protocols = match alpn {
                                    Alpn::H2 => vec![b"h2".to_vec()],
                                    _ => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                                };
                                Arc::new(c)
                            }
                        };
                        let connector = tokio_rustls::TlsConnector::from(config);
                        let stream = connector.connect(t.server_name.clone(), tcp).await?;
                        Ok(TokioIo::new(BackendStream::Tls(Box::new(stream))))
                    }
                }
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(r) => r,
                Err(_) => Err(Box::new(ConnectTimeout) as BoxError),
            }
        })
    }
}

/// A backend connection: plain TCP or TLS over TCP.
pub enum BackendStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl BackendStream {
    /// The TLS handshake chose HTTP/2 (ALPN `h2`).
    pub fn alpn_h2(&self) -> bool {
        match self {
            BackendStream::Plain(_) => false,
            BackendStream::Tls(s) => s.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

impl Connection for BackendStream {
    fn connected(&self) -> Connected {
        match self {
            BackendStream::Plain(s) => s.connected(),
            BackendStream::Tls(s) => s.get_ref().0.connected(),
        }
    }
}

impl AsyncRead for BackendStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            BackendStream::Plain(s) => s.is_write_vectored(),
            BackendStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
