//! Application code that panics — a handler in any interaction model, at any point (before its
//! first poll, at it, after it, mid-stream), a caller's own outbound stream — ends its call
//! with INTERNAL; the connection and every other call on it go on.

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use std::time::Duration;
use weft::{BoxFuture, Call, Client, Code, Handler, Payload, PayloadStream, Response, Responses, Server, Status};

const ROUTES: &[&str] = &[
    "p.P/Echo",
    "p.P/UnaryAtOnce",
    "p.P/UnaryFirstPoll",
    "p.P/UnaryLater",
    "p.P/FnfAtOnce",
    "p.P/FnfLater",
    "p.P/StreamAtOnce",
    "p.P/StreamMid",
    "p.P/StreamLater",
    "p.P/Channel",
];

struct Panicky;

async fn later() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

impl Handler for Panicky {
    fn request_response(&self, call: Call, data: Bytes) -> Response {
        match call.route() {
            "p.P/UnaryAtOnce" => panic!("unary at once"),
            "p.P/UnaryFirstPoll" => Response::new(async { panic!("unary at its first poll") }),
            "p.P/UnaryLater" => Response::new(async {
                later().await;
                panic!("unary after its first poll")
            }),
            _ => Response::new(async move { Ok(Payload::new(data)) }),
        }
    }

    fn fire_and_forget(&self, call: Call, _data: Bytes) -> BoxFuture<'static, ()> {
        match call.route() {
            "p.P/FnfAtOnce" => panic!("fire-and-forget at once"),
            _ => Box::pin(async {
                later().await;
                panic!("fire-and-forget later")
            }),
        }
    }

    fn request_stream(&self, call: Call, _data: Bytes) -> Responses {
        match call.route() {
            "p.P/StreamAtOnce" => panic!("stream at once"),
            "p.P/StreamMid" => Responses::new(stream::iter(0..5).map(|i| {
                assert!(i < 2, "stream mid-way");
                Ok(Payload::new(i.to_string()))
            })),
            _ => {
                Responses::new(stream::iter(0..1).map(|i| Ok(Payload::new(i.to_string()))).chain(stream::once(async {
                    later().await;
                    panic!("stream later")
                })))
            }
        }
    }

    fn request_channel(&self, _call: Call, messages: PayloadStream) -> Responses {
        Responses::new(messages.enumerate().map(|(i, m)| {
            assert!(i < 1, "channel at its second message");
            m
        }))
    }
}

mod typed {
    //! The typed layer, whose answers are encoded in place.
    use super::*;

    #[weft::service(package = "p", codec = weft::BytesCodec)]
    pub(crate) trait Typed {
        /// Panics after its first poll.
        async fn unary(&self, req: Bytes) -> Result<Bytes, Status>;
        /// Two messages, then a panic.
        async fn items(&self, req: Bytes)
        -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status>;
    }

    pub(crate) struct Impl;

    impl Typed for Impl {
        async fn unary(&self, _req: Bytes) -> Result<Bytes, Status> {
            later().await;
            panic!("typed unary")
        }

        async fn items(
            &self,
            _req: Bytes,
        ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(stream::iter(0..5).map(|i| {
                assert!(i < 2, "typed stream mid-way");
                Ok(Bytes::from(i.to_string()))
            }))
        }
    }
}

async fn echo_still_works(client: &Client, what: &str) {
    let reply = client.request_response(Call::new("p.P/Echo"), Bytes::from(what.to_owned())).await;
    assert_eq!(reply.map(|p| p.data), Ok(Bytes::from(what.to_owned())), "after {what}: the connection goes on");
}

#[track_caller]
fn internal(result: Result<impl std::fmt::Debug, Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Internal, "{what}: {status}");
    assert!(status.message().contains("panicked"), "{what}: {status}");
}

async fn items_until_error(stream: PayloadStream) -> (Vec<Bytes>, Option<Status>) {
    let mut items = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(p) => items.push(p.data),
            Err(status) => return (items, Some(status)),
        }
    }
    (items, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_anywhere_ends_its_call_with_internal_and_nothing_else() {
    let run = async {
        let server =
            Server::builder().add_handler(ROUTES, Panicky).add_service(typed::TypedServer::new(typed::Impl)).build();
        let running = server.bind("127.0.0.1:0").await.unwrap();
        // The typed service's methods read what its codec does: raw bytes.
        let builder = Client::builder().data_mime(<weft::BytesCodec as weft::DataMime>::MIME);
        let client = builder.connect(running.local_addr()).await.unwrap();
        // A stream that stays open across every panic: no other call is disturbed.
        let mut other = client.request_stream(Call::new("p.P/StreamLater"), Bytes::new()).await.unwrap();
        assert_eq!(other.next().await.unwrap().unwrap().data, "0");

        for route in ["p.P/UnaryAtOnce", "p.P/UnaryFirstPoll", "p.P/UnaryLater", "p.Typed/Unary"] {
            internal(client.request_response(Call::new(route), Bytes::new()).await, route);
            echo_still_works(&client, route).await;
        }
        for route in ["p.P/FnfAtOnce", "p.P/FnfLater"] {
            client.fire_and_forget(Call::new(route), Bytes::new()).await.unwrap();
            echo_still_works(&client, route).await;
        }
        for (route, before) in [("p.P/StreamAtOnce", 0), ("p.P/StreamMid", 2), ("p.Typed/Items", 2)] {
            let (items, end) = match client.request_stream(Call::new(route), Bytes::new()).await {
                Ok(stream) => items_until_error(stream).await,
                Err(status) => (Vec::new(), Some(status)),
            };
            assert_eq!(items.len(), before, "{route}");
            internal(end.map_or(Ok(()), Err), route);
            echo_still_works(&client, route).await;
        }
        let out = stream::iter(["a", "b", "c"].map(Payload::new));
        let replies = client.request_channel(Call::new("p.P/Channel"), out).await.unwrap();
        let (items, end) = items_until_error(replies).await;
        assert_eq!(items, ["a"], "the channel's first echo");
        internal(end.map_or(Ok(()), Err), "a channel's handler");
        echo_still_works(&client, "a channel").await;

        // The stream opened first ends as its handler says (it panics too, later), untouched
        // by the panics around it.
        let (_, end) = items_until_error(other).await;
        internal(end.map_or(Ok(()), Err), "the stream opened first");
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

#[tokio::test]
async fn a_callers_outbound_stream_that_panics_ends_its_call_not_the_connection() {
    let run = async {
        let running = Server::builder().add_handler(ROUTES, Panicky).build().bind("127.0.0.1:0").await.unwrap();
        let client = Client::connect(running.local_addr()).await.unwrap();
        // The first message rides in the request; the second panics when the connection
        // polls for it.
        let messages = stream::iter(0..3).map(|i| {
            assert!(i < 1, "the caller's stream panicked");
            Payload::new(i.to_string())
        });
        let replies = client.request_channel(Call::new("p.P/Channel"), messages).await.unwrap();
        let (items, end) = items_until_error(replies).await;
        assert!(items.len() <= 1, "{items:?}");
        internal(end.map_or(Ok(()), Err), "the caller's stream");
        assert!(!client.is_closed());
        echo_still_works(&client, "the caller's panic").await;
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}
