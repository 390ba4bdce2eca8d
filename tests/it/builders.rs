//! Each side's own settings, set on its builder, reach the wire: what a `ClientBuilder`
//! announces in SETUP, and how a `ServerBuilder` holds a client to it. (That a side cannot be
//! given the other's settings is checked at compile time, by the `compile_fail` examples of
//! `Config`, `ClientBuilder` and `ServerBuilder`.)

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use weft::conn::CloseReason;
use weft::frame::length::LengthDelimited;
use weft::frame::{ErrorCode, Frame};
use weft::{Client, Config, ErrorKind, Server};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("in time")
}

/// Reads frames from `socket` until one is whole, and returns it.
async fn read_frame(socket: &mut tokio::net::TcpStream) -> Frame {
    let framing = LengthDelimited::new(weft::frame::MAX_FRAME_SIZE);
    let mut buf = BytesMut::new();
    loop {
        if let Some(frame) = framing.decode_frame(&mut buf).expect("a well-framed frame") {
            return frame;
        }
        assert!(socket.read_buf(&mut buf).await.unwrap() > 0, "the peer closed before a whole frame");
    }
}

#[tokio::test]
async fn a_client_builder_announces_its_keepalive_and_data_mime_in_setup() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let builder = Client::builder()
        .config(Config::default().inbound_window(8))
        .keepalive(Duration::from_millis(1_500), Duration::from_secs(45))
        .data_mime("application/json");
    let (client, accepted) = tokio::join!(builder.connect(addr), listener.accept());
    let (_client, (mut socket, _)) = (client.unwrap(), accepted.unwrap());
    match bounded(read_frame(&mut socket)).await {
        Frame::Setup(setup) => {
            assert_eq!((setup.keepalive_interval, setup.max_lifetime), (1_500, 45_000));
            assert_eq!(setup.data_mime, "application/json");
        }
        other => panic!("expected SETUP first, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_builder_holds_a_client_to_its_setup_timeout() {
    let running = Server::builder().setup_timeout(Duration::from_millis(200)).build();
    let running = running.bind("127.0.0.1:0").await.unwrap();
    // Connected, and silent: no SETUP.
    let mut socket = tokio::net::TcpStream::connect(running.local_addr()).await.unwrap();
    match bounded(read_frame(&mut socket)).await {
        Frame::Error(error) => {
            assert_eq!((error.stream_id, error.code), (0, ErrorCode::INVALID_SETUP));
            assert_eq!(error.message(), "no SETUP within 200 ms");
        }
        other => panic!("expected ERROR[INVALID_SETUP], got {other:?}"),
    }
    running.shutdown().await;
}

#[tokio::test]
async fn a_server_builder_cuts_the_silence_a_client_asks_for() {
    let running = Server::builder().max_peer_lifetime(Duration::from_millis(300)).build();
    let running = running.bind("127.0.0.1:0").await.unwrap();
    // The client asks to stay silent for an hour, and sends its first KEEPALIVE in a minute.
    let builder = Client::builder().keepalive(Duration::from_secs(60), Duration::from_secs(3_600));
    let client = bounded(builder.connect(running.local_addr())).await.unwrap();
    let started = std::time::Instant::now();
    let error = bounded(client.closed()).await;
    match error.kind() {
        ErrorKind::Closed(CloseReason::PeerError { code, message }) => {
            assert_eq!(*code, ErrorCode::CONNECTION_ERROR);
            assert_eq!(message, "no frame received for 300 ms");
        }
        other => panic!("expected the server to close it, got {other:?}: {error}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "at the server's cap, not the client's hour");
    running.shutdown().await;
}
