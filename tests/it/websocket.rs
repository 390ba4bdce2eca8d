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

/// A browser's handshake on `/rsocket`, as a raw request, with `origin` as its `Origin` header.
fn browser_handshake(origin: &str) -> String {
    format!(
        "GET /rsocket HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

#[tokio::test]
async fn websocket_origins_refuse_other_pages_and_the_hook_sees_the_origin() {
    use std::sync::{Arc, Mutex};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use weft::frame::metadata::{COMPOSITE_METADATA_MIME, CompositeMetadata};
    use weft::frame::{Frame, Request, Setup, VERSION};

    bounded(async {
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let record = seen.clone();
        let server = Server::builder()
            .websocket_origins(["https://Good.example"])
            .authenticate(move |setup| {
                record.lock().unwrap().push(setup.origin().map(str::to_owned));
                Ok(())
            })
            .build();
        let running = server.bind_websocket("127.0.0.1:0", "/rsocket").await.unwrap();

        // A page from another site: refused before any frame, saying which origin.
        let foreign = http_answer(&running, &browser_handshake("https://evil.example")).await;
        assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
        assert!(foreign.contains("origin https://evil.example may not open a WebSocket"), "{foreign}");
        // The same origin but for the port: another origin.
        let other_port = http_answer(&running, &browser_handshake("https://good.example:8443")).await;
        assert!(other_port.starts_with("HTTP/1.1 403"), "{other_port}");

        // A page from the allowed site (origins compare without regard to case): in, and the
        // authenticate hook is shown the origin.
        let mut request = url(&running).into_client_request().unwrap();
        request.headers_mut().insert("origin", "https://good.EXAMPLE".parse().unwrap());
        let tcp = TcpStream::connect(running.local_addr()).await.unwrap();
        let (mut page, _) = tokio_tungstenite::client_async(request, tcp).await.expect("an allowed origin");
        let setup = Setup {
            version: VERSION,
            keepalive_interval: 10_000,
            max_lifetime: 60_000,
            resume_token: None,
            lease: false,
            metadata_mime: COMPOSITE_METADATA_MIME.into(),
            data_mime: "application/octet-stream".into(),
            payload: Default::default(),
        };
        let metadata = CompositeMetadata::with_route("no.Such/Method").unwrap().to_bytes();
        let call = Request {
            stream_id: 1,
            follows: false,
            payload: weft::frame::Payload { metadata: Some(metadata), data: "hi".into() },
        };
        for frame in [Frame::Setup(setup), Frame::RequestResponse(call)] {
            let mut wire = Vec::new();
            frame.encode(&mut wire);
            page.send(Message::Binary(wire.into())).await.unwrap();
        }
        // Answered (an ERROR: nothing is served here), so SETUP went through the hook.
        let answer = loop {
            match page.next().await.expect("an answer").expect("a message") {
                Message::Binary(frame) => break Frame::decode(frame).expect("a frame"),
                _ => continue,
            }
        };
        assert!(matches!(answer, Frame::Error(ref e) if e.stream_id == 1), "{answer:?}");
        assert_eq!(*seen.lock().unwrap(), [Some("https://good.EXAMPLE".to_owned())]);

        // A program (no `Origin`): not a page, not affected; the hook sees no origin.
        let client = weft::Client::connect_websocket(&url(&running)).await.unwrap();
        let refused = client.request_response(weft::Call::new("no.Such/Method"), "hi".into()).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unimplemented);
        assert_eq!(seen.lock().unwrap().last(), Some(&None));
        running.shutdown().await;
    })
    .await
}

/// Weft's WebSocket transport on the server's side of a connection on 127.0.0.1, split into
/// its halves, and a raw WebSocket peer as the client.
async fn transport_pair()
-> (weft::WebSocketReader<TcpStream>, weft::WebSocketWriter<TcpStream>, tokio_tungstenite::WebSocketStream<TcpStream>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        weft::WebSocket::accept(tcp, Some("/rsocket"), &Config::default()).await.expect("the server's handshake")
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tokio_tungstenite::client_async(format!("ws://{addr}/rsocket"), tcp).await.expect("handshake").0
    };
    let (transport, peer) = tokio::join!(server, client);
    let (reader, writer) = weft::Transport::split(transport);
    (reader, writer, peer)
}

/// `n` messages of 0 to 22 bytes, each different.
fn burst(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| (0..i % 23).map(|j| (i * 7 + j) as u8).collect()).collect()
}

/// `messages` as a stream transport carries them: each behind its 24-bit length.
fn prefixed(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for message in messages {
        wire.extend_from_slice(&(message.len() as u32).to_be_bytes()[1..]);
        wire.extend_from_slice(message);
    }
    wire
}

/// Sends `messages` in one burst: queued one by one, flushed once.
async fn send_burst(peer: &mut tokio_tungstenite::WebSocketStream<TcpStream>, messages: &[Vec<u8>]) {
    for message in messages {
        peer.feed(Message::binary(message.clone())).await.unwrap();
    }
    peer.flush().await.unwrap();
}

#[tokio::test]
async fn a_websocket_read_hands_over_every_message_that_has_arrived() {
    bounded(async {
        let (mut reader, _writer, mut peer) = transport_pair().await;
        let messages = burst(200);
        send_burst(&mut peer, &messages).await;
        peer.send(Message::Close(None)).await.unwrap();
        // As a TCP read hands over everything that has arrived, so that the driver handles a
        // burst in one turn (and answers it in one write): not a read per message.
        let mut got = bytes::BytesMut::with_capacity(64 * 1024);
        let mut reads = 0;
        while reader.read_buf(&mut got).await.expect("a read") > 0 {
            reads += 1;
        }
        assert_eq!(got[..], prefixed(&messages)[..]);
        assert!(reads < 20, "{reads} reads for {} messages sent at once", messages.len());
    })
    .await
}

#[tokio::test]
async fn a_websocket_message_larger_than_the_read_is_kept_for_the_next() {
    bounded(async {
        let (mut reader, _writer, mut peer) = transport_pair().await;
        let messages = burst(100);
        send_burst(&mut peer, &messages).await;
        peer.send(Message::Close(None)).await.unwrap();
        // Reads of 5 bytes cut the lengths and the messages at every place.
        let mut got = Vec::new();
        let mut small = [0u8; 5];
        loop {
            let n = reader.read(&mut small).await.expect("a read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, prefixed(&messages));
    })
    .await
}

#[tokio::test]
async fn a_text_message_after_binary_ones_fails_the_read_after_them() {
    bounded(async {
        let (mut reader, mut writer, mut peer) = transport_pair().await;
        let messages = burst(3);
        for message in &messages {
            peer.feed(Message::binary(message.clone())).await.unwrap();
        }
        peer.send(Message::text("hello")).await.unwrap();
        // The messages before it are handed over, then the read fails.
        let mut got = bytes::BytesMut::with_capacity(1024);
        let error = loop {
            match reader.read_buf(&mut got).await {
                Ok(0) => panic!("the end of the stream, not a refusal"),
                Ok(_) => {}
                Err(error) => break error,
            }
        };
        assert_eq!(got[..], prefixed(&messages)[..]);
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("binary"), "{error}");
        // And the writer closes with the reason.
        writer.shutdown().await.unwrap();
        let (code, reason) = close_of(&mut peer).await;
        assert_eq!(code, CloseCode::Unsupported);
        assert!(reason.contains("binary"), "{reason}");
    })
    .await
}

#[tokio::test]
async fn a_websocket_write_of_many_frames_sends_each_as_a_message() {
    bounded(async {
        let (_reader, mut writer, mut peer) = transport_pair().await;
        let messages = burst(100);
        let wire = prefixed(&messages);
        // Half in one write, the rest in writes of 7 bytes that cut frames anywhere; one flush.
        let (one, rest) = wire.split_at(wire.len() / 2);
        writer.write_all(one).await.unwrap();
        for chunk in rest.chunks(7) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.flush().await.unwrap();
        for (i, sent) in messages.iter().enumerate() {
            match peer.next().await.expect("a message").expect("a message") {
                Message::Binary(got) => assert_eq!(got[..], sent[..], "message {i}"),
                other => panic!("message {i}: {other:?}"),
            }
        }
    })
    .await
}
