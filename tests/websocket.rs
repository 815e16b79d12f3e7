//! HTTP/1.1 Upgrade passes through end to end: a real WebSocket client talks
//! to a real WebSocket server through farmgate.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let backend_addr = ws_echo_server().await;
    let cfg = format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: ws\n    servers:\n      - address: \"{backend_addr}\"\n"
    );
    let fg = start(&cfg).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/chat", fg.first_addr()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..20 {
        let text = format!("hello {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        &[0u8, 1, 2, 255]
    );
    ws.close(None).await.unwrap();
}
