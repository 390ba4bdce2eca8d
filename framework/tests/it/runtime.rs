//! The payload-level runtime end to end: hand-written handlers, real sockets on 127.0.0.1
//! and the in-memory transport. Every test is bounded by a timeout so a hang fails fast.

use crate::peer::setup_frame;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use weft::conn::CloseReason;
use weft::frame::length::{self, LengthDelimited};
use weft::frame::{ErrorCode, ErrorFrame, Frame, Setup};
use weft::{
    BoxFuture, Call, Client, Code, Config, ErrorKind, Handler, Payload, PayloadStream, Response, Responses, Server,
    Status,
};

const ROUTES: &[&str] = &[
    "test.Echo/Unary",
    "test.Echo/Fail",
    "test.Echo/Fire",
    "test.Echo/Count",
    "test.Echo/Range",
    "test.Echo/Chat",
    "test.Echo/Slow",
    "test.Echo/Forever",
    "test.Echo/Big",
];

/// A hand-written handler covering every interaction model.
#[derive(Clone, Default)]
struct Echo(Arc<EchoState>);

impl std::ops::Deref for Echo {
    type Target = EchoState;
    fn deref(&self) -> &EchoState {
        &self.0
    }
}

#[derive(Default)]
struct EchoState {
    fired: AtomicU64,
    /// Items the `Forever` and `Slow` streams have produced.
    produced: Arc<AtomicU64>,
    /// Notified when a handler's future or stream is dropped by a cancel.
    dropped: Arc<Notify>,
    cancelled: Arc<Notify>,
}

struct OnDrop(Arc<Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl Handler for Echo {
    fn request_response(&self, call: Call, data: Bytes) -> Response {
        let this = self.clone();
        Response::new(async move {
            match call.route() {
                "test.Echo/Unary" => Ok(Payload::new(data)),
                "test.Echo/Fail" => Err(Status::not_found(String::from_utf8_lossy(&data).into_owned())),
                "test.Echo/Count" => Ok(Payload::new(this.fired.load(Ordering::SeqCst).to_string())),
                "test.Echo/Slow" => {
                    let _guard = OnDrop(this.dropped.clone());
                    let watcher = call.clone();
                    let cancelled = this.cancelled.clone();
                    tokio::spawn(async move {
                        watcher.cancelled().await;
                        cancelled.notify_one();
                    });
                    std::future::pending().await
                }
                _ => Err(weft::unimplemented_route(&call)),
            }
        })
    }

    fn fire_and_forget(&self, _call: Call, _data: Bytes) -> BoxFuture<'static, ()> {
        self.fired.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn request_stream(&self, call: Call, data: Bytes) -> Responses {
        match call.route() {
            "test.Echo/Range" => {
                let n: u64 = std::str::from_utf8(&data).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                Responses::new(stream::iter((0..n).map(|i| Ok(Payload::new(i.to_string())))))
            }
            "test.Echo/Forever" => {
                let produced = self.produced.clone();
                let guard = OnDrop(self.dropped.clone());
                Responses::new(stream::iter(0u64..).map(move |i| {
                    let _keep = &guard;
                    produced.fetch_add(1, Ordering::SeqCst);
                    Ok(Payload::new(i.to_string()))
                }))
            }
            "test.Echo/Big" => {
                let produced = self.produced.clone();
                let chunk = Bytes::from(vec![0x5a; 64 * 1024]);
                Responses::new(stream::repeat(()).map(move |()| {
                    produced.fetch_add(1, Ordering::SeqCst);
                    Ok(Payload::new(chunk.clone()))
                }))
            }
            _ => Responses::once(Err(weft::unimplemented_route(&call))),
        }
    }

    fn request_channel(&self, _call: Call, messages: PayloadStream) -> Responses {
        Responses::new(messages.map(|m| m.map(|p| Payload::new([b"echo:", &p.data[..]].concat()))))
    }
}

fn server(echo: &Echo, config: Config) -> Server {
    Server::builder().add_handler(ROUTES, echo.clone()).config(config).build()
}

/// An echo server with the default configuration on 127.0.0.1, and a client connected to it.
async fn echo_over_tcp() -> (Echo, weft::RunningServer, Client) {
    let echo = Echo::default();
    let running = server(&echo, Config::default()).bind("127.0.0.1:0").await.unwrap();
    let client = Client::connect(running.local_addr()).await.unwrap();
    (echo, running, client)
}

async fn bounded<F: Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f).await.expect("test timed out")
}

fn text(p: &Payload) -> &str {
    std::str::from_utf8(&p.data).unwrap()
}

async fn every_model(client: &Client, echo: &Echo) {
    let r = client.request_response(Call::new("test.Echo/Unary"), "hello".into()).await.unwrap();
    assert_eq!(text(&r), "hello");
    let r = client.request_response(Call::new("test.Echo/Unary"), Bytes::new()).await.unwrap();
    assert!(r.data.is_empty());
    let e = client.request_response(Call::new("test.Echo/Fail"), "no such thing".into()).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::NotFound, "no such thing"));
    let e = client.request_response(Call::new("test.Echo/Nope"), Bytes::new()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);

    for _ in 0..3 {
        client.fire_and_forget(Call::new("test.Echo/Fire"), Bytes::new()).await.unwrap();
    }
    // Frames on one connection are handled in order, so the count sees all three.
    let r = client.request_response(Call::new("test.Echo/Count"), Bytes::new()).await.unwrap();
    assert_eq!(text(&r), "3");
    assert_eq!(echo.fired.load(Ordering::SeqCst), 3);

    let items: Vec<_> = client.request_stream(Call::new("test.Echo/Range"), "5".into()).await.unwrap().collect().await;
    let items: Vec<_> = items.into_iter().map(|r| String::from_utf8(r.unwrap().data.to_vec()).unwrap()).collect();
    assert_eq!(items, ["0", "1", "2", "3", "4"]);
    let empty: Vec<_> = client.request_stream(Call::new("test.Echo/Range"), "0".into()).await.unwrap().collect().await;
    assert!(empty.is_empty());

    let out = stream::iter(["a", "b", "c"].map(Payload::new));
    let replies: Vec<_> = client.request_channel(Call::new("test.Echo/Chat"), out).await.unwrap().collect().await;
    let replies: Vec<_> = replies.into_iter().map(|r| String::from_utf8(r.unwrap().data.to_vec()).unwrap()).collect();
    assert_eq!(replies, ["echo:a", "echo:b", "echo:c"]);
}

#[tokio::test]
async fn every_model_over_tcp() {
    bounded(30, async {
        let (echo, running, client) = echo_over_tcp().await;
        every_model(&client, &echo).await;
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn every_model_in_memory() {
    bounded(30, async {
        let echo = Echo::default();
        let client = server(&echo, Config::default()).connect_in_memory().await.unwrap();
        every_model(&client, &echo).await;
    })
    .await
}

#[tokio::test]
async fn every_model_with_tiny_fragments() {
    bounded(30, async {
        let echo = Echo::default();
        let config = Config::default().fragment_size(Some(64));
        let running = server(&echo, config.clone()).bind("127.0.0.1:0").await.unwrap();
        let client = Client::builder().config(config).connect(running.local_addr()).await.unwrap();
        every_model(&client, &echo).await;
        let big = Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let r = client.request_response(Call::new("test.Echo/Unary"), big.clone()).await.unwrap();
        assert_eq!(r.data, big);
        running.shutdown().await;
    })
    .await
}

/// Answers with what it was called as: the route, then each metadata entry's MIME type and
/// content.
struct WhoAmI;

impl Handler for WhoAmI {
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        let mut answer = call.route().to_owned();
        for entry in &call.metadata().entries {
            answer.push_str(&format!(" {}={}", entry.mime, String::from_utf8_lossy(&entry.content)));
        }
        Response::new(async move { Ok(Payload::new(answer)) })
    }
}

#[tokio::test]
async fn many_routes_and_metadata_on_one_connection_reach_the_handler_as_sent() {
    // More distinct request metadata blocks than the server keeps the routes of, some sent
    // again and again, so every call is a repeat, a new block, or one that pushed out another;
    // and one block too long to be kept.
    const MANY: &[&str] = &["m.S/A", "m.S/B", "m.S/C", "m.S/D", "m.S/E", "m.S/F", "m.S/G"];
    bounded(30, async {
        let running = Server::builder().add_handler(MANY, WhoAmI).build().bind("127.0.0.1:0").await.unwrap();
        let client = Client::connect(running.local_addr()).await.unwrap();
        let trace = weft::frame::metadata::MimeType::custom("application/x.trace").unwrap();
        let long = "t".repeat(200);
        for round in 0..3 {
            for (i, route) in MANY.iter().enumerate() {
                let (call, expected) = match (round + i) % 3 {
                    0 => (Call::new(*route), format!("{route} message/x.rsocket.routing.v0=\u{5}{route}")),
                    1 => (
                        Call::new(*route).with_metadata(trace.clone(), format!("t{i}")),
                        format!("{route} message/x.rsocket.routing.v0=\u{5}{route} application/x.trace=t{i}"),
                    ),
                    _ => (
                        Call::new(*route).with_metadata(trace.clone(), long.clone()),
                        format!("{route} message/x.rsocket.routing.v0=\u{5}{route} application/x.trace={long}"),
                    ),
                };
                let answer = client.request_response(call, Bytes::new()).await.unwrap();
                assert_eq!(text(&answer), expected, "round {round}");
            }
            // A route nobody serves, again and again: unimplemented every time.
            let err = client.request_response(Call::new("m.S/Nobody"), Bytes::new()).await.unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "round {round}");
        }
        running.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_on_one_connection() {
    bounded(60, async {
        let (_, running, client) = echo_over_tcp().await;
        let calls = (0..1000).map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let r = client.request_response(Call::new("test.Echo/Unary"), i.to_string().into()).await.unwrap();
                assert_eq!(text(&r), i.to_string());
            })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.unwrap();
        }
        running.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_items_with_small_credit_arrive_complete_and_in_order() {
    bounded(240, async {
        let echo = Echo::default();
        let config = Config::default().inbound_window(16);
        let running = server(&echo, config.clone()).bind("127.0.0.1:0").await.unwrap();
        let client = Client::builder().config(config).connect(running.local_addr()).await.unwrap();
        let mut items = client.request_stream(Call::new("test.Echo/Range"), "1000000".into()).await.unwrap();
        let mut expected = 0u64;
        while let Some(item) = items.next().await {
            let item = item.unwrap();
            assert_eq!(text(&item), expected.to_string());
            expected += 1;
        }
        assert_eq!(expected, 1_000_000);
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_slow_consumer_bounds_what_the_producer_makes() {
    bounded(30, async {
        let echo = Echo::default();
        let window = 8;
        let running = server(&echo, Config::default()).bind("127.0.0.1:0").await.unwrap();
        let client = Client::builder()
            .config(Config::default().inbound_window(window))
            .connect(running.local_addr())
            .await
            .unwrap();
        let mut items = client.request_stream(Call::new("test.Echo/Forever"), Bytes::new()).await.unwrap();
        for consumed in 1..=40u64 {
            items.next().await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            // The producer is polled once per credit, and once more out of credit (to see
            // whether it has ended): never more than the window and one message ahead.
            let produced = echo.produced.load(Ordering::SeqCst);
            assert!(produced <= consumed + u64::from(window) + 1, "produced {produced} after {consumed} consumed");
        }
        drop(items);
        bounded(5, echo.dropped.notified()).await;
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn dropping_a_stream_on_the_client_ends_the_handler() {
    bounded(30, async {
        let (echo, running, client) = echo_over_tcp().await;
        let mut items = client.request_stream(Call::new("test.Echo/Forever"), Bytes::new()).await.unwrap();
        for _ in 0..3 {
            items.next().await.unwrap().unwrap();
        }
        let dropped = echo.dropped.notified();
        drop(items);
        bounded(5, dropped).await;
        // The connection is still fine.
        let r = client.request_response(Call::new("test.Echo/Unary"), "still".into()).await.unwrap();
        assert_eq!(text(&r), "still");
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn dropping_a_call_cancels_the_handler() {
    bounded(30, async {
        let echo = Echo::default();
        let client = server(&echo, Config::default()).connect_in_memory().await.unwrap();
        let dropped = echo.dropped.notified();
        let cancelled = echo.cancelled.notified();
        let call = client.request_response(Call::new("test.Echo/Slow"), Bytes::new());
        assert!(tokio::time::timeout(Duration::from_millis(200), call).await.is_err());
        bounded(5, dropped).await;
        bounded(5, cancelled).await;
    })
    .await
}

/// A raw peer on 127.0.0.1: `serve` runs on the one connection it accepts.
async fn raw_server<S, F, T>(serve: S) -> (std::net::SocketAddr, tokio::task::JoinHandle<T>)
where
    S: FnOnce(TcpStream) -> F + Send + 'static,
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { serve(listener.accept().await.unwrap().0).await });
    (addr, task)
}

/// A server that accepts, reads SETUP and everything after, and never writes a byte.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    raw_server(|mut socket| async move {
        let mut sink = vec![0u8; 4096];
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await
}

#[tokio::test]
async fn a_peer_that_stops_answering_keepalives_is_detected() {
    bounded(30, async {
        let (addr, task) = silent_server().await;
        let builder = Client::builder().keepalive(Duration::from_millis(50), Duration::from_millis(300));
        let client = builder.connect(addr).await.unwrap();
        let pending = client.request_response(Call::new("test.Echo/Unary"), Bytes::new());
        let err = bounded(5, pending).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert!(err.message().contains("keepalive"), "{err}");
        let reason = client.closed().await;
        assert_eq!(reason.kind(), &ErrorKind::Closed(CloseReason::KeepaliveTimeout(Duration::from_millis(300))));
        assert!(reason.to_string().contains("300 ms"), "{reason}");
        let err = client.request_response(Call::new("test.Echo/Unary"), Bytes::new()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        task.abort();
    })
    .await
}

/// The connection's deadlines follow tokio's clock: paused, a peer's silence of a minute is
/// detected as soon as the runtime has nothing else to do, in no real time at all.
#[tokio::test(start_paused = true)]
async fn under_a_paused_clock_the_keepalive_timeout_fires_by_tokios_time() {
    let real = std::time::Instant::now();
    // A peer that reads and never answers, over an in-memory pipe (no sockets: the paused
    // clock's auto-advance waits for nothing else).
    let (client_end, mut peer_end) = tokio::io::duplex(64 * 1024);
    let peer = tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while matches!(peer_end.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let builder = Client::builder().keepalive(Duration::from_secs(20), Duration::from_secs(60));
    let client = builder.connect_over(client_end).await.unwrap();
    let started = tokio::time::Instant::now();
    let reason = client.closed().await;
    assert_eq!(reason.kind(), &ErrorKind::Closed(CloseReason::KeepaliveTimeout(Duration::from_secs(60))));
    assert!(reason.to_string().contains("60000 ms"), "{reason}");
    assert!(started.elapsed() >= Duration::from_secs(60), "tokio's clock moved a minute");
    assert!(real.elapsed() < Duration::from_secs(10), "in no real time: {:?}", real.elapsed());
    peer.abort();
}

/// A server that answers every KEEPALIVE asking for an answer, and counts those and the
/// fire-and-forget requests it reads until the client goes away.
async fn keepalive_answering_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<(usize, usize)>) {
    raw_server(|mut socket| async move {
        let framing = LengthDelimited::new(weft::frame::MAX_FRAME_SIZE);
        let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
        let (mut keepalives, mut fired) = (0, 0);
        while matches!(socket.read_buf(&mut buf).await, Ok(n) if n > 0) {
            while let Some(frame) = framing.decode_frame(&mut buf).unwrap() {
                match frame {
                    Frame::Keepalive(k) if k.respond => {
                        keepalives += 1;
                        let answer = weft::frame::Keepalive { respond: false, ..k };
                        length::encode_frame(&Frame::Keepalive(answer), &mut out);
                    }
                    Frame::RequestFnf(_) => fired += 1,
                    _ => {}
                }
            }
            if !out.is_empty() && socket.write_all_buf(&mut out).await.is_err() {
                break;
            }
        }
        (keepalives, fired)
    })
    .await
}

#[tokio::test]
async fn keepalives_go_out_on_time_while_the_connection_is_busy() {
    bounded(30, async {
        let (addr, server) = keepalive_answering_server().await;
        let builder = Client::builder().keepalive(Duration::from_millis(50), Duration::from_secs(10));
        let client = builder.connect(addr).await.unwrap();
        // Traffic on every turn for 600 ms: the driver is busy all along, and its deadline
        // must still come round (twelve KEEPALIVEs in that time, if the machine keeps up).
        let start = std::time::Instant::now();
        let mut sent = 0;
        while start.elapsed() < Duration::from_millis(600) && sent < 100_000 {
            client.fire_and_forget(Call::new("test.Echo/Fire"), Bytes::from_static(b"x")).await.unwrap();
            sent += 1;
            if sent % 16 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(!client.is_closed(), "the server answered every KEEPALIVE: the connection lives");
        drop(client);
        let (keepalives, fired) = bounded(5, server).await.unwrap();
        assert_eq!(fired, sent, "every request arrived");
        assert!(keepalives >= 4, "{keepalives} KEEPALIVEs in 600 ms at a 50 ms interval");
    })
    .await
}

/// Reads frames until the peer closes; returns them.
async fn read_until_closed(socket: &mut TcpStream) -> Vec<Frame> {
    let framing = LengthDelimited::new(weft::frame::MAX_FRAME_SIZE);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        while let Some(frame) = framing.decode_frame(&mut buf).unwrap() {
            frames.push(frame);
        }
        if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_silent_client_is_dropped_even_after_its_connection_moved_to_another_task() {
    bounded(30, async {
        let echo = Echo::default();
        let server = server(&echo, Config::default());
        let (mut peer, server_end) = tokio::io::duplex(1 << 16);
        let mut wire = BytesMut::new();
        let Frame::Setup(setup) = setup_frame() else { unreachable!() };
        let setup = Setup { keepalive_interval: 50, max_lifetime: 300, ..setup };
        length::encode_frame(&Frame::Setup(setup), &mut wire);
        peer.write_all(&wire).await.unwrap();
        let mut serving = Box::pin(async move { server.serve_connection(server_end).await });
        // One task runs the connection for a while (it takes the SETUP and sets its timer)...
        let (hand_over, taken_over) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let cut = tokio::time::timeout(Duration::from_millis(100), &mut serving).await;
            assert!(cut.is_err(), "the connection ended before the client fell silent long enough");
            let _ = hand_over.send(serving);
        })
        .await
        .unwrap();
        let serving = taken_over.await.unwrap();
        // ...and another takes over: only the timer can end it now, and it must wake this one.
        bounded(5, tokio::spawn(serving)).await.unwrap();
        let framing = LengthDelimited::new(weft::frame::MAX_FRAME_SIZE);
        let mut buf = BytesMut::new();
        while peer.read_buf(&mut buf).await.unwrap() > 0 {}
        let mut frames = Vec::new();
        while let Some(frame) = framing.decode_frame(&mut buf).unwrap() {
            frames.push(frame);
        }
        assert!(
            matches!(
                frames.last(),
                Some(Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_ERROR, .. }))
            ),
            "{frames:?}"
        );
    })
    .await
}

#[tokio::test]
async fn hostile_peers_get_an_error_and_are_closed_while_others_carry_on() {
    bounded(30, async {
        let echo = Echo::default();
        let running = server(&echo, Config::default().max_frame_size(1024)).bind("127.0.0.1:0").await.unwrap();
        let addr = running.local_addr();
        let good = Client::connect(addr).await.unwrap();

        let mut attacks: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut setup = BytesMut::new();
        length::encode_frame(&setup_frame(), &mut setup);
        // Garbage after a valid SETUP: a frame too short for its header.
        attacks.push(("short frame", [&setup[..], &[0, 0, 2, 0xff, 0xff]].concat()));
        // A KEEPALIVE whose body is cut off.
        attacks.push(("truncated keepalive", [&setup[..], &[0, 0, 8, 0, 0, 0, 0, 0x0c, 0x80, 0, 0]].concat()));
        // A declared length over the server's maximum frame size.
        attacks.push(("oversized frame", [&setup[..], &[0x00, 0x10, 0x00]].concat()));
        // A request before SETUP.
        attacks.push(("request before setup", vec![0, 0, 6, 0, 0, 0, 1, 0x10, 0]));
        // An unknown frame type without the ignore flag.
        attacks.push(("unknown frame type", [&setup[..], &[0, 0, 6, 0, 0, 0, 0, 0x80, 0]].concat()));

        for (name, bytes) in attacks {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            socket.write_all(&bytes).await.unwrap();
            let frames = bounded(5, read_until_closed(&mut socket)).await;
            assert!(
                matches!(frames.last(), Some(Frame::Error(ErrorFrame { stream_id: 0, .. }))),
                "{name}: expected a connection ERROR, got {frames:?}"
            );
            let r = good.request_response(Call::new("test.Echo/Unary"), name.into()).await.unwrap();
            assert_eq!(text(&r), name, "the well-behaved client still works after `{name}`");
        }

        // A malformed request fails that stream only; the same connection carries on.
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let mut bytes = setup.to_vec();
        bytes.extend_from_slice(&[0, 0, 9, 0, 0, 0, 1, 0x18, 0, 0, 0, 0]); // REQUEST_STREAM cut inside initial N
        socket.write_all(&bytes).await.unwrap();
        let framing = LengthDelimited::new(4096);
        let mut buf = BytesMut::new();
        let frame = bounded(5, async {
            loop {
                if let Some(frame) = framing.decode_frame(&mut buf).unwrap() {
                    return frame;
                }
                assert!(socket.read_buf(&mut buf).await.unwrap() > 0, "closed without an answer");
            }
        })
        .await;
        assert!(matches!(frame, Frame::Error(ErrorFrame { stream_id: 1, code: ErrorCode::INVALID, .. })), "{frame:?}");
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn graceful_shutdown_lets_streams_finish_and_refuses_new_connections() {
    bounded(30, async {
        let echo = Echo::default();
        let running = server(&echo, Config::default()).bind("127.0.0.1:0").await.unwrap();
        let addr = running.local_addr();
        let client = Client::builder().config(Config::default().inbound_window(4)).connect(addr).await.unwrap();
        let mut items = client.request_stream(Call::new("test.Echo/Range"), "100".into()).await.unwrap();
        assert_eq!(text(&items.next().await.unwrap().unwrap()), "0");
        let shutdown = tokio::spawn(running.shutdown());
        // The server says CONNECTION_CLOSE at once: the client drains too, its stream goes on,
        // and a new call on the connection is refused saying why.
        let mut refused = None;
        for _ in 0..200 {
            match client.request_response(Call::new("test.Echo/Unary"), Bytes::new()).await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(status) => {
                    refused = Some(status);
                    break;
                }
            }
        }
        let refused = refused.expect("a call refused while the connection drains");
        assert_eq!(refused.code(), Code::Unavailable, "{refused}");
        assert!(refused.message().contains("closing"), "{refused}");
        let mut n = 1;
        while let Some(item) = items.next().await {
            assert_eq!(text(&item.unwrap()), n.to_string());
            n += 1;
        }
        assert_eq!(n, 100);
        bounded(5, shutdown).await.unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err() || {
                let client = Client::connect(addr).await;
                match client {
                    Ok(c) => c.request_response(Call::new("test.Echo/Unary"), Bytes::new()).await.is_err(),
                    Err(_) => true,
                }
            }
        );
    })
    .await
}

/// Answers every channel with one message without reading the requester's.
struct Deaf;

impl Handler for Deaf {
    fn request_channel(&self, _call: Call, messages: PayloadStream) -> Responses {
        drop(messages);
        Responses::new(stream::iter([Ok(Payload::new("one"))]))
    }
}

#[tokio::test]
async fn a_channel_responder_that_stops_reading_still_answers() {
    bounded(30, async {
        let server = Server::builder().add_handler(&["t/Deaf"], Deaf).build();
        let running = server.bind("127.0.0.1:0").await.unwrap();
        let tcp = Client::connect(running.local_addr()).await.unwrap();
        for client in [server.connect_in_memory().await.unwrap(), tcp] {
            for n in [1usize, 3, 1000] {
                let out = stream::iter((0..n).map(|i| Payload::new(i.to_string())));
                let replies: Vec<_> = client.request_channel(Call::new("t/Deaf"), out).await.unwrap().collect().await;
                let replies: Vec<_> = replies.into_iter().map(|r| r.unwrap().data).collect();
                assert_eq!(replies, [Bytes::from("one")], "{n} messages out");
            }
        }
        running.shutdown().await;
    })
    .await
}

/// Asks the requester who it is, on the same connection, before answering.
struct AsksBack;

impl Handler for AsksBack {
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        Response::new(async move {
            let peer = call.peer().expect("a responder knows its peer").clone();
            let name = peer.request_response(Call::new("client/Name"), Bytes::new()).await?;
            Ok(Payload::new(format!("hello, {}", String::from_utf8_lossy(&name.data))))
        })
    }
}

struct Named;

impl Handler for Named {
    fn request_response(&self, _call: Call, _data: Bytes) -> Response {
        Response::new(async { Ok(Payload::new("the client")) })
    }
}

#[tokio::test]
async fn requests_flow_both_ways_on_one_connection() {
    bounded(30, async {
        let running = Server::builder().add_handler(&["t/Hello"], AsksBack).build().bind("127.0.0.1:0").await.unwrap();
        let client =
            Client::builder().add_handler(&["client/Name"], Named).connect(running.local_addr()).await.unwrap();
        let r = client.request_response(Call::new("t/Hello"), Bytes::new()).await.unwrap();
        assert_eq!(text(&r), "hello, the client");
        // A client that serves nothing (or not that route) answers with UNIMPLEMENTED.
        let plain = Client::connect(running.local_addr()).await.unwrap();
        let e = plain.request_response(Call::new("t/Hello"), Bytes::new()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented, "{e}");
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn shutdown_cuts_streams_that_outlast_the_grace_period() {
    bounded(30, async {
        let echo = Echo::default();
        let grace = Server::builder().add_handler(ROUTES, echo.clone()).shutdown_grace(Duration::from_millis(200));
        let running = grace.build().bind("127.0.0.1:0").await.unwrap();
        let client =
            Client::builder().config(Config::default().inbound_window(4)).connect(running.local_addr()).await.unwrap();
        let mut items = client.request_stream(Call::new("test.Echo/Forever"), Bytes::new()).await.unwrap();
        items.next().await.unwrap().unwrap();
        let dropped = echo.dropped.notified();
        bounded(5, running.shutdown()).await;
        bounded(5, dropped).await;
        // The client reads what was in flight, then learns the connection is gone.
        let end = bounded(5, async {
            loop {
                match items.next().await {
                    Some(Ok(_)) => continue,
                    other => return other,
                }
            }
        })
        .await;
        assert!(matches!(&end, Some(Err(s)) if s.code() == Code::Unavailable) || end.is_none(), "{end:?}");
    })
    .await
}

#[tokio::test]
async fn a_peer_that_grants_credit_but_never_reads_cannot_grow_the_servers_buffers() {
    bounded(30, async {
        let echo = Echo::default();
        let config = Config::default().max_buffered_bytes(256 * 1024);
        let running = server(&echo, config).bind("127.0.0.1:0").await.unwrap();
        // A small receive buffer, so that what the kernel holds for the peer is small too.
        let raw = tokio::net::TcpSocket::new_v4().unwrap();
        raw.set_recv_buffer_size(64 * 1024).unwrap();
        let mut socket = raw.connect(running.local_addr()).await.unwrap();
        // SETUP, then a request/stream for 64 KiB messages granting all the credit there is.
        let mut bytes = BytesMut::new();
        length::encode_frame(&setup_frame(), &mut bytes);
        let mut metadata = BytesMut::new();
        weft::frame::metadata::CompositeMetadata::with_route("test.Echo/Big").unwrap().encode(&mut metadata);
        let request = weft::frame::RequestStream {
            stream_id: 1,
            follows: false,
            initial_n: weft::frame::MAX_U31,
            payload: weft::frame::Payload::new(metadata.freeze(), Bytes::new()),
        };
        length::encode_frame(&Frame::RequestStream(request), &mut bytes);
        socket.write_all(&bytes).await.unwrap();
        // The server fills the socket's kernel buffers and its own bounded write buffer, then
        // stops polling the stream. Wait for the count to settle, then check it stays put.
        let mut last = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = echo.produced.load(Ordering::SeqCst);
            if now == last && now > 0 {
                break;
            }
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let settled = echo.produced.load(Ordering::SeqCst);
        assert_eq!(settled, last, "the producer kept going while nobody read");
        // The kernel holds at most a few MiB for this connection (4 MiB of send buffer, a
        // small receive buffer); 16 MiB would mean the server buffered on its own account.
        assert!(settled < 256, "{settled} messages of 64 KiB produced for a peer that reads nothing");
        drop(socket);
        running.shutdown().await;
    })
    .await
}

/// A server that answers one request/stream with `total` small messages, each sent only on
/// credit, and returns the most credit the client ever had outstanding.
async fn counting_stream_server(total: u64) -> (std::net::SocketAddr, tokio::task::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let framing = LengthDelimited::new(weft::frame::MAX_FRAME_SIZE);
        let (mut rbuf, mut wbuf) = (BytesMut::new(), BytesMut::new());
        let (mut stream_id, mut credit, mut most, mut sent) = (0, 0u64, 0u64, 0u64);
        // Bounded: every pass either reads from the client or sends on credit it granted.
        for _ in 0..10_000_000u64 {
            while let Some(frame) = framing.decode_frame(&mut rbuf).unwrap() {
                match frame {
                    Frame::RequestStream(r) => (stream_id, credit) = (r.stream_id, u64::from(r.initial_n)),
                    Frame::RequestN(r) => credit += u64::from(r.n),
                    _ => {}
                }
            }
            most = most.max(credit);
            while credit > 0 && sent < total {
                let payload = weft::frame::Payload::data(Bytes::from_static(b"0123456789abcdef"));
                let complete = sent + 1 == total;
                let frame = weft::frame::PayloadFrame { stream_id, follows: false, complete, next: true, payload };
                length::encode_frame(&Frame::Payload(frame), &mut wbuf);
                (credit, sent) = (credit - 1, sent + 1);
            }
            socket.write_all_buf(&mut wbuf).await.unwrap();
            if sent == total || socket.read_buf(&mut rbuf).await.unwrap_or(0) == 0 {
                break;
            }
        }
        assert_eq!(sent, total, "the client stopped granting credit");
        most
    });
    (addr, task)
}

#[tokio::test]
async fn a_stream_of_small_messages_earns_a_larger_window_within_its_bounds() {
    bounded(60, async {
        let total = 60_000;
        let (addr, server) = counting_stream_server(total).await;
        let client = Client::connect(addr).await.unwrap();
        let mut items = client.request_stream(Call::new("test.Echo/Range"), Bytes::new()).await.unwrap();
        let mut count = 0u64;
        while let Some(item) = items.next().await {
            assert_eq!(&item.unwrap().data[..], b"0123456789abcdef");
            count += 1;
        }
        assert_eq!(count, total);
        let most = server.await.unwrap();
        // The default window starts at 256 messages and may grow to 8,192 for messages this
        // small.
        assert!(most > 256, "the window never grew: at most {most} messages of credit");
        assert!(most <= 8192, "{most} messages of credit outstanding, beyond the window's bound");
    })
    .await
}

/// The frames a raw server writes, all in one write, once two request/streams have arrived:
/// stream A's messages `a0`..`a3` (C on the last) interleaved with stream B's `b0`.., one more
/// than B's credit, and two after that.
fn interleaved_messages(a: (u32, u32), b: (u32, u32)) -> BytesMut {
    let message = |stream_id, data: String, complete| {
        let payload = weft::frame::Payload::data(Bytes::from(data));
        Frame::Payload(weft::frame::PayloadFrame { stream_id, follows: false, complete, next: true, payload })
    };
    let mut frames = vec![message(a.0, "a0".into(), false), message(a.0, "a1".into(), false)];
    frames.push(message(b.0, "b0".into(), false));
    frames.push(message(a.0, "a2".into(), false));
    frames.extend((1..b.1 + 3).map(|i| message(b.0, format!("b{i}"), false)));
    frames.push(message(a.0, "a3".into(), true));
    assert!(a.1 >= 4, "stream A was granted {} messages", a.1);
    let mut wire = BytesMut::new();
    for frame in &frames {
        length::encode_frame(frame, &mut wire);
    }
    wire
}

#[tokio::test]
async fn messages_of_two_streams_in_one_read_reach_each_in_order_and_credit_holds_within_a_run() {
    bounded(30, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let framing = LengthDelimited::new(weft::frame::MAX_FRAME_SIZE);
            let mut rbuf = BytesMut::new();
            let mut requests = Vec::new();
            while requests.len() < 2 {
                while let Some(frame) = framing.decode_frame(&mut rbuf).unwrap() {
                    if let Frame::RequestStream(r) = frame {
                        requests.push((r.stream_id, r.initial_n));
                    }
                }
                if requests.len() < 2 {
                    assert!(socket.read_buf(&mut rbuf).await.unwrap() > 0, "the client went away");
                }
            }
            socket.write_all(&interleaved_messages(requests[0], requests[1])).await.unwrap();
            // What the client sends back: B's cancel, once it has read past B's credit.
            (requests, read_until_closed(&mut socket).await)
        });
        let client = Client::connect(addr).await.unwrap();
        let mut a = client.request_stream(Call::new("test.Echo/Range"), Bytes::new()).await.unwrap();
        let mut b = client.request_stream(Call::new("test.Echo/Range"), Bytes::new()).await.unwrap();
        let (a_items, b_items) = tokio::join!(a.by_ref().collect::<Vec<_>>(), b.by_ref().collect::<Vec<_>>());
        let a_data: Vec<_> = a_items.into_iter().map(|item| item.unwrap().data).collect();
        assert_eq!(a_data, ["a0", "a1", "a2", "a3"]);
        let (last, granted) = b_items.split_last().unwrap();
        let err = last.as_ref().unwrap_err();
        assert!(err.message().contains("beyond the credit"), "{err}");
        for (i, item) in granted.iter().enumerate() {
            assert_eq!(item.as_ref().unwrap().data, format!("b{i}"));
        }
        drop(client);
        let (requests, sent) = server.await.unwrap();
        assert_eq!(requests[0].0, a.stream_id());
        assert_eq!(requests[1].0, b.stream_id());
        let cancels: Vec<_> =
            sent.iter().filter_map(|f| if let Frame::Cancel(c) = f { Some(c.stream_id) } else { None }).collect();
        assert_eq!(cancels, [b.stream_id()], "only the stream that overran its credit is cancelled");
        // B's reader got exactly its credit's worth before the error.
        let initial_n = Some(requests[1].1);
        assert_eq!(Some(granted.len() as u32), initial_n);
    })
    .await
}

#[tokio::test]
async fn a_busy_stream_does_not_starve_calls_on_the_same_connection() {
    bounded(60, async {
        let (echo, running, client) = echo_over_tcp().await;
        // A stream that always has a message ready, read as fast as it comes.
        let mut items = client.request_stream(Call::new("test.Echo/Forever"), Bytes::new()).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(Ok(_)) = items.next().await {
                n += 1;
            }
            n
        });
        for i in 0..200 {
            let r = bounded(5, client.request_response(Call::new("test.Echo/Unary"), i.to_string().into())).await;
            assert_eq!(text(&r.unwrap()), i.to_string());
        }
        assert!(echo.produced.load(Ordering::SeqCst) > 0);
        reader.abort();
        running.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_streams_from_many_tasks_share_a_connection_without_losing_a_message() {
    // Producers are woken from other threads (a channel's messages come from tasks on either
    // worker) while the driver runs: every wake-up must reach it.
    bounded(60, async {
        let echo = Echo::default();
        let running = server(&echo, Config::default()).bind("127.0.0.1:0").await.unwrap();
        let client =
            Client::builder().config(Config::default().inbound_window(4)).connect(running.local_addr()).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..32u32 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                if t % 2 == 0 {
                    // A channel fed one message at a time from this task.
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<Payload>(1);
                    let messages = stream::poll_fn(move |cx| rx.poll_recv(cx));
                    tx.send(Payload::new(format!("{t}-0"))).await.unwrap();
                    let mut replies = client.request_channel(Call::new("test.Echo/Chat"), messages).await.unwrap();
                    for i in 0..100 {
                        let reply = replies.next().await.unwrap().unwrap();
                        assert_eq!(text(&reply), format!("echo:{t}-{i}"));
                        if i < 99 {
                            tx.send(Payload::new(format!("{t}-{}", i + 1))).await.unwrap();
                        }
                    }
                } else {
                    let items = client.request_stream(Call::new("test.Echo/Range"), "500".into()).await.unwrap();
                    let got: Vec<String> = items.map(|i| text(&i.unwrap()).to_owned()).collect().await;
                    assert_eq!(got, (0..500).map(|i| i.to_string()).collect::<Vec<_>>());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_reader_that_stops_reading_leaves_the_connection_to_its_driver() {
    // A reader that finds nothing queued runs the connection itself and is woken by the
    // socket; once it stops polling, the connection's own task must carry on alone.
    bounded(30, async {
        let echo = Echo::default();
        let grace = Server::builder().add_handler(ROUTES, echo.clone()).shutdown_grace(Duration::from_millis(200));
        let running = grace.build().bind("127.0.0.1:0").await.unwrap();
        let client = Client::connect(running.local_addr()).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Payload>(1);
        tx.send(Payload::new("0")).await.unwrap();
        let messages = stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut replies = client.request_channel(Call::new("test.Echo/Chat"), messages).await.unwrap();
        assert_eq!(text(&replies.next().await.unwrap().unwrap()), "echo:0");
        // This poll sends the message and waits on the socket for the reply; then the reader
        // stops polling, and from here on only the socket has anything for the connection.
        tx.send(Payload::new("1")).await.unwrap();
        let waiting = std::future::poll_fn(|cx| std::task::Poll::Ready(replies.poll_next_unpin(cx).is_pending()));
        assert!(waiting.await);
        // Nothing but the connection's task reads the reply, then the server's shutdown.
        bounded(5, running.shutdown()).await;
        let reason = bounded(5, client.closed()).await;
        // The server closed it, cutting the stream still open at the end of its grace period.
        assert!(
            matches!(reason.kind(), ErrorKind::Closed(CloseReason::PeerError { code, .. }) if *code == ErrorCode::CONNECTION_ERROR),
            "{reason}"
        );
        // What came before the end was queued for the reader.
        let mut rest = Vec::new();
        while let Some(Ok(reply)) = replies.next().await {
            rest.push(text(&reply).to_owned());
        }
        assert_eq!(rest, ["echo:1"]);
    })
    .await
}

#[tokio::test]
async fn a_reader_that_waits_on_another_stream_does_not_hold_up_the_rest() {
    bounded(30, async {
        let (_, running, client) = echo_over_tcp().await;
        // A channel whose requester sends one message and then nothing (its sender is held).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Payload>(1);
        tx.send(Payload::new("only")).await.unwrap();
        let messages = stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut quiet = client.request_channel(Call::new("test.Echo/Chat"), messages).await.unwrap();
        assert_eq!(text(&quiet.next().await.unwrap().unwrap()), "echo:only");
        // One task waits on it for good (and runs the connection meanwhile); calls and streams
        // from other tasks go on.
        let idle = tokio::spawn(async move { quiet.next().await.map(|r| r.is_ok()) });
        for i in 0..50 {
            let r = bounded(5, client.request_response(Call::new("test.Echo/Unary"), i.to_string().into())).await;
            assert_eq!(text(&r.unwrap()), i.to_string());
        }
        let items = client.request_stream(Call::new("test.Echo/Range"), "300".into()).await.unwrap();
        let reader = tokio::spawn(items.map(|i| i.unwrap()).collect::<Vec<_>>());
        assert_eq!(bounded(5, reader).await.unwrap().len(), 300);
        assert!(!idle.is_finished());
        idle.abort();
        drop(tx);
        running.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_stream_read_on_another_runtime_is_delivered_by_the_connections_own() {
    bounded(30, async {
        let (_, running, client) = echo_over_tcp().await;
        let items = client.request_stream(Call::new("test.Echo/Range"), "2000".into()).await.unwrap();
        // The reader cannot run this connection from there (its tasks and timers are this
        // runtime's): it waits to be woken, on a runtime of its own in another thread.
        let elsewhere = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(items.map(|i| text(&i.unwrap()).to_owned()).collect::<Vec<_>>())
        });
        let got = tokio::task::spawn_blocking(move || elsewhere.join().unwrap()).await.unwrap();
        assert_eq!(got, (0..2000).map(|i| i.to_string()).collect::<Vec<_>>());
        // And calls made one at a time from there (a lone caller runs the connection only on
        // its own runtime).
        let caller = client.clone();
        let elsewhere = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                for i in 0..20 {
                    let r = caller.request_response(Call::new("test.Echo/Unary"), i.to_string().into()).await;
                    assert_eq!(text(&r.unwrap()), i.to_string());
                }
            })
        });
        tokio::task::spawn_blocking(move || elsewhere.join().unwrap()).await.unwrap();
        running.shutdown().await;
    })
    .await
}

/// A transport that records the size of every write its side makes.
struct Recorded {
    io: tokio::io::DuplexStream,
    writes: Arc<std::sync::Mutex<Vec<usize>>>,
}

struct RecordingWriter<W = tokio::io::WriteHalf<tokio::io::DuplexStream>> {
    inner: W,
    writes: Arc<std::sync::Mutex<Vec<usize>>>,
    /// Which thread made each write, when a test asks.
    threads: Option<Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>>,
}

/// A TCP connection that records the size of each of its writes.
struct RecordedTcp {
    io: TcpStream,
    writes: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl weft::Transport for RecordedTcp {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = RecordingWriter<tokio::net::tcp::OwnedWriteHalf>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        let _ = self.io.set_nodelay(true);
        let (reader, inner) = self.io.into_split();
        (reader, RecordingWriter { inner, writes: self.writes, threads: None })
    }
}

impl weft::Transport for Recorded {
    type Reader = tokio::io::ReadHalf<tokio::io::DuplexStream>;
    type Writer = RecordingWriter;

    fn split(self) -> (Self::Reader, Self::Writer) {
        let (reader, inner) = tokio::io::split(self.io);
        (reader, RecordingWriter { inner, writes: self.writes, threads: None })
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for RecordingWriter<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = written {
            self.writes.lock().unwrap().push(n);
            if let Some(threads) = &self.threads {
                threads.lock().unwrap().push(std::thread::current().id());
            }
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client of an echo server (default configuration) whose connection records the size of
/// each of its writes; and the server's connection task.
async fn recorded_echo() -> (Client, Arc<std::sync::Mutex<Vec<usize>>>, tokio::task::JoinHandle<()>) {
    let server = server(&Echo::default(), Config::default());
    let (client_end, server_end) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let serving = tokio::spawn({
        let transport = Recorded { io: server_end, writes: writes.clone() };
        async move { server.serve_connection(transport).await }
    });
    (Client::builder().connect_over(client_end).await.unwrap(), writes, serving)
}

#[tokio::test]
async fn answers_to_a_read_of_many_requests_start_going_out_before_the_last_is_answered() {
    bounded(30, async {
        let (client, writes, serving) = recorded_echo().await;
        // 64 calls of 1 KiB, queued before the client's connection runs: one write of ~66 KiB,
        // which the server reads in one or two reads of up to 64 KiB.
        let body = Bytes::from(vec![b'x'; 1024]);
        let calls = (0..64).map(|_| client.request_response(Call::new("test.Echo/Unary"), body.clone()));
        for answer in futures_util::future::join_all(calls).await {
            assert_eq!(answer.unwrap().data, body);
        }
        let writes = writes.lock().unwrap().clone();
        let total: usize = writes.iter().sum();
        assert!(total > 64 * 1024, "{writes:?}");
        // Written once 16 KiB were waiting, not all after the read's last request.
        assert!(writes.len() >= 4, "{writes:?}");
        assert!(writes.iter().all(|&n| n < 20 * 1024), "{writes:?}");
        drop(client);
        bounded(5, serving).await.unwrap();
    })
    .await
}

#[tokio::test]
async fn a_stream_of_small_messages_goes_out_in_few_large_writes() {
    bounded(30, async {
        let (client, writes, serving) = recorded_echo().await;
        let total = 50_000u64;
        let mut items =
            client.request_stream(Call::new("test.Echo/Range"), Bytes::from(total.to_string())).await.unwrap();
        let mut count = 0u64;
        while let Some(item) = items.next().await {
            assert_eq!(item.unwrap().data, count.to_string());
            count += 1;
        }
        assert_eq!(count, total);
        let writes = writes.lock().unwrap().clone();
        let written: usize = writes.iter().sum();
        // One write per producer's turn (64 messages) would average ~1.7 KB here.
        let average = written / writes.len();
        assert!(average >= 8 * 1024, "{} writes of {average} bytes on average: {writes:?}", writes.len());
        drop(client);
        bounded(5, serving).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn on_the_multi_thread_runtime_requests_of_many_callers_go_out_together() {
    bounded(60, async {
        let running = server(&Echo::default(), Config::default()).bind("127.0.0.1:0").await.unwrap();
        let socket = TcpStream::connect(running.local_addr()).await.unwrap();
        let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let client = Client::builder().connect_over(RecordedTcp { io: socket, writes: writes.clone() }).await.unwrap();
        // 64 callers, each on a task of its own making calls one after another, as a server's
        // handlers calling another service do: the answers to a read wake them all at once,
        // and their next requests should leave in one write, not one write each (tokio's LIFO
        // slot runs the driver's task right after the first caller that wakes it). Over TCP:
        // the driver's turns there begin with the socket's readiness, as in production.
        let (callers, calls_each) = (64, 20);
        let tasks: Vec<_> = (0..callers)
            .map(|c| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..calls_each {
                        let data = Bytes::from(format!("{c}/{i}"));
                        let answer = client.request_response(Call::new("test.Echo/Unary"), data.clone()).await;
                        assert_eq!(answer.unwrap().data, data);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let calls = callers * calls_each;
        let writes = writes.lock().unwrap().len();
        assert!(writes <= calls / 4, "{writes} writes for {calls} calls");
        drop(client);
        running.shutdown().await;
    })
    .await
}

/// Runs `test` (an ignored test of this binary) in a child process whose open files are
/// limited to `max_files`, and fails if it fails.
fn in_child_with_file_limit(test: &str, max_files: u32) {
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {max_files} && exec \"$0\" --exact {test} --ignored --test-threads 1"))
        .arg(exe)
        .env("WEFT_TEST_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} in a child process with at most {max_files} open files: {status}");
}

#[test]
fn a_server_out_of_file_descriptors_reports_it_and_serves_again_once_it_has_some() {
    in_child_with_file_limit("runtime::out_of_file_descriptors_child", 64);
}

#[tokio::test]
#[ignore = "run by a_server_out_of_file_descriptors_reports_it_and_serves_again_once_it_has_some"]
async fn out_of_file_descriptors_child() {
    if std::env::var_os("WEFT_TEST_CHILD").is_none() {
        // Run directly (`--ignored`): without the child's file limit it would exhaust this
        // process's descriptors; its parent test runs it.
        return;
    }
    bounded(30, async {
        let running = server(&Echo::default(), Config::default()).bind("127.0.0.1:0").await.unwrap();
        let addr = running.local_addr();
        // Every descriptor taken, the last one by a connection the server has yet to accept:
        // its accept then fails for want of a descriptor, again and again.
        let mut files = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            files.push(file);
            assert!(files.len() < 100, "the limit did not apply");
        }
        files.pop();
        let pending = TcpStream::connect(addr).await.unwrap();
        let mut reported = None;
        for _ in 0..200 {
            if let Some(e) = running.last_accept_error() {
                reported = Some(e);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reported = reported.expect("the failed accept is reported");
        assert_eq!(reported.error.raw_os_error(), Some(24), "EMFILE: {:?}", reported.error);
        assert!(reported.in_a_row >= 1);
        // With descriptors again, the pending connection is accepted and new ones served.
        drop(files);
        drop(pending);
        let client = Client::connect(addr).await.unwrap();
        let answer = client.request_response(Call::new("test.Echo/Unary"), Bytes::from("back")).await.unwrap();
        assert_eq!(answer.data, "back");
        running.shutdown().await;
    })
    .await
}

/// A TCP connection that records which thread made each of its writes.
struct ThreadRecordedTcp {
    io: TcpStream,
    threads: Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>,
}

impl weft::Transport for ThreadRecordedTcp {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = RecordingWriter<tokio::net::tcp::OwnedWriteHalf>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        let _ = self.io.set_nodelay(true);
        let (reader, inner) = self.io.into_split();
        (reader, RecordingWriter { inner, writes: Arc::default(), threads: Some(self.threads) })
    }
}

/// On a multi-thread runtime, a program's main future (`block_on`'s, as `#[tokio::main]` runs
/// it) making calls one after another writes each request itself, as a caller of a plain
/// socket does, rather than waking the driver's task on a worker to write it; calls from
/// tasks, many at once, go on as before, and the two mix.
#[test]
fn a_lone_caller_on_block_on_thread_writes_its_own_requests() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let main = std::thread::current().id();
    runtime.block_on(bounded(60, async {
        let running = server(&Echo::default(), Config::default()).bind("127.0.0.1:0").await.unwrap();
        let socket = TcpStream::connect(running.local_addr()).await.unwrap();
        let threads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let transport = ThreadRecordedTcp { io: socket, threads: threads.clone() };
        let client = Client::builder().connect_over(transport).await.unwrap();
        let call = |client: &Client, i: usize| {
            let client = client.clone();
            async move {
                let data = Bytes::from(format!("call {i}"));
                let answer = client.request_response(Call::new("test.Echo/Unary"), data.clone()).await;
                assert_eq!(answer.unwrap().data, data);
            }
        };
        // SETUP and the first request may go out from the driver's task as it starts.
        call(&client, 0).await;
        threads.lock().unwrap().clear();
        // A pause between calls lets the driver's task finish the turn that delivered the last
        // answer: a request made while it runs is left to it (it looks at the inbox before it
        // waits, so that costs no wake-up either), and on two cores the caller, woken by the
        // answer, is often back before the task is done.
        let calls = 100;
        for i in 0..calls {
            call(&client, i).await;
            std::thread::sleep(Duration::from_millis(1));
        }
        let own = std::mem::take(&mut *threads.lock().unwrap()).iter().filter(|t| **t == main).count();
        assert!(own >= calls * 3 / 4, "{own} of {calls} requests written by the caller");
        for i in 0..calls {
            call(&client, i).await;
        }
        // Many callers on the runtime's tasks at once, with the main future calling too.
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        call(&client, t * 100 + i).await;
                    }
                })
            })
            .collect();
        for i in 0..50 {
            call(&client, 10_000 + i).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        call(&client, 1).await;
        drop(client);
        running.shutdown().await;
    }));
}
