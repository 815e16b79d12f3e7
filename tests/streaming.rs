//! Bodies stream through farmgate both ways without being buffered: a
//! 50 MiB upload and download through the real binary, watching its memory,
//! and proof that the first bytes arrive before the last are sent.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use bytes::Bytes;
use common::*;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use process::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

const MIB: u64 = 1 << 20;
const TOTAL: u64 = 50 * MIB;
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// A backend that counts uploaded bytes as they arrive and, on /download,
/// streams TOTAL bytes after first sending one chunk and waiting for `go`.
async fn streaming_backend(received: Arc<AtomicU64>, go: Arc<Notify>) -> Backend {
    Backend::with_handler(
        "stream",
        Arc::new(move |req| {
            let received = received.clone();
            let go = go.clone();
            Box::pin(async move {
                if req.uri().path() == "/download" {
                    let first =
                        stream::iter([Ok::<_, BoxErr>(Frame::data(Bytes::from_static(&CHUNK)))]);
                    let wait = stream::once(async move {
                        go.notified().await;
                        Ok::<_, BoxErr>(Frame::data(Bytes::new()))
                    });
                    let rest = (TOTAL as usize / CHUNK.len()) - 1;
                    let rest = stream::iter(
                        (0..rest).map(|_| Ok(Frame::data(Bytes::from_static(&CHUNK)))),
                    );
                    let body = StreamBody::new(Box::pin(futures_util::StreamExt::chain(
                        futures_util::StreamExt::chain(first, wait),
                        rest,
                    )));
                    return http::Response::new(BodyExt::boxed(body));
                }
                let mut body = req.into_body();
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.unwrap().into_data() {
                        received.fetch_add(data.len() as u64, Ordering::SeqCst);
                    }
                }
                text_response(200, received.load(Ordering::SeqCst).to_string())
            })
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_each_way_streams_with_flat_memory() {
    let received = Arc::new(AtomicU64::new(0));
    let go = Arc::new(Notify::new());
    let backend = streaming_backend(received.clone(), go.clone()).await;
    let listen = free_port();
    let cfg = temp_file(
        "stream.yaml",
        &format!(
            "listeners:\n  - bind: \"{listen}\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
             farms:\n  - name: web\n    servers:\n      - address: \"{}\"\n",
            backend.addr
        ),
    );
    let fg = Proc::run(&cfg, listen).await;
    let http = client();
    // Warm up so the baseline includes the runtime and one pooled connection.
    let (status, _, _) = get(&http, &format!("http://{listen}/warm")).await;
    assert_eq!(status, StatusCode::OK);
    received.store(0, Ordering::SeqCst);
    let baseline_hwm = fg.status_kib("VmHWM:");

    // Upload: the backend must see bytes before the client has sent them all.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxErr>>(4);
    let body = StreamBody::new(Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })));
    let upload_client: Client<_, StreamBody<_>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("http://{listen}/upload"))
        .body(body)
        .unwrap();
    let pending = tokio::spawn(async move { upload_client.request(req).await });
    tx.send(Ok(Frame::data(Bytes::from_static(&CHUNK))))
        .await
        .unwrap();
    let r = received.clone();
    wait_until(
        Duration::from_secs(10),
        "first upload chunk reaches the backend",
        || {
            let r = r.clone();
            async move { r.load(Ordering::SeqCst) > 0 }
        },
    )
    .await;
    for _ in 1..(TOTAL as usize / CHUNK.len()) {
        tx.send(Ok(Frame::data(Bytes::from_static(&CHUNK))))
            .await
            .unwrap();
    }
    drop(tx);
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&echoed), TOTAL.to_string());

    // Download: the first chunk arrives before the backend has produced the rest.
    let resp = http
        .request(
            Request::get(format!("http://{listen}/download"))
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut got = 0u64;
    while got == 0 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("first download chunk did not stream through")
            .unwrap()
            .unwrap();
        got += frame.into_data().map_or(0, |d| d.len() as u64);
    }
    go.notify_one();
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().into_data().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(got, TOTAL);

    // 100 MiB went through; the proxy's peak memory grew by a few MiB at most.
    let growth_kib = fg.status_kib("VmHWM:").saturating_sub(baseline_hwm);
    assert!(
        growth_kib < 8 * 1024,
        "peak RSS grew by {growth_kib} KiB while streaming 100 MiB"
    );
}
