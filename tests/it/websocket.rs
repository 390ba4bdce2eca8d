//! RSocket over WebSocket: what is not RSocket on a WebSocket port gets a close or an HTTP
//! answer that says why, and the server goes on serving. (Every interaction model runs over
//! WebSocket in `e2e`, through `lab::TRANSPORTS`.)

use crate::lab::{self, LabClient, msg};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use weft::{Code, Config, ErrorKind, RunningServer, Server};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

fn url(running: &RunningServer) -> String {
    format!("ws://{}/rsocket", running.local_addr())
}

/// A lab call over a new WebSocket connection: the server still serves.
async fn still_serves(running: &RunningServer) {
    let client = weft::Client::connect_websocket(&url(running)).await.expect("connect");
    let answer = LabClient::new(client).echo(msg("still here", 0)).await.expect("an answer");
    assert_eq!(answer.text, "still here");
}

/// A raw WebSocket peer on the server's RSocket path.
async fn raw_peer(running: &RunningServer) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(running.local_addr()).await.unwrap();
    tokio_tungstenite::client_async(url(running), tcp).await.expect("handshake").0
}

/// The close the server sends, skipping anything before it.
async fn close_of(peer: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> (CloseCode, String) {
    while let Some(message) = peer.next().await {
        if let Message::Close(Some(frame)) = message.expect("a clean close") {
            return (frame.code, frame.reason.to_string());
        }
    }
    panic!("the server closed without a close frame");
}

/// What an HTTP request to the server's WebSocket port is answered.
async fn http_answer(running: &RunningServer, request: &str) -> String {
    let mut tcp = TcpStream::connect(running.local_addr()).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn one_server_serves_tcp_and_websocket_at_once() {
    bounded(async {
        let (server, _events) = lab::server();
        let tcp = server.bind("127.0.0.1:0").await.unwrap();
        let ws = server.bind_websocket("127.0.0.1:0", "/rsocket").await.unwrap();
        let over_tcp = LabClient::new(weft::Client::connect(tcp.local_addr()).await.unwrap());
        let over_ws = LabClient::new(weft::Client::connect_websocket(&url(&ws)).await.unwrap());
        let (a, b) = tokio::join!(over_tcp.echo(msg("tcp", 0)), over_ws.echo(msg("ws", 0)));
        assert_eq!((a.unwrap().text, b.unwrap().text), ("tcp".to_owned(), "ws".to_owned()));
        ws.shutdown().await;
        tcp.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_text_message_is_closed_with_unsupported_data() {
    bounded(async {
        let (server, _events) = lab::server();
        let running = server.bind_websocket("127.0.0.1:0", "/rsocket").await.unwrap();
        let mut peer = raw_peer(&running).await;
        peer.send(Message::text("hello")).await.unwrap();
        let (code, reason) = close_of(&mut peer).await;
        assert_eq!(code, CloseCode::Unsupported);
        assert!(reason.contains("binary"), "{reason}");
        still_serves(&running).await;
    })
    .await
}

#[tokio::test]
async fn a_message_larger_than_a_frame_is_closed_as_too_big() {
    bounded(async {
        let server = Server::builder().config(Config::default().max_frame_size(4096)).build();
        let running = server.bind_websocket("127.0.0.1:0", "/rsocket").await.unwrap();
        let mut peer = raw_peer(&running).await;
        peer.send(Message::binary(vec![0u8; 4097])).await.unwrap();
        let (code, reason) = close_of(&mut peer).await;
        assert_eq!(code, CloseCode::Size);
        assert!(reason.contains("too big"), "{reason}");
        drop(running);
        let running = lab::server().0.bind_websocket("127.0.0.1:0", "/rsocket").await.unwrap();
        still_serves(&running).await;
    })
    .await
}

#[tokio::test]
async fn a_request_that_is_no_websocket_handshake_is_told_why() {
    bounded(async {
        let (server, _events) = lab::server();
        let running = server.bind_websocket("127.0.0.1:0", "/rsocket").await.unwrap();
        let plain = http_answer(&running, "GET /rsocket HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(plain.starts_with("HTTP/1.1 400 Bad Request"), "{plain}");
        assert!(plain.contains("not a WebSocket handshake"), "{plain}");
        let elsewhere = http_answer(
            &running,
            "GET /other HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await;
        assert!(elsewhere.starts_with("HTTP/1.1 404"), "{elsewhere}");
        assert!(elsewhere.contains("/rsocket"), "{elsewhere}");
        // RSocket over plain TCP on the WebSocket port: its SETUP is no handshake either.
        let client = weft::Client::connect(running.local_addr()).await.unwrap();
        let refused = LabClient::new(client).echo(msg("hi", 0)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused}");
        still_serves(&running).await;
    })
    .await
}

#[tokio::test]
async fn a_websocket_client_says_why_it_cannot_connect() {
    bounded(async {
        // A plain RSocket port does not speak HTTP: it takes the handshake's request for the
        // start of a large frame, waits for the rest, and drops the connection at its setup
        // timeout, which fails the handshake.
        let server = Server::builder().setup_timeout(Duration::from_millis(300)).build();
        let tcp = server.bind("127.0.0.1:0").await.unwrap();
        let not_ws = weft::Client::connect_websocket(&format!("ws://{}/rsocket", tcp.local_addr())).await;
        assert!(matches!(not_ws.unwrap_err().kind(), ErrorKind::Connect));
        for (url, why) in [
            ("http://127.0.0.1:1/rsocket", "not a WebSocket URL"),
            ("wss://127.0.0.1:1/rsocket", "needs TLS"),
            ("ws:///rsocket", "cannot connect"),
        ] {
            let error = weft::Client::connect_websocket(url).await.unwrap_err();
            assert!(matches!(error.kind(), ErrorKind::Connect), "{url}: {error}");
            assert!(error.to_string().contains(why), "{url}: {error}");
        }
        tcp.shutdown().await;
    })
    .await
}
