//! A hostile peer: raw sockets sending truncated, oversized, out-of-order, unknown and flooding
//! frames (thousands of unread streams, CANCEL storms, endless fragments, SETUP floods,
//! connections that never send SETUP). After each attack the server is alive, serves a fresh
//! connection, and its memory stayed bounded.
//!
//! The server runs in a process of its own (this test binary, run again for the ignored test
//! `hostile_server_process`), so that its resident memory is its own and not that of the other
//! tests running beside this one.

use crate::peer::{self, Peer, Read};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use weft::frame::length;
use weft::frame::{
    Cancel, ErrorCode, ErrorFrame, Frame, Keepalive, Payload as WirePayload, PayloadFrame, Request, RequestN,
    RequestStream,
};
use weft::{Call, Config, Handler, Payload, PayloadStream, Response, Responses, Server};

const ENV: &str = "WEFT_HOSTILE_SERVER";
/// How much the server's resident memory may grow over all the attacks. Without the bounds
/// the attacks below would hold far more: thousands of streams' producers running ahead, a
/// budget-less reassembly of endless fragments.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

struct Echo;

impl Handler for Echo {
    fn request_response(&self, _call: Call, data: Bytes) -> Response {
        Response::ready(Ok(Payload::new(data)))
    }

    fn request_stream(&self, _call: Call, _data: Bytes) -> Responses {
        Responses::new(stream::iter(0u64..).map(|i| Ok(Payload::new(Bytes::from(vec![b'x'; 64 + (i % 7) as usize])))))
    }

    fn request_channel(&self, _call: Call, messages: PayloadStream) -> Responses {
        Responses::new(messages)
    }
}

/// The server, when this binary is run as its process: it prints its address and serves until
/// its parent closes its stdin (or two minutes pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the server process of `a_hostile_peer_cannot_take_the_server_down_or_make_it_grow`"]
async fn hostile_server_process() {
    if std::env::var_os(ENV).is_none() {
        return;
    }
    let config = Config::default()
        .reassembly_limits(1 << 20, Duration::from_secs(2))
        .max_message_size(4 << 20)
        .max_frame_size(1 << 20);
    let server = Server::builder()
        .add_handler(&["h.H/Echo"], Echo)
        .config(config)
        .setup_timeout(Duration::from_millis(500))
        .build();
    let running = server.bind("127.0.0.1:0").await.unwrap();
    println!("hostile-server {}", running.local_addr());
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {}
    });
    let _ = tokio::time::timeout(Duration::from_secs(120), stdin_closed).await;
}

/// The server process, killed (by its PID, through its handle) when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start() -> ServerProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "hostile::hostile_server_process", "--nocapture", "--test-threads=1"])
            .env(ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server process");
        // Its output is read on a thread of its own, to the end, so that it never blocks on a
        // full pipe; the address comes through a channel, waited for a bounded time. (The
        // harness prints the test's name before it on the same line.)
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some((_, addr)) = line.split_once("hostile-server ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server process printed its address");
        ServerProcess { child, addr: addr.parse().unwrap() }
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request_response(id: u32, data: &str) -> Frame {
    Frame::RequestResponse(Request {
        stream_id: id,
        follows: false,
        payload: WirePayload { metadata: Some(peer::route("h.H/Echo")), data: Bytes::from(data.to_owned()) },
    })
}

/// A fresh connection is served: its request/response is answered.
async fn serves_a_fresh_connection(addr: SocketAddr, after: &str) {
    let mut peer = Peer::setup(addr).await;
    peer.send(&request_response(1, after)).await;
    match peer.frame().await {
        Frame::Payload(p) if p.stream_id == 1 => assert_eq!(p.payload.data, after, "after {after}"),
        other => panic!("after {after}: {other:?}"),
    }
}

fn encoded(frames: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        length::encode_frame(frame, &mut out);
    }
    out
}

/// Sends `bytes` on a fresh connection (after SETUP if `setup`), then reads until the server
/// closes or goes quiet; returns what it sent back.
async fn attack(addr: SocketAddr, setup: bool, bytes: &[u8]) -> Vec<Frame> {
    let mut peer = if setup { Peer::setup(addr).await } else { Peer::connect(addr).await };
    peer.send_raw(bytes).await;
    let mut frames = Vec::new();
    for _ in 0..10_000 {
        match peer.read_within(Duration::from_millis(300)).await {
            Read::Frame(frame) => frames.push(frame),
            Read::Closed | Read::Nothing => break,
        }
    }
    frames
}

fn connection_error(frames: &[Frame]) -> bool {
    matches!(frames.last(), Some(Frame::Error(ErrorFrame { stream_id: 0, .. })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_cannot_take_the_server_down_or_make_it_grow() {
    let mut server = ServerProcess::start();
    let addr = server.addr;
    let run = async {
        serves_a_fresh_connection(addr, "warm-up").await;
        let baseline = server.rss_kib();

        // Malformed: each closes its own connection with a connection ERROR.
        let malformed: [(&str, bool, Vec<u8>); 5] = [
            ("a frame shorter than its header", true, vec![0, 0, 2, 0xff, 0xff]),
            ("a length prefix over the maximum frame size", true, vec![0xff, 0xff, 0xff]),
            ("a KEEPALIVE cut short", true, vec![0, 0, 8, 0, 0, 0, 0, 0x0c, 0x80, 0, 0]),
            ("an unknown frame type without (I)", true, vec![0, 0, 6, 0, 0, 0, 0, 0x80, 0]),
            ("a request before SETUP", false, encoded(&[request_response(1, "x")]).to_vec()),
        ];
        for (what, after_setup, bytes) in malformed {
            let frames = attack(addr, after_setup, &bytes).await;
            assert!(connection_error(&frames), "{what}: {frames:?}");
            serves_a_fresh_connection(addr, what).await;
        }

        // Out of order and unknown, all to be ignored: the connection stays up and answers.
        let mut peer = Peer::setup(addr).await;
        let ignored = encoded(&[
            Frame::Payload(PayloadFrame {
                stream_id: 41,
                follows: false,
                complete: true,
                next: true,
                payload: WirePayload::default(),
            }),
            Frame::RequestN(RequestN { stream_id: 43, n: 7 }),
            Frame::Cancel(Cancel { stream_id: 45 }),
            Frame::Error(ErrorFrame { stream_id: 47, code: ErrorCode::APPLICATION_ERROR, data: Bytes::new() }),
            peer::setup_frame(),
        ]);
        peer.send_raw(&ignored).await;
        peer.send_raw(&[0, 0, 6, 0, 0, 0, 0, 0x7e, 0]).await; // unknown type with (I)
        peer.send(&request_response(1, "still here")).await;
        assert!(matches!(peer.frame().await, Frame::Payload(p) if p.payload.data == "still here"));

        // Floods on one connection: a SETUP flood, a CANCEL storm, REQUEST_N for nobody.
        let mut flood = BytesMut::new();
        for i in 0..20_000u32 {
            length::encode_frame(&peer::setup_frame(), &mut flood);
            length::encode_frame(&Frame::Cancel(Cancel { stream_id: 2 * i + 101 }), &mut flood);
            length::encode_frame(&Frame::RequestN(RequestN { stream_id: 2 * i + 101, n: 1 }), &mut flood);
        }
        peer.send_raw(&flood).await;
        peer.send(&request_response(3, "after the floods")).await;
        assert!(matches!(peer.frame().await, Frame::Payload(p) if p.payload.data == "after the floods"));
        serves_a_fresh_connection(addr, "the floods").await;

        // Thousands of endless streams that are never read: the server stops producing (and
        // reading) once its write buffer is full.
        let mut unread = Peer::setup(addr).await;
        let mut streams = BytesMut::new();
        for i in 0..5_000u32 {
            length::encode_frame(
                &Frame::RequestStream(RequestStream {
                    stream_id: 2 * i + 1,
                    follows: false,
                    initial_n: u32::MAX >> 1,
                    payload: WirePayload { metadata: Some(peer::route("h.H/Echo")), data: Bytes::new() },
                }),
                &mut streams,
            );
        }
        // The server may stop reading before all of it is taken: write what it takes.
        let _ = tokio::time::timeout(Duration::from_secs(3), unread.send_raw(&streams)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        serves_a_fresh_connection(addr, "thousands of unread streams").await;

        // Endless fragments of one message: refused at the reassembly budget, then ignored.
        let mut fragments = Peer::setup(addr).await;
        let chunk = Bytes::from(vec![7u8; 60_000]);
        fragments
            .send(&Frame::RequestResponse(Request {
                stream_id: 1,
                follows: true,
                payload: WirePayload { metadata: Some(peer::route("h.H/Echo")), data: chunk.clone() },
            }))
            .await;
        for _ in 0..100 {
            let fragment = PayloadFrame {
                stream_id: 1,
                follows: true,
                complete: false,
                next: true,
                payload: WirePayload { metadata: None, data: chunk.clone() },
            };
            fragments.send(&Frame::Payload(fragment)).await;
        }
        let refused = fragments.frame().await;
        assert!(
            matches!(&refused, Frame::Error(ErrorFrame { stream_id: 1, code: ErrorCode::INVALID, .. })),
            "{refused:?}"
        );
        fragments
            .send(&Frame::Keepalive(Keepalive { respond: true, last_received_position: 0, data: Bytes::new() }))
            .await;
        assert!(matches!(fragments.frame().await, Frame::Keepalive(_)), "the connection goes on");

        // Connections that never send SETUP are closed after the setup timeout.
        let mut silent = Vec::new();
        for _ in 0..100 {
            silent.push(Peer::connect(addr).await);
        }
        for peer in &mut silent {
            let frames = peer.until_closed().await;
            assert!(
                matches!(
                    frames.last(),
                    Some(Frame::Error(ErrorFrame { stream_id: 0, code: ErrorCode::INVALID_SETUP, .. }))
                ),
                "{frames:?}"
            );
        }
        serves_a_fresh_connection(addr, "connections without SETUP").await;

        drop((peer, unread, fragments, silent));
        tokio::time::sleep(Duration::from_millis(300)).await;
        serves_a_fresh_connection(addr, "every attack").await;
        let grown = server.rss_kib().saturating_sub(baseline);
        eprintln!("hostile: server RSS {baseline} KiB before the attacks, grew by {grown} KiB");
        assert!(grown < MAX_GROWTH_KIB, "the server's memory grew by {grown} KiB");
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.expect("in time");
    assert!(server.alive(), "the server process is alive");
}
