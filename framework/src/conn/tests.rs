//! Protocol stories: a client and a server connection wired together in memory, with time
//! simulated. Every frame crosses through the real codec (encode, then decode), so what is
//! tested is what would cross a socket.

use super::*;
use crate::frame::{DecodeErrorKind, Ext, Lease, MetadataPush, Request, Version};

const T0_OFFSET: Duration = Duration::from_secs(1000);

pub(super) struct Pair {
    pub(super) client: Connection,
    pub(super) server: Connection,
    pub(super) now: Instant,
    /// Frames each side wrote, in order, for assertions.
    pub(super) to_server: Vec<Frame>,
    pub(super) to_client: Vec<Frame>,
}

pub(super) fn wire(frame: &Frame) -> Frame {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    assert_eq!(buf.len(), frame.encoded_len());
    Frame::decode(buf.freeze()).expect("a frame we encoded decodes")
}

impl Pair {
    pub(super) fn new(client: Config, server: Config) -> Pair {
        Pair::with_settings(client, ClientSettings::default(), server, ServerSettings::default())
    }

    /// A pair with each side's own settings too.
    pub(super) fn with_settings(
        client: Config,
        client_settings: ClientSettings,
        server: Config,
        server_settings: ServerSettings,
    ) -> Pair {
        let now = Instant::now() + T0_OFFSET;
        let mut pair = Pair {
            client: Connection::client(client, client_settings, now),
            server: Connection::server(server, server_settings, now),
            now,
            to_server: Vec::new(),
            to_client: Vec::new(),
        };
        pair.pump();
        assert!(matches!(pair.server.poll_event(), Some(Event::SetupAccepted(_))));
        pair
    }

    pub(super) fn default() -> Pair {
        Pair::new(Config::default(), Config::default())
    }

    /// Moves frames both ways until neither side has anything to send.
    pub(super) fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(f) = self.client.poll_transmit() {
                self.to_server.push(f.clone());
                self.server.handle_frame(wire(&f), self.now);
                moved = true;
            }
            while let Some(f) = self.server.poll_transmit() {
                self.to_client.push(f.clone());
                self.client.handle_frame(wire(&f), self.now);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the connections never went quiet");
    }

    /// Opens a request/stream from the client that the server has accepted; its id.
    pub(super) fn open_stream(&mut self) -> u32 {
        let id = self.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
        self.pump();
        events(&mut self.server);
        id
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }
}

pub(super) fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

pub(super) fn transmitted(conn: &mut Connection) -> Vec<Frame> {
    std::iter::from_fn(|| conn.poll_transmit()).collect()
}

pub(super) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(super) fn next(stream_id: u32, data: &str) -> Event {
    Event::Next { stream_id, metadata: Bytes::new(), data: b(data) }
}

fn message(stream_id: u32, data: &str) -> Message {
    Message { stream_id, metadata: Bytes::new(), data: b(data), last: false }
}

#[test]
fn request_response_both_ways_and_ids_by_side() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::RequestResponse, b("md"), b("ping"), false).unwrap();
    assert_eq!(id, 1);
    p.pump();
    assert_eq!(
        events(&mut p.server),
        vec![Event::Request {
            stream_id: 1,
            kind: Kind::RequestResponse,
            metadata: b("md"),
            data: b("ping"),
            complete: false,
            initial_n: 0
        }]
    );
    p.server.send_next(1, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    // An empty answer still carries N and C.
    assert!(matches!(p.to_client.last(), Some(Frame::Payload(PayloadFrame { next: true, complete: true, .. }))));
    assert_eq!(events(&mut p.client), vec![next(1, ""), Event::Complete { stream_id: 1 }]);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));

    // The server requests too, on even ids.
    let id = p.server.open(Kind::RequestResponse, Bytes::new(), b("back"), false).unwrap();
    assert_eq!(id, 2);
    assert_eq!(p.client.open(Kind::RequestResponse, Bytes::new(), Bytes::new(), false).unwrap(), 3);
    p.pump();
    let got = events(&mut p.client);
    assert!(matches!(got[0], Event::Request { stream_id: 2, .. }), "{got:?}");
}

#[test]
fn request_response_payload_without_complete_or_next_still_answers() {
    for (n, c) in [(true, false), (false, true)] {
        let mut p = Pair::default();
        let id = p.client.open(Kind::RequestResponse, Bytes::new(), Bytes::new(), false).unwrap();
        p.pump();
        events(&mut p.server);
        let reply = Frame::Payload(PayloadFrame {
            stream_id: id,
            follows: false,
            complete: c,
            next: n,
            payload: frame::Payload::data(b("")),
        });
        p.client.handle_frame(reply, p.now);
        assert_eq!(events(&mut p.client), vec![next(id, ""), Event::Complete { stream_id: id }]);
        assert_eq!(p.client.stream_count(), 0);
    }
}

#[test]
fn fire_and_forget_keeps_no_state() {
    let mut p = Pair::default();
    p.client.open(Kind::FireAndForget, Bytes::new(), b("x"), false).unwrap();
    assert_eq!(p.client.stream_count(), 0);
    p.pump();
    assert!(matches!(&events(&mut p.server)[..], [Event::Request { kind: Kind::FireAndForget, .. }]));
    assert_eq!(p.server.stream_count(), 0);
}

#[test]
fn stream_credit_is_never_exceeded_and_is_replenished_in_batches() {
    let mut p = Pair::new(Config::default().inbound_window(4), Config::default());
    let id = p.client.open(Kind::RequestStream, Bytes::new(), b("go"), false).unwrap();
    p.pump();
    assert!(matches!(&events(&mut p.server)[..], [Event::Request { initial_n: 4, .. }]));
    for i in 0..4 {
        p.server.send_next(id, Bytes::new(), b(&i.to_string()), false).unwrap();
    }
    assert_eq!(p.server.send_next(id, Bytes::new(), b("4"), false), Err(CommandError::NoCredit(id)));
    p.pump();
    assert_eq!(events(&mut p.client).len(), 4);
    // One consumed: below the batch (half the window), nothing is granted yet.
    p.client.consumed(id, 1, 1);
    assert!(transmitted(&mut p.client).is_empty());
    p.client.consumed(id, 1, 1);
    p.pump();
    assert_eq!(events(&mut p.server), vec![Event::RequestN { stream_id: id, n: 2 }]);
    assert!(matches!(p.to_server.last(), Some(Frame::RequestN(RequestN { n: 2, .. }))));
    p.server.send_next(id, Bytes::new(), b("4"), false).unwrap();
    p.server.send_next(id, Bytes::new(), b("5"), true).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![next(id, "4"), next(id, "5"), Event::Complete { stream_id: id }]);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

/// A pair whose client (configured with `client`) opened a request/stream the server has
/// accepted; the stream's id.
pub(super) fn stream_pair(client: Config) -> (Pair, u32) {
    let mut p = Pair::new(client, Config::default());
    let id = p.open_stream();
    (p, id)
}

/// Sends `n` messages of `size` bytes on `id` from the server, delivers them and consumes
/// them one by one; returns the credit the client granted back meanwhile.
fn send_and_consume(p: &mut Pair, id: u32, n: u32, size: usize) -> Vec<u32> {
    let data = Bytes::from(vec![7u8; size]);
    for _ in 0..n {
        p.server.send_next(id, Bytes::new(), data.clone(), false).unwrap();
    }
    p.pump();
    assert_eq!(events(&mut p.client).len(), n as usize);
    let start = p.to_server.len();
    for _ in 0..n {
        p.client.consumed(id, 1, size as u64);
    }
    p.pump();
    events(&mut p.server);
    p.to_server[start..]
        .iter()
        .filter_map(|f| match f {
            Frame::RequestN(r) if r.stream_id == id => Some(r.n),
            _ => None,
        })
        .collect()
}

#[test]
fn the_window_grows_for_small_messages_and_shrinks_back_for_large_ones() {
    // Base window 8, growing up to 64 messages within 8 KiB. 16-byte messages count 80 bytes
    // each (with the per-message overhead): 102 fit, so the window doubles while twice it
    // fits: 16, 32, 64.
    let config = Config::default().inbound_window(8).inbound_window_growth(64, 8 * 1024);
    let (mut p, id) = stream_pair(config);
    assert_eq!(p.client.credit_batch(id), 4);
    // Each grant is what was consumed plus what the window grew by.
    assert_eq!(send_and_consume(&mut p, id, 4, 16), [4 + 8]);
    assert_eq!(p.client.credit_batch(id), 8);
    assert_eq!(send_and_consume(&mut p, id, 8, 16), [8 + 16]);
    assert_eq!(send_and_consume(&mut p, id, 16, 16), [16 + 32]);
    assert_eq!(p.client.credit_batch(id), 32);
    // At the maximum: what was consumed, no more.
    assert_eq!(send_and_consume(&mut p, id, 32, 16), [32]);
    // 1 KiB messages: 7 fit in 8 KiB, so the window halves at each grant, granting back
    // what was consumed less what it gives up (nothing, here), down to the base window.
    assert_eq!(send_and_consume(&mut p, id, 32, 1024), [0u32; 0]);
    assert_eq!(p.client.credit_batch(id), 16);
    assert_eq!(send_and_consume(&mut p, id, 16, 1024), [0u32; 0]);
    assert_eq!(send_and_consume(&mut p, id, 8, 1024), [0u32; 0]);
    assert_eq!(p.client.credit_batch(id), 4);
    // The server holds exactly the base window of credit, and no more.
    for i in 0..8 {
        p.server.send_next(id, Bytes::new(), b(&i.to_string()), false).unwrap();
    }
    assert_eq!(p.server.send_next(id, Bytes::new(), b("over"), false), Err(CommandError::NoCredit(id)));
}

#[test]
fn a_fixed_window_never_grows() {
    let (mut p, id) = stream_pair(Config::default().inbound_window(8));
    for _ in 0..4 {
        assert_eq!(send_and_consume(&mut p, id, 4, 1), vec![4]);
    }
    assert_eq!(p.client.credit_batch(id), 4);
}

#[test]
fn plain_messages_can_skip_the_event_queue_without_overtaking_an_event() {
    let (mut p, id) = stream_pair(Config::default().inbound_window(4));
    let frame = |data: &str, complete: bool| PayloadFrame {
        stream_id: id,
        follows: false,
        complete,
        next: true,
        payload: frame::Payload::data(b(data)),
    };
    // Nothing queued: the message comes back to the caller, and is counted against credit.
    assert_eq!(p.client.handle_payload(frame("a", false), p.now), Some(message(id, "a")));
    assert!(events(&mut p.client).is_empty());
    // A completing message is an event; so is anything behind one.
    assert_eq!(p.client.handle_payload(frame("b", false), p.now), Some(message(id, "b")));
    p.client
        .handle_frame(Frame::Keepalive(Keepalive { respond: false, last_received_position: 0, data: b("") }), p.now);
    let other = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.client.handle_frame(
        Frame::Error(ErrorFrame { stream_id: other, code: ErrorCode::APPLICATION_ERROR, data: b("x") }),
        p.now,
    );
    assert_eq!(p.client.handle_payload(frame("c", false), p.now), None);
    assert_eq!(p.client.handle_payload(frame("d", true), p.now), None);
    let got = events(&mut p.client);
    assert!(matches!(got[0], Event::Error { stream_id, .. } if stream_id == other));
    assert_eq!(got[1..], [next(id, "c"), next(id, "d"), Event::Complete { stream_id: id }]);
    // Two messages on a window of two: a third is beyond the credit, whichever way it comes.
    let mut p = Pair::new(Config::default().inbound_window(2), Config::default());
    assert_eq!(p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false), Ok(id), "the same id as before");
    p.pump();
    for data in ["0", "1"] {
        assert!(p.client.handle_payload(frame(data, false), p.now).is_some());
    }
    assert_eq!(p.client.handle_payload(frame("2", false), p.now), None);
    assert!(matches!(&events(&mut p.client)[..], [Event::Error { code: ErrorCode::INVALID, .. }]));
}

#[test]
fn a_run_of_messages_is_held_to_the_credit_and_the_event_order_as_single_messages_are() {
    let (mut p, id) = stream_pair(Config::default().inbound_window(4));
    // Four messages of credit: the run takes four, then leaves the fifth to `handle_frame`,
    // which fails the stream for it.
    let mut run = p.client.receiving(id, p.now).expect("a stream that reads whole messages");
    assert!((0..4).all(|_| run.take(1)));
    assert!(!run.take(1), "beyond the credit");
    let fifth = PayloadFrame {
        stream_id: id,
        follows: false,
        complete: false,
        next: true,
        payload: frame::Payload::data(b("5")),
    };
    assert_eq!(p.client.handle_payload(fifth, p.now), None);
    assert!(
        matches!(&events(&mut p.client)[..], [Event::Error { stream_id, code: ErrorCode::INVALID, .. }] if *stream_id == id)
    );
    assert!(p.client.receiving(id, p.now).is_none(), "the stream is gone");

    // No run behind a queued event, nor on a request/response (its answer ends it).
    let (mut p, id) = stream_pair(Config::default());
    let other = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    let unary = p.client.open(Kind::RequestResponse, Bytes::new(), b("ping"), false).unwrap();
    p.pump();
    assert!(p.client.receiving(unary, p.now).is_none());
    p.client.handle_frame(
        Frame::Error(ErrorFrame { stream_id: other, code: ErrorCode::APPLICATION_ERROR, data: b("x") }),
        p.now,
    );
    assert!(p.client.receiving(id, p.now).is_none(), "an event is waiting");
    events(&mut p.client);
    assert!(p.client.receiving(id, p.now).is_some());
}

#[test]
fn messages_in_place_spend_the_credit_and_keep_to_one_frame_as_finish_message_does() {
    let (mut p, id) = stream_pair(Config::default().inbound_window(3));
    let max_data = p.server.config().effective_fragment_size() - HEADER_SIZE;
    let mut out = BytesMut::new();
    let mut run = p.server.messages_in_place(id).expect("a stream with credit and nothing queued");
    let mut written = Vec::new();
    for data in [&b"a"[..], b"b"] {
        let start = frame::direct::begin_message(&mut out);
        out.extend_from_slice(data);
        assert!(run.finish(start, &mut out, false));
        written.push(start);
    }
    // Too large for one frame: left as it is, for `finish_message` (which fragments it).
    let start = frame::direct::begin_message(&mut out);
    out.resize(start + HEADER_SIZE + max_data + 1, 9);
    assert!(!run.finish(start, &mut out, false));
    assert_eq!(p.server.finish_message(id, start, &mut out, false), Ok(false));
    assert_eq!(out.len(), start, "taken out, to be queued fragmented");
    assert!(p.server.messages_in_place(id).is_none(), "frames are queued ahead");
    // The credit was three: two in place, one fragmented; the next has none.
    transmitted(&mut p.server);
    let mut run = p.server.messages_in_place(id).expect("nothing queued any more");
    let start = frame::direct::begin_message(&mut out);
    out.extend_from_slice(b"c");
    assert!(!run.finish(start, &mut out, false));
    assert_eq!(p.server.finish_message(id, start, &mut out, false), Err(CommandError::NoCredit(id)));
    assert_eq!(out.len(), start);
    // What was written in place is the PAYLOAD frames `send_next` would have sent, with no
    // framing around them (that is the transport's).
    assert_eq!(written, [0, 7]);
    for data in ["a", "b"] {
        let payload = frame::Payload::data(b(data));
        let expected =
            Frame::Payload(PayloadFrame { stream_id: id, follows: false, complete: false, next: true, payload });
        assert_eq!(Frame::decode(out.split_to(7).freeze()), Ok(expected));
    }
    assert!(out.is_empty());
}

#[test]
fn a_message_with_metadata_written_in_place_goes_whole_or_fragmented_with_its_metadata() {
    let (mut p, id) = stream_pair(Config::default());
    let max_data = p.server.config().effective_fragment_size() - HEADER_SIZE;
    // In place: the frame says it carries metadata.
    let mut out = BytesMut::new();
    let start = frame::direct::begin_message(&mut out);
    assert!(frame::direct::put_body(b"md", b"data", &mut out));
    assert_eq!(p.server.finish_message(id, start, &mut out, true), Ok(true));
    let got = Frame::decode(out.freeze()).unwrap();
    let payload = frame::Payload { metadata: Some(b("md")), data: b("data") };
    assert_eq!(
        got,
        Frame::Payload(PayloadFrame { stream_id: id, follows: false, complete: false, next: true, payload })
    );
    // Too large for one frame: taken back out and queued, its metadata still its own.
    let mut out = BytesMut::new();
    let start = frame::direct::begin_message(&mut out);
    let big = vec![5u8; max_data];
    assert!(frame::direct::put_body(b"md", &big, &mut out));
    assert_eq!(p.server.finish_message(id, start, &mut out, true), Ok(false));
    assert!(out.is_empty());
    p.pump();
    let got = events(&mut p.client);
    assert_eq!(got, [Event::Next { stream_id: id, metadata: b("md"), data: Bytes::from(big) }]);
}

#[test]
fn a_request_response_answer_can_skip_the_event_queue_and_ends_the_stream() {
    let answer = |id: u32, follows: bool| PayloadFrame {
        stream_id: id,
        follows,
        complete: !follows,
        next: true,
        payload: frame::Payload { metadata: Some(b("m")), data: b("pong") },
    };
    let mut p = Pair::default();
    let id = p.client.open(Kind::RequestResponse, Bytes::new(), b("ping"), false).unwrap();
    p.pump();
    let got = p.client.handle_payload(answer(id, false), p.now);
    assert_eq!(got, Some(Message { stream_id: id, metadata: b("m"), data: b("pong"), last: true }));
    assert!(events(&mut p.client).is_empty(), "no Complete follows");
    assert!(!p.client.contains(id), "the stream is forgotten");
    assert_eq!(p.client.handle_payload(answer(id, false), p.now), None, "a second answer finds no stream");
    assert!(events(&mut p.client).is_empty());

    // Behind an event, or fragmented, it is an event like any other.
    let id = p.client.open(Kind::RequestResponse, Bytes::new(), b("ping"), false).unwrap();
    let other = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    p.client.handle_frame(
        Frame::Error(ErrorFrame { stream_id: other, code: ErrorCode::APPLICATION_ERROR, data: b("x") }),
        p.now,
    );
    assert_eq!(p.client.handle_payload(answer(id, false), p.now), None);
    let got = events(&mut p.client);
    assert!(matches!(got[0], Event::Error { stream_id, .. } if stream_id == other));
    assert_eq!(
        got[1..],
        [Event::Next { stream_id: id, metadata: b("m"), data: b("pong") }, Event::Complete { stream_id: id }]
    );
    let id = p.client.open(Kind::RequestResponse, Bytes::new(), b("ping"), false).unwrap();
    p.pump();
    assert_eq!(p.client.handle_payload(answer(id, true), p.now), None, "the first fragment");
    assert!(p.client.contains(id), "waits for the rest");
}

#[test]
fn a_request_written_straight_out_is_the_frame_open_would_queue() {
    let kinds = [
        (Kind::RequestResponse, false),
        (Kind::FireAndForget, false),
        (Kind::RequestStream, false),
        (Kind::Channel, false),
        (Kind::Channel, true),
    ];
    let config = Config::default().fragment_size(Some(64));
    for (kind, complete) in kinds {
        let (mut queued, mut direct) =
            (Pair::new(config.clone(), Config::default()), Pair::new(config.clone(), Config::default()));
        for data in [b("ping"), b(&"x".repeat(100))] {
            let id = queued.client.open(kind, b("md"), data.clone(), complete).unwrap();
            let mut expected = BytesMut::new();
            for frame in transmitted(&mut queued.client) {
                frame.encode(&mut expected);
            }
            let mut out = BytesMut::new();
            assert_eq!(direct.client.open_into(kind, b("md"), data.clone(), complete, &mut out), Ok(id));
            for frame in transmitted(&mut direct.client) {
                frame.encode(&mut out);
            }
            assert_eq!(out, expected, "{kind:?}, {} bytes", data.len());
            assert_eq!(direct.client.contains(id), queued.client.contains(id));
        }
    }
    // Behind a queued frame (the answer to a KEEPALIVE), the request is queued too, so the
    // order holds.
    let mut p = Pair::default();
    p.client.handle_frame(Frame::Keepalive(Keepalive { respond: true, last_received_position: 0, data: b("") }), p.now);
    let mut out = BytesMut::new();
    let id = p.client.open_into(Kind::RequestResponse, b("md"), b("ping"), false, &mut out).unwrap();
    assert!(out.is_empty());
    let frames = transmitted(&mut p.client);
    assert!(
        matches!(frames[..], [Frame::Keepalive(_), Frame::RequestResponse(Request { stream_id, .. })] if stream_id == id)
    );
}

#[test]
fn accepts_completion_in_a_separate_payload() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    p.server.send_next(id, Bytes::new(), b("a"), false).unwrap();
    p.server.send_complete(id).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![next(id, "a"), Event::Complete { stream_id: id }]);
    assert!(matches!(p.to_client.last(), Some(Frame::Payload(PayloadFrame { next: false, complete: true, .. }))));
}

#[test]
fn peer_exceeding_credit_fails_only_that_stream() {
    let mut p = Pair::new(Config::default().inbound_window(2), Config::default());
    let a = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    let other = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    events(&mut p.server);
    for i in 0..3 {
        let f = Frame::Payload(PayloadFrame {
            stream_id: a,
            follows: false,
            complete: false,
            next: true,
            payload: frame::Payload::data(b(&i.to_string())),
        });
        p.client.handle_frame(f, p.now);
    }
    let got = events(&mut p.client);
    assert_eq!(got[..2], [next(a, "0"), next(a, "1")]);
    assert!(matches!(&got[2], Event::Error { stream_id, code: ErrorCode::INVALID, .. } if *stream_id == a));
    assert_eq!(transmitted(&mut p.client), vec![Frame::Cancel(Cancel { stream_id: a })]);
    assert!(p.client.contains(other) && !p.client.is_closed());
}

/// A config whose connections hold at most 250 unread bytes, with a stall time of 1 s.
fn small_unread() -> Config {
    Config::default().unread_limits(250, Duration::from_secs(1))
}

fn is_exhausted(event: &Event, id: u32) -> bool {
    matches!(event, Event::Error { stream_id, code: ErrorCode::APPLICATION_ERROR, message }
        if *stream_id == id && message.starts_with("RESOURCE_EXHAUSTED: ") && message.contains("unread_limits"))
}

/// Sends `n` messages of `size` bytes on `id` from the server, and delivers them.
fn send_unread(p: &mut Pair, id: u32, n: usize, size: usize) {
    for _ in 0..n {
        p.server.send_next(id, Bytes::new(), Bytes::from(vec![1u8; size]), false).unwrap();
    }
    p.pump();
    assert_eq!(events(&mut p.client).len(), n);
}

#[test]
fn beyond_the_unread_bytes_the_connection_stops_reading_until_the_application_reads() {
    let (mut p, a) = stream_pair(small_unread());
    let b = p.open_stream();
    // 250 bytes unread, across streams, is the limit; more is over it, well within the credit.
    send_unread(&mut p, a, 2, 100);
    send_unread(&mut p, b, 1, 50);
    assert!(p.client.accepts_input());
    send_unread(&mut p, b, 1, 1);
    assert!(!p.client.accepts_input(), "251 bytes unread");
    assert!(p.client.poll_timeout().is_some_and(|t| t <= p.now), "a stall deadline is due to be set");
    // Reading brings it back: bytes count, whether or not a grant is due.
    p.client.consumed(a, 1, 100);
    assert!(p.client.accepts_input());
    // A stream that goes takes its unread bytes with it: its reader's report finds nothing.
    send_unread(&mut p, a, 1, 100);
    assert!(!p.client.accepts_input());
    p.client.cancel(a);
    assert!(p.client.accepts_input(), "51 bytes unread, on b");
    p.client.consumed(a, 2, 200);
    p.client.consumed(b, 2, 51);
    send_unread(&mut p, b, 2, 125);
    assert!(p.client.accepts_input(), "exactly 250");
}

#[test]
fn a_reader_stalled_beyond_the_unread_bytes_loses_its_stream_and_reading_resumes() {
    let (mut p, a) = stream_pair(small_unread());
    let b = p.open_stream();
    send_unread(&mut p, a, 2, 100);
    send_unread(&mut p, b, 1, 80);
    // The stall time starts at the first look over the limit, and a reader's progress moves it on.
    p.advance(Duration::from_millis(10));
    assert!(p.client.poll_timeout().is_some_and(|t| t >= p.now + Duration::from_secs(1) - Duration::from_millis(1)));
    p.advance(Duration::from_millis(600));
    p.client.consumed(b, 1, 10);
    p.advance(Duration::from_millis(600));
    assert!(events(&mut p.client).is_empty() && !p.client.accepts_input(), "progress: no stream ends");
    // A whole stall time without progress: the stream holding the most ends, for both sides.
    p.advance(Duration::from_millis(1100));
    let got = events(&mut p.client);
    assert!(matches!(&got[..], [e] if is_exhausted(e, a)), "{got:?}");
    assert!(p.client.accepts_input());
    p.pump();
    assert_eq!(p.to_server.last(), Some(&Frame::Cancel(Cancel { stream_id: a })));
    assert_eq!(events(&mut p.server), vec![Event::Cancelled { stream_id: a }]);
    assert!(p.client.contains(b) && !p.client.is_closed());
    send_unread(&mut p, b, 1, 100);
    assert!(p.client.accepts_input(), "170 bytes unread, on b");
}

#[test]
fn the_short_ways_in_count_unread_bytes_as_handle_frame_does() {
    let (mut p, id) = stream_pair(small_unread());
    let mut run = p.client.receiving(id, p.now).expect("a stream that reads whole messages");
    assert!(run.take(100) && run.take(100) && run.take(50));
    assert!(p.client.accepts_input());
    assert_eq!(p.client.accept_message(id, false, 1, p.now), Some(false));
    assert!(!p.client.accepts_input());
}

#[test]
fn a_channel_responder_whose_handler_does_not_read_ends_the_channel_with_an_error() {
    let mut p = Pair::new(Config::default(), small_unread());
    let id = p.client.open(Kind::Channel, Bytes::new(), b("first"), false).unwrap();
    p.pump();
    assert!(matches!(&events(&mut p.server)[..], [Event::Request { kind: Kind::Channel, .. }]));
    events(&mut p.client);
    for _ in 0..3 {
        p.client.send_next(id, Bytes::new(), Bytes::from(vec![3u8; 100]), false).unwrap();
    }
    p.pump();
    assert_eq!(events(&mut p.server).len(), 3);
    assert!(!p.server.accepts_input());
    p.advance(Duration::from_millis(1));
    p.advance(Duration::from_millis(1001));
    assert!(matches!(&events(&mut p.server)[..], [e] if is_exhausted(e, id)));
    p.pump();
    let Some(Frame::Error(e)) = p.to_client.last() else { panic!("{:?}", p.to_client.last()) };
    assert_eq!((e.stream_id, e.code), (id, ErrorCode::APPLICATION_ERROR));
    assert!(matches!(&events(&mut p.client)[..], [e] if is_exhausted(e, id)));
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

#[test]
fn channel_first_payload_rides_in_the_request_and_both_sides_complete() {
    let mut p = Pair::new(Config::default().inbound_window(8), Config::default().inbound_window(2));
    let id = p.client.open(Kind::Channel, b("route"), b("first"), false).unwrap();
    // No credit from the responder yet: the requester may not send.
    assert_eq!(p.client.send_next(id, Bytes::new(), b("x"), false), Err(CommandError::NoCredit(id)));
    p.pump();
    assert!(matches!(p.to_server[1], Frame::RequestChannel(RequestChannel { initial_n: 8, complete: false, .. })));
    assert_eq!(
        events(&mut p.server),
        vec![Event::Request {
            stream_id: id,
            kind: Kind::Channel,
            metadata: b("route"),
            data: b("first"),
            complete: false,
            initial_n: 8
        }]
    );
    // The responder answers REQUEST_CHANNEL with REQUEST_N at once.
    assert_eq!(events(&mut p.client), vec![Event::RequestN { stream_id: id, n: 2 }]);
    p.client.send_next(id, Bytes::new(), b("second"), false).unwrap();
    p.client.send_next(id, Bytes::new(), b("third"), true).unwrap();
    p.server.send_next(id, Bytes::new(), b("reply"), false).unwrap();
    p.pump();
    assert_eq!(events(&mut p.server), vec![next(id, "second"), next(id, "third"), Event::Complete { stream_id: id }]);
    assert!(p.server.contains(id), "the responder's direction is still open");
    p.server.send_complete(id).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![next(id, "reply"), Event::Complete { stream_id: id }]);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

#[test]
fn channel_opened_complete_reports_it() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::Channel, Bytes::new(), b("only"), true).unwrap();
    p.pump();
    assert!(matches!(&events(&mut p.server)[..], [Event::Request { complete: true, .. }]));
    // No REQUEST_N for a requester that has finished sending.
    assert!(!p.to_client.iter().any(|f| matches!(f, Frame::RequestN(_))));
    p.server.send_next(id, Bytes::new(), b("r"), true).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![next(id, "r"), Event::Complete { stream_id: id }]);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

#[test]
fn requester_cancel_ends_the_stream_on_both_sides() {
    let mut p = Pair::default();
    let id = p.open_stream();
    p.client.cancel(id);
    p.pump();
    assert_eq!(events(&mut p.server), vec![Event::Cancelled { stream_id: id }]);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
    // A message already in flight from the responder is ignored.
    p.client.handle_frame(
        Frame::Payload(PayloadFrame {
            stream_id: id,
            follows: false,
            complete: false,
            next: true,
            payload: Default::default(),
        }),
        p.now,
    );
    assert!(events(&mut p.client).is_empty());
    // Cancelling again, or an unknown stream, is harmless.
    p.client.cancel(id);
    assert!(transmitted(&mut p.client).is_empty());
}

#[test]
fn channel_responder_cancel_stops_the_requester_sending_only() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::Channel, Bytes::new(), b("a"), false).unwrap();
    p.pump();
    events(&mut p.server);
    events(&mut p.client);
    p.server.cancel(id);
    p.pump();
    assert_eq!(events(&mut p.client), vec![Event::StopSending { stream_id: id }]);
    assert_eq!(p.client.send_next(id, Bytes::new(), b("b"), false), Err(CommandError::NoSuchStream(id)));
    p.server.send_next(id, Bytes::new(), b("still"), true).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![next(id, "still"), Event::Complete { stream_id: id }]);
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

#[test]
fn errors_end_streams_either_way() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::Channel, Bytes::new(), b("a"), false).unwrap();
    p.pump();
    events(&mut p.server);
    events(&mut p.client);
    p.server.send_error(id, ErrorCode::APPLICATION_ERROR, "boom").unwrap();
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![Event::Error { stream_id: id, code: ErrorCode::APPLICATION_ERROR, message: "boom".into() }]
    );
    // A channel's requester may fail its side too.
    let id = p.client.open(Kind::Channel, Bytes::new(), b("a"), false).unwrap();
    p.pump();
    events(&mut p.server);
    p.client.send_error(id, ErrorCode::APPLICATION_ERROR, "client side").unwrap();
    p.pump();
    assert!(matches!(&events(&mut p.server)[..], [Event::Error { message, .. }] if message == "client side"));
    assert_eq!((p.client.stream_count(), p.server.stream_count()), (0, 0));
}

#[test]
fn fragments_respect_the_size_and_reassemble() {
    let mut p = Pair::new(Config::default().fragment_size(Some(64)), Config::default().fragment_size(Some(64)));
    let metadata = Bytes::from(vec![b'm'; 150]);
    let data = Bytes::from((0..1000u32).map(|i| i as u8).collect::<Vec<_>>());
    let id = p.client.open(Kind::Channel, metadata.clone(), data.clone(), false).unwrap();
    p.pump();
    let sent: Vec<_> = p.to_server.iter().filter(|f| f.stream_id() == id).collect();
    assert!(sent.len() > 15, "{} frames", sent.len());
    assert!(sent.iter().all(|f| f.encoded_len() <= 64));
    assert!(matches!(sent[0], Frame::RequestChannel(RequestChannel { follows: true, .. })));
    assert!(matches!(sent.last(), Some(Frame::Payload(PayloadFrame { follows: false, .. }))));
    let got = events(&mut p.server);
    assert_eq!(
        got,
        vec![Event::Request {
            stream_id: id,
            kind: Kind::Channel,
            metadata,
            data: data.clone(),
            complete: false,
            initial_n: 256
        }]
    );
    // A fragmented PAYLOAD that completes the direction: C only on its last fragment.
    events(&mut p.client);
    p.client.send_next(id, Bytes::new(), data.clone(), true).unwrap();
    p.pump();
    assert_eq!(
        events(&mut p.server),
        vec![Event::Next { stream_id: id, metadata: Bytes::new(), data }, Event::Complete { stream_id: id }]
    );
    let payloads: Vec<_> =
        p.to_server.iter().filter_map(|f| if let Frame::Payload(p) = f { Some(p) } else { None }).collect();
    assert!(payloads.iter().rev().skip(1).take(10).all(|f| f.follows && !f.complete));
}

#[test]
fn reassembly_is_bounded_by_the_maximum_message_size() {
    let mut p = Pair::new(Config::default().fragment_size(Some(64)), Config::default().max_message_size(500));
    let keep = p.client.open(Kind::RequestStream, Bytes::new(), b("small"), false).unwrap();
    let big = p.client.open(Kind::RequestResponse, Bytes::new(), Bytes::from(vec![7; 1000]), false).unwrap();
    p.pump();
    assert!(matches!(&events(&mut p.server)[..], [Event::Request { stream_id, .. }] if *stream_id == keep));
    let got = events(&mut p.client);
    assert!(
        matches!(&got[..], [Event::Error { stream_id, code: ErrorCode::INVALID, message }] if *stream_id == big && message.contains("maximum message size")),
        "{got:?}"
    );
    assert!(p.server.contains(keep) && !p.server.is_closed());
}

#[test]
fn client_keepalives_flow_whatever_the_traffic_and_are_answered() {
    let interval = Duration::from_millis(100);
    let mut p = Pair::with_settings(
        Config::default(),
        ClientSettings::default().keepalive(interval, Duration::from_secs(1)),
        Config::default(),
        ServerSettings::default(),
    );
    for _ in 0..5 {
        p.client.open(Kind::FireAndForget, Bytes::new(), b("busy"), false).unwrap();
        p.advance(interval);
        p.pump();
    }
    let sent = p.to_server.iter().filter(|f| matches!(f, Frame::Keepalive(Keepalive { respond: true, .. }))).count();
    let answered =
        p.to_client.iter().filter(|f| matches!(f, Frame::Keepalive(Keepalive { respond: false, .. }))).count();
    assert_eq!((sent, answered), (5, 5));
    assert!(!p.client.is_closed());
    assert_eq!(p.client.poll_timeout(), Some(p.now + interval));
}

#[test]
fn keepalive_data_is_echoed() {
    let mut p = Pair::default();
    p.server
        .handle_frame(Frame::Keepalive(Keepalive { respond: true, last_received_position: 0, data: b("ping") }), p.now);
    assert_eq!(
        transmitted(&mut p.server),
        vec![Frame::Keepalive(Keepalive { respond: false, last_received_position: 0, data: b("ping") })]
    );
}

#[test]
fn silent_peer_closes_the_connection_and_fails_its_streams() {
    let lifetime = Duration::from_millis(500);
    let mut p = Pair::with_settings(
        Config::default(),
        ClientSettings::default().keepalive(Duration::from_millis(100), lifetime),
        Config::default(),
        ServerSettings::default(),
    );
    p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    // The server goes silent: frames to it are lost, nothing comes back.
    for _ in 0..4 {
        p.advance(Duration::from_millis(100));
        transmitted(&mut p.client);
    }
    assert!(!p.client.is_closed());
    p.advance(Duration::from_millis(100));
    assert_eq!(events(&mut p.client), vec![Event::Closed(CloseReason::KeepaliveTimeout(lifetime))]);
    assert!(matches!(
        &transmitted(&mut p.client)[..],
        [Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_ERROR, .. })]
    ));
    assert_eq!((p.client.stream_count(), p.client.poll_timeout()), (0, None));
    assert_eq!(p.client.open(Kind::RequestResponse, Bytes::new(), Bytes::new(), false), Err(CommandError::Closed));
}

pub(super) fn setup(f: impl FnOnce(&mut Setup)) -> Frame {
    let mut s = Setup {
        version: VERSION,
        keepalive_interval: 1000,
        max_lifetime: 5000,
        resume_token: None,
        lease: false,
        metadata_mime: COMPOSITE_METADATA_MIME.into(),
        data_mime: "application/octet-stream".into(),
        payload: Default::default(),
    };
    f(&mut s);
    Frame::Setup(s)
}

fn rejects_setup(frame: Frame, code: ErrorCode) {
    let now = Instant::now();
    let mut server = Connection::server(Config::default(), ServerSettings::default(), now);
    server.handle_frame(frame, now);
    let out = transmitted(&mut server);
    assert!(matches!(&out[..], [Frame::Error(ErrorFrame { stream_id: 0, code: c, .. })] if *c == code), "{out:?}");
    assert!(server.is_closed());
    assert!(matches!(&events(&mut server)[..], [Event::Closed(CloseReason::ProtocolError { .. })]));
}

#[test]
fn setup_is_validated() {
    rejects_setup(setup(|s| s.version = Version { major: 2, minor: 0 }), ErrorCode::UNSUPPORTED_SETUP);
    rejects_setup(setup(|s| s.resume_token = Some(b("t"))), ErrorCode::REJECTED_SETUP);
    rejects_setup(setup(|s| s.lease = true), ErrorCode::UNSUPPORTED_SETUP);
    rejects_setup(setup(|s| s.keepalive_interval = 0), ErrorCode::INVALID_SETUP);
    let request = Frame::RequestResponse(Request { stream_id: 1, follows: false, payload: Default::default() });
    rejects_setup(request, ErrorCode::INVALID_SETUP);
    rejects_setup(
        Frame::Resume(frame::Resume {
            version: VERSION,
            token: b("t"),
            last_received_server_position: 0,
            first_available_client_position: 0,
        }),
        ErrorCode::REJECTED_RESUME,
    );
}

#[test]
fn setup_must_arrive_in_time() {
    let now = Instant::now();
    let mut server =
        Connection::server(Config::default(), ServerSettings::default().setup_timeout(Duration::from_secs(2)), now);
    assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(2)));
    server.handle_timeout(now + Duration::from_secs(2));
    assert!(server.is_closed());
    assert!(matches!(&transmitted(&mut server)[..], [Frame::Error(ErrorFrame { code: ErrorCode::INVALID_SETUP, .. })]));
}

#[test]
fn unexpected_frames_are_ignored_as_the_spec_says() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::RequestStream, Bytes::new(), b("a"), false).unwrap();
    p.pump();
    events(&mut p.server);
    let now = p.now;
    let ignored = [
        // PAYLOAD, CANCEL, ERROR, REQUEST_N on unknown streams.
        Frame::Payload(PayloadFrame {
            stream_id: 99,
            follows: false,
            complete: true,
            next: true,
            payload: Default::default(),
        }),
        Frame::Cancel(Cancel { stream_id: 99 }),
        Frame::Error(ErrorFrame { stream_id: 99, code: ErrorCode::APPLICATION_ERROR, data: b("x") }),
        Frame::RequestN(RequestN { stream_id: 99, n: 5 }),
        // A request on a stream id in use.
        Frame::RequestStream(RequestStream {
            stream_id: id,
            follows: false,
            initial_n: 1,
            payload: Default::default(),
        }),
        // A second SETUP; SETUP errors sent to a server; LEASE never negotiated; EXT.
        setup(|_| {}),
        Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::REJECTED_SETUP, data: b("x") }),
        Frame::Lease(Lease { ttl: 1, number_of_requests: 1, metadata: None }),
        Frame::Ext(Ext { stream_id: 0, ignore: true, metadata: false, extended_type: 9, body: Bytes::new() }),
    ];
    for f in ignored {
        p.server.handle_frame(f, now);
    }
    assert!(transmitted(&mut p.server).is_empty());
    assert!(events(&mut p.server).is_empty());
    assert!(p.server.contains(id) && !p.server.is_closed());
    // A client ignores SETUP, and SETUP errors once the server has answered.
    p.client.handle_frame(setup(|_| {}), now);
    p.client
        .handle_frame(Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::INVALID_SETUP, data: b("late") }), now);
    assert!(!p.client.is_closed());
    p.server.handle_frame(Frame::MetadataPush(MetadataPush { metadata: b("m") }), now);
    assert_eq!(events(&mut p.server), vec![Event::MetadataPush(b("m"))]);
}

#[test]
fn request_on_an_id_of_the_wrong_parity_is_a_connection_error() {
    let mut p = Pair::default();
    p.server.handle_frame(
        Frame::RequestResponse(Request { stream_id: 2, follows: false, payload: Default::default() }),
        p.now,
    );
    assert!(p.server.is_closed());
    assert!(matches!(
        &transmitted(&mut p.server)[..],
        [Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_ERROR, .. })]
    ));
}

#[test]
fn peer_connection_errors_close_and_fail_everything() {
    let mut p = Pair::default();
    p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    p.client.handle_frame(
        Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_ERROR, data: b("bye") }),
        p.now,
    );
    assert_eq!(
        events(&mut p.client),
        vec![Event::Closed(CloseReason::PeerError { code: ErrorCode::CONNECTION_ERROR, message: "bye".into() })]
    );
    assert_eq!(p.client.stream_count(), 0);
}

#[test]
fn concurrent_stream_limit_rejects_only_the_excess() {
    let mut p = Pair::new(Config::default(), Config::default().max_concurrent_streams(2));
    let ids: Vec<_> =
        (0..3).map(|_| p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap()).collect();
    p.pump();
    assert_eq!(events(&mut p.server).len(), 2);
    let got = events(&mut p.client);
    assert!(
        matches!(&got[..], [Event::Error { stream_id, code: ErrorCode::REJECTED, .. }] if *stream_id == ids[2]),
        "{got:?}"
    );
    // Once one ends, a new one is accepted.
    p.client.cancel(ids[0]);
    let id = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    assert!(events(&mut p.server).iter().any(|e| matches!(e, Event::Request { stream_id, .. } if *stream_id == id)));
}

#[test]
fn decode_errors_close_what_they_belong_to() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::RequestStream, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    events(&mut p.server);
    let err = |frame_type, stream_id, kind| DecodeError { frame_type, stream_id, kind, ignore: false };
    let truncated = DecodeErrorKind::Truncated { field: "initial request n" };
    // An ignorable unknown frame: nothing happens.
    let unknown = DecodeErrorKind::UnknownFrameType { code: 0x30 };
    p.server.handle_decode_error(&DecodeError { ignore: true, ..err(None, Some(0), unknown) }, p.now);
    // A malformed request for a new stream: that stream is refused, nothing else.
    p.server.handle_decode_error(&err(Some(FrameType::RequestStream), Some(101), truncated.clone()), p.now);
    assert!(matches!(
        &transmitted(&mut p.server)[..],
        [Frame::Error(ErrorFrame { stream_id: 101, code: ErrorCode::INVALID, .. })]
    ));
    // A malformed frame on a live stream: that stream ends.
    p.server.handle_decode_error(&err(Some(FrameType::RequestN), Some(id), truncated.clone()), p.now);
    assert!(
        matches!(&transmitted(&mut p.server)[..], [Frame::Error(ErrorFrame { stream_id, code: ErrorCode::INVALID, .. })] if *stream_id == id)
    );
    assert!(!p.server.contains(id) && !p.server.is_closed());
    // A malformed connection frame: the connection closes.
    p.server.handle_decode_error(&err(Some(FrameType::Keepalive), Some(0), truncated), p.now);
    assert!(p.server.is_closed());
    assert!(matches!(
        &transmitted(&mut p.server)[..],
        [Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::CONNECTION_ERROR, .. })]
    ));
}

#[test]
fn graceful_close_refuses_new_streams_and_waits_for_open_ones() {
    let mut p = Pair::default();
    let id = p.client.open(Kind::RequestResponse, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    events(&mut p.server);
    p.server.close(true);
    assert!(!p.server.is_closed());
    let late = p.client.open(Kind::RequestResponse, Bytes::new(), Bytes::new(), false).unwrap();
    p.pump();
    assert!(
        matches!(&events(&mut p.client)[..], [Event::Error { stream_id, code: ErrorCode::REJECTED, .. }] if *stream_id == late)
    );
    p.server.send_next(id, Bytes::new(), b("done"), true).unwrap();
    assert!(p.server.is_closed());
    p.pump();
    let got = events(&mut p.client);
    assert_eq!(got[..2], [next(id, "done"), Event::Complete { stream_id: id }]);
    assert_eq!(got[2], Event::Closed(CloseReason::PeerClosed));
}

#[test]
fn a_request_frame_handled_alone_is_handled_as_it_is_inside_a_frame() {
    use crate::frame::Payload;
    let requests = [
        RequestFrame::Response(Request { stream_id: 1, follows: false, payload: Payload::data("a") }),
        RequestFrame::Fnf(Request { stream_id: 3, follows: false, payload: Payload::data("b") }),
        RequestFrame::Stream(RequestStream { stream_id: 5, follows: false, initial_n: 2, payload: Payload::data("c") }),
        RequestFrame::Channel(RequestChannel {
            stream_id: 7,
            follows: true,
            complete: false,
            initial_n: 1,
            payload: Payload::data("d"),
        }),
        // An id in use (ignored), and an id only a server may open (a connection error).
        RequestFrame::Response(Request { stream_id: 1, follows: false, payload: Payload::data("again") }),
        RequestFrame::Response(Request { stream_id: 2, follows: false, payload: Payload::data("even") }),
    ];
    // Each connection state a request can meet: before SETUP, open, draining, closed.
    let states: [fn(&mut Connection, Instant); 4] = [
        |_, _| {},
        |c, now| c.handle_frame(setup(|_| {}), now),
        |c, now| {
            c.handle_frame(setup(|_| {}), now);
            c.handle_frame(
                Frame::RequestStream(RequestStream {
                    stream_id: 9,
                    follows: false,
                    initial_n: 1,
                    payload: Payload::data("held"),
                }),
                now,
            );
            c.close(true);
        },
        |c, now| {
            c.handle_frame(setup(|_| {}), now);
            c.close(false);
        },
    ];
    for (i, state) in states.into_iter().enumerate() {
        let now = Instant::now() + T0_OFFSET;
        let (mut framed, mut alone) = (
            Connection::server(Config::default(), ServerSettings::default(), now),
            Connection::server(Config::default(), ServerSettings::default(), now),
        );
        state(&mut framed, now);
        state(&mut alone, now);
        let later = now + Duration::from_millis(10);
        for request in &requests {
            framed.handle_frame(request.clone().into(), later);
            alone.handle_request_frame(request.clone(), later);
            assert_eq!(transmitted(&mut framed), transmitted(&mut alone), "state {i}, {request:?}");
            assert_eq!(events(&mut framed), events(&mut alone), "state {i}, {request:?}");
            assert_eq!(framed.is_closed(), alone.is_closed(), "state {i}");
        }
        // Heard from the peer alike (which moves the peer's silence limit), unless closed.
        assert_eq!(framed.last_received, alone.last_received, "state {i}");
        assert_eq!(framed.last_received == later, i != 3, "state {i}");
    }
}

// ---- exact credit ----------------------------------------------------------------------
// Protocol.md, "Request Stream": REQUEST_N counts the PAYLOADs with N; a PAYLOAD with C alone
// and an ERROR need none. A requester that grants exactly the messages it will get (in one
// REQUEST_N or several) must still see the end.

/// A server connection past SETUP that `frames` were fed to, with its output drained.
pub(super) fn server_fed(frames: impl IntoIterator<Item = Frame>) -> (Connection, Instant) {
    let now = Instant::now();
    let mut server = Connection::server(Config::default(), ServerSettings::default(), now);
    server.handle_frame(setup(|_| {}), now);
    for f in frames {
        server.handle_frame(wire(&f), now);
    }
    transmitted(&mut server);
    events(&mut server);
    (server, now)
}

pub(super) fn request_stream(stream_id: u32, initial_n: u32) -> Frame {
    Frame::RequestStream(RequestStream { stream_id, follows: false, initial_n, payload: Default::default() })
}

pub(super) fn request_n(stream_id: u32, n: u32) -> Frame {
    Frame::RequestN(RequestN { stream_id, n })
}

/// Sends `count` messages on `id`, each within credit.
fn send_items(conn: &mut Connection, id: u32, count: u32) {
    for i in 0..count {
        conn.send_next(id, Bytes::new(), b(&i.to_string()), false).unwrap();
    }
}

#[test]
fn a_stream_whose_credit_runs_out_at_its_last_message_still_completes() {
    // The credit in one grant, and in several (2 + 3 + 5, as the Python client grants it).
    for grants in [&[10u32][..], &[2, 3, 5]] {
        let (mut server, now) = server_fed([request_stream(1, grants[0])]);
        for (i, &n) in grants.iter().enumerate() {
            if i > 0 {
                server.handle_frame(request_n(1, n), now);
            }
            send_items(&mut server, 1, n);
            assert_eq!(server.send_next(1, Bytes::new(), b("more"), false), Err(CommandError::NoCredit(1)));
        }
        // Out of credit, the end still goes: a PAYLOAD with C alone.
        server.send_complete(1).unwrap();
        let out = transmitted(&mut server);
        assert_eq!(out.iter().filter(|f| matches!(f, Frame::Payload(p) if p.next)).count(), 10, "{grants:?}");
        assert_eq!(
            out.last(),
            Some(&Frame::Payload(PayloadFrame {
                stream_id: 1,
                follows: false,
                complete: true,
                next: false,
                payload: Default::default()
            })),
            "{grants:?}"
        );
        assert!(!server.contains(1), "{grants:?}: the stream is over");
    }
}

#[test]
fn a_stream_ends_alike_before_its_credit_runs_out_and_with_an_error_after_it() {
    // Ending with credit left: the last message carries C.
    let (mut server, _) = server_fed([request_stream(1, 10)]);
    send_items(&mut server, 1, 2);
    server.send_next(1, Bytes::new(), b("2"), true).unwrap();
    assert!(matches!(transmitted(&mut server).last(), Some(Frame::Payload(p)) if p.next && p.complete));
    assert!(!server.contains(1));
    // Failing once the credit is spent: ERROR needs no credit either.
    let (mut server, now) = server_fed([request_stream(1, 2)]);
    send_items(&mut server, 1, 2);
    server.handle_frame(request_n(1, 1), now);
    send_items(&mut server, 1, 1);
    server.send_error(1, ErrorCode::APPLICATION_ERROR, "ran out").unwrap();
    assert!(matches!(
        transmitted(&mut server).last(),
        Some(Frame::Error(ErrorFrame { stream_id: 1, code: ErrorCode::APPLICATION_ERROR, .. }))
    ));
    assert!(!server.contains(1) && !server.is_closed());
}

#[test]
fn a_requester_out_of_credit_still_takes_the_end_and_the_error() {
    for end in [
        Frame::Payload(PayloadFrame {
            stream_id: 1,
            follows: false,
            complete: true,
            next: false,
            payload: Default::default(),
        }),
        Frame::Error(ErrorFrame { stream_id: 1, code: ErrorCode::APPLICATION_ERROR, data: b("late") }),
    ] {
        let (mut p, id) = stream_pair(Config::default().inbound_window(2));
        send_items(&mut p.server, id, 2);
        p.pump();
        assert_eq!(events(&mut p.client), vec![next(id, "0"), next(id, "1")]);
        // The client's credit is used up and it has granted no more: the end still counts.
        p.client.handle_frame(wire(&end), p.now);
        let got = events(&mut p.client);
        match end {
            Frame::Error(_) => assert!(
                matches!(&got[..], [Event::Error { stream_id: 1, code: ErrorCode::APPLICATION_ERROR, .. }]),
                "{got:?}"
            ),
            _ => assert_eq!(got, vec![Event::Complete { stream_id: id }]),
        }
        assert!(transmitted(&mut p.client).is_empty(), "nothing refused");
        assert!(!p.client.contains(id));
    }
}

#[test]
fn a_channel_on_exact_credit_completes_both_halves() {
    // The requester (the raw peer here) grants the responder 1 + 2 messages and sends 3 of its
    // own, the first inside REQUEST_CHANNEL, within the 2 more the responder grants it.
    let channel = Frame::RequestChannel(RequestChannel {
        stream_id: 1,
        follows: false,
        complete: false,
        initial_n: 1,
        payload: frame::Payload::data(b("m0")),
    });
    let now = Instant::now();
    let mut server = Connection::server(Config::default().inbound_window(2), ServerSettings::default(), now);
    server.handle_frame(setup(|_| {}), now);
    server.handle_frame(wire(&channel), now);
    assert_eq!(transmitted(&mut server), vec![request_n(1, 2)], "the responder grants its window at once");
    send_items(&mut server, 1, 1);
    assert_eq!(server.send_next(1, Bytes::new(), b("x"), false), Err(CommandError::NoCredit(1)));
    server.handle_frame(request_n(1, 2), now);
    send_items(&mut server, 1, 2);
    // The requester's messages: exactly the two granted, the last with C.
    for (data, complete) in [("m1", false), ("m2", true)] {
        let f = Frame::Payload(PayloadFrame {
            stream_id: 1,
            follows: false,
            complete,
            next: true,
            payload: frame::Payload::data(b(data)),
        });
        server.handle_frame(wire(&f), now);
    }
    let got = events(&mut server);
    assert_eq!(got[3..], [next(1, "m1"), next(1, "m2"), Event::Complete { stream_id: 1 }]);
    // The responder's half ends out of credit too.
    server.send_complete(1).unwrap();
    assert!(matches!(transmitted(&mut server).last(), Some(Frame::Payload(p)) if p.complete && !p.next));
    assert!(!server.contains(1) && server.stream_count() == 0);

    // And a requester that is itself out of credit: its C alone is taken.
    let mut p = Pair::new(Config::default(), Config::default().inbound_window(2));
    let id = p.client.open(Kind::Channel, Bytes::new(), b("first"), false).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![Event::RequestN { stream_id: id, n: 2 }]);
    send_items(&mut p.client, id, 2);
    assert_eq!(p.client.send_next(id, Bytes::new(), b("2"), false), Err(CommandError::NoCredit(id)));
    p.client.send_complete(id).unwrap();
    p.pump();
    let got = events(&mut p.server);
    assert_eq!(got[1..], [next(id, "0"), next(id, "1"), Event::Complete { stream_id: id }]);
}

// ---- limits on what a peer can make this side hold ------------------------------------

/// A fragment (F) of `len` bytes on `id`, a REQUEST_FNF's first if `request`.
fn fragment(id: u32, len: usize, request: bool) -> Frame {
    let payload = frame::Payload::data(Bytes::from(vec![7u8; len]));
    if request {
        Frame::RequestFnf(Request { stream_id: id, follows: true, payload })
    } else {
        Frame::Payload(PayloadFrame { stream_id: id, follows: true, complete: false, next: true, payload })
    }
}

fn last_fragment(id: u32, len: usize) -> Frame {
    let payload = frame::Payload::data(Bytes::from(vec![7u8; len]));
    Frame::Payload(PayloadFrame { stream_id: id, follows: false, complete: false, next: true, payload })
}

#[test]
fn unfinished_fragmented_messages_share_one_budget_per_connection() {
    let config = Config::default().reassembly_limits(100, Duration::from_secs(60));
    let now = Instant::now();
    let mut server = Connection::server(config, ServerSettings::default(), now);
    server.handle_frame(setup(|_| {}), now);
    events(&mut server);
    // Two requests begun: 60 bytes, then 30 more fit; another 20 on a third do not.
    server.handle_frame(wire(&fragment(1, 60, true)), now);
    server.handle_frame(wire(&fragment(3, 30, true)), now);
    server.handle_frame(wire(&fragment(5, 20, true)), now);
    let out = transmitted(&mut server);
    assert!(
        matches!(&out[..], [Frame::Error(ErrorFrame { stream_id: 5, code: ErrorCode::INVALID, data })] if String::from_utf8_lossy(data).contains("exceed 100 bytes")),
        "{out:?}"
    );
    assert!(server.contains(1) && server.contains(3) && !server.contains(5));
    // Finishing one frees its share: the third can now begin, and the first goes on.
    server.handle_frame(wire(&last_fragment(3, 5)), now);
    assert!(matches!(&events(&mut server)[..], [Event::Request { stream_id: 3, data, .. }] if data.len() == 35));
    server.handle_frame(wire(&fragment(7, 35, true)), now);
    server.handle_frame(wire(&last_fragment(1, 5)), now);
    assert!(transmitted(&mut server).is_empty());
    assert!(matches!(&events(&mut server)[..], [Event::Request { stream_id: 1, data, .. }] if data.len() == 65));
    // A stream that ends mid-message gives its share back too.
    server.handle_frame(wire(&Frame::Cancel(Cancel { stream_id: 7 })), now);
    server.handle_frame(wire(&fragment(9, 100, true)), now);
    assert!(transmitted(&mut server).is_empty(), "the cancelled message's bytes were given back");
    assert!(server.contains(9));
}

#[test]
fn a_fragmented_message_not_finished_in_time_ends_its_stream() {
    let config = Config::default().reassembly_limits(1 << 20, Duration::from_secs(5));
    let now = Instant::now();
    let mut server = Connection::server(config, ServerSettings::default(), now);
    server.handle_frame(setup(|s| s.max_lifetime = 60_000), now);
    events(&mut server);
    server.handle_frame(wire(&request_stream(1, 4)), now);
    server.handle_frame(wire(&fragment(3, 10, true)), now);
    events(&mut server);
    assert!(server.poll_timeout().is_some_and(|t| t <= now + Duration::from_secs(5)));
    // A second one, begun later, has its own deadline.
    let later = now + Duration::from_secs(3);
    server.handle_frame(wire(&fragment(5, 10, true)), later);
    server.handle_timeout(now + Duration::from_secs(5));
    let out = transmitted(&mut server);
    assert!(matches!(&out[..], [Frame::Error(ErrorFrame { stream_id: 3, code: ErrorCode::INVALID, .. })]), "{out:?}");
    assert!(server.contains(1) && server.contains(5) && !server.is_closed());
    assert_eq!(server.poll_timeout(), Some(later + Duration::from_secs(5)));
    server.handle_timeout(later + Duration::from_secs(5));
    assert!(matches!(&transmitted(&mut server)[..], [Frame::Error(ErrorFrame { stream_id: 5, .. })]));
    assert!(server.contains(1), "a stream with nothing unfinished is not touched");
}

#[test]
fn the_server_caps_the_silence_a_client_asks_for() {
    let settings = ServerSettings::default().max_peer_lifetime(Duration::from_secs(60));
    let now = Instant::now();
    let mut server = Connection::server(Config::default(), settings, now);
    server.handle_frame(setup(|s| s.max_lifetime = MAX_U31), now);
    events(&mut server);
    assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(60)));
    server.handle_timeout(now + Duration::from_secs(60));
    assert!(server.is_closed());
    assert!(
        matches!(&events(&mut server)[..], [Event::Closed(CloseReason::KeepaliveTimeout(d))] if *d == Duration::from_secs(60))
    );
}

/// Moves frames both ways between connections that may keep attachments.
fn shuttle<A: Default, B: Default>(client: &mut Connection<A>, server: &mut Connection<B>, now: Instant) {
    for _ in 0..1_000 {
        let mut moved = false;
        while let Some(f) = client.poll_transmit() {
            server.handle_frame(wire(&f), now);
            moved = true;
        }
        while let Some(f) = server.poll_transmit() {
            client.handle_frame(wire(&f), now);
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the connections never went quiet");
}

#[test]
fn an_ended_streams_attachment_stays_until_released_and_nothing_else_sees_the_stream() {
    let now = Instant::now();
    let mut client = Connection::client(Config::default(), ClientSettings::default(), now);
    let mut server = Connection::server(Config::default(), ServerSettings::default(), now).with_attachments::<u32>();
    shuttle(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::SetupAccepted(_))));
    let id = client.open(Kind::Channel, Bytes::new(), b("a"), false).unwrap();
    shuttle(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::Request { .. })));
    *server.attachment(id).unwrap() = 7;
    assert_eq!(server.release(id), None, "a live stream is not released");
    assert_eq!(server.attachment(id).copied(), Some(7));

    // The peer ends it: the event says so, the record stays for the runtime, and the stream is
    // gone for everything else.
    client.send_error(id, ErrorCode::APPLICATION_ERROR, "client side").unwrap();
    shuttle(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::Error { .. })));
    assert!(!server.contains(id));
    assert_eq!((server.stream_count(), server.unreleased()), (0, 1));
    assert_eq!(server.send_next(id, Bytes::new(), b("late"), false), Err(CommandError::NoSuchStream(id)));
    let late = PayloadFrame { stream_id: id, follows: false, complete: false, next: true, payload: Default::default() };
    server.handle_frame(Frame::Payload(late), now);
    assert!(server.poll_event().is_none() && !server.has_transmit(), "a frame for an ended stream is ignored");
    assert_eq!(server.attachment(id).copied(), Some(7));
    assert_eq!(server.release(id), Some(7));
    assert_eq!((server.release(id), server.attachment(id).is_none(), server.unreleased()), (None, true, 0));

    // A draining connection closes when its last live stream ends, released or not; closed,
    // every record is the runtime's to take.
    let id = client.open(Kind::RequestStream, Bytes::new(), b("s"), false).unwrap();
    shuttle(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::Request { .. })));
    *server.attachment(id).unwrap() = 8;
    let other = client.open(Kind::RequestResponse, Bytes::new(), b("r"), false).unwrap();
    shuttle(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::Request { .. })));
    *server.attachment(other).unwrap() = 9;
    server.close(true);
    server.send_complete(id).unwrap();
    assert!(!server.is_closed(), "one stream is still live");
    server.send_next(other, Bytes::new(), b("answer"), true).unwrap();
    assert!(server.is_closed());
    let mut left: Vec<u32> = server.release_all().collect();
    left.sort_unstable();
    assert_eq!(left, [8, 9]);
    assert_eq!(server.unreleased(), 0);
}

#[test]
fn a_request_that_fails_before_it_is_whole_leaves_no_record_to_release() {
    let now = Instant::now();
    let mut client = Connection::client(Config::default().fragment_size(Some(64)), ClientSettings::default(), now);
    let mut server = Connection::server(Config::default().max_message_size(200), ServerSettings::default(), now)
        .with_attachments::<u32>();
    shuttle(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::SetupAccepted(_))));
    // Fragmented beyond the server's message size: the stream fails while its request is still
    // being reassembled, before anything was told to the runtime.
    client.open(Kind::RequestResponse, Bytes::new(), Bytes::from(vec![1u8; 500]), false).unwrap();
    shuttle(&mut client, &mut server, now);
    assert!(server.poll_event().is_none());
    assert_eq!((server.stream_count(), server.unreleased()), (0, 0));
}
