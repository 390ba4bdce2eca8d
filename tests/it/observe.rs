//! What Weft tells a `tracing` subscriber: a refused SETUP (INFO on the server, WARN on the
//! client), a peer that breaks the protocol (WARN), a client that cannot reconnect (WARN) and
//! then does (INFO); an ordinary close stays at DEBUG. Recorded by a subscriber of the test's
//! own, on the test's thread (the current-thread runtime runs every task there).

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use weft::{Call, Client, Code, Credentials, Reconnect, Server, Status};

/// One event: its level, target and fields as `name=value` text.
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    target: String,
    text: String,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = String::new();
        event.record(&mut Text(&mut text));
        let meta = event.metadata();
        self.0.lock().unwrap().push(Seen { level: *meta.level(), target: meta.target().into(), text });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    /// The events whose text contains `needle`.
    fn find(&self, needle: &str) -> Vec<Seen> {
        self.0.lock().unwrap().iter().filter(|seen| seen.text.contains(needle)).cloned().collect()
    }

    /// Waits (bounded) until an event's text contains `needle`.
    async fn wait_for(&self, needle: &str) -> Seen {
        for _ in 0..400 {
            if let Some(seen) = self.find(needle).pop() {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no event with {needle:?}: {:?}", self.0.lock().unwrap());
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

#[tokio::test]
async fn a_refused_setup_is_told_on_both_sides() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let server = Server::builder()
        .authenticate(|_setup| Err::<(), _>(Status::unauthenticated("no entry")))
        .build()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client =
        Client::builder().credentials(Credentials::bearer("wrong")).connect(server.local_addr()).await.unwrap();
    let status = bounded(client.request_response(Call::new("a.B/C"), Bytes::new())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let server_side = recorder.wait_for("refused a connection's SETUP").await;
    assert_eq!((server_side.level, server_side.target.as_str()), (Level::INFO, "weft::connection"));
    assert!(server_side.text.contains("side=\"server\"") && server_side.text.contains("no entry"), "{server_side:?}");
    let client_side = recorder.wait_for("side=\"client\"").await;
    assert_eq!(client_side.level, Level::WARN, "{client_side:?}");
    assert!(client_side.text.contains("no entry"), "{client_side:?}");
    assert!(client_side.text.contains(&server.local_addr().to_string()), "names the server: {client_side:?}");
}

#[tokio::test]
async fn a_peer_that_breaks_the_protocol_is_a_warning_and_an_ordinary_close_is_not() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let server = Server::builder().build().bind("127.0.0.1:0").await.unwrap();

    // An ordinary client, closed: DEBUG only.
    let client = Client::connect(server.local_addr()).await.unwrap();
    client.close();
    recorder.wait_for("side=\"server\"").await;
    assert!(recorder.0.lock().unwrap().iter().all(|seen| seen.level == Level::DEBUG), "{:?}", recorder.0);

    // A frame that is not a SETUP, first: the server closes with a connection ERROR.
    let mut raw = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    // Length 6, stream 0, type REQUEST_N (0x08) with no flags: no SETUP before it.
    raw.write_all(&[0, 0, 6, 0, 0, 0, 0, 0x20, 0]).await.unwrap();
    let mut sink = Vec::new();
    bounded(raw.read_to_end(&mut sink)).await.unwrap();
    let seen = recorder.wait_for("broke the protocol").await;
    assert_eq!(seen.level, Level::WARN, "{seen:?}");
    assert!(seen.text.contains("peer=\"127.0.0.1:"), "names the peer: {seen:?}");
}

#[tokio::test]
async fn a_client_that_cannot_reconnect_says_so_and_says_when_it_has() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let running = Server::builder().build().bind("127.0.0.1:0").await.unwrap();
    let addr = running.local_addr();
    let client = Client::builder()
        .reconnect(Reconnect::new().initial_backoff(Duration::from_millis(20)).max_backoff(Duration::from_millis(50)))
        .connect(addr)
        .await
        .unwrap();
    bounded(running.shutdown()).await;
    // Calls wake the client, which finds nobody listening. (The first may fail on the old
    // connection before the client has heard it closed, and wake nothing.)
    let failed = bounded(async {
        for _ in 0..100 {
            let call =
                client.request_response(Call::new("a.B/C").with_timeout(Duration::from_millis(100)), Bytes::new());
            assert!(call.await.is_err());
            if let Some(seen) = recorder.find("could not connect").pop() {
                return seen;
            }
        }
        panic!("never told: {:?}", recorder.0.lock().unwrap());
    })
    .await;
    assert_eq!((failed.level, failed.target.as_str()), (Level::WARN, "weft::client"), "{failed:?}");
    assert!(failed.text.contains(&addr.to_string()), "{failed:?}");

    let _back = Server::builder().build().bind(addr).await.unwrap();
    let call = client.request_response(Call::new("a.B/C").with_timeout(Duration::from_secs(10)), Bytes::new());
    assert_eq!(bounded(call).await.unwrap_err().code(), Code::Unimplemented, "reached the server");
    let back = recorder.wait_for("connected again").await;
    assert_eq!(back.level, Level::INFO);
}
