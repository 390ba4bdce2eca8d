//! Each rule of Protocol.md on unexpected, malformed and out-of-order frames, tested by its
//! sentence (quoted in the test's doc), as the connection meets it: bytes decoded as the driver
//! decodes them, then handed to the connection as a frame or as a decode error. The verdicts
//! live in one place, [`super::rules`].

use super::tests::{Pair, b, events, next, request_n, request_stream, server_fed, setup, stream_pair, transmitted};
use super::*;
use crate::frame::flags::{IGNORE, METADATA};
use crate::frame::{Ext, Lease, MetadataPush, Request};

/// Hands `bytes` (one frame, without a length prefix) to `conn` as the driver does.
fn feed(conn: &mut Connection, bytes: &[u8], now: Instant) {
    match Frame::decode(Bytes::copy_from_slice(bytes)) {
        Ok(frame) => conn.handle_frame(frame, now),
        Err(e) => conn.handle_decode_error(&e, now),
    }
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    buf.to_vec()
}

/// `frame`'s bytes with stream id `id`.
fn on_stream(frame: &Frame, id: u32) -> Vec<u8> {
    let mut bytes = encode(frame);
    bytes[..4].copy_from_slice(&id.to_be_bytes());
    bytes
}

/// `bytes` with the (I)gnore flag set.
fn with_ignore(mut bytes: Vec<u8>) -> Vec<u8> {
    let word = u16::from_be_bytes([bytes[4], bytes[5]]) | IGNORE;
    bytes[4..6].copy_from_slice(&word.to_be_bytes());
    bytes
}

/// A server with a live request/stream 1 (the client's), and nothing left to read.
fn server_with_stream() -> (Connection, Instant) {
    server_fed([request_stream(1, 5)])
}

/// Asserts that `conn` sent nothing, told nothing and is open, with stream `live` still there.
#[track_caller]
fn untouched(conn: &mut Connection, live: u32, what: &str) {
    assert_eq!(transmitted(conn), vec![], "{what}: nothing is sent");
    assert_eq!(events(conn), vec![], "{what}: nothing happens");
    assert!(!conn.is_closed() && conn.contains(live), "{what}: the connection and stream {live} carry on");
}

/// Asserts that `conn` answered with ERROR[`code`] on stream 0 and closed.
#[track_caller]
fn closed_with(conn: &mut Connection, code: ErrorCode, what: &str) {
    let out = transmitted(conn);
    assert!(
        matches!(out.last(), Some(Frame::Error(ErrorFrame { stream_id: 0, code: c, .. })) if *c == code),
        "{what}: expected ERROR[{}] on stream 0, got {out:?}",
        code.name().unwrap_or("?")
    );
    assert!(conn.is_closed(), "{what}: the connection closes");
}

fn cancel(id: u32) -> Frame {
    Frame::Cancel(Cancel { stream_id: id })
}

fn payload(id: u32, data: &str) -> Frame {
    Frame::Payload(PayloadFrame {
        stream_id: id,
        follows: false,
        complete: false,
        next: true,
        payload: frame::Payload::data(b(data)),
    })
}

/// "Receiving a CANCEL on an unknown Stream ID (including 0) MUST be ignored."
#[test]
fn a_cancel_on_an_unknown_stream_including_0_is_ignored() {
    let (mut server, now) = server_with_stream();
    feed(&mut server, &on_stream(&cancel(1), 0), now);
    feed(&mut server, &encode(&cancel(77)), now);
    untouched(&mut server, 1, "CANCEL on streams 0 and 77");
}

/// "Receiving a PAYLOAD on an unknown Stream ID (including 0) MUST be ignored."
#[test]
fn a_payload_on_an_unknown_stream_including_0_is_ignored() {
    let (mut server, now) = server_with_stream();
    feed(&mut server, &on_stream(&payload(1, "x"), 0), now);
    feed(&mut server, &encode(&payload(77, "x")), now);
    untouched(&mut server, 1, "PAYLOAD on streams 0 and 77");
}

/// "All other received frames that are not accounted for in previous sections MUST be
/// ignored": REQUEST_N and requests on stream 0, which is never a stream.
#[test]
fn request_n_and_requests_on_stream_0_are_ignored() {
    let (mut server, now) = server_with_stream();
    feed(&mut server, &on_stream(&request_n(1, 5), 0), now);
    feed(&mut server, &on_stream(&request_stream(1, 5), 0), now);
    let fnf = Frame::RequestFnf(Request { stream_id: 1, follows: false, payload: Default::default() });
    feed(&mut server, &on_stream(&fnf, 0), now);
    untouched(&mut server, 1, "REQUEST_N, REQUEST_STREAM and REQUEST_FNF on stream 0");
}

/// "Receiving an ERROR on an unknown Stream ID MUST be ignored."
#[test]
fn an_error_on_an_unknown_stream_is_ignored() {
    let (mut server, now) = server_with_stream();
    let error = Frame::Error(ErrorFrame { stream_id: 77, code: ErrorCode::APPLICATION_ERROR, data: b("x") });
    feed(&mut server, &encode(&error), now);
    untouched(&mut server, 1, "ERROR on stream 77");
}

/// "Receiving a METADATA_PUSH with a non-0 Stream ID MUST be ignored." (and KEEPALIVE and
/// LEASE, connection frames likewise, are "not accounted for")
#[test]
fn a_metadata_push_on_a_non_zero_stream_is_ignored() {
    let (mut server, now) = server_with_stream();
    feed(&mut server, &on_stream(&Frame::MetadataPush(MetadataPush { metadata: b("m") }), 1), now);
    let keepalive = Frame::Keepalive(Keepalive { respond: true, last_received_position: 0, data: Bytes::new() });
    feed(&mut server, &on_stream(&keepalive, 1), now);
    feed(&mut server, &on_stream(&Frame::Lease(Lease { ttl: 1, number_of_requests: 1, metadata: None }), 1), now);
    untouched(&mut server, 1, "METADATA_PUSH, KEEPALIVE and LEASE on stream 1");
}

/// "Any other frame received that is NOT a SETUP|RESUME frame or a SETUP|RESUME frame with a
/// Stream ID > 0, MUST cause the server to send an ERROR[INVALID_SETUP] and close the
/// connection."
#[test]
fn before_setup_anything_but_setup_or_resume_on_stream_0_is_invalid_setup() {
    let now = Instant::now();
    let ext = Frame::Ext(Ext { stream_id: 0, ignore: true, metadata: false, extended_type: 9, body: Bytes::new() });
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("SETUP on stream 1", on_stream(&setup(|_| {}), 1)),
        ("a request", encode(&request_stream(1, 1))),
        (
            "KEEPALIVE",
            encode(&Frame::Keepalive(Keepalive { respond: true, last_received_position: 0, data: Bytes::new() })),
        ),
        ("a SETUP cut short", encode(&setup(|_| {}))[..10].to_vec()),
        ("a frame of an unknown type, even with (I)", vec![0, 0, 0, 0, 0x7e, 0]),
        ("an EXT with (I)", encode(&ext)),
        ("a header cut short", vec![0, 0, 0]),
    ];
    for (what, bytes) in cases {
        let mut server = Connection::server(Config::default(), ServerSettings::default(), now);
        feed(&mut server, &bytes, now);
        closed_with(&mut server, ErrorCode::INVALID_SETUP, what);
    }
}

/// "A server MUST ignore a SETUP frame after it has accepted a previous SETUP." The issue adds:
/// also when it is malformed.
#[test]
fn a_second_setup_is_ignored_even_when_malformed() {
    let (mut server, now) = server_with_stream();
    let setup_bytes = encode(&setup(|_| {}));
    feed(&mut server, &setup_bytes, now);
    feed(&mut server, &setup_bytes[..12], now);
    feed(&mut server, &on_stream(&setup(|_| {}), 3), now);
    feed(&mut server, &encode(&setup(|s| s.version = frame::Version { major: 9, minor: 9 })), now);
    untouched(&mut server, 1, "SETUP again, cut short, on stream 3, of another version");
}

/// "A client MUST ignore a SETUP frame."
#[test]
fn a_client_ignores_setup() {
    let (mut p, id) = stream_pair(Config::default());
    let now = p.now;
    feed(&mut p.client, &encode(&setup(|_| {})), now);
    feed(&mut p.client, &encode(&setup(|_| {}))[..9], now);
    untouched(&mut p.client, id, "SETUP sent to a client");
}

/// "Receiving a Request frame on a Stream ID that is already in use MUST be ignored." Checked
/// before the parity rule: a request on one of this side's own ids that is in use is ignored.
#[test]
fn a_request_on_a_stream_id_in_use_is_ignored_before_its_parity_is_checked() {
    let mut p = Pair::default();
    let own = p.server.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    events(&mut p.client);
    let now = p.now;
    feed(&mut p.server, &encode(&request_stream(own, 3)), now);
    untouched(&mut p.server, own, "a request on the server's own stream, in use");
    // An id of this side's that is not in use breaks the parity rule: a connection error.
    feed(&mut p.server, &encode(&request_stream(own + 2, 3)), now);
    closed_with(&mut p.server, ErrorCode::CONNECTION_ERROR, "a request on an even id");
}

/// "A server MUST ignore an ERROR[INVALID_SETUP|UNSUPPORTED_SETUP|REJECTED_SETUP|REJECTED_RESUME]
/// frame." On any stream.
#[test]
fn a_server_ignores_setup_errors_on_any_stream() {
    for code in
        [ErrorCode::INVALID_SETUP, ErrorCode::UNSUPPORTED_SETUP, ErrorCode::REJECTED_SETUP, ErrorCode::REJECTED_RESUME]
    {
        let (mut server, now) = server_with_stream();
        for stream_id in [0, 1] {
            feed(&mut server, &encode(&Frame::Error(ErrorFrame { stream_id, code, data: b("x") })), now);
        }
        untouched(&mut server, 1, code.name().unwrap());
    }
}

/// "A client MUST ignore an ERROR[INVALID_SETUP|UNSUPPORTED_SETUP|REJECTED_SETUP|REJECTED_RESUME]
/// frame after it has completed connection establishment." Before it, one closes it: "A
/// client assumes a SETUP is rejected if it receives an ERROR."
#[test]
fn a_client_ignores_setup_errors_after_establishment_only() {
    let (mut p, id) = stream_pair(Config::default());
    p.server.send_next(id, Bytes::new(), b("hello"), false).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![next(id, "hello")]);
    let now = p.now;
    for stream_id in [0, id] {
        let error = Frame::Error(ErrorFrame { stream_id, code: ErrorCode::REJECTED_SETUP, data: b("late") });
        feed(&mut p.client, &encode(&error), now);
    }
    untouched(&mut p.client, id, "REJECTED_SETUP after the server answered");
    // A client whose SETUP has had no answer yet takes it as the rejection it is.
    let mut client = Connection::client(Config::default(), ClientSettings::default(), now);
    transmitted(&mut client);
    let error = Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::REJECTED_SETUP, data: b("no") });
    feed(&mut client, &encode(&error), now);
    assert!(client.is_closed());
}

/// "The (I)gnore flag is used for extension of the protocol. A value of 0 in a frame for this
/// flag indicates the protocol can't ignore this frame": so a frame with it set that cannot be
/// read is ignored, whatever its type; the same frame without it has its usual verdict.
#[test]
fn a_frame_with_the_ignore_flag_that_cannot_be_read_is_ignored_whatever_its_type() {
    let keepalive = Frame::Keepalive(Keepalive { respond: true, last_received_position: 0, data: Bytes::new() });
    let error = Frame::Error(ErrorFrame { stream_id: 1, code: ErrorCode::APPLICATION_ERROR, data: Bytes::new() });
    let frames = [
        (encode(&request_stream(3, 1))[..8].to_vec(), "a REQUEST_STREAM cut inside initial n"),
        (encode(&request_n(1, 1))[..8].to_vec(), "a REQUEST_N cut short"),
        (encode(&keepalive)[..8].to_vec(), "a KEEPALIVE cut short"),
        (encode(&error)[..8].to_vec(), "an ERROR cut short"),
        (vec![0, 0, 0, 0, 0x7c, 0], "an unknown frame type"),
    ];
    for (bytes, what) in frames {
        let (mut server, now) = server_with_stream();
        feed(&mut server, &with_ignore(bytes.clone()), now);
        untouched(&mut server, 1, what);
        // Without (I), each has its verdict: something happens.
        let (mut server, now) = server_with_stream();
        feed(&mut server, &bytes, now);
        assert!(!transmitted(&mut server).is_empty() || !events(&mut server).is_empty(), "{what} without (I)");
    }
}

/// EXT: "Depends on Extended Type": its body is opaque, so no body makes it malformed; and an
/// EXT is not understood, which an implementation "MAY" answer with CONNECTION_ERROR without
/// (I). Weft ignores it either way.
#[test]
fn an_ext_body_is_opaque_and_the_frame_ignored() {
    let (mut server, now) = server_with_stream();
    for ignore in [false, true] {
        let ext = Frame::Ext(Ext {
            stream_id: 1,
            ignore,
            metadata: true,
            extended_type: 7,
            body: Bytes::from_static(&[0xff, 0xff, 0xff, 1]),
        });
        feed(&mut server, &encode(&ext), now);
    }
    untouched(&mut server, 1, "EXT with a body that is no metadata layout");
}

/// "If Metadata Length is not equal to this value, the frame is invalid and the receiver MUST
/// send an ERROR[CONNECTION_ERROR] frame and close the underlying transport connection on
/// reception unless the frame's IGNORE flag is set."
#[test]
fn a_metadata_length_that_overruns_its_frame_is_a_connection_error_unless_ignore_is_set() {
    // A PAYLOAD on live stream 1 with (M), declaring 256 bytes of metadata with 4 left.
    let bad = {
        let mut bytes = on_stream(&payload(1, "abcd"), 1);
        let word = u16::from_be_bytes([bytes[4], bytes[5]]) | METADATA;
        bytes[4..6].copy_from_slice(&word.to_be_bytes());
        bytes.splice(6..6, [0, 1, 0]);
        bytes
    };
    let (mut server, now) = server_with_stream();
    feed(&mut server, &with_ignore(bad.clone()), now);
    untouched(&mut server, 1, "with (I)");
    feed(&mut server, &bad, now);
    closed_with(&mut server, ErrorCode::CONNECTION_ERROR, "without (I)");
}

/// CONNECTION_CLOSE: "Sender or Receiver of this frame MUST wait for outstanding streams to
/// terminate before closing the connection. New requests MAY not be accepted."
#[test]
fn connection_close_waits_for_outstanding_streams_on_both_sides() {
    let (mut p, id) = stream_pair(Config::default());
    // The sender says so at once...
    p.server.close(true);
    p.pump();
    assert!(
        matches!(
            p.to_client.last(),
            Some(Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_CLOSE, .. }))
        ),
        "{:?}",
        p.to_client
    );
    // ...and both sides carry the stream on, refusing new ones.
    assert!(!p.server.is_closed() && !p.client.is_closed());
    assert_eq!(p.client.open(Kind::RequestResponse, Bytes::new(), Bytes::new(), false), Err(CommandError::Closed));
    p.server.send_next(id, Bytes::new(), b("a"), false).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![next(id, "a")]);
    p.server.send_next(id, Bytes::new(), b("b"), true).unwrap();
    assert!(p.server.is_closed(), "the sender closes once its last stream ended");
    assert_eq!(events(&mut p.server), vec![Event::Closed(CloseReason::Local)]);
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![next(id, "b"), Event::Complete { stream_id: id }, Event::Closed(CloseReason::PeerClosed)]
    );
    // No further CONNECTION_CLOSE: it went when the close began.
    assert_eq!(p.to_client.iter().filter(|f| matches!(f, Frame::Error(_))).count(), 1);
}

/// The same rule, for the one who cuts: a grace period that ran out (or a close that does not
/// wait) ends live streams without their end, which is a CONNECTION_ERROR; with none live, the
/// close is a CONNECTION_CLOSE.
#[test]
fn cutting_live_streams_is_a_connection_error_and_closing_with_none_a_connection_close() {
    let (mut server, _) = server_with_stream();
    server.close(true);
    server.close(false);
    let out = transmitted(&mut server);
    assert!(
        matches!(
            &out[..],
            [
                Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_CLOSE, .. }),
                Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_ERROR, .. }),
            ]
        ),
        "{out:?}"
    );
    assert_eq!(events(&mut server), vec![Event::Closed(CloseReason::Local)]);
    let (mut idle, _) = server_fed([]);
    idle.close(false);
    closed_with(&mut idle, ErrorCode::CONNECTION_CLOSE, "a close with no stream live");
}

/// "The protocol implementation MUST NOT interpret the MIME type itself. This is an application
/// concern only." A SETUP for any metadata MIME type, ASCII or not, is accepted by the
/// connection; the layer above may refuse it with `reject_setup`, and then nothing after the
/// SETUP is acted on.
#[test]
fn the_connection_does_not_interpret_mime_types() {
    for mime in ["application/json", "MESSAGE/X.RSOCKET.COMPOSITE-METADATA.V0", "text/\u{e9}"] {
        let now = Instant::now();
        let mut server = Connection::server(Config::default(), ServerSettings::default(), now);
        feed(&mut server, &encode(&setup(|s| s.metadata_mime = mime.into())), now);
        feed(&mut server, &encode(&request_stream(1, 1)), now);
        assert!(matches!(server.poll_event(), Some(Event::SetupAccepted(s)) if s.metadata_mime == mime), "{mime}");
        server.reject_setup(ErrorCode::UNSUPPORTED_SETUP, "not that one");
        assert_eq!(events(&mut server).len(), 1, "{mime}: only Closed, not the request");
        closed_with(&mut server, ErrorCode::UNSUPPORTED_SETUP, mime);
    }
}

/// "Frames with Stream ID 0 SHOULD have a higher priority (this is implementation specific),
/// since all those frames may impact the performance of the system." A KEEPALIVE answer goes
/// ahead of stream frames already queued, behind SETUP.
#[test]
fn frames_on_stream_0_go_ahead_of_queued_stream_frames() {
    let (mut server, now) = server_with_stream();
    for i in 0..3 {
        server.send_next(1, Bytes::new(), b(&i.to_string()), false).unwrap();
    }
    let keepalive = Frame::Keepalive(Keepalive { respond: true, last_received_position: 0, data: b("k") });
    feed(&mut server, &encode(&keepalive), now);
    let out = transmitted(&mut server);
    assert!(matches!(&out[0], Frame::Keepalive(k) if !k.respond && k.data == b("k")), "{out:?}");
    assert_eq!(out.len(), 4);
    // A client's own KEEPALIVE never goes ahead of its SETUP.
    let mut client = Connection::client(
        Config::default(),
        ClientSettings::default().keepalive(Duration::from_millis(10), Duration::from_secs(5)),
        now,
    );
    client.open(Kind::RequestResponse, Bytes::new(), Bytes::new(), false).unwrap();
    client.handle_timeout(now + Duration::from_millis(10));
    let out = transmitted(&mut client);
    assert!(matches!(&out[..], [Frame::Setup(_), Frame::Keepalive(_), Frame::RequestResponse(_)]), "{out:?}");
}
