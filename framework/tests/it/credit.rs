//! Exact credit: a requester that grants exactly the messages it will get, in one REQUEST_N or
//! several, must still see the stream end. A PAYLOAD with C alone and an ERROR need no credit
//! (Protocol.md, "Request Stream": REQUEST_N counts PAYLOADs with N), so a producer that runs
//! out of credit at its last message must still tell its end. Weft's own client grants a large
//! window and never ran into this; the Python and JavaScript clients (`limitRate`, a request
//! for exactly the items expected) do. Each test speaks the wire as they do, with a raw peer,
//! against both kinds of producer the runtime has: payload streams (a `Handler`) and encoded
//! ones (a typed service).

use crate::peer::{self, Peer};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use weft::frame::{ErrorCode, Frame, Payload as WirePayload, PayloadFrame, RequestChannel, RequestN, RequestStream};
use weft::{Call, Client, Handler, Payload, PayloadStream, Responses, Server, Status};

const ROUTES: &[&str] =
    &["credit.Items/Count", "credit.Items/CountThenFail", "credit.Items/CountThenWait", "credit.Items/Echo"];

/// The payload-level producer: streams of `Payload`s.
struct Items;

fn count_of(data: &[u8]) -> u64 {
    std::str::from_utf8(data).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `n` items "0".."n-1"; then, by `route`, the end at once, an error, or the end a little later
/// (when the producer already sits out of credit, waiting).
fn items(route: &str, n: u64) -> impl Stream<Item = Result<Bytes, Status>> + Send + 'static {
    let tail: stream::BoxStream<'static, Result<Bytes, Status>> = match route {
        "credit.Items/CountThenFail" => stream::once(async { Err(Status::aborted("ran out")) }).boxed(),
        "credit.Items/CountThenWait" => {
            stream::once(tokio::time::sleep(Duration::from_millis(50))).filter_map(|()| async { None }).boxed()
        }
        _ => stream::empty().boxed(),
    };
    stream::iter((0..n).map(|i| Ok(Bytes::from(i.to_string())))).chain(tail)
}

impl Handler for Items {
    fn request_stream(&self, call: Call, data: Bytes) -> Responses {
        Responses::new(items(call.route(), count_of(&data)).map(|r| r.map(Payload::new)))
    }

    fn request_channel(&self, _call: Call, messages: PayloadStream) -> Responses {
        Responses::new(messages)
    }
}

mod typed {
    //! The same service through the typed layer, whose streams are encoded in place.
    use super::*;

    #[weft::service(package = "credit", codec = weft::BytesCodec)]
    pub(crate) trait Items {
        /// `n` items, then the end.
        async fn count(&self, n: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status>;
        /// `n` items, then ABORTED.
        async fn count_then_fail(
            &self,
            n: Bytes,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status>;
        /// `n` items, then the end a little later.
        async fn count_then_wait(
            &self,
            n: Bytes,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status>;
        /// Each message back.
        async fn echo(
            &self,
            msgs: weft::Streaming<Bytes>,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status>;
    }

    pub(crate) struct Impl;

    impl Items for Impl {
        async fn count(&self, n: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(items("credit.Items/Count", count_of(&n)))
        }

        async fn count_then_fail(
            &self,
            n: Bytes,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(items("credit.Items/CountThenFail", count_of(&n)))
        }

        async fn count_then_wait(
            &self,
            n: Bytes,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(items("credit.Items/CountThenWait", count_of(&n)))
        }

        async fn echo(
            &self,
            msgs: weft::Streaming<Bytes>,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(msgs)
        }
    }
}

/// Both servers, each on 127.0.0.1, with a name for failure messages.
async fn servers() -> Vec<(&'static str, weft::RunningServer)> {
    let payloads = Server::builder().add_handler(ROUTES, Items).build();
    let encoded = Server::builder().add_service(typed::ItemsServer::new(typed::Impl)).build();
    vec![
        ("payload stream", payloads.bind("127.0.0.1:0").await.unwrap()),
        ("typed stream", encoded.bind("127.0.0.1:0").await.unwrap()),
    ]
}

/// How a stream ended, as the requester saw it.
#[derive(Debug, PartialEq)]
enum End {
    Complete,
    Error(ErrorCode, String),
}

/// Requests `route` for `n` items with `grants[0]` as the initial REQUEST_N, and each further
/// grant as a REQUEST_N once the credit granted so far is used up. Fails the test if a message
/// comes beyond the credit, or nothing comes when something is due (the stream hangs).
async fn exact_credit(addr: SocketAddr, route: &str, n: u64, grants: &[u32]) -> (Vec<String>, End) {
    let mut peer = Peer::setup(addr).await;
    let mut granted = u64::from(grants[0]);
    let mut next_grant = 1;
    peer.send(&Frame::RequestStream(RequestStream {
        stream_id: 1,
        follows: false,
        initial_n: grants[0],
        payload: WirePayload { metadata: Some(peer::route(route)), data: n.to_string().into() },
    }))
    .await;
    let mut got = Vec::new();
    // Bounded: each round reads a frame or fails.
    for _ in 0..=(n + 2) {
        if got.len() as u64 == granted && next_grant < grants.len() {
            peer.send(&Frame::RequestN(RequestN { stream_id: 1, n: grants[next_grant] })).await;
            granted += u64::from(grants[next_grant]);
            next_grant += 1;
        }
        match peer.frame().await {
            Frame::Payload(PayloadFrame { stream_id: 1, follows: false, next, complete, payload }) => {
                if next {
                    got.push(String::from_utf8(payload.data.to_vec()).unwrap());
                    assert!(got.len() as u64 <= granted, "{route}: message {} beyond the {granted} granted", got.len());
                }
                if complete {
                    return (got, End::Complete);
                }
            }
            Frame::Error(e) if e.stream_id == 1 => return (got, End::Error(e.code, e.message().into_owned())),
            other => panic!("{route}: unexpected {other:?}"),
        }
    }
    panic!("{route}: more frames than messages")
}

fn numbers(n: u64) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

#[tokio::test]
async fn a_stream_granted_exactly_its_items_completes() {
    let run = async {
        for (name, running) in servers().await {
            let addr = running.local_addr();
            // In one grant, and in several (the Python and JavaScript clients' 2 + 3 + 5).
            for grants in [&[10][..], &[2, 3, 5], &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], &[9, 1]] {
                let (got, end) = exact_credit(addr, "credit.Items/Count", 10, grants).await;
                assert_eq!((got, end), (numbers(10), End::Complete), "{name}, grants {grants:?}");
            }
            // The producer ends before the credit does, and with none granted beyond its items.
            let (got, end) = exact_credit(addr, "credit.Items/Count", 3, &[10]).await;
            assert_eq!((got, end), (numbers(3), End::Complete), "{name}");
            // Ends when it is already out of credit and waiting.
            for grants in [&[4][..], &[2, 2]] {
                let (got, end) = exact_credit(addr, "credit.Items/CountThenWait", 4, grants).await;
                assert_eq!((got, end), (numbers(4), End::Complete), "{name}, grants {grants:?}");
            }
            // Fails right after its last credited message: ERROR needs no credit either.
            for grants in [&[5][..], &[3, 2]] {
                let (got, end) = exact_credit(addr, "credit.Items/CountThenFail", 5, grants).await;
                assert_eq!(got, numbers(5), "{name}");
                assert!(
                    matches!(&end, End::Error(ErrorCode::APPLICATION_ERROR, m) if m.contains("ran out")),
                    "{name}: {end:?}"
                );
            }
            running.shutdown().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("in time");
}

#[tokio::test]
async fn a_message_ready_beyond_the_credit_waits_for_it() {
    let run = async {
        for (name, running) in servers().await {
            let mut peer = Peer::setup(running.local_addr()).await;
            peer.send(&Frame::RequestStream(RequestStream {
                stream_id: 1,
                follows: false,
                initial_n: 2,
                payload: WirePayload { metadata: Some(peer::route("credit.Items/Count")), data: "5".into() },
            }))
            .await;
            for i in 0..2 {
                let frame = peer.frame().await;
                assert!(
                    matches!(&frame, Frame::Payload(p) if p.next && !p.complete && p.payload.data == i.to_string()),
                    "{name}: {frame:?}"
                );
            }
            // The third is ready (the producer was polled to see whether it had ended), and
            // must not go before it is granted.
            let early = peer.quiet_for(Duration::from_millis(200)).await;
            assert!(early.is_ok(), "{name}: a message beyond the credit: {early:?}");
            peer.send(&Frame::RequestN(RequestN { stream_id: 1, n: 3 })).await;
            let mut rest = Vec::new();
            while rest.len() < 3 {
                match peer.frame().await {
                    Frame::Payload(p) if p.next => {
                        rest.push((String::from_utf8(p.payload.data.to_vec()).unwrap(), p.complete))
                    }
                    Frame::Payload(p) if p.complete => break,
                    other => panic!("{name}: {other:?}"),
                }
            }
            let texts: Vec<_> = rest.iter().map(|(t, _)| t.as_str()).collect();
            assert_eq!(texts, ["2", "3", "4"], "{name}");
            if !rest[2].1 {
                let end = peer.frame().await;
                assert!(matches!(&end, Frame::Payload(p) if p.complete && !p.next), "{name}: {end:?}");
            }
            running.shutdown().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

/// A channel's both halves on exact credit: the raw requester sends `k` messages (the first in
/// REQUEST_CHANNEL, the last with C, within what the server granted) and grants the echoes back
/// in steps that add up to exactly `k`.
#[tokio::test]
async fn a_channel_granted_exactly_its_messages_completes_both_ways() {
    let run = async {
        for (name, running) in servers().await {
            for (k, grants, separate_complete) in
                [(5u32, &[5u32][..], false), (6, &[2, 4], true), (3, &[1, 1, 1], false)]
            {
                let mut peer = Peer::setup(running.local_addr()).await;
                peer.send(&Frame::RequestChannel(RequestChannel {
                    stream_id: 1,
                    follows: false,
                    complete: false,
                    initial_n: grants[0],
                    payload: WirePayload { metadata: Some(peer::route("credit.Items/Echo")), data: "m0".into() },
                }))
                .await;
                let (mut sent, mut granted, mut next_grant) = (1u32, grants[0], 1);
                let mut echoes = Vec::new();
                let mut complete = false;
                let mut server_credit = 0u64;
                for _ in 0..(4 * k + 8) {
                    // Send what the server granted, the last with C (or a C alone after it).
                    while sent < k && server_credit > 0 {
                        let last = sent + 1 == k;
                        peer.send(&Frame::Payload(PayloadFrame {
                            stream_id: 1,
                            follows: false,
                            complete: last && !separate_complete,
                            next: true,
                            payload: WirePayload { metadata: None, data: format!("m{sent}").into() },
                        }))
                        .await;
                        if last && separate_complete {
                            peer.send(&Frame::Payload(PayloadFrame {
                                stream_id: 1,
                                follows: false,
                                complete: true,
                                next: false,
                                payload: WirePayload::default(),
                            }))
                            .await;
                        }
                        sent += 1;
                        server_credit -= 1;
                    }
                    if echoes.len() as u32 == granted && next_grant < grants.len() {
                        peer.send(&Frame::RequestN(RequestN { stream_id: 1, n: grants[next_grant] })).await;
                        granted += grants[next_grant];
                        next_grant += 1;
                    }
                    if complete {
                        break;
                    }
                    match peer.frame().await {
                        Frame::RequestN(RequestN { stream_id: 1, n }) => server_credit += u64::from(n),
                        Frame::Payload(p) if p.stream_id == 1 => {
                            if p.next {
                                echoes.push(String::from_utf8(p.payload.data.to_vec()).unwrap());
                                assert!(echoes.len() as u32 <= granted, "{name}: an echo beyond the credit");
                            }
                            complete = p.complete;
                        }
                        other => panic!("{name}: unexpected {other:?}"),
                    }
                }
                let expected: Vec<String> = (0..k).map(|i| format!("m{i}")).collect();
                assert_eq!(echoes, expected, "{name}, k {k}, grants {grants:?}");
                assert!(complete, "{name}, k {k}, grants {grants:?}: the echoes never completed");
            }
            running.shutdown().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("in time");
}

/// Weft as the channel's requester, its outbound half on exact credit: the raw responder grants
/// exactly the messages the client will send; the client must still send its C, and the
/// responder's own messages must reach the client, which then sees the end.
#[tokio::test]
async fn a_clients_channel_granted_exactly_its_messages_completes() {
    let run = async {
        for (total, grants) in [(4u32, &[3u32][..]), (6, &[1, 2, 2]), (1, &[])] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let responder = tokio::spawn(async move {
                let mut peer = Peer::over(listener.accept().await.unwrap().0);
                assert!(matches!(peer.frame().await, Frame::Setup(_)));
                let Frame::RequestChannel(request) = peer.frame().await else { panic!("expected REQUEST_CHANNEL") };
                let mut got = vec![String::from_utf8(request.payload.data.to_vec()).unwrap()];
                let mut complete = request.complete;
                let mut granted = 1u32;
                let mut next_grant = 0;
                for _ in 0..(2 * total + 4) {
                    if complete {
                        break;
                    }
                    if got.len() as u32 == granted && next_grant < grants.len() {
                        peer.send(&Frame::RequestN(RequestN { stream_id: 1, n: grants[next_grant] })).await;
                        granted += grants[next_grant];
                        next_grant += 1;
                    }
                    match peer.frame().await {
                        Frame::Payload(p) if p.stream_id == 1 => {
                            if p.next {
                                got.push(String::from_utf8(p.payload.data.to_vec()).unwrap());
                                assert!(got.len() as u32 <= granted, "a message beyond the credit");
                            }
                            complete = p.complete;
                        }
                        Frame::Keepalive(_) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
                assert!(complete, "the client never completed its half; got {got:?}");
                // Answers after the client's half ended, then completes its own.
                for i in 0..2 {
                    peer.send(&Frame::Payload(PayloadFrame {
                        stream_id: 1,
                        follows: false,
                        complete: i == 1,
                        next: true,
                        payload: WirePayload { metadata: None, data: format!("r{i}").into() },
                    }))
                    .await;
                }
                got
            });
            let client = Client::connect(addr).await.unwrap();
            let out = stream::iter((0..total).map(|i| Payload::new(format!("c{i}"))));
            let replies: Vec<_> =
                client.request_channel(Call::new("credit.Items/Echo"), out).await.unwrap().collect().await;
            let replies: Vec<_> =
                replies.into_iter().map(|r| String::from_utf8(r.unwrap().data.to_vec()).unwrap()).collect();
            assert_eq!(replies, ["r0", "r1"], "total {total}, grants {grants:?}");
            let sent = responder.await.unwrap();
            let expected: Vec<String> = (0..total).map(|i| format!("c{i}")).collect();
            assert_eq!(sent, expected, "total {total}, grants {grants:?}");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("in time");
}
