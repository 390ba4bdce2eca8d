//! Request streams that end before their first message: a channel or client-streaming call
//! with no messages reaches the method as an empty `Streaming`, carried by the no-messages
//! metadata entry (`weft::typed::NO_MESSAGES_MIME`, see the `weft::typed` module doc); and a
//! peer that breaks the convention gets an ERROR on that stream, not a broken connection.

use crate::lab::{Msg, TRANSPORTS, Transport, msg, trace_mime};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, stream};
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft::frame::length::{self, LengthDelimited};
use weft::frame::metadata::{COMPOSITE_METADATA_MIME, CompositeMetadata, MimeType};
use weft::frame::{self, ErrorCode, Frame, Payload, PayloadFrame, RequestChannel, Setup, VERSION};
use weft::typed::NO_MESSAGES_MIME;
use weft::{Code, Context, Request, Server, Status, Streaming};

const WAIT: Duration = Duration::from_secs(5);

/// A tally of messages, for request streams of every length.
#[weft::service(package = "weft.test.empty")]
pub(crate) trait Tally {
    /// Replies with the number of messages and the sum of their `n`.
    async fn sum(&self, msgs: Streaming<Msg>) -> Result<Msg, Status>;
    /// Says hello (with the caller's trace entry, if any) before reading anything, echoes
    /// each message, then says how many there were.
    async fn chat(&self, ctx: Context, msgs: Streaming<Msg>)
    -> Result<impl Stream<Item = Result<Msg, Status>>, Status>;
}

struct TallyImpl;

impl Tally for TallyImpl {
    async fn sum(&self, mut msgs: Streaming<Msg>) -> Result<Msg, Status> {
        let (mut count, mut sum) = (0, 0);
        while let Some(m) = msgs.message().await? {
            count += 1;
            sum += m.n;
        }
        Ok(msg(&count.to_string(), sum))
    }

    async fn chat(
        &self,
        ctx: Context,
        msgs: Streaming<Msg>,
    ) -> Result<impl Stream<Item = Result<Msg, Status>> + Send + 'static, Status> {
        let trace = ctx.metadata_entry(trace_mime()).map(|t| String::from_utf8_lossy(t).into_owned());
        let hello = msg(&format!("hello {}", trace.unwrap_or_default()), 0);
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let echoes = msgs.map(move |m| {
            counter.fetch_add(1, Ordering::Relaxed);
            m.map(|m| msg(&format!("echo {}", m.text), m.n))
        });
        // (After an error nothing more is sent: the stream's end is the error.)
        let bye = stream::once(async move { Ok(msg("bye", seen.load(Ordering::Relaxed))) });
        Ok(stream::once(async move { Ok(hello) }).chain(echoes).chain(bye))
    }
}

fn server() -> Server {
    Server::builder().add_service(TallyServer::new(TallyImpl)).build()
}

/// Runs `test` against the tally over every transport, each run bounded by a timeout.
async fn each_transport<F, Fut>(test: F)
where
    F: Fn(TallyClient, Transport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for transport in TRANSPORTS {
        let run = async {
            let connected = crate::lab::connect(server(), transport).await;
            test(TallyClient::new(connected.client.clone()), transport).await;
            connected.shutdown().await;
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| panic!("timed out over {transport:?}"));
    }
}

async fn collect(mut s: Streaming<Msg>) -> Result<Vec<Msg>, Status> {
    let mut items = Vec::new();
    while let Some(m) = s.message().await? {
        items.push(m);
    }
    Ok(items)
}

#[tokio::test]
async fn client_streaming_with_no_messages_gets_the_methods_answer() {
    each_transport(|client, t| async move {
        let answer = client.sum(stream::empty::<Msg>()).await.unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_eq!(answer, msg("0", 0), "{t:?}: the method read an empty stream");
        // One message and many, as before.
        assert_eq!(client.sum(stream::iter([msg("a", 4)])).await.unwrap(), msg("1", 4), "{t:?}");
        let many = stream::iter((1..=100).map(|n| msg("part", n)));
        assert_eq!(client.sum(many).await.unwrap(), msg("100", 5050), "{t:?}");
        // A stream that ends before its first message only after a while.
        let late = stream::once(tokio::time::sleep(Duration::from_millis(20))).filter_map(|()| async { None::<Msg> });
        assert_eq!(client.sum(late).await.unwrap(), msg("0", 0), "{t:?}");
    })
    .await;
}

#[tokio::test]
async fn a_channel_with_no_messages_still_gets_the_servers_stream() {
    each_transport(|client, t| async move {
        let replies = collect(client.chat(stream::empty::<Msg>()).await.unwrap()).await;
        assert_eq!(replies, Ok(vec![msg("hello ", 0), msg("bye", 0)]), "{t:?}");
        // The call's own metadata travels with the no-messages entry.
        let request = Request::new(stream::empty::<Msg>()).with_metadata(trace_mime(), "7f3a");
        let replies = collect(client.chat(request).await.unwrap()).await;
        assert_eq!(replies, Ok(vec![msg("hello 7f3a", 0), msg("bye", 0)]), "{t:?}");
        // With messages, as before.
        let replies = collect(client.chat(stream::iter([msg("a", 1), msg("b", 2)])).await.unwrap()).await;
        let expected = vec![msg("hello ", 0), msg("echo a", 1), msg("echo b", 2), msg("bye", 2)];
        assert_eq!(replies, Ok(expected), "{t:?}");
    })
    .await;
}

/// A raw RSocket client over TCP, speaking with frames made by hand; every read bounded.
struct RawPeer {
    socket: TcpStream,
    buf: BytesMut,
    framing: LengthDelimited,
}

impl RawPeer {
    async fn setup(addr: std::net::SocketAddr) -> RawPeer {
        let socket = TcpStream::connect(addr).await.expect("connect");
        let mut peer = RawPeer { socket, buf: BytesMut::new(), framing: LengthDelimited::new(frame::MAX_FRAME_SIZE) };
        peer.send(Frame::Setup(Setup {
            version: VERSION,
            keepalive_interval: 30_000,
            max_lifetime: 90_000,
            resume_token: None,
            lease: false,
            metadata_mime: COMPOSITE_METADATA_MIME.into(),
            data_mime: weft::DEFAULT_DATA_MIME.into(),
            payload: Payload::default(),
        }))
        .await;
        peer
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        length::encode_frame(&frame, &mut out);
        self.socket.write_all(&out).await.expect("write to the server");
    }

    /// Opens a channel to `route` whose REQUEST_CHANNEL payload is `data` and whose
    /// metadata is the route, then the no-messages entry.
    async fn channel_with_marker(&mut self, stream_id: u32, route: &str, data: Bytes, complete: bool) {
        let mut metadata = CompositeMetadata::with_route(route).unwrap();
        metadata.push(MimeType::custom(NO_MESSAGES_MIME).unwrap(), Bytes::new()).unwrap();
        let payload = Payload::new(metadata.to_bytes(), data);
        let request = RequestChannel { stream_id, follows: false, complete, initial_n: 16, payload };
        self.send(Frame::RequestChannel(request)).await;
    }

    /// The next frame of a stream (connection frames, such as KEEPALIVE, are skipped).
    async fn stream_frame(&mut self) -> Frame {
        let read = async {
            loop {
                match self.framing.decode_frame(&mut self.buf) {
                    Ok(Some(frame)) if frame.stream_id() == 0 => continue,
                    Ok(Some(frame)) => return frame,
                    Ok(None) => {}
                    Err(e) => panic!("the server sent a frame that does not decode: {e}"),
                }
                let n = self.socket.read_buf(&mut self.buf).await.expect("read from the server");
                assert_ne!(n, 0, "the server closed the connection");
            }
        };
        tokio::time::timeout(WAIT, read).await.expect("a frame in time")
    }

    /// The next frame of a stream that is not about the requester's half (REQUEST_N, CANCEL).
    async fn answer(&mut self) -> Frame {
        loop {
            match self.stream_frame().await {
                Frame::RequestN(_) | Frame::Cancel(_) => {}
                frame => return frame,
            }
        }
    }
}

#[tokio::test]
async fn the_no_messages_entry_with_data_gets_an_error_on_its_stream_and_the_connection_serves_on() {
    let server = server();
    let running = server.bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let test = async {
        let mut peer = RawPeer::setup(running.local_addr()).await;
        for (stream_id, complete) in [(1, true), (3, false)] {
            let data = Bytes::from(msg("not empty", 1).encode_to_vec());
            peer.channel_with_marker(stream_id, "weft.test.empty.Tally/Sum", data, complete).await;
            let frame = peer.answer().await;
            let Frame::Error(error) = frame else { panic!("expected an ERROR, got {frame:?}") };
            assert_eq!((error.stream_id, error.code), (stream_id, ErrorCode::APPLICATION_ERROR));
            let status = Status::from_wire(&error.message());
            assert_eq!(status.code(), Code::InvalidArgument, "{status}");
            assert!(status.message().contains(NO_MESSAGES_MIME), "{status}");
            assert!(status.message().contains("weft.test.empty.Tally/Sum"), "{status}");
        }
        // The same connection: the entry as the convention says, with empty data and (C).
        peer.channel_with_marker(5, "weft.test.empty.Tally/Sum", Bytes::new(), true).await;
        let frame = peer.answer().await;
        let Frame::Payload(PayloadFrame { stream_id: 5, next: true, complete: true, payload, .. }) = frame else {
            panic!("expected the answer, got {frame:?}");
        };
        assert_eq!(Msg::decode(payload.data).unwrap(), msg("0", 0));
    };
    tokio::time::timeout(Duration::from_secs(20), test).await.expect("in time");
    running.shutdown().await;
}
