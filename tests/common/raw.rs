//! Raw TCP for the hardening tests: send exact bytes to farmgate, read what
//! comes back until the connection closes or a deadline passes; and raw TCP
//! "backends" that answer with exact bytes and record what they received.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What came back on a raw connection.
#[derive(Debug)]
pub struct Reply {
    pub text: String,
    /// The server closed the connection (EOF or reset) before the deadline.
    pub closed: bool,
}

impl Reply {
    /// The status code of the first response, 0 if none.
    pub fn status(&self) -> u16 {
        self.statuses().first().copied().unwrap_or(0)
    }

    /// Every status line's code, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.text
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| self.text.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }
}

/// Reads until EOF or `deadline`.
pub async fn read_until_close(s: &mut TcpStream, wait: Duration) -> Reply {
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    Reply {
        text: String::from_utf8_lossy(&buf).into_owned(),
        closed,
    }
}

/// Sends `bytes` on a new connection and reads for at most `wait`.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_until_close(&mut s, wait).await
}

/// Reads one response (head + Content-Length body) from a keep-alive
/// connection; returns the status and the body.
pub async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("response head in time")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head[9..12].parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A GET on a fresh connection; returns the status and how long it took.
pub async fn timed_get(addr: SocketAddr) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = read_response(&mut s).await;
    (status, t.elapsed())
}

/// A TCP server that answers every connection with `script` and records
/// the bytes it received.
pub struct RawBackend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub received: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a raw backend does on each connection.
#[derive(Clone)]
pub enum Script {
    /// Read a request head, write these bytes, then close.
    Reply(Vec<u8>),
    /// Read a request head, write these bytes, keep the socket open (idle).
    ReplyAndHang(Vec<u8>),
    /// Read a request head, write `first`, then `chunk` every `every`,
    /// forever.
    Trickle {
        first: Vec<u8>,
        chunk: Vec<u8>,
        every: Duration,
    },
    /// Only read; never answer.
    Silent,
    /// Read a request head, then take these steps in order, then close.
    Steps(Vec<Step>),
}

/// One step of [`Script::Steps`].
#[derive(Clone)]
pub enum Step {
    Write(Vec<u8>),
    /// Go on once the test says so (`notify_one`).
    Wait(Arc<tokio::sync::Notify>),
    /// A pause between writes, so that they reach the reader apart.
    Pause(Duration),
}

impl RawBackend {
    pub async fn start(script: Script) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), received.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                head.extend_from_slice(&buf[..n]);
                                r.lock().unwrap().extend_from_slice(&buf[..n]);
                            }
                        }
                    }
                    match script {
                        Script::Reply(bytes) => {
                            let _ = s.write_all(&bytes).await;
                        }
                        Script::ReplyAndHang(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                        Script::Trickle {
                            first,
                            chunk,
                            every,
                        } => {
                            let _ = s.write_all(&first).await;
                            loop {
                                if s.write_all(&chunk).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(every).await;
                            }
                        }
                        Script::Steps(steps) => {
                            for step in steps {
                                match step {
                                    Step::Write(b) => {
                                        if s.write_all(&b).await.is_err() {
                                            return;
                                        }
                                    }
                                    Step::Wait(n) => n.notified().await,
                                    Step::Pause(d) => tokio::time::sleep(d).await,
                                }
                            }
                        }
                        Script::Silent => {
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        RawBackend {
            addr,
            connections,
            received,
            task,
        }
    }

    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
