use super::*;
use http::HeaderValue;

fn client() -> Client {
    Client {
        http11: true,
        keep_alive: true,
        head_request: false,
        trailers: false,
    }
}

fn head(status: u16, length: Option<Option<u64>>, client: Client) -> (String, Encoder, bool) {
    let mut resp = Response::new(());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert("x-a", HeaderValue::from_static("1"));
    let (parts, ()) = resp.into_parts();
    let mut out = Vec::new();
    let (enc, keep) = write_head(parts, length, client, &mut out);
    let text = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("|");
    (text, enc, keep)
}

#[test]
fn known_length_unknown_length_and_empty_bodies_are_framed_as_hyper_does() {
    let (t, e, k) = head(200, Some(Some(5)), client());
    assert_eq!(t, "HTTP/1.1 200 OK|x-a: 1|content-length: 5|");
    assert_eq!((e, k), (Encoder::Length, true));
    let (t, e, _) = head(200, Some(None), client());
    assert_eq!(t, "HTTP/1.1 200 OK|x-a: 1|transfer-encoding: chunked|");
    assert_eq!(e, Encoder::Chunked(None));
    let (t, _, _) = head(200, None, client());
    assert_eq!(t, "HTTP/1.1 200 OK|x-a: 1|content-length: 0|");
    let (t, _, _) = head(204, None, client());
    assert_eq!(t, "HTTP/1.1 204 No Content|x-a: 1|");
    let head_req = Client {
        head_request: true,
        ..client()
    };
    let (t, e, _) = head(200, None, head_req);
    assert_eq!(t, "HTTP/1.1 200 OK|x-a: 1|");
    assert_eq!(e, Encoder::Length);
}

#[test]
fn the_connection_field_follows_the_connection() {
    let closing = Client {
        keep_alive: false,
        ..client()
    };
    let (t, _, k) = head(200, None, closing);
    assert_eq!(
        t,
        "HTTP/1.1 200 OK|x-a: 1|connection: close|content-length: 0|"
    );
    assert!(!k);
    let http10 = Client {
        http11: false,
        ..client()
    };
    let (t, _, k) = head(200, Some(Some(1)), http10);
    assert_eq!(
        t,
        "HTTP/1.0 200 OK|x-a: 1|connection: keep-alive|content-length: 1|"
    );
    assert!(k);
    // An HTTP/1.0 client gets an unknown length until close.
    let (t, e, _) = head(
        200,
        Some(None),
        Client {
            keep_alive: false,
            ..http10
        },
    );
    assert_eq!(t, "HTTP/1.0 200 OK|x-a: 1|");
    assert_eq!(e, Encoder::UntilClose);
}

/// Large pieces go out from where they are (vectored, after what is
/// buffered), small ones are copied: the bytes arrive in order either way,
/// with a known length and chunked.
#[tokio::test]
async fn small_and_large_pieces_arrive_in_order() {
    use http_body_util::BodyExt;
    let pieces: Vec<Vec<u8>> = [10, 5000, 3, 3000, 2048, 2049]
        .iter()
        .enumerate()
        .map(|(i, &n)| vec![b'a' + i as u8; n])
        .collect();
    let whole: Vec<u8> = pieces.concat();
    for known in [true, false] {
        let frames: Vec<Result<_, BoxError>> = pieces
            .iter()
            .map(|p| Ok(http_body::Frame::data(bytes::Bytes::from(p.clone()))))
            .collect();
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let body = if known {
            ProxyBody::full(bytes::Bytes::from(whole.clone()))
        } else {
            ProxyBody::boxed(BodyExt::boxed_unsync(stream))
        };
        let activity = ConnActivity::new(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(10),
        );
        let mut wire: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let resp = Response::new(body);
        write_response(&mut wire, resp, client(), &mut out, &activity)
            .await
            .unwrap();
        let at = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut got = wire[at..].to_vec();
        if !known {
            // De-chunk: size line, data, CRLF, until the last chunk.
            let mut plain = Vec::new();
            let mut rest = &got[..];
            loop {
                let line = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let n =
                    usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap(), 16).unwrap();
                rest = &rest[line + 2..];
                if n == 0 {
                    break;
                }
                plain.extend_from_slice(&rest[..n]);
                assert_eq!(&rest[n..n + 2], b"\r\n");
                rest = &rest[n + 2..];
            }
            got = plain;
        }
        assert!(
            got == whole,
            "known length {known}: {} bytes of {}",
            got.len(),
            whole.len()
        );
    }
}
