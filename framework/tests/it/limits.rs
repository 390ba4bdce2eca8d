//! What a careless or hostile peer can make a server hold is bounded: fire-and-forget handlers
//! running at once (beyond the limit the connection stops reading, and the peer feels it as
//! TCP back-pressure), unfinished fragmented messages, the silence a client may ask for.

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
        let config = Config::default().max_connections(2);
        let running = Server::builder().add_handler(&["f.F/Echo"], Echo).config(config).build();
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
