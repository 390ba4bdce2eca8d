//! Deadlines: a call's deadline ends it with DEADLINE_EXCEEDED in every interaction model, on
//! both sides (the requester stops waiting, the responder stops the handler), travels in the
//! request's `application/x.weft.timeout` entry, and passes on whole to the calls a handler
//! makes with `Request::within`. Most tests run on tokio's paused clock, in memory, so the
//! deadlines are exact; one runs over TCP on the real clock.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use weft::{Call, Client, Code, Context, Request, Server, Status, Streaming, TIMEOUT_MIME};

/// What the handlers saw: each call's deadline, and which handlers were dropped (stopped).
#[derive(Clone, Default)]
struct Seen {
    deadlines: Arc<Mutex<Vec<Option<Instant>>>>,
    dropped: Arc<Mutex<Vec<&'static str>>>,
    started: Arc<Mutex<usize>>,
    changed: Arc<Notify>,
}

impl Seen {
    fn saw(&self, ctx: &Context) {
        self.deadlines.lock().unwrap().push(ctx.deadline());
        *self.started.lock().unwrap() += 1;
    }

    /// A guard that records `what` as dropped when the handler holding it is dropped.
    fn guard(&self, what: &'static str) -> Guard {
        Guard(what, self.clone())
    }

    /// Waits (bounded by the test's clock) until `what` was dropped.
    async fn until_dropped(&self, what: &'static str) {
        loop {
            let changed = self.changed.notified();
            if self.dropped.lock().unwrap().contains(&what) {
                return;
            }
            tokio::time::timeout(Duration::from_secs(30), changed)
                .await
                .unwrap_or_else(|_| panic!("{what} never stopped"));
        }
    }

    fn last_deadline(&self) -> Option<Instant> {
        *self.deadlines.lock().unwrap().last().expect("a handler ran")
    }
}

struct Guard(&'static str, Seen);

impl Drop for Guard {
    fn drop(&mut self) {
        self.1.dropped.lock().unwrap().push(self.0);
        self.1.changed.notify_waiters();
    }
}

/// Handlers that take their time: each records its call's deadline and never finishes on its
/// own (unless its request asks for an answer after a delay), holding a guard that tells when
/// it was stopped.
#[weft::service(package = "weft.test.deadlines", codec = weft::BytesCodec)]
pub trait Slow {
    /// Answers after the milliseconds its request names, or never if it names none; the
    /// answer is what was left of its deadline, in milliseconds, or `none`.
    async fn wait(&self, ctx: Context, ms: Bytes) -> Result<Bytes, Status>;
    /// Streams one message, then nothing more, for ever.
    async fn ticks(&self, ctx: Context, req: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
    /// Echoes the first message, then nothing more, for ever.
    async fn chat(
        &self,
        ctx: Context,
        msgs: Streaming<Bytes>,
    ) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
    /// Never finishes.
    async fn fire(&self, ctx: Context, req: Bytes);
    /// Streams `tick` for ever, a message always ready.
    async fn flood(&self, ctx: Context, req: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
    /// Calls `wait` on the next server with what is left of its own deadline; answers what
    /// `wait` answered.
    async fn relay(&self, ctx: Context, ms: Bytes) -> Result<Bytes, Status>;
}

#[derive(Clone, Default)]
struct Handlers {
    seen: Seen,
    next: Arc<Mutex<Option<SlowClient>>>,
}

fn millis_left(ctx: &Context) -> Bytes {
    match ctx.remaining() {
        Some(left) => Bytes::from(left.as_millis().to_string()),
        None => Bytes::from_static(b"none"),
    }
}

impl Slow for Handlers {
    async fn wait(&self, ctx: Context, ms: Bytes) -> Result<Bytes, Status> {
        self.seen.saw(&ctx);
        let _guard = self.seen.guard("wait");
        let answer = millis_left(&ctx);
        match std::str::from_utf8(&ms).ok().and_then(|ms| ms.parse().ok()) {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
        Ok(answer)
    }

    async fn flood(
        &self,
        ctx: Context,
        _req: Bytes,
    ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        self.seen.saw(&ctx);
        let guard = self.seen.guard("flood");
        Ok(futures_util::stream::repeat_with(move || {
            let _ = &guard;
            Ok(Bytes::from_static(b"tick"))
        }))
    }

    async fn ticks(
        &self,
        ctx: Context,
        _req: Bytes,
    ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        self.seen.saw(&ctx);
        let guard = self.seen.guard("ticks");
        let first = futures_util::stream::iter([Ok(Bytes::from_static(b"tick"))]);
        Ok(first.chain(futures_util::stream::pending().map(move |item| {
            let _ = &guard;
            item
        })))
    }

    async fn chat(
        &self,
        ctx: Context,
        mut msgs: Streaming<Bytes>,
    ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        self.seen.saw(&ctx);
        let guard = self.seen.guard("chat");
        let first = msgs.message().await?.unwrap_or_default();
        Ok(futures_util::stream::iter([Ok(first)]).chain(futures_util::stream::pending().map(move |item| {
            let _ = (&guard, &msgs);
            item
        })))
    }

    async fn fire(&self, ctx: Context, _req: Bytes) {
        self.seen.saw(&ctx);
        let _guard = self.seen.guard("fire");
        std::future::pending::<()>().await
    }

    async fn relay(&self, ctx: Context, ms: Bytes) -> Result<Bytes, Status> {
        self.seen.saw(&ctx);
        let next = self.next.lock().unwrap().clone().expect("a next server");
        next.wait(Request::new(ms).within(&ctx)).await
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("test timed out")
}

/// A server of the slow handlers, and a client of it in memory.
async fn serve() -> (Handlers, SlowClient, Client) {
    let handlers = Handlers::default();
    let server = Server::builder().add_service(SlowServer::new(handlers.clone())).build();
    let client = server.connect_in_memory().await.unwrap();
    (handlers, SlowClient::new(client.clone()), client)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_unary_call_ends_at_its_deadline_and_its_handler_is_stopped() {
    bounded(async {
        let (handlers, slow, _) = serve().await;
        let start = Instant::now();
        let late = slow.wait(Request::new(Bytes::new()).with_timeout(ms(250))).await.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
        assert!(late.message().contains("weft.test.deadlines.Slow/Wait"), "{late}");
        assert_eq!(start.elapsed(), ms(250), "at the deadline, not before or after");
        // The handler was told the deadline (the time left it was sent, from when the request
        // arrived: no time passes on the paused clock in memory) and stopped.
        assert_eq!(handlers.seen.last_deadline(), Some(start + ms(250)));
        handlers.seen.until_dropped("wait").await;
        // In time: answered, with the time that was left when the handler started.
        let answer = slow.wait(Request::new(Bytes::from("100")).with_timeout(ms(1000))).await.unwrap();
        assert_eq!(answer, "1000");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_server_ends_a_call_at_the_deadline_it_was_sent() {
    bounded(async {
        // A requester that sends the entry but keeps no deadline itself (as another
        // language's might): the server ends the call.
        let (handlers, _, client) = serve().await;
        let start = Instant::now();
        let call = Call::new("weft.test.deadlines.Slow/Wait").with_metadata(TIMEOUT_MIME, "300");
        let late = client.request_response(call, Bytes::new()).await.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
        assert_eq!(start.elapsed(), ms(300));
        handlers.seen.until_dropped("wait").await;

        let call = Call::new("weft.test.deadlines.Slow/Ticks").with_metadata(TIMEOUT_MIME, "200");
        let mut ticks = client.request_stream(call, Bytes::new()).await.unwrap();
        assert_eq!(ticks.next().await.unwrap().unwrap().data, "tick");
        let end = ticks.next().await.unwrap().unwrap_err();
        assert_eq!(end.code(), Code::DeadlineExceeded, "{end}");
        assert!(ticks.next().await.is_none());
        handlers.seen.until_dropped("ticks").await;

        // A requester that sent no deadline has none.
        let answer = client.request_response(Call::new("weft.test.deadlines.Slow/Wait"), "5".into()).await.unwrap();
        assert_eq!(answer.data, "none");
        assert_eq!(handlers.seen.last_deadline(), None);
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_stream_out_of_credit_still_ends_at_its_deadline() {
    bounded(async {
        // The requester grants two messages and reads none: the server's stream has a third
        // ready and held, and waits for credit that never comes. Its deadline ends it anyway
        // (an ERROR needs no credit), and stops the handler.
        let handlers = Handlers::default();
        let server = Server::builder().add_service(SlowServer::new(handlers.clone())).build();
        let config = weft::Config::default().inbound_window(2);
        let builder = Client::builder().config(config).data_mime("application/octet-stream");
        let client = builder.connect_in_memory(&server).await.unwrap();
        let start = Instant::now();
        let call = Call::new("weft.test.deadlines.Slow/Flood").with_metadata(TIMEOUT_MIME, "300");
        let mut flood = client.request_stream(call, Bytes::new()).await.unwrap();
        handlers.seen.until_dropped("flood").await;
        assert_eq!(start.elapsed(), ms(300), "stopped at the deadline");
        let mut ticks = 0;
        let end = loop {
            match flood.next().await.expect("the stream ends with an error") {
                Ok(tick) => {
                    assert_eq!(tick.data, "tick");
                    ticks += 1;
                }
                Err(status) => break status,
            }
        };
        assert_eq!(end.code(), Code::DeadlineExceeded, "{end}");
        assert_eq!(ticks, 2, "what was granted, and not the message held back");
        assert!(flood.next().await.is_none());
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_stream_and_a_channel_end_with_deadline_exceeded() {
    bounded(async {
        let (handlers, slow, _) = serve().await;
        let start = Instant::now();
        let mut ticks = slow.ticks(Request::new(Bytes::new()).with_timeout(ms(400))).await.unwrap();
        assert_eq!(ticks.message().await.unwrap().unwrap(), "tick", "what came before the deadline");
        let end = ticks.message().await.unwrap_err();
        assert_eq!(end.code(), Code::DeadlineExceeded, "{end}");
        assert_eq!(start.elapsed(), ms(400));
        assert_eq!(ticks.message().await, Ok(None), "nothing after the end");
        handlers.seen.until_dropped("ticks").await;

        let start = Instant::now();
        let outbound = futures_util::stream::iter([Bytes::from("hello")]).chain(futures_util::stream::pending());
        let mut chat = slow.chat(Request::new(outbound).with_timeout(ms(150))).await.unwrap();
        assert_eq!(chat.message().await.unwrap().unwrap(), "hello");
        let end = chat.message().await.unwrap_err();
        assert_eq!(end.code(), Code::DeadlineExceeded, "{end}");
        assert_eq!(start.elapsed(), ms(150));
        handlers.seen.until_dropped("chat").await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_fire_and_forget_handler_is_stopped_at_the_deadline() {
    bounded(async {
        let (handlers, slow, _) = serve().await;
        let start = Instant::now();
        slow.fire(Request::new(Bytes::new()).with_timeout(ms(120))).await.unwrap();
        handlers.seen.until_dropped("fire").await;
        assert_eq!(start.elapsed(), ms(120));
        assert_eq!(handlers.seen.last_deadline(), Some(start + ms(120)));
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_handler_passes_on_what_is_left_of_its_deadline_and_no_more() {
    bounded(async {
        // Two servers: the client calls `relay` on the first, which calls `wait` on the second.
        let (first, relay, _) = serve().await;
        let (second, next, _) = serve().await;
        *first.next.lock().unwrap() = Some(next);
        let start = Instant::now();
        tokio::time::advance(ms(7)).await;
        let late = relay.relay(Request::new(Bytes::new()).with_deadline(start + ms(500))).await.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
        // The first handler's deadline is the caller's, the second's the first's.
        assert_eq!(first.seen.last_deadline(), Some(start + ms(500)));
        assert_eq!(second.seen.last_deadline(), Some(start + ms(500)));
        second.seen.until_dropped("wait").await;
        // And the time left in between is what the second handler sees.
        let answer = relay.relay(Request::new(Bytes::from("1")).with_timeout(ms(80))).await.unwrap();
        assert_eq!(answer, "80");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_clients_default_timeout_applies_unless_a_call_sets_its_own() {
    bounded(async {
        let handlers = Handlers::default();
        let server = Server::builder().add_service(SlowServer::new(handlers.clone())).build();
        let client = Client::builder()
            .timeout(ms(100))
            .data_mime(<weft::BytesCodec as weft::DataMime>::MIME)
            .connect_in_memory(&server)
            .await
            .unwrap();
        assert_eq!(client.timeout(), Some(ms(100)));
        let slow = SlowClient::new(client.clone());
        let start = Instant::now();
        let late = slow.wait(Bytes::from("200")).await.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded);
        assert_eq!(start.elapsed(), ms(100));
        // The call's own, longer, deadline wins.
        assert_eq!(slow.wait(Request::new(Bytes::from("200")).with_timeout(ms(300))).await.unwrap(), "300");
        // A generated client built from `with_timeout` gives all its calls that timeout.
        let patient = SlowClient::new(client.with_timeout(ms(1000)));
        assert_eq!(patient.wait(Bytes::from("200")).await.unwrap(), "1000");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_past_fails_the_call_before_anything_is_sent() {
    bounded(async {
        let (handlers, slow, _) = serve().await;
        let past = Instant::now();
        tokio::time::advance(ms(10)).await;
        for result in [
            slow.wait(Request::new(Bytes::new()).with_deadline(past)).await.map(drop),
            slow.ticks(Request::new(Bytes::new()).with_deadline(past)).await.map(drop),
            slow.fire(Request::new(Bytes::new()).with_deadline(past)).await,
        ] {
            assert_eq!(result.unwrap_err().code(), Code::DeadlineExceeded);
        }
        assert_eq!(*handlers.seen.started.lock().unwrap(), 0, "no handler ran");
        // A request whose time left is zero on arrival is not handed to its handler either.
        let (_, _, client) = serve().await;
        let call = Call::new("weft.test.deadlines.Slow/Wait").with_metadata(TIMEOUT_MIME, "0");
        assert_eq!(client.request_response(call, Bytes::new()).await.unwrap_err().code(), Code::DeadlineExceeded);
    })
    .await
}

#[tokio::test]
async fn a_malformed_timeout_entry_is_refused_and_the_connection_goes_on() {
    bounded(async {
        let (handlers, slow, client) = serve().await;
        for bad in ["", "soon", "-1", "1.5", "12345678901234567890"] {
            let call = Call::new("weft.test.deadlines.Slow/Wait").with_metadata(TIMEOUT_MIME, bad);
            let refused = client.request_response(call, Bytes::new()).await.unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument, "{bad:?}: {refused}");
            assert!(refused.message().contains(TIMEOUT_MIME), "{refused}");
        }
        assert_eq!(*handlers.seen.started.lock().unwrap(), 0, "no handler ran");
        assert_eq!(slow.wait(Bytes::from("1")).await.unwrap(), "none", "the connection serves on");
    })
    .await
}

#[tokio::test]
async fn over_tcp_on_the_real_clock_a_call_ends_at_its_deadline() {
    bounded(async {
        let handlers = Handlers::default();
        let server = Server::builder().add_service(SlowServer::new(handlers.clone())).build();
        let running = server.bind("127.0.0.1:0").await.unwrap();
        let slow = SlowClient::connect(running.local_addr()).await.unwrap();
        let start = std::time::Instant::now();
        let late = slow.wait(Request::new(Bytes::new()).with_timeout(ms(200))).await.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
        assert!(start.elapsed() >= ms(200), "not before the deadline: {:?}", start.elapsed());
        handlers.seen.until_dropped("wait").await;
        let deadline = handlers.seen.last_deadline().expect("the server was told the deadline");
        // The server counts the time left from when the request arrived: a little after the
        // client's deadline, never before.
        assert!(deadline >= Instant::from_std(start) + ms(200));
        // The connection is fine after it.
        let answer = slow.wait(Request::new(Bytes::from("1")).with_timeout(ms(5_000))).await.unwrap();
        let left: u64 = std::str::from_utf8(&answer).unwrap().parse().unwrap();
        assert!((4_000..=5_000).contains(&left), "{left} ms left of 5 s");
        running.shutdown().await;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_requester_keeps_its_deadline_against_a_silent_peer_and_cancels_on_the_wire() {
    use bytes::BytesMut;
    use tokio::io::AsyncReadExt;
    use weft::frame::Frame;
    use weft::frame::length::LengthDelimited;

    bounded(async {
        // A peer that reads and never answers: only the requester's own deadline ends the call.
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let client = Client::builder().connect_over(ours).await.unwrap();
        let start = Instant::now();
        let late = client.request_response(Call::new("a.B/C").with_timeout(ms(100)), "x".into()).await.unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
        assert_eq!(start.elapsed(), ms(100));
        let mut stream = client.request_stream(Call::new("a.B/D").with_timeout(ms(50)), "y".into()).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap_err().code(), Code::DeadlineExceeded);
        assert!(stream.next().await.is_none());

        // On the wire: each request with its time left, then a CANCEL for it at its deadline.
        let framing = LengthDelimited::new(1 << 16);
        let (mut buf, mut frames) = (BytesMut::new(), Vec::new());
        while frames.iter().filter(|f| matches!(f, Frame::Cancel(_))).count() < 2 {
            match framing.decode_frame(&mut buf).unwrap() {
                Some(Frame::Keepalive(_)) => {}
                Some(frame) => frames.push(frame),
                None => assert!(peer.read_buf(&mut buf).await.unwrap() > 0, "closed; got {frames:?}"),
            }
        }
        let timeout_of = |metadata: &Option<Bytes>| {
            let metadata = weft::CompositeMetadata::decode(metadata.clone().unwrap()).unwrap();
            metadata.get_str(TIMEOUT_MIME).map(str::to_owned)
        };
        match &frames[..] {
            [
                Frame::Setup(_),
                Frame::RequestResponse(unary),
                Frame::Cancel(first),
                Frame::RequestStream(stream),
                Frame::Cancel(second),
            ] => {
                assert_eq!(timeout_of(&unary.payload.metadata).as_deref(), Some("100"));
                assert_eq!(first.stream_id, unary.stream_id);
                assert_eq!(timeout_of(&stream.payload.metadata).as_deref(), Some("50"));
                assert_eq!(second.stream_id, stream.stream_id);
            }
            other => panic!("unexpected frames: {other:?}"),
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_channel_whose_first_message_never_comes_ends_at_its_deadline() {
    bounded(async {
        let (handlers, slow, _) = serve().await;
        let start = Instant::now();
        let late = slow.chat(Request::new(futures_util::stream::pending::<Bytes>()).with_timeout(ms(90))).await;
        let late = late.map(drop).unwrap_err();
        assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
        assert_eq!(start.elapsed(), ms(90));
        assert_eq!(*handlers.seen.started.lock().unwrap(), 0, "nothing was sent");
    })
    .await
}
