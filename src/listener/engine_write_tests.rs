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
