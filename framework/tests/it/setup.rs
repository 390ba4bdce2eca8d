//! The server's side of what the protocol leaves to it, over TCP: which SETUPs it accepts
//! (the connection does not interpret MIME types; the server compares them without regard to
//! case), and how leniently it reads a request's metadata (an entry or a routing tag it cannot
//! read is skipped, never fatal to the request).

use crate::peer::{self, Peer};
use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;
use weft::frame::metadata::COMPOSITE_METADATA_MIME;
use weft::frame::{ErrorCode, ErrorFrame, Frame, Payload as WirePayload, Request};
use weft::{Call, Handler, Payload, Response, Server};

/// Answers with the route it was called as.
struct Route;

impl Handler for Route {
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        Response::ready(Ok(Payload::new(call.route().to_owned())))
    }
}

async fn server() -> weft::RunningServer {
    Server::builder().add_handler(&["s.S/A", "s.S/B"], Route).build().bind("127.0.0.1:0").await.unwrap()
}

fn request(id: u32, metadata: Bytes) -> Frame {
    Frame::RequestResponse(Request {
        stream_id: id,
        follows: false,
        payload: WirePayload { metadata: Some(metadata), data: Bytes::new() },
    })
}

#[tokio::test]
async fn setup_mime_types_are_compared_without_regard_to_case_and_others_refused() {
    let run = async {
        let running = server().await;
        let Frame::Setup(setup) = peer::setup_frame() else { unreachable!() };
        // The same type in capitals: accepted, and served.
        let mut peer = Peer::connect(running.local_addr()).await;
        let upper = COMPOSITE_METADATA_MIME.to_ascii_uppercase();
        peer.send(&Frame::Setup(weft::frame::Setup { metadata_mime: upper, ..setup.clone() })).await;
        peer.send(&request(1, peer::route("s.S/A"))).await;
        assert!(matches!(peer.frame().await, Frame::Payload(p) if p.payload.data == "s.S/A"));
        // Another type, or one that is not ASCII: refused with UNSUPPORTED_SETUP, and nothing
        // sent after the SETUP is acted on.
        for mime in ["application/json", "message/x.rsocket.composite-metadata.v0\u{e9}"] {
            let mut peer = Peer::connect(running.local_addr()).await;
            peer.send(&Frame::Setup(weft::frame::Setup { metadata_mime: mime.into(), ..setup.clone() })).await;
            peer.send(&request(1, peer::route("s.S/A"))).await;
            let frames = peer.until_closed().await;
            assert!(
                matches!(&frames[..], [Frame::Error(e @ ErrorFrame { stream_id: 0, code: ErrorCode::UNSUPPORTED_SETUP, .. })] if e.message().contains(mime)),
                "{mime}: {frames:?}"
            );
        }
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}

/// One composite metadata entry: a written-out MIME type (its length - 1, then its bytes),
/// or a well-known id, then the content's 24-bit length and the content.
fn entry(out: &mut BytesMut, mime: Result<&[u8], u8>, content: &[u8]) {
    match mime {
        Ok(name) => {
            out.put_u8(name.len() as u8 - 1);
            out.put_slice(name);
        }
        Err(id) => out.put_u8(0x80 | id),
    }
    out.put_slice(&(content.len() as u32).to_be_bytes()[1..]);
    out.put_slice(content);
}

/// A composite entry for [`entry`]: its MIME type (written out, or a well-known id) and content.
type Entry<'a> = (Result<&'a [u8], u8>, &'a [u8]);

/// The routing extension's well-known id.
const ROUTING: u8 = 0x7E;

#[tokio::test]
async fn entries_and_routing_tags_the_server_cannot_read_are_skipped() {
    let run = async {
        let running = server().await;
        let mut peer = Peer::setup(running.local_addr()).await;
        let cases: [(&str, Vec<Entry<'_>>, Option<&str>); 5] = [
            // An entry whose MIME type is not ASCII, before the route.
            (
                "a MIME type that is not ASCII",
                vec![(Ok("t\u{e9}xt/x".as_bytes()), b"?"), (Err(ROUTING), b"\x05s.S/A")],
                Some("s.S/A"),
            ),
            // An unknown well-known id and an unknown type, around the route.
            (
                "unknown entries",
                vec![(Err(0x70), b"x"), (Err(ROUTING), b"\x05s.S/B"), (Ok(b"x/unknown"), b"y")],
                Some("s.S/B"),
            ),
            // A routing entry whose first tag is not UTF-8, then a readable one.
            (
                "a route that is not UTF-8",
                vec![(Err(ROUTING), b"\x02\xc3\x28"), (Err(ROUTING), b"\x05s.S/A")],
                Some("s.S/A"),
            ),
            // A later tag that cannot be read does not matter: only the first names the route.
            ("a later tag cut short", vec![(Err(ROUTING), b"\x05s.S/B\x09x")], Some("s.S/B")),
            // No readable route at all: UNIMPLEMENTED for that request, the connection goes on.
            ("no readable route", vec![(Err(ROUTING), b"\x09s.S")], None),
        ];
        for (i, (what, entries, route)) in cases.into_iter().enumerate() {
            let mut metadata = BytesMut::new();
            for (mime, content) in entries {
                entry(&mut metadata, mime, content);
            }
            let id = 2 * i as u32 + 1;
            peer.send(&request(id, metadata.freeze())).await;
            let answer = peer.frame().await;
            match route {
                Some(route) => assert!(
                    matches!(&answer, Frame::Payload(p) if p.stream_id == id && p.payload.data == route),
                    "{what}: {answer:?}"
                ),
                None => assert!(
                    matches!(&answer, Frame::Error(e) if e.stream_id == id && e.message().contains("UNIMPLEMENTED")),
                    "{what}: {answer:?}"
                ),
            }
        }
        running.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("in time");
}
