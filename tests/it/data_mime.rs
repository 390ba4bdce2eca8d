//! The data MIME type: what a generated client announces in SETUP, and what happens when a
//! connection announced another than a generated method's codec reads (`weft::DataMime`).

use crate::lab::{self, LabClient, Transport, msg};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft::frame::length::{self, LengthDelimited};
use weft::frame::metadata::{COMPOSITE_METADATA_MIME, CompositeMetadata};
use weft::frame::{ErrorCode, Frame, Request, Setup, VERSION};
use weft::{BytesCodec, Call, Code, DataMime, Handler, Payload, ProstCodec, Response, Server, Status, Streaming};

const WAIT: Duration = Duration::from_secs(20);

/// A service over raw bytes.
#[weft::service(package = "mime", codec = weft::BytesCodec)]
pub(crate) trait Blobs {
    /// Answers the request, reversed.
    async fn flip(&self, req: Bytes) -> Result<Bytes, Status>;
    /// Echoes every message.
    async fn echo(
        &self,
        msgs: Streaming<Bytes>,
    ) -> Result<impl futures_util::Stream<Item = Result<Bytes, Status>>, Status>;
}

/// Counts the calls that reach it, so that a test sees a refused call never did.
#[derive(Clone, Default)]
struct Flipper(Arc<AtomicUsize>);

impl Blobs for Flipper {
    async fn flip(&self, req: Bytes) -> Result<Bytes, Status> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(req.iter().rev().copied().collect::<Vec<u8>>().into())
    }

    async fn echo(
        &self,
        msgs: Streaming<Bytes>,
    ) -> Result<impl futures_util::Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(msgs)
    }
}

/// A hand-written handler: takes whatever data a connection carries.
struct Raw;

const RAW: &[&str] = &["mime.Raw/Echo"];

impl Handler for Raw {
    fn request_response(&self, _: Call, data: Bytes) -> Response {
        Response::ready(Ok(Payload::new(data)))
    }
}

/// The lab (protobuf), `Blobs` (raw bytes) and a hand-written handler on one server; the
/// calls that reached `Blobs`.
fn server() -> (Server, Arc<AtomicUsize>) {
    let flipper = Flipper::default();
    let (lab, _events) = lab::builder();
    let server = lab.add_service(BlobsServer::new(flipper.clone())).add_handler(RAW, Raw).build();
    (server, flipper.0)
}

#[track_caller]
fn refused(status: &Status, by: &str, codec: &str, announced: &str) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
    let message = status.message();
    assert!(message.contains(by), "names who refused ({by}): {message}");
    assert!(message.contains(&format!("`{codec}`")), "names the codec's type: {message}");
    assert!(message.contains(&format!("`{announced}`")), "names the announced type: {message}");
}

#[tokio::test]
async fn a_bytes_service_and_its_generated_client_speak_octet_stream_over_tcp() {
    let run = async {
        // What `BlobsClient::connect` announces, read off the wire.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(BlobsClient::connect(addr), listener.accept());
        let (_client, (mut socket, _)) = (connected.unwrap(), accepted.unwrap());
        let mut buf = BytesMut::new();
        let framing = LengthDelimited::new(1 << 16);
        let setup = loop {
            if let Some(frame) = framing.decode_frame(&mut buf).unwrap() {
                break frame;
            }
            assert!(socket.read_buf(&mut buf).await.unwrap() > 0, "closed before SETUP");
        };
        let Frame::Setup(setup) = setup else { panic!("not SETUP: {setup:?}") };
        assert_eq!(setup.data_mime, "application/octet-stream");
        assert_eq!(setup.data_mime, BytesCodec::MIME);

        // And it is served: every model's call, by the real server.
        let (server, calls) = server();
        let running = server.bind("127.0.0.1:0").await.unwrap();
        let client = BlobsClient::connect(running.local_addr()).await.unwrap();
        assert_eq!(client.flip(Bytes::from("abc")).await.unwrap(), "cba");
        let sent = ["x", "y"].map(Bytes::from);
        let echoed: Vec<_> = client.echo(futures_util::stream::iter(sent.clone())).await.unwrap().collect().await;
        assert_eq!(echoed, sent.map(Ok));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        // A protobuf service's generated client announces protobuf.
        assert_eq!(ProstCodec::MIME, weft::DEFAULT_DATA_MIME);
        let lab = LabClient::connect(running.local_addr()).await.unwrap();
        assert_eq!(lab.echo(msg("hi", 1)).await.unwrap(), msg("hi", 1));
        running.shutdown().await;
    };
    tokio::time::timeout(WAIT, run).await.expect("in time");
}

#[tokio::test]
async fn a_generated_client_on_a_connection_of_another_data_mime_fails_its_calls_and_the_server_refuses_them() {
    let protobuf = weft::DEFAULT_DATA_MIME;
    let octets = BytesCodec::MIME;
    for transport in lab::TRANSPORTS {
        let run = async {
            let (server, calls) = server();

            // A protobuf connection: `Blobs` is refused, by the generated client before
            // anything is sent, and by the server for a request that is sent anyway.
            let connected = lab::connect_announcing(server.clone(), transport, protobuf).await;
            let blobs = BlobsClient::new(connected.client.clone());
            refused(&blobs.flip(Bytes::from("abc")).await.unwrap_err(), "`BlobsClient` sends", octets, protobuf);
            let sent = futures_util::stream::iter([Bytes::from("x")]);
            refused(&blobs.echo(sent).await.unwrap_err(), "`BlobsClient` sends", octets, protobuf);
            let raw = &connected.client;
            let status = raw.request_response(Call::new("mime.Blobs/Flip"), Bytes::from("abc")).await.unwrap_err();
            refused(&status, "`mime.Blobs/Flip` reads", octets, protobuf);
            let one = futures_util::stream::iter([Payload::new("x")]);
            let mut echo = raw.request_channel(Call::new("mime.Blobs/Echo"), one).await.unwrap();
            let status = echo.next().await.expect("an answer").unwrap_err();
            refused(&status, "`mime.Blobs/Echo` reads", octets, protobuf);
            assert_eq!(calls.load(Ordering::Relaxed), 0, "{transport:?}: no call reached the service");
            // The connection goes on: the lab, and the hand-written handler.
            let lab = LabClient::new(raw.clone());
            assert_eq!(lab.echo(msg("still", 2)).await.unwrap(), msg("still", 2), "{transport:?}");
            let echoed = raw.request_response(Call::new("mime.Raw/Echo"), Bytes::from("any")).await.unwrap();
            assert_eq!(echoed.data, "any", "{transport:?}");
            connected.shutdown().await;

            // And the other way round.
            let connected = lab::connect_announcing(server, transport, octets).await;
            let lab = LabClient::new(connected.client.clone());
            refused(&lab.echo(msg("hi", 1)).await.unwrap_err(), "`LabClient` sends", protobuf, octets);
            let status =
                connected.client.request_response(Call::new("weft.test.Lab/Echo"), Bytes::new()).await.unwrap_err();
            refused(&status, "`weft.test.Lab/Echo` reads", protobuf, octets);
            let blobs = BlobsClient::new(connected.client.clone());
            assert_eq!(blobs.flip(Bytes::from("ab")).await.unwrap(), "ba", "{transport:?}");
            assert_eq!(calls.load(Ordering::Relaxed), 1, "{transport:?}");
            connected.shutdown().await;
        };
        tokio::time::timeout(WAIT, run).await.unwrap_or_else(|_| panic!("timed out over {transport:?}"));
    }
}

#[tokio::test]
async fn protobuf_aliases_case_and_parameters_are_the_same_data_mime() {
    for announced in ["application/x-protobuf", "application/protobuf", "Application/Vnd.Google.Protobuf; x=1"] {
        let run = async {
            let (server, _) = server();
            let connected = lab::connect_announcing(server, Transport::Memory, announced).await;
            let lab = LabClient::new(connected.client.clone());
            assert_eq!(lab.echo(msg("alias", 3)).await.unwrap(), msg("alias", 3), "{announced}");
            // Through the server's check alone.
            let encoded = Bytes::from(prost::Message::encode_to_vec(&msg("raw", 4)));
            let answer = connected.client.request_response(Call::new("weft.test.Lab/Echo"), encoded.clone()).await;
            assert_eq!(answer.map(|p| p.data), Ok(encoded), "{announced}");
        };
        tokio::time::timeout(WAIT, run).await.expect("in time");
    }
}

#[tokio::test]
async fn connect_in_memory_announces_the_servers_data_mime() {
    let run = async {
        let flipper = Flipper::default();
        let server = Server::builder().add_service(BlobsServer::new(flipper)).build();
        let blobs = BlobsClient::new(server.connect_in_memory().await.unwrap());
        assert_eq!(blobs.flip(Bytes::from("12")).await.unwrap(), "21");
        let (lab, _events) = lab::server();
        let lab = LabClient::new(lab.connect_in_memory().await.unwrap());
        assert_eq!(lab.echo(msg("pb", 0)).await.unwrap(), msg("pb", 0));
    };
    tokio::time::timeout(WAIT, run).await.expect("in time");
}

/// Writes `frames`, each behind its length prefix.
async fn send(peer: &mut tokio::io::DuplexStream, frames: &[Frame]) {
    let mut wire = BytesMut::new();
    for frame in frames {
        length::encode_frame(frame, &mut wire);
    }
    peer.write_all(&wire).await.unwrap();
}

/// Reads the next frame.
async fn next_frame(peer: &mut tokio::io::DuplexStream, buf: &mut BytesMut) -> Frame {
    let framing = LengthDelimited::new(1 << 16);
    loop {
        if let Some(frame) = framing.decode_frame(buf).unwrap() {
            return frame;
        }
        assert!(peer.read_buf(buf).await.unwrap() > 0, "closed");
    }
}

fn request(stream_id: u32, route: &str, data: &'static [u8]) -> Frame {
    let metadata = CompositeMetadata::with_route(route).unwrap().to_bytes();
    let payload = weft::frame::Payload { metadata: Some(metadata), data: Bytes::from_static(data) };
    Frame::RequestResponse(Request { stream_id, follows: false, payload })
}

#[tokio::test]
async fn a_peer_announcing_a_foreign_data_mime_gets_an_error_per_typed_call_and_keeps_its_connection() {
    let run = async {
        let (server, calls) = server();
        let (mut peer, server_end) = tokio::io::duplex(1 << 16);
        let serving = tokio::spawn(async move { server.serve_connection(server_end).await });
        let setup = Setup {
            version: VERSION,
            keepalive_interval: 10_000,
            max_lifetime: 60_000,
            resume_token: None,
            lease: false,
            metadata_mime: COMPOSITE_METADATA_MIME.into(),
            data_mime: "application/json".into(),
            payload: Default::default(),
        };
        // Both typed services refuse; the hand-written handler answers; in that order.
        let frames = [
            Frame::Setup(setup),
            request(1, "mime.Blobs/Flip", b"abc"),
            request(3, "weft.test.Lab/Echo", b""),
            request(5, "mime.Raw/Echo", b"{}"),
        ];
        send(&mut peer, &frames).await;
        let mut buf = BytesMut::new();
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(next_frame(&mut peer, &mut buf).await);
        }
        answers.sort_by_key(Frame::stream_id);
        for (frame, codec) in answers[..2].iter().zip([BytesCodec::MIME, ProstCodec::MIME]) {
            let Frame::Error(error) = frame else { panic!("not ERROR: {frame:?}") };
            assert_eq!(error.code, ErrorCode::APPLICATION_ERROR, "{error:?}");
            let status = Status::from_wire(&error.message());
            refused(&status, "reads", codec, "application/json");
        }
        let Frame::Payload(answer) = &answers[2] else { panic!("not PAYLOAD: {:?}", answers[2]) };
        assert_eq!((answer.stream_id, &answer.payload.data[..]), (5, &b"{}"[..]));
        // The same route again: the refusal is remembered, not re-decided into another answer.
        send(&mut peer, &[request(7, "mime.Blobs/Flip", b"abc")]).await;
        let again = next_frame(&mut peer, &mut buf).await;
        assert!(matches!(&again, Frame::Error(e) if e.stream_id == 7), "{again:?}");
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        drop(peer);
        serving.await.unwrap();
    };
    tokio::time::timeout(WAIT, run).await.expect("in time");
}
