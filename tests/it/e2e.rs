//! Generated clients against generated servers, over TCP and in memory: every interaction
//! model, statuses with their codes, metadata, cancellation and concurrency.

use crate::lab::{self, CODES, LabClient, Msg, Transport, each_transport, msg, trace_mime};
use bytes::Bytes;
use std::time::Duration;
use weft::frame::metadata::well_known;
use weft::{
    Call, Code, Handler, MimeType, Payload, PayloadStream, Request, Response, Responses, Server, Service, Status,
};

const WAIT: Duration = Duration::from_secs(5);

async fn collect<T>(mut s: weft::Streaming<T>) -> (Vec<T>, Option<Status>) {
    let mut items = Vec::new();
    loop {
        match s.message().await {
            Ok(Some(m)) => items.push(m),
            Ok(None) => return (items, None),
            Err(e) => return (items, Some(e)),
        }
    }
}

#[tokio::test]
async fn request_response() {
    each_transport(|client, _, t| async move {
        let reply = client.echo(msg("hi", 7)).await.unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_eq!(reply, msg("hi", 7), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn fire_and_forget_reaches_the_handler() {
    each_transport(|client, mut events, t| async move {
        client.record(msg("note", 1)).await.unwrap_or_else(|e| panic!("{t:?}: {e}"));
        let got = tokio::time::timeout(WAIT, events.recorded.recv()).await.expect("recorded in time");
        assert_eq!(got, Some(msg("note", 1)), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn request_stream_yields_every_message_then_ends() {
    each_transport(|client, _, t| async move {
        let (items, end) = collect(client.count(msg("", 5)).await.unwrap()).await;
        assert_eq!(items.iter().map(|m| m.n).collect::<Vec<_>>(), [0, 1, 2, 3, 4], "{t:?}");
        assert_eq!(end, None, "{t:?}");
        let (items, end) = collect(client.count(msg("", 0)).await.unwrap()).await;
        assert!(items.is_empty() && end.is_none(), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn a_stream_read_in_batches_yields_every_message_in_order_then_its_end() {
    each_transport(|client, _, t| async move {
        // Longer than the credit window, so that credit must flow back from batched reads; and
        // ending with the handler's error, which comes after the last batch's messages.
        let total = 3_000;
        for (mode, end) in [("", None), ("fail", Some(Status::resource_exhausted("counted too far")))] {
            let mut stream = client.count(msg(mode, total)).await.unwrap();
            let (mut got, mut batch, mut batches) = (Vec::new(), Vec::new(), 0);
            let error = loop {
                match tokio::time::timeout(WAIT, stream.recv_many(&mut batch, 100)).await.expect("in time") {
                    Ok(0) => break None,
                    Ok(n) => {
                        assert!((1..=100).contains(&n) && n == batch.len(), "{t:?}: {n} of {}", batch.len());
                        batches += 1;
                        got.extend(batch.drain(..).map(|m| m.n));
                    }
                    Err(e) => break Some(e),
                }
            };
            assert_eq!(got, (0..total).collect::<Vec<_>>(), "{t:?} {mode}");
            assert_eq!(error, end, "{t:?} {mode}");
            assert!(batches < got.len(), "{t:?} {mode}: messages came {batches} batches for {}", got.len());
        }
    })
    .await;
}

#[tokio::test]
async fn request_stream_errors_keep_their_codes() {
    each_transport(|client, _, t| async move {
        // After some messages.
        let (items, end) = collect(client.count(msg("fail", 3)).await.unwrap()).await;
        assert_eq!(items.len(), 3, "{t:?}");
        assert_eq!(end, Some(Status::resource_exhausted("counted too far")), "{t:?}");
        // Before any: the handler returned Err. Either the call or the stream reports it.
        let end = match client.count(msg("refuse", 3)).await {
            Ok(s) => collect(s).await.1,
            Err(e) => Some(e),
        };
        assert_eq!(end, Some(Status::failed_precondition("not counting today")), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn channel_answers_each_message() {
    each_transport(|client, _, t| async move {
        let requests = futures_util::stream::iter(vec![msg("a", 1), msg("b", 2), msg("c", 3)]);
        let (items, end) = collect(client.chat(requests).await.unwrap()).await;
        assert_eq!(items, [msg("A", 1), msg("B", 2), msg("C", 3)], "{t:?}");
        assert_eq!(end, None, "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn channel_interleaves_requests_and_responses() {
    each_transport(|client, _, t| async move {
        // Each request is sent only after the previous response arrived: a true conversation.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let requests = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        tx.send(msg("ping", 0)).unwrap();
        let mut responses = client.chat(requests).await.unwrap();
        for i in 1..=3 {
            let reply = responses.message().await.unwrap().unwrap();
            assert_eq!(reply.n, i - 1, "{t:?}");
            tx.send(msg("ping", i)).unwrap();
        }
        drop(tx);
        let (rest, end) = collect(responses).await;
        assert_eq!((rest.len(), end), (1, None), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn channel_errors_keep_their_codes() {
    each_transport(|client, _, t| async move {
        let requests = futures_util::stream::iter(vec![msg("a", 1), msg("fail", 2), msg("c", 3)]);
        let (items, end) = collect(client.chat(requests).await.unwrap()).await;
        assert_eq!(items, [msg("A", 1)], "{t:?}");
        assert_eq!(end, Some(Status::aborted("chat aborted as asked")), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn client_streaming_gets_one_answer() {
    each_transport(|client, _, t| async move {
        let requests = futures_util::stream::iter((1..=10).map(|n| msg("part", n)));
        assert_eq!(client.sum(requests).await.unwrap(), msg("10", 55), "{t:?}");
        let one = futures_util::stream::iter(vec![msg("only", 4)]);
        assert_eq!(client.sum(one).await.unwrap(), msg("1", 4), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn an_empty_request_stream_reaches_the_server_as_one() {
    // More in `no_messages`.
    each_transport(|client, _, t| async move {
        assert_eq!(client.sum(futures_util::stream::empty::<Msg>()).await, Ok(msg("0", 0)), "{t:?}");
        let (items, end) = collect(client.chat(futures_util::stream::empty::<Msg>()).await.unwrap()).await;
        assert!(items.is_empty() && end.is_none(), "{t:?}: {items:?} {end:?}");
    })
    .await;
}

#[tokio::test]
async fn every_status_code_reaches_the_client() {
    each_transport(|client, _, t| async move {
        for (n, code) in CODES.iter().enumerate() {
            let err = client.echo(msg("fail", n as u64)).await.unwrap_err();
            assert_eq!(err.code(), *code, "{t:?}");
            assert_eq!(err.message(), format!("echo failed as asked ({n})"), "{t:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn metadata_reaches_the_handler() {
    each_transport(|client, _, t| async move {
        let request = Request::new(msg("hi", 0)).with_metadata(trace_mime(), "4bf92f35");
        assert_eq!(client.echo(request).await.unwrap().text, "hi trace=4bf92f35", "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn string_keyed_metadata_reaches_the_handler_which_reads_it_by_string() {
    each_transport(|client, _, t| async move {
        let request = Request::new(msg("hi", 0))
            .with_metadata("x-user-id", "42")
            // A well-known type's name: sent as its id, found by its name.
            .with_metadata("application/json", r#"{"a":1}"#);
        assert_eq!(client.echo(request).await.unwrap().text, r#"hi x-user-id=42 application/json={"a":1}"#, "{t:?}");

        // The MIME form still works, and both forms name the same entries: keys compare by
        // meaning and without regard to case.
        let request = Request::new(msg("hi", 0))
            .with_metadata(MimeType::from_static("X-User-Id"), "7")
            .with_metadata(MimeType::WellKnown(well_known::JSON), "[]")
            .with_metadata(trace_mime(), "t1");
        assert_eq!(client.echo(request).await.unwrap().text, "hi trace=t1 x-user-id=7 application/json=[]", "{t:?}");

        // A key made at run time, checked where it is made.
        let key = MimeType::try_from(format!("x-user-{}", "id")).unwrap();
        let request = Request::new(msg("hi", 0)).with_metadata(key, "9");
        assert_eq!(client.echo(request).await.unwrap().text, "hi x-user-id=9", "{t:?}");
        assert!(MimeType::try_from(format!("x-{}", "é")).is_err(), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn an_unwritable_key_built_by_hand_fails_the_call_with_invalid_argument() {
    each_transport(|client, _, t| async move {
        // The variant built directly skips the constructors' check; the call says why it
        // cannot be sent, and nothing reaches the server.
        let request = Request::new(msg("hi", 0)).with_metadata(MimeType::Custom("x-é".into()), "1");
        let err = client.echo(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{t:?}");
        assert!(
            err.message().contains("weft.test.Lab/Echo") && err.message().contains("`x-é` is not ASCII"),
            "{t:?}: {err}"
        );
        // The connection is still good.
        assert_eq!(client.echo(msg("after", 1)).await.unwrap(), msg("after", 1), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn cancelling_a_call_reaches_the_handler() {
    each_transport(|client, mut events, t| async move {
        // Give up on the call: its future is dropped, which cancels it.
        let gave_up = tokio::time::timeout(Duration::from_millis(200), client.hang(msg("", 0))).await;
        assert!(gave_up.is_err(), "{t:?}: hang answered");
        let route = tokio::time::timeout(WAIT, events.cancelled.recv()).await.expect("the handler noticed in time");
        assert_eq!(route.as_deref(), Some("weft.test.Lab/Hang"), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn dropping_a_response_stream_cancels_it() {
    each_transport(|client, _, t| async move {
        let mut many = client.count(msg("", 1_000_000)).await.unwrap();
        assert_eq!(many.message().await.unwrap().map(|m| m.n), Some(0), "{t:?}");
        drop(many);
        // The connection is still good for other calls.
        assert_eq!(client.echo(msg("after", 1)).await.unwrap(), msg("after", 1), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn many_clones_call_concurrently() {
    each_transport(|client, _, t| async move {
        let calls = (0..200u64).map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                match i % 3 {
                    0 => client.echo(msg("c", i)).await.map(|m| m.n),
                    1 => match client.count(msg("", 3)).await {
                        Ok(s) => match collect(s).await {
                            (items, None) if items.len() == 3 => Ok(i),
                            (items, end) => panic!("{items:?} {end:?}"),
                        },
                        Err(e) => Err(e),
                    },
                    _ => client.sum(futures_util::stream::iter(vec![msg("x", i)])).await.map(|m| m.n),
                }
            })
        });
        let results = futures_util::future::join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.expect("task").unwrap_or_else(|e| panic!("{t:?} call {i}: {e}")), i as u64);
        }
    })
    .await;
}

/// Payload-level calls to the lab's routes, to test what no generated client would send.
mod raw {
    use super::*;

    #[tokio::test]
    async fn an_undecodable_request_is_invalid_argument() {
        each_transport(|client, _, t| async move {
            let raw = client.inner().clone();
            let garbage = Bytes::from_static(&[0x0a, 0xff, 0xff]);
            let err = raw.request_response(Call::new("weft.test.Lab/Echo"), garbage).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{t:?}: {err}");
            assert!(err.message().contains("weft.test.Lab/Echo"), "{t:?}: {err}");
        })
        .await;
    }

    #[tokio::test]
    async fn an_unknown_route_is_unimplemented() {
        each_transport(|client, _, t| async move {
            let raw = client.inner().clone();
            let err = raw.request_response(Call::new("weft.test.Lab/Nope"), Bytes::new()).await.unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "{t:?}: {err}");
            // A route that exists, called with the wrong interaction model.
            let err = raw.request_response(Call::new("weft.test.Lab/Count"), Bytes::new()).await.unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "{t:?}: {err}");
            assert!(err.message().contains("not a request/response method"), "{t:?}: {err}");
        })
        .await;
    }

    /// A server for the lab's routes that answers bytes no `Msg` decodes from.
    struct Garbage;

    const GARBAGE: &[u8] = &[0x0a, 0xff, 0xff];

    impl Handler for Garbage {
        fn request_response(&self, _: Call, _: Bytes) -> Response {
            Response::new(async { Ok(Payload::new(Bytes::from_static(GARBAGE))) })
        }

        fn request_stream(&self, _: Call, _: Bytes) -> Responses {
            Responses::once(Ok(Payload::new(Bytes::from_static(GARBAGE))))
        }

        fn request_channel(&self, _: Call, _: PayloadStream) -> Responses {
            self.request_stream(Call::new(""), Bytes::new())
        }
    }

    impl Service for Garbage {
        fn routes(&self) -> &'static [&'static str] {
            &["weft.test.Lab/Echo", "weft.test.Lab/Count", "weft.test.Lab/Chat", "weft.test.Lab/Sum"]
        }
    }

    #[tokio::test]
    async fn an_undecodable_response_is_internal() {
        for transport in lab::TRANSPORTS {
            let run = async {
                let connected = lab::connect(Server::builder().add_service(Garbage).build(), transport).await;
                let client = LabClient::new(connected.client.clone());
                let check = |err: Status, what: &str| {
                    assert_eq!(err.code(), Code::Internal, "{transport:?} {what}: {err}");
                    assert!(err.message().contains("weft.test.Lab/"), "{transport:?} {what}: {err}");
                };
                check(client.echo(msg("", 0)).await.unwrap_err(), "echo");
                check(collect(client.count(msg("", 1)).await.unwrap()).await.1.expect("an error"), "count");
                let one = || futures_util::stream::iter(vec![msg("", 0)]);
                check(collect(client.chat(one()).await.unwrap()).await.1.expect("an error"), "chat");
                check(client.sum(one()).await.unwrap_err(), "sum");
                connected.shutdown().await;
            };
            tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
        }
    }

    #[test]
    fn every_transport_is_tested() {
        assert!(matches!(
            lab::TRANSPORTS,
            [
                Transport::Tcp,
                Transport::Memory,
                Transport::WebSocket,
                Transport::Tls,
                Transport::WebSocketTls,
                Transport::Unix
            ]
        ));
    }
}

/// A generated server writes each message of a response stream straight into the connection's
/// write buffer (`Codec::encode`): the frames around it, messages too large for one
/// frame, and a message that fails half-written.
mod encoded_in_place {
    use super::*;
    use bytes::BytesMut;
    use futures_util::Stream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use weft::frame::length::{self, LengthDelimited};
    use weft::frame::metadata::{COMPOSITE_METADATA_MIME, CompositeMetadata};
    use weft::frame::{Frame, Keepalive, PayloadFrame, RequestStream, Setup, VERSION};
    use weft::{CodecError, Config, DataMime, MIN_FRAGMENT_SIZE};

    /// Bytes as they are, except `bad`, which fails to encode after writing itself out.
    pub(crate) struct Picky;

    impl weft::DataMime for Picky {
        const MIME: &'static str = "application/octet-stream";
    }

    impl weft::Codec<Bytes> for Picky {
        fn encode(message: Bytes, out: &mut BytesMut) -> Result<(), CodecError> {
            // Written, then refused: none of it may reach the wire.
            out.extend_from_slice(&message);
            if &message[..] == b"bad" { Err("`bad` is not sent".into()) } else { Ok(()) }
        }

        fn decode(data: Bytes) -> Result<Bytes, CodecError> {
            Ok(data)
        }
    }

    /// Streams of messages described by the request.
    #[weft::service(package = "weft.test", codec = Picky)]
    pub(crate) trait Blobs {
        /// One message per comma-separated item of the request: a number is that many bytes,
        /// anything else is sent as it is.
        async fn blobs(&self, req: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
        /// Echoes every message.
        async fn echo(&self, msgs: weft::Streaming<Bytes>)
        -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
        /// Answers what [`item`] makes of the request (`oops`: the message `bad`); after a pause
        /// if it starts with `wait:`.
        async fn one(&self, req: Bytes) -> Result<Bytes, Status>;
    }

    struct Maker;

    fn item(word: &str) -> Bytes {
        match word.parse::<usize>() {
            Ok(n) => Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
            Err(_) => Bytes::copy_from_slice(word.as_bytes()),
        }
    }

    impl Blobs for Maker {
        async fn blobs(
            &self,
            req: Bytes,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            let words: Vec<Bytes> = std::str::from_utf8(&req).unwrap_or("").split(',').map(item).collect();
            Ok(futures_util::stream::iter(words.into_iter().map(Ok)))
        }

        async fn echo(
            &self,
            msgs: weft::Streaming<Bytes>,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(msgs)
        }

        async fn one(&self, req: Bytes) -> Result<Bytes, Status> {
            let text = std::str::from_utf8(&req).unwrap_or("");
            let word = match text.strip_prefix("wait:") {
                Some(word) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    word
                }
                None => text,
            };
            Ok(if word == "oops" { Bytes::from("bad") } else { item(word) })
        }
    }

    fn server(config: Config) -> Server {
        Server::builder().add_service(BlobsServer::new(Maker)).config(config).build()
    }

    #[tokio::test]
    async fn messages_larger_than_a_fragment_arrive_whole_and_in_order_among_small_ones() {
        let run = async {
            // Fragments of 64 bytes from the server; the messages around the large ones go in
            // place, the large ones are fragmented.
            let server = server(Config::default().fragment_size(Some(MIN_FRAGMENT_SIZE)));
            let client = BlobsClient::new(server.connect_in_memory().await.unwrap());
            let asked = "10,5000,3,a,200,b,64,1000";
            let (got, status) = collect(client.blobs(Bytes::from(asked)).await.unwrap()).await;
            assert_eq!(status, None);
            let expected: Vec<Bytes> = asked.split(',').map(item).collect();
            assert_eq!(got.len(), expected.len());
            for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
                assert!(got == expected, "message {i}: {} bytes, expected {}", got.len(), expected.len());
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
    }

    /// Asserts that `status` is what a call ends with when the message `bad` fails to encode.
    fn encode_failed(status: Option<weft::Status>, transport: impl std::fmt::Debug) {
        let status = status.expect("an error");
        assert_eq!(status.code(), Code::Internal, "{transport:?}: {status}");
        assert!(status.message().contains("`bad` is not sent"), "{transport:?}: {status}");
    }

    #[tokio::test]
    async fn a_message_that_fails_to_encode_ends_its_stream_and_leaves_nothing_on_the_wire() {
        let run = async {
            for transport in lab::TRANSPORTS {
                let connected = lab::connect_announcing(server(Config::default()), transport, Picky::MIME).await;
                let client = BlobsClient::new(connected.client.clone());
                let (got, status) = collect(client.blobs(Bytes::from("a,bad,c")).await.unwrap()).await;
                assert_eq!(got, vec![Bytes::from("a")], "{transport:?}");
                encode_failed(status, transport);
                // Half a message left in the write buffer would have broken the framing.
                let (again, status) = collect(client.blobs(Bytes::from("x,y")).await.unwrap()).await;
                assert_eq!((again, status), (vec![Bytes::from("x"), Bytes::from("y")], None), "{transport:?}");
                connected.shutdown().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
    }

    #[tokio::test]
    async fn a_channel_request_that_fails_to_encode_ends_the_requests_and_is_reported() {
        let run = async {
            for transport in lab::TRANSPORTS {
                let connected = lab::connect_announcing(server(Config::default()), transport, Picky::MIME).await;
                let client = BlobsClient::new(connected.client.clone());
                let sent = ["a", "b", "bad", "c"].map(Bytes::from);
                let (got, status) = collect(client.echo(futures_util::stream::iter(sent)).await.unwrap()).await;
                // The failure is reported as soon as the caller reads after it, possibly before
                // the echoes of the messages sent ahead of it.
                let echoes = [Bytes::from("a"), Bytes::from("b")];
                assert!(got.len() <= 2 && got[..] == echoes[..got.len()], "{transport:?}: {got:?}");
                encode_failed(status, transport);
                // Half a message left in the client's write buffer would have broken the framing.
                let sent = ["x", "y"].map(Bytes::from);
                let (again, status) = collect(client.echo(futures_util::stream::iter(sent)).await.unwrap()).await;
                assert_eq!((again, status), (vec![Bytes::from("x"), Bytes::from("y")], None), "{transport:?}");
                connected.shutdown().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
    }

    #[tokio::test]
    async fn channel_requests_larger_than_a_fragment_arrive_whole_and_in_order() {
        let run = async {
            let server = server(Config::default());
            let config = Config::default().fragment_size(Some(MIN_FRAGMENT_SIZE));
            let client = weft::Client::builder().config(config).data_mime(Picky::MIME);
            let client = BlobsClient::new(client.connect_in_memory(&server).await.unwrap());
            let sent: Vec<Bytes> = "x,3000,y,64,z,1000".split(',').map(item).collect();
            let (got, status) = collect(client.echo(futures_util::stream::iter(sent.clone())).await.unwrap()).await;
            assert_eq!(status, None);
            assert!(
                got == sent,
                "sizes {:?}, sent {:?}",
                got.iter().map(Bytes::len).collect::<Vec<_>>(),
                sent.iter().map(Bytes::len).collect::<Vec<_>>()
            );
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
    }

    #[tokio::test]
    async fn answers_go_whole_fragmented_or_failed_whether_ready_at_once_or_later() {
        let run = async {
            for transport in lab::TRANSPORTS {
                // Fragments of 64 bytes from the server.
                let server = server(Config::default().fragment_size(Some(MIN_FRAGMENT_SIZE)));
                let connected = lab::connect_announcing(server, transport, Picky::MIME).await;
                let client = BlobsClient::new(connected.client.clone());
                for now_or_later in ["", "wait:"] {
                    let what = |word| Bytes::from(format!("{now_or_later}{word}"));
                    assert_eq!(client.one(what("hi")).await.unwrap(), item("hi"), "{transport:?} {now_or_later}");
                    assert_eq!(client.one(what("5000")).await.unwrap(), item("5000"), "{transport:?} {now_or_later}");
                    let status = client.one(what("oops")).await.unwrap_err();
                    assert_eq!(status.code(), Code::Internal, "{transport:?} {now_or_later}: {status}");
                    let message = status.message();
                    assert!(
                        message.contains("encode a response") && message.contains("`bad` is not sent"),
                        "{message}"
                    );
                    // Half an answer left in the write buffer would have broken the framing.
                    assert_eq!(client.one(what("ok")).await.unwrap(), item("ok"), "{transport:?} {now_or_later}");
                }
                connected.shutdown().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
    }

    /// Reads frames into `frames` until the last one read is `last`.
    async fn read_until(
        peer: &mut tokio::io::DuplexStream,
        buf: &mut BytesMut,
        frames: &mut Vec<Frame>,
        last: fn(&Frame) -> bool,
    ) {
        let framing = LengthDelimited::new(1 << 16);
        while !frames.last().is_some_and(last) {
            match framing.decode_frame(buf).unwrap() {
                Some(frame) => frames.push(frame),
                None => assert!(peer.read_buf(buf).await.unwrap() > 0, "closed; got {frames:?}"),
            }
        }
    }

    /// A raw peer on `server` that asks for the stream `asked` (see [`Maker::blobs`]), having
    /// written SETUP and the request in one go.
    async fn raw_stream(server: Server, asked: &'static str) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
        let (mut peer, server_end) = tokio::io::duplex(1 << 16);
        let serving = tokio::spawn(async move { server.serve_connection(server_end).await });
        let mut wire = BytesMut::new();
        let setup = Setup {
            version: VERSION,
            keepalive_interval: 10_000,
            max_lifetime: 60_000,
            resume_token: None,
            lease: false,
            metadata_mime: COMPOSITE_METADATA_MIME.into(),
            data_mime: Picky::MIME.into(),
            payload: Default::default(),
        };
        length::encode_frame(&Frame::Setup(setup), &mut wire);
        let metadata = CompositeMetadata::with_route("weft.test.Blobs/Blobs").unwrap().to_bytes();
        let payload = weft::frame::Payload { metadata: Some(metadata), data: Bytes::from(asked) };
        let request = RequestStream { stream_id: 1, follows: false, initial_n: 100, payload };
        length::encode_frame(&Frame::RequestStream(request), &mut wire);
        peer.write_all(&wire).await.unwrap();
        (peer, serving)
    }

    #[tokio::test]
    async fn messages_written_in_place_keep_to_the_fragment_size_on_the_wire() {
        let run = async {
            let config = Config::default().fragment_size(Some(MIN_FRAGMENT_SIZE));
            let asked = "10,200,3,a,58,59,1000,b";
            let (mut peer, serving) = raw_stream(server(config), asked).await;
            let (mut buf, mut frames) = (BytesMut::new(), Vec::new());
            read_until(&mut peer, &mut buf, &mut frames, |f| matches!(f, Frame::Payload(p) if p.complete)).await;
            let mut messages = vec![BytesMut::new()];
            for frame in &frames {
                let mut wire = Vec::new();
                frame.encode(&mut wire);
                assert!(wire.len() <= MIN_FRAGMENT_SIZE, "a frame of {} bytes: {frame:?}", wire.len());
                let Frame::Payload(p) = frame else { panic!("not a PAYLOAD: {frame:?}") };
                // (A message queued behind a fragmented one is completed by a COMPLETE frame.)
                if p.next || p.follows {
                    messages.last_mut().unwrap().extend_from_slice(&p.payload.data);
                }
                if p.next && !p.follows {
                    messages.push(BytesMut::new());
                }
            }
            assert_eq!(messages.pop().as_deref(), Some(&b""[..]));
            let expected: Vec<Bytes> = asked.split(',').map(item).collect();
            assert_eq!(messages, expected);
            drop(peer);
            serving.await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
    }

    #[tokio::test]
    async fn the_last_message_of_a_stream_carries_complete_itself() {
        let run = async {
            let (mut peer, serving) = raw_stream(server(Config::default()), "a,b,c").await;
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            read_until(&mut peer, &mut buf, &mut frames, |f| matches!(f, Frame::Payload(p) if p.complete)).await;
            // A KEEPALIVE answered after the stream's last message shows that nothing else
            // (no COMPLETE of its own) followed it.
            let ping = Keepalive { respond: true, last_received_position: 0, data: Bytes::from("ping") };
            let mut wire = BytesMut::new();
            length::encode_frame(&Frame::Keepalive(ping), &mut wire);
            peer.write_all(&wire).await.unwrap();
            read_until(&mut peer, &mut buf, &mut frames, |f| matches!(f, Frame::Keepalive(_))).await;
            let message = |data: &'static str, complete| {
                Frame::Payload(PayloadFrame {
                    stream_id: 1,
                    follows: false,
                    complete,
                    next: true,
                    payload: weft::frame::Payload::data(data.as_bytes()),
                })
            };
            let pong =
                Frame::Keepalive(Keepalive { respond: false, last_received_position: 0, data: Bytes::from("ping") });
            assert_eq!(frames, vec![message("a", false), message("b", false), message("c", true), pong]);
            drop(peer);
            serving.await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(20), run).await.expect("in time");
    }
}

#[tokio::test]
async fn a_generated_client_connects_by_address() {
    let (server, _events) = lab::server();
    let running = server.bind("127.0.0.1:0").await.unwrap();
    let client = tokio::time::timeout(WAIT, LabClient::connect(running.local_addr())).await.expect("in time").unwrap();
    assert_eq!(client.echo(msg("hi", 1)).await.unwrap(), msg("hi", 1));
    // Nobody listening: a connect error, with the IO error under it, and UNAVAILABLE as a
    // call's status.
    running.shutdown().await;
    let refused = LabClient::connect("127.0.0.1:1").await.unwrap_err();
    assert_eq!(refused.kind(), &weft::ErrorKind::Connect, "{refused}");
    assert!(refused.to_string().starts_with("cannot connect to 127.0.0.1:1: "), "{refused}");
    assert!(std::error::Error::source(&refused).is_some_and(|s| s.is::<std::io::Error>()));
    assert_eq!(Status::from(refused).code(), Code::Unavailable);
}
