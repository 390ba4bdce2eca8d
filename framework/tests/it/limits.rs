//! What a careless or hostile peer can make a server hold is bounded: fire-and-forget handlers
//! running at once (beyond the limit the connection stops reading, and the peer feels it as
//! TCP back-pressure), unfinished fragmented messages, messages received and not yet read
//! (beyond the limit the connection stops reading; a reader stalled for the stall time loses
//! its stream), the silence a client may ask for.

use crate::peer::{self, Peer};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use weft::frame::length;
use weft::frame::{ErrorCode, ErrorFrame, Frame, Payload as WirePayload, PayloadFrame, Request};
use weft::{BoxFuture, Call, Client, Config, Handler, Server};

/// Fire-and-forget handlers that wait for the test to let them finish.
#[derive(Clone)]
struct Gated {
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Handler for Gated {
    fn fire_and_forget(&self, _call: Call, _data: Bytes) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            this.started.fetch_add(1, Ordering::SeqCst);
            this.gate.acquire().await.unwrap().forget();
            this.finished.fetch_add(1, Ordering::SeqCst);
        })
    }
}

#[tokio::test]
async fn fire_and_forget_handlers_beyond_the_limit_stop_the_connection_reading() {
    const LIMIT: usize = 4;
    const SENT: usize = 200;
    let run = async {
        let gated = Gated { started: Arc::default(), finished: Arc::default(), gate: Arc::new(Semaphore::new(0)) };
        let server = Server::builder()
            .add_handler(&["f.F/Gated"], gated.clone())
            .config(Config::default().max_concurrent_fire_and_forget(LIMIT))
            .build();
        // A pipe that holds about two requests, so each read of the server's takes few.
        let mut request = BytesMut::new();
        length::encode_frame(
            &Frame::RequestFnf(Request {
                stream_id: 1,
                follows: false,
                payload: WirePayload { metadata: Some(peer::route("f.F/Gated")), data: Bytes::new() },
            }),
            &mut request,
        );
        let (mut client_end, server_end) = tokio::io::duplex(2 * request.len());
        tokio::spawn(async move { server.serve_connection(server_end).await });
        let mut wire = BytesMut::new();
        length::encode_frame(&peer::setup_frame(), &mut wire);
        client_end.write_all(&wire).await.unwrap();
        // Every request on its own stream id; the writes stall once the server stops reading.
        let writer = tokio::spawn(async move {
            for i in 0..SENT {
                let mut one = request.clone();
                one[3..7].copy_from_slice(&(2 * i as u32 + 1).to_be_bytes());
                client_end.write_all(&one).await.unwrap();
            }
            client_end
        });
        // Give the server every chance to run ahead of its limit.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let started = gated.started.load(Ordering::SeqCst);
        assert!(started >= LIMIT, "the limit's worth of handlers run ({started})");
        assert!(started <= LIMIT + 3, "{started} handlers started; the limit is {LIMIT} plus what one read holds");
        assert!(!writer.is_finished(), "the peer's writes are held back");
        // As handlers finish, the rest are read and run.
        gated.gate.add_permits(SENT);
        let _client_end = writer.await.unwrap();
        for _ in 0..500 {
            if gated.finished.load(Ordering::SeqCst) == SENT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(gated.finished.load(Ordering::SeqCst), SENT, "every request was served");
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

#[tokio::test]
async fn a_fragmented_request_beyond_the_reassembly_budget_is_refused_alone() {
    let run = async {
        let config = Config::default().reassembly_limits(1000, Duration::from_secs(30));
        let running = Server::builder().add_handler(&["f.F/Gated"], NoHandler).config(config).build();
        let running = running.bind("127.0.0.1:0").await.unwrap();
        let mut peer = Peer::setup(running.local_addr()).await;
        let fragment = |stream_id: u32, first: bool| {
            let payload = WirePayload { metadata: None, data: Bytes::from(vec![1u8; 600]) };
            if first {
                Frame::RequestResponse(Request { stream_id, follows: true, payload })
            } else {
                Frame::Payload(PayloadFrame { stream_id, follows: true, complete: false, next: true, payload })
            }
        };
        peer.send(&fragment(1, true)).await;
        peer.send(&fragment(3, true)).await;
        let refused = peer.frame().await;
        assert!(
            matches!(&refused, Frame::Error(ErrorFrame { stream_id: 3, code: ErrorCode::INVALID, .. })),
            "{refused:?}"
        );
        // Stream 1 was not touched; its next fragment takes the connection past the budget.
        peer.send(&fragment(1, false)).await;
        let refused = peer.frame().await;
        assert!(matches!(&refused, Frame::Error(ErrorFrame { stream_id: 1, .. })), "{refused:?}");
        // The connection is still up: a keepalive is answered.
        peer.send(&Frame::Keepalive(weft::frame::Keepalive {
            respond: true,
            last_received_position: 0,
            data: Bytes::new(),
        }))
        .await;
        assert!(matches!(peer.frame().await, Frame::Keepalive(k) if !k.respond));
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

struct NoHandler;

impl Handler for NoHandler {}

#[tokio::test]
async fn connections_beyond_the_servers_limit_are_refused_with_rejected_setup() {
    let run = async {
        let running = Server::builder().add_handler(&["f.F/Echo"], Echo).max_connections(2).build();
        let running = running.bind("127.0.0.1:0").await.unwrap();
        let addr = running.local_addr();
        let first = Client::connect(addr).await.unwrap();
        let second = Client::connect(addr).await.unwrap();
        for client in [&first, &second] {
            let reply = client.request_response(Call::new("f.F/Echo"), Bytes::from("hi")).await.unwrap();
            assert_eq!(reply.data, "hi");
        }
        // A third is told why, and closed; the two go on.
        let mut third = Peer::setup(addr).await;
        let frames = third.until_closed().await;
        assert!(
            matches!(&frames[..], [Frame::Error(e @ ErrorFrame { stream_id: 0, code: ErrorCode::REJECTED_SETUP, .. })] if e.message().contains("at most 2 connections")),
            "{frames:?}"
        );
        let refused = Client::connect(addr).await.unwrap();
        let status = refused.request_response(Call::new("f.F/Echo"), Bytes::new()).await.unwrap_err();
        assert!(status.message().contains("at most 2 connections"), "{status}");
        let reply = first.request_response(Call::new("f.F/Echo"), Bytes::from("still")).await.unwrap();
        assert_eq!(reply.data, "still");
        // Once one goes, a new one is served.
        drop(second);
        for _ in 0..500 {
            if running.connections() <= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let again = Client::connect(addr).await.unwrap();
        let reply = again.request_response(Call::new("f.F/Echo"), Bytes::from("again")).await.unwrap();
        assert_eq!(reply.data, "again");
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

struct Echo;

impl Handler for Echo {
    fn request_response(&self, _call: Call, data: Bytes) -> weft::Response {
        weft::Response::ready(Ok(weft::Payload::new(data)))
    }
}

/// Big messages: a stream of `n` of 64 KiB (`n` in the request), which says when it is dropped;
/// a channel that holds its inbound messages unread until the test lets it go; and a ping.
#[derive(Clone)]
struct Big {
    dropped: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

/// Notifies when dropped (with the stream that holds it).
struct OnDrop(Arc<tokio::sync::Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

const BIG: usize = 64 * 1024;

impl Handler for Big {
    fn request_response(&self, _call: Call, data: Bytes) -> weft::Response {
        weft::Response::ready(Ok(weft::Payload { metadata: Bytes::new(), data }))
    }

    fn request_stream(&self, _call: Call, data: Bytes) -> weft::Responses {
        use futures_util::StreamExt;
        let n = usize::from(data[0]);
        let guard = OnDrop(self.dropped.clone());
        let message = Bytes::from(vec![7u8; BIG]);
        weft::Responses::new(futures_util::stream::iter(0..n).map(move |_| {
            let _ = &guard;
            Ok(weft::Payload { metadata: Bytes::new(), data: message.clone() })
        }))
    }

    fn request_channel(&self, _call: Call, messages: weft::PayloadStream) -> weft::Responses {
        let release = self.release.clone();
        weft::Responses::new(futures_util::stream::once(async move {
            release.notified().await;
            drop(messages);
            Ok(weft::Payload::new("done"))
        }))
    }
}

/// Unread messages are bounded in bytes, not only by the credit granted: 64 messages of credit
/// at 64 KiB would be 4 MiB, but beyond 256 KiB unread the connection stops reading, and a
/// stream whose reader makes no progress for 300 ms ends.
fn small_unread() -> Config {
    Config::default().inbound_window(64).unread_limits(4 * BIG, Duration::from_millis(300))
}

/// A server of [`Big`] configured by `config`, listening on 127.0.0.1.
async fn big_server(config: Config) -> (weft::RunningServer, Big) {
    let big = Big { dropped: Arc::default(), release: Arc::default() };
    let server =
        Server::builder().add_handler(&["b.B/Ping", "b.B/Big", "b.B/Hold"], big.clone()).config(config).build();
    (server.bind("127.0.0.1:0").await.unwrap(), big)
}

#[tokio::test]
async fn a_stream_whose_reader_stalls_beyond_the_unread_bytes_ends_alone() {
    use futures_util::StreamExt;
    let run = async {
        let (running, big) = big_server(Config::default()).await;
        let client = Client::builder().config(small_unread()).connect(running.local_addr()).await.unwrap();
        // More messages than the credit, so that the server's producer is dropped only when
        // the client cancels; nothing is read before.
        let mut stream = client.request_stream(Call::new("b.B/Big"), Bytes::from_static(&[200])).await.unwrap();
        big.dropped.notified().await;
        let mut read = 0;
        let end = loop {
            match stream.next().await {
                Some(Ok(payload)) => {
                    assert_eq!(payload.data.len(), BIG);
                    read += 1;
                }
                other => break other,
            }
        };
        // The limit, plus what the read that went over it held.
        assert!((5..=12).contains(&read), "{read} messages were held unread");
        let status = end.expect("an error, not the end").unwrap_err();
        assert_eq!(status.code(), weft::Code::ResourceExhausted, "{status}");
        assert!(status.message().contains("unread_limits"), "{status}");
        assert!(stream.next().await.is_none());
        // The connection carries on.
        let answer = client.request_response(Call::new("b.B/Ping"), Bytes::from("ping")).await.unwrap();
        assert_eq!(answer.data, "ping");
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

#[tokio::test]
async fn a_slow_reader_that_makes_progress_gets_every_message() {
    use futures_util::StreamExt;
    let run = async {
        let (running, _big) = big_server(Config::default()).await;
        let client = Client::builder().config(small_unread()).connect(running.local_addr()).await.unwrap();
        let mut stream = client.request_stream(Call::new("b.B/Big"), Bytes::from_static(&[120])).await.unwrap();
        let mut read = 0;
        for _ in 0..200 {
            match stream.next().await {
                Some(item) => assert_eq!(item.expect("no error").data.len(), BIG),
                None => break,
            }
            read += 1;
            // Slower than the wire, well within the stall time per message.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        assert_eq!(read, 120);
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

#[tokio::test]
async fn a_channel_handler_that_does_not_read_loses_its_channel_after_the_stall_time() {
    use futures_util::StreamExt;
    let run = async {
        let (running, big) = big_server(small_unread()).await;
        let client = Client::connect(running.local_addr()).await.unwrap();
        let message = Bytes::from(vec![9u8; BIG]);
        let outbound = futures_util::stream::iter(
            (0..64).map(move |_| weft::Payload { metadata: Bytes::new(), data: message.clone() }),
        );
        let mut replies = client.request_channel(Call::new("b.B/Hold"), outbound).await.unwrap();
        let status = replies.next().await.expect("an error, not the end").unwrap_err();
        assert_eq!(status.code(), weft::Code::ResourceExhausted, "{status}");
        assert!(replies.next().await.is_none());
        big.release.notify_one();
        let answer = client.request_response(Call::new("b.B/Ping"), Bytes::from("ping")).await.unwrap();
        assert_eq!(answer.data, "ping");
        assert_eq!(running.connections(), 1);
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}
