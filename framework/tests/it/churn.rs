//! Connection churn: peers that vanish mid-call must leave nothing behind on the server.
//!
//! Peers connect, start calls of every kind (request/response answered at once and never,
//! fire-and-forget finished at once and waiting for its cancellation, endless streams,
//! channels) and then go without the RSocket close: half of them with a TCP RST (the socket
//! dropped with a zero linger), half with a plain close. Afterwards the server must have no
//! connection left ([`RunningServer::connections`]), the runtime no task beyond the server's
//! own, and no handler future or stream may still be alive (what each one holds: its call, the
//! connection's handles, the request bytes and the read buffer they are slices of).
//!
//! The short form runs with the suite (`cargo test -p weft --test it churn`), in seconds. The
//! long form is opt-in and takes minutes: it keeps many connections busy with unary and
//! fire-and-forget calls while cutting five a second, and checks that the process's resident
//! memory stays flat:
//!
//! ```text
//! WEFT_CHURN_SECS=120 WEFT_CHURN_CONNECTIONS=200 \
//!     cargo test --release -p weft --test it churn_long -- --ignored --nocapture
//! ```
//!
//! Run it alone (resident memory is the process's, shared with any test running beside it).

use crate::cuttable::{Cut, Cuttable};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft::frame::length;
use weft::frame::metadata::{CompositeMetadata, MimeType};
use weft::frame::{self, Frame};
use weft::{
    BoxFuture, Call, Client, Config, Handler, Io, Payload, PayloadStream, Response, Responses, RunningServer, Server,
};

const ROUTES: &[&str] =
    &["churn.C/Unary", "churn.C/Hang", "churn.C/Fire", "churn.C/FireUntilCancelled", "churn.C/Forever", "churn.C/Chat"];

/// Counts what the handler started and what is still alive of it.
#[derive(Default)]
struct Counts {
    /// Handler futures and streams not yet dropped.
    alive: AtomicUsize,
    /// Calls that reached their handler and will not end by themselves (`Hang`,
    /// `FireUntilCancelled`, `Forever`, `Chat`), by the peer that made them (see [`PEER`]).
    open: Mutex<HashMap<u64, usize>>,
}

impl Counts {
    fn opened(&self, call: &Call) {
        let peer = call.metadata().entries.iter().find(|e| e.mime.name() == Some(PEER)).expect("a peer entry");
        let peer = std::str::from_utf8(&peer.content).unwrap().parse().unwrap();
        *self.open.lock().unwrap().entry(peer).or_default() += 1;
    }

    fn open(&self, peer: u64) -> usize {
        self.open.lock().unwrap().get(&peer).copied().unwrap_or(0)
    }

    fn open_in_all(&self) -> usize {
        self.open.lock().unwrap().values().sum()
    }
}

/// The metadata entry naming the peer that made a call: peers run at once, and each waits for
/// its own calls to reach the server before it vanishes.
const PEER: &str = "application/x.churn-peer";

/// A new peer's number.
fn next_peer() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn tagged(route: &'static str, peer: u64) -> Call {
    Call::new(route).with_metadata(MimeType::custom(PEER).unwrap(), peer.to_string())
}

/// Held by a handler's future or stream: counted alive until dropped.
struct Alive(Arc<Counts>);

impl Alive {
    fn new(counts: &Arc<Counts>) -> Alive {
        counts.alive.fetch_add(1, Ordering::SeqCst);
        Alive(counts.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every interaction model, with calls that end at once and calls that only their connection
/// going away can end.
#[derive(Clone, Default)]
struct Churn(Arc<Counts>);

impl Handler for Churn {
    fn request_response(&self, call: Call, data: Bytes) -> Response {
        match call.route() {
            "churn.C/Hang" => {
                let alive = Alive::new(&self.0);
                self.0.opened(&call);
                Response::new(async move {
                    let _held = (alive, call, data);
                    std::future::pending().await
                })
            }
            _ => Response::ready(Ok(Payload::new(data))),
        }
    }

    fn fire_and_forget(&self, call: Call, data: Bytes) -> BoxFuture<'static, ()> {
        match call.route() {
            "churn.C/FireUntilCancelled" => {
                let alive = Alive::new(&self.0);
                self.0.opened(&call);
                Box::pin(async move {
                    let _held = (alive, data);
                    // The documented way for a handler to learn that its requester or its
                    // connection went away.
                    call.cancelled().await;
                })
            }
            _ => Box::pin(async {}),
        }
    }

    fn request_stream(&self, call: Call, _data: Bytes) -> Responses {
        let alive = Alive::new(&self.0);
        self.0.opened(&call);
        let chunk = Bytes::from(vec![7u8; 4096]);
        Responses::new(stream::repeat(()).map(move |()| {
            let _held = &alive;
            Ok(Payload::new(chunk.clone()))
        }))
    }

    fn request_channel(&self, call: Call, messages: PayloadStream) -> Responses {
        let alive = Alive::new(&self.0);
        self.0.opened(&call);
        Responses::new(messages.map(move |m| {
            let _held = &alive;
            m
        }))
    }
}

async fn bounded<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f).await.expect("test timed out")
}

/// A request's metadata: the route and the peer.
fn metadata(route: &str, peer: u64) -> Option<Bytes> {
    let mut metadata = CompositeMetadata::with_route(route).unwrap();
    metadata.push(MimeType::custom(PEER).unwrap(), peer.to_string()).unwrap();
    let mut out = BytesMut::new();
    metadata.encode(&mut out);
    Some(out.freeze())
}

/// What a raw peer sends: SETUP, then `unary` request/responses answered at once, and one of
/// each call that only the connection going away ends. Returns the bytes and how many such
/// calls there are.
fn burst(peer: u64, unary: u32) -> (BytesMut, usize) {
    let mut wire = BytesMut::new();
    length::encode_frame(&crate::peer::setup_frame(), &mut wire);
    let mut ids = (0..).map(|i| 2 * i + 1);
    let mut id = || ids.next().unwrap();
    let payload =
        |route: &str, size: usize| frame::Payload { metadata: metadata(route, peer), data: vec![1u8; size].into() };
    for _ in 0..unary {
        let request = frame::Request { stream_id: id(), follows: false, payload: payload("churn.C/Unary", 1024) };
        length::encode_frame(&Frame::RequestResponse(request), &mut wire);
        let request = frame::Request { stream_id: id(), follows: false, payload: payload("churn.C/Fire", 64) };
        length::encode_frame(&Frame::RequestFnf(request), &mut wire);
    }
    let request = frame::Request { stream_id: id(), follows: false, payload: payload("churn.C/Hang", 16) };
    length::encode_frame(&Frame::RequestResponse(request), &mut wire);
    let request =
        frame::Request { stream_id: id(), follows: false, payload: payload("churn.C/FireUntilCancelled", 16) };
    length::encode_frame(&Frame::RequestFnf(request), &mut wire);
    let request = frame::RequestStream {
        stream_id: id(),
        follows: false,
        initial_n: 1_000_000,
        payload: payload("churn.C/Forever", 0),
    };
    length::encode_frame(&Frame::RequestStream(request), &mut wire);
    let request = frame::RequestChannel {
        stream_id: id(),
        follows: false,
        complete: false,
        initial_n: 64,
        payload: payload("churn.C/Chat", 100),
    };
    length::encode_frame(&Frame::RequestChannel(request), &mut wire);
    (wire, 4)
}

/// Waits (bounded) until the handler has seen `n` open calls of `peer`.
async fn until_open(counts: &Counts, peer: u64, n: usize) {
    for _ in 0..1_000 {
        if counts.open(peer) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the server saw {} of peer {peer}'s {n} calls", counts.open(peer));
}

/// A raw peer: SETUP and a burst of calls, some of the answers read, then gone abruptly once
/// the server has the calls in hand (with an RST if `rst`).
async fn raw_peer(addr: std::net::SocketAddr, counts: &Counts, rst: bool) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let peer = next_peer();
    let (wire, open) = burst(peer, 20);
    socket.write_all(&wire).await.unwrap();
    // Some answers and stream items are read, most are not: the server has writes pending.
    let mut buf = vec![0u8; 16 * 1024];
    let _ = socket.read(&mut buf).await;
    until_open(counts, peer, open).await;
    if rst {
        socket.set_zero_linger().unwrap();
    }
    drop(socket);
}

/// A Weft client over a socket that `cut` ends abruptly (with an RST if `rst`).
async fn cuttable_client(addr: std::net::SocketAddr, rst: bool) -> (Client, Arc<Cut>) {
    cuttable_client_with(addr, rst, Config::default()).await
}

/// [`cuttable_client`] with `config` (also used by the load test). Its data is opaque bytes.
pub(crate) async fn cuttable_client_with(addr: std::net::SocketAddr, rst: bool, config: Config) -> (Client, Arc<Cut>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    if rst {
        stream.set_zero_linger().unwrap();
    }
    let cut = Arc::new(Cut::default());
    (
        Client::builder()
            .config(config)
            .data_mime("application/octet-stream")
            .connect_over(Io(Cuttable::new(stream, cut.clone())))
            .await
            .unwrap(),
        cut,
    )
}

/// Workers calling on `client` in a loop (unary four times in five, fire-and-forget the fifth)
/// until a call fails, i.e. until the connection is cut: at most `calls` calls each.
fn workers(client: &Client, n: usize, calls: u64) -> tokio::task::JoinSet<()> {
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..n as u64 {
        let client = client.clone();
        workers.spawn(async move {
            for i in 0..calls {
                let result = if (i + w).is_multiple_of(5) {
                    client.fire_and_forget(Call::new("churn.C/Fire"), Bytes::from_static(b"key")).await
                } else {
                    let data = Bytes::from(vec![b'x'; 100 + (i as usize * 37) % 900]);
                    client.request_response(Call::new("churn.C/Unary"), data).await.map(drop)
                };
                if result.is_err() {
                    return;
                }
            }
        });
    }
    workers
}

/// A Weft client with calls of every kind in flight, cut abruptly once the server has them.
async fn client_peer(addr: std::net::SocketAddr, counts: &Counts, rst: bool) {
    let (client, cut) = cuttable_client(addr, rst).await;
    let peer = next_peer();
    let mut busy = workers(&client, 4, 1_000);
    let hang = tokio::spawn({
        let client = client.clone();
        async move { client.request_response(tagged("churn.C/Hang", peer), Bytes::new()).await }
    });
    client.fire_and_forget(tagged("churn.C/FireUntilCancelled", peer), Bytes::new()).await.unwrap();
    let forever = client.request_stream(tagged("churn.C/Forever", peer), Bytes::new()).await.unwrap();
    let messages = stream::once(async { Payload::new("hi") }).chain(stream::pending());
    let chat = client.request_channel(tagged("churn.C/Chat", peer), messages).await.unwrap();
    until_open(counts, peer, 4).await;
    cut.cut();
    assert!(bounded(10, hang).await.unwrap().is_err(), "a call in flight on a cut connection fails");
    while bounded(10, busy.join_next()).await.is_some() {}
    drop((forever, chat));
}

/// Waits (bounded) until the server has no connection, the runtime no task but `tasks`, and
/// the handler nothing alive; then says what is left if anything is.
async fn settled(running: &RunningServer, counts: &Counts, tasks: usize) -> (usize, usize, usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let left = || (running.connections(), metrics.num_alive_tasks(), counts.alive.load(Ordering::SeqCst));
    for _ in 0..500 {
        if left() == (0, tasks, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    left()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_vanish_mid_call_leave_nothing_behind() {
    bounded(60, async {
        let churn = Churn::default();
        let server = Server::builder().add_handler(ROUTES, churn.clone()).build();
        let running = server.bind("127.0.0.1:0").await.unwrap();
        let addr = running.local_addr();
        // The accept loop.
        let baseline = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        for round in 0..4u32 {
            // Peers of each kind at once, so that connections close while others are busy.
            let raw = (0..6).map(|i| raw_peer(addr, &churn.0, (round + i).is_multiple_of(2)));
            let clients = (0..3).map(|i| client_peer(addr, &churn.0, !(round + i).is_multiple_of(2)));
            tokio::join!(futures_util::future::join_all(raw), futures_util::future::join_all(clients));
        }
        assert_eq!(churn.0.open_in_all(), 4 * (6 + 3) * 4, "every call reached the server");
        let (connections, tasks, alive) = settled(&running, &churn.0, baseline).await;
        assert_eq!(connections, 0, "connections still served after every peer went");
        assert_eq!(tasks, baseline, "tasks left behind (handler tasks, connection tasks)");
        assert_eq!(alive, 0, "handler futures or streams still alive after their connections went");
        // The server still serves.
        let client = Client::connect(addr).await.unwrap();
        let answer = client.request_response(Call::new("churn.C/Unary"), "still here".into()).await.unwrap();
        assert_eq!(answer.data, "still here");
        drop(client);
        running.shutdown().await;
    })
    .await
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

/// The long form (see the module doc): WEFT_CHURN_SECS (default 120) of
/// WEFT_CHURN_CONNECTIONS (default 200) connections of 10 workers each (and a call on each
/// that only the connection's going away ends), five cut a second and replaced. Resident memory after the second half must stay within 10 % (and 16 MiB) of what
/// it was after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; see the module doc"]
async fn churn_long() {
    let secs = env_or("WEFT_CHURN_SECS", 120);
    let connections = env_or("WEFT_CHURN_CONNECTIONS", 200) as usize;
    let churn = Churn::default();
    let server = Server::builder().add_handler(ROUTES, churn.clone()).build();
    let running = server.bind("127.0.0.1:0").await.unwrap();
    let addr = running.local_addr();
    let baseline = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let start_rss = rss_kib();
    let mut open = std::collections::VecDeque::new();
    let mut opened = 0u64;
    let connect = async |opened: &mut u64| {
        let (client, cut) = cuttable_client(addr, opened.is_multiple_of(2)).await;
        *opened += 1;
        // Bounded by the cut that comes for every connection, and by the count.
        let mut busy = workers(&client, 10, u64::MAX);
        // And on each connection, calls that only its going away ends.
        let peer = next_peer();
        let _ = client.fire_and_forget(tagged("churn.C/FireUntilCancelled", peer), Bytes::new()).await;
        busy.spawn(async move {
            let _ = client.request_response(tagged("churn.C/Hang", peer), Bytes::new()).await;
        });
        (cut, busy)
    };
    for _ in 0..connections {
        open.push_back(connect(&mut opened).await);
    }
    let started = tokio::time::Instant::now();
    let half = Duration::from_secs(secs / 2);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut first_half_rss = None;
    while started.elapsed() < 2 * half {
        tick.tick().await;
        let (cut, _busy) = open.pop_front().unwrap();
        cut.cut();
        open.push_back(connect(&mut opened).await);
        if first_half_rss.is_none() && started.elapsed() >= half {
            first_half_rss = Some(rss_kib());
        }
    }
    let second_half_rss = rss_kib();
    for (cut, busy) in open.drain(..) {
        cut.cut();
        drop(busy);
    }
    let (left, tasks, alive) = settled(&running, &churn.0, baseline).await;
    let end_rss = rss_kib();
    let first = first_half_rss.unwrap();
    eprintln!(
        "{opened} connections in {secs} s: RSS {start_rss} KiB at the start, {first} KiB after the first half, \
         {second_half_rss} KiB after the second, {end_rss} KiB once all were gone"
    );
    assert_eq!((left, tasks, alive), (0, baseline, 0), "connections, tasks and handler calls left behind");
    assert!(
        second_half_rss <= first + (first / 10).max(16 * 1024),
        "resident memory grew from {first} KiB to {second_half_rss} KiB in the second half"
    );
    running.shutdown().await;
}
