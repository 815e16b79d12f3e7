//! The admin listener: its own port, never a traffic port. Health of the
//! process for a layer-4 balancer in front (`/healthz`); operator actions on
//! servers (`actions.rs`).

pub mod actions;

use crate::gateway::Gateway;
use crate::listener::ListenerHandle;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Starts the admin accept loop.
pub fn spawn(listener: TcpListener, gw: Arc<Gateway>) -> std::io::Result<ListenerHandle> {
    let local_addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(_) => continue,
                },
                _ = stopped.wait_for(|s| *s) => break,
            };
            let gw = gw.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, Infallible>(route(&gw, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(ListenerHandle {
        name: "admin".into(),
        local_addr,
        stop,
        task,
    })
}

async fn route(gw: &Arc<Gateway>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/healthz") => {
            if gw.is_shutting_down() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else {
                text(StatusCode::OK, "ok\n")
            }
        }
        (_, p) if p.starts_with(actions::PREFIX) => actions::route(gw, &req).await,
        ("POST", "/api/reload") => reload(gw, &req).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `POST /api/reload`: re-reads the config file now; 200 with the summary,
/// or 422 with every problem (the running config stays).
async fn reload(gw: &Arc<Gateway>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(refused) = actions::check_token(gw.snapshot().admin.token.as_deref(), req.headers())
    {
        return refused;
    }
    let event = crate::reload::reload(gw, "admin").await;
    let status = if event.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut body = serde_json::to_vec_pretty(&event).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
