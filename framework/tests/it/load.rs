//! Load and churn, with every answer checked exactly.
//!
//! Many connections at once, each with many calls in flight (unary 70 %, request/stream 15 %,
//! channel 10 %, fire-and-forget 5 % on Weft clients), against one server on 127.0.0.1 whose
//! answers can be verified byte for byte: unary echoes its request (a per-call tag and a body
//! derived from it, of sizes up to a few KiB, so that small fragment sizes split them);
//! request/stream yields `n` items 0..n derived from the request; a channel answers each
//! message with its bytes reversed; fire-and-forget is recorded per connection tag and
//! sequence number. The server checks every request's body too.
//!
//! Half the connections are Weft [`Client`]s (with their own credit; half of those with a
//! 128-byte fragment size, and the server fragments at 1 KiB). The other half are raw peers
//! that speak the wire as the Python and JavaScript clients do (`limitRate`): they grant
//! exactly the messages a stream or channel will send, in several REQUEST_N steps (either
//! when the credit is used up, or earlier), and fail the test if a message arrives beyond the
//! credit granted, a frame arrives for a stream that has ended, or an ERROR arrives at all.
//! Their mix leans on credit: request/stream 45 %, channel 35 %, unary 15 %,
//! fire-and-forget 5 %.
//!
//! One connection in three is cut while its calls are in flight (a TCP RST or a plain close,
//! without the RSocket close). Calls there may fail, but only cleanly: an error, never a
//! wrong answer, an early completion or a hang. On every other connection each call must be
//! exactly right: nothing lost, duplicated, corrupted, out of order, beyond credit or wrongly
//! completed, and every fire-and-forget counted by the server. At the end the server still
//! serves a fresh connection and [`RunningServer::connections`] returns to 0. (What a cut
//! connection leaves behind on the server is `churn.rs`'s subject, not this test's.)
//!
//! The short form runs with the suite (`cargo test -p weft --test it load`), in seconds. The
//! long form runs on demand: `WEFT_LOAD_CONNECTIONS` (default 1000) connection slots, each
//! opening connection after connection (and cutting one in three) for `WEFT_LOAD_SECS`
//! (default 120). It prints what it checked; 60 s with 1,000 connections on two cores came to
//! about 10,000 connections and a million calls (4 million stream items):
//!
//! ```text
//! WEFT_LOAD_SECS=120 WEFT_LOAD_CONNECTIONS=1000 \
//!     cargo test --release -p weft --test it load_long -- --ignored --nocapture
//! ```
//!
//! Each connection takes two file descriptors in this process (both ends): the long form
//! checks first that the soft `ulimit -n` allows twice the connections and some to spare,
//! and says so if it does not (raise it with `ulimit -n 4096` in the shell that runs it).

use crate::churn;
use crate::peer::{self, Peer, Read};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use weft::frame::metadata::COMPOSITE_METADATA_MIME;
use weft::frame::{self, Frame, Keepalive, PayloadFrame, RequestChannel, RequestN, RequestStream, Setup, VERSION};
use weft::{BoxFuture, Call, Client, Config, Handler, Payload, PayloadStream, Response, Responses, Server, Status};

const ROUTES: &[&str] = &["load.L/Unary", "load.L/Stream", "load.L/Chat", "load.L/Fire"];

/// How long one call (or one frame a raw peer waits for) may take before the test calls it a
/// hang. Only bounds hangs: nothing is asserted about speed.
const CALL_WAIT: Duration = Duration::from_secs(30);

/// The server's fragment size: answers above it go in several frames.
const SERVER_FRAGMENT: usize = 1024;

/// The fragment size of the Weft clients that fragment.
const CLIENT_FRAGMENT: usize = 128;

// ---------------------------------------------------------------------------------------
// Verifiable messages.

/// SplitMix64: the deterministic source of every body, size and choice.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = mix(self.0);
        self.0 % n.max(1)
    }
}

/// A message size: mostly small, one in eight beyond both fragment sizes.
fn size(seed: u64) -> usize {
    let mut rng = Rng(seed);
    if rng.below(8) == 0 { 1500 + rng.below(6000) as usize } else { rng.below(400) as usize }
}

/// The message tagged `tag`: its tag, `|`, then `len` bytes derived from the tag.
fn message(tag: u64, len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len + 21);
    out.extend_from_slice(tag.to_string().as_bytes());
    out.push(b'|');
    let mut x = tag;
    while out.len() < len + 21 {
        x = mix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(tag.to_string().len() + 1 + len);
    out.into()
}

/// The tag of `data` if it is an intact [`message`].
fn intact(data: &[u8]) -> Option<u64> {
    let bar = data.iter().position(|&b| b == b'|')?;
    let tag: u64 = std::str::from_utf8(&data[..bar]).ok()?.parse().ok()?;
    (message(tag, data.len() - bar - 1) == data).then_some(tag)
}

/// Item `i` of the stream requested with `tag`.
fn stream_item(tag: u64, i: u64) -> Bytes {
    let item = mix(tag ^ (i << 32) ^ 0x5157);
    message(item, size(item))
}

/// A stream request: the tag and the number of items.
fn stream_request(tag: u64, n: u64) -> Bytes {
    format!("{tag} {n}").into()
}

/// Message `j` a requester sends on the channel tagged `tag`.
fn channel_message(tag: u64, j: u64) -> Bytes {
    let m = mix(tag ^ (j << 32) ^ 0xc4a7);
    message(m, size(m))
}

/// The server's answer to a channel message.
fn reversed(data: &[u8]) -> Bytes {
    data.iter().rev().copied().collect::<Vec<_>>().into()
}

/// A fire-and-forget's data: connection `conn`'s `seq`-th.
fn fire_message(conn: u64, seq: u32) -> Bytes {
    let tag = (conn << 32) | u64::from(seq);
    message(tag, size(tag) % 600)
}

/// How `got` differs from `expected`, for a failure message.
fn differ(got: &[u8], expected: &[u8]) -> String {
    let tag = |m: &[u8]| intact(m).map_or_else(|| "not intact".to_owned(), |t| format!("intact, tag {t}"));
    let first = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
    format!(
        "{} bytes ({}) where {} bytes ({}) were expected, first difference at byte {first}",
        got.len(),
        tag(got),
        expected.len(),
        tag(expected)
    )
}

/// A fresh tag for a call or a connection, unique in the process.
fn next_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// The server.

#[derive(Default)]
struct Served {
    /// Fire-and-forget sequence numbers received, by connection tag.
    fired: Mutex<HashMap<u64, HashSet<u32>>>,
    /// Fire-and-forget received twice.
    duplicates: AtomicU64,
    /// Requests whose bytes were not what their tag says.
    corrupt: AtomicU64,
}

#[derive(Clone, Default)]
struct Load(Arc<Served>);

impl Load {
    fn corrupt(&self, what: &str) -> Status {
        self.0.corrupt.fetch_add(1, Ordering::SeqCst);
        Status::data_loss(format!("corrupt {what}"))
    }
}

impl Handler for Load {
    fn request_response(&self, _call: Call, data: Bytes) -> Response {
        if intact(&data).is_none() {
            return Response::ready(Err(self.corrupt("request")));
        }
        Response::ready(Ok(Payload::new(data)))
    }

    fn fire_and_forget(&self, _call: Call, data: Bytes) -> BoxFuture<'static, ()> {
        match intact(&data) {
            Some(tag) => {
                let (conn, seq) = (tag >> 32, tag as u32);
                if !self.0.fired.lock().unwrap().entry(conn).or_default().insert(seq) {
                    self.0.duplicates.fetch_add(1, Ordering::SeqCst);
                }
            }
            None => drop(self.corrupt("fire-and-forget")),
        }
        Box::pin(async {})
    }

    fn request_stream(&self, _call: Call, data: Bytes) -> Responses {
        let request = std::str::from_utf8(&data).ok().and_then(|s| {
            let (tag, n) = s.split_once(' ')?;
            Some((tag.parse::<u64>().ok()?, n.parse::<u64>().ok()?))
        });
        let Some((tag, n)) = request else { return Responses::once(Err(self.corrupt("stream request"))) };
        let items = stream::iter(0..n).map(move |i| Ok(Payload::new(stream_item(tag, i))));
        if tag.is_multiple_of(2) {
            // Items ready at once: the producer runs into its credit with the next one ready.
            Responses::new(items)
        } else {
            // Items that are not ready at every poll.
            Responses::new(items.then(|item| async {
                tokio::task::yield_now().await;
                item
            }))
        }
    }

    fn request_channel(&self, _call: Call, messages: PayloadStream) -> Responses {
        let this = self.clone();
        Responses::new(messages.map(move |m| {
            let m = m?;
            match intact(&m.data) {
                Some(_) if m.metadata.is_empty() => Ok(Payload::new(reversed(&m.data))),
                _ => Err(this.corrupt("channel message")),
            }
        }))
    }
}

// ---------------------------------------------------------------------------------------
// What the requesters checked.

#[derive(Default, Debug)]
struct Checked {
    unary: AtomicU64,
    streams: AtomicU64,
    stream_items: AtomicU64,
    channels: AtomicU64,
    channel_messages: AtomicU64,
    fires: AtomicU64,
    /// Calls on cut connections that failed cleanly (or, for a raw peer, were in flight when
    /// it vanished).
    cut_short: AtomicU64,
    connections: AtomicU64,
    cut: AtomicU64,
    raw_requests_n: AtomicU64,
}

impl Checked {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn report(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} connections ({} cut mid-call); checked exactly: {} unary, {} streams ({} items), \
             {} channels ({} messages back), {} fire-and-forget; {} calls cut short cleanly; \
             raw peers sent {} REQUEST_N",
            get(&self.connections),
            get(&self.cut),
            get(&self.unary),
            get(&self.streams),
            get(&self.stream_items),
            get(&self.channels),
            get(&self.channel_messages),
            get(&self.fires),
            get(&self.cut_short),
            get(&self.raw_requests_n),
        )
    }
}

/// Fire-and-forget a connection sent: how many (numbered 0..sent), and whether it was cut.
struct Fired {
    conn: u64,
    sent: u32,
    cut: bool,
}

// ---------------------------------------------------------------------------------------
// A connection's plan.

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A Weft client, fragmenting at [`CLIENT_FRAGMENT`] or not.
    Weft { fragment: bool },
    /// A raw peer on exact credit, granting more when it is used up or (`early`) when half
    /// the last grant is left.
    Raw { early: bool },
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    conn: u64,
    kind: Kind,
    /// Calls at once.
    concurrency: u64,
    /// Calls in all (a Weft client: per worker).
    calls: u64,
    /// Cut after this many answers (a Weft client: calls finished; a raw peer: frames read),
    /// with an RST or not.
    cut: Option<(u64, bool)>,
}

fn plan(slot: u64, generation: u64, concurrency: u64, calls: u64) -> Plan {
    let conn = next_tag();
    let mut rng = Rng(mix(conn ^ 0x10ad));
    let kind = match (slot + generation) % 4 {
        0 => Kind::Weft { fragment: false },
        1 => Kind::Raw { early: false },
        2 => Kind::Weft { fragment: true },
        _ => Kind::Raw { early: true },
    };
    let cut = (slot + 2 * generation).is_multiple_of(3).then(|| (1 + rng.below(calls * 2), rng.below(2) == 0));
    Plan { conn, kind, concurrency, calls, cut }
}

async fn connection(addr: SocketAddr, plan: Plan, checked: Arc<Checked>) -> Fired {
    Checked::add(&checked.connections, 1);
    if plan.cut.is_some() {
        Checked::add(&checked.cut, 1);
    }
    match plan.kind {
        Kind::Weft { fragment } => weft_connection(addr, plan, fragment, checked).await,
        Kind::Raw { early } => raw_connection(addr, plan, early, checked).await,
    }
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(CALL_WAIT, f).await.unwrap_or_else(|_| panic!("{what}: no answer within {CALL_WAIT:?}"))
}

// ---------------------------------------------------------------------------------------
// Weft clients.

async fn weft_connection(addr: SocketAddr, plan: Plan, fragment: bool, checked: Arc<Checked>) -> Fired {
    let mut config = Config::default();
    if fragment {
        config = config.fragment_size(Some(CLIENT_FRAGMENT));
    }
    let rst = plan.cut.is_some_and(|(_, rst)| rst);
    let (client, cut) = churn::cuttable_client_with(addr, rst, config).await;
    let done = Arc::new(AtomicU64::new(0));
    let fires = Arc::new(AtomicU32::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..plan.concurrency {
        let worker = Worker {
            client: client.clone(),
            plan,
            rng: Rng(mix(plan.conn ^ (w << 40))),
            done: done.clone(),
            fires: fires.clone(),
            checked: checked.clone(),
        };
        workers.spawn(worker.run());
    }
    if let Some((after, _)) = plan.cut {
        // Bounded: by the count, and by the workers' running out of calls.
        for _ in 0..20_000 {
            if done.load(Ordering::SeqCst) >= after || workers.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cut.cut();
    }
    while let Some(joined) = within("a Weft client's workers", workers.join_next()).await {
        joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    drop(client);
    Fired { conn: plan.conn, sent: fires.load(Ordering::SeqCst), cut: plan.cut.is_some() }
}

struct Worker {
    client: Client,
    plan: Plan,
    rng: Rng,
    done: Arc<AtomicU64>,
    fires: Arc<AtomicU32>,
    checked: Arc<Checked>,
}

/// A call that failed: fine on a connection that was cut, a failure of the test otherwise.
struct Failed;

impl Worker {
    async fn run(mut self) {
        for _ in 0..self.plan.calls {
            let pick = self.rng.below(100);
            let result = match pick {
                0..70 => self.unary().await,
                70..85 => self.stream().await,
                85..95 => self.channel().await,
                _ => self.fire().await,
            };
            if result.is_err() {
                // The connection is gone: every later call would fail the same way.
                Checked::add(&self.checked.cut_short, 1);
                return;
            }
            self.done.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn failed(&self, what: &str, status: &Status) -> Failed {
        assert!(
            self.plan.cut.is_some(),
            "connection {}: {what} failed on a connection not cut: {status}",
            self.plan.conn
        );
        Failed
    }

    async fn unary(&mut self) -> Result<(), Failed> {
        let tag = next_tag();
        let request = message(tag, size(tag));
        let answer = within("a unary call", self.client.request_response(Call::new("load.L/Unary"), request.clone()))
            .await
            .map_err(|e| self.failed("a unary call", &e))?;
        assert!(
            answer.data == request,
            "unary {tag}: the answer is not the request: {}",
            differ(&answer.data, &request)
        );
        assert!(answer.metadata.is_empty(), "unary {tag}: metadata in the answer");
        Checked::add(&self.checked.unary, 1);
        Ok(())
    }

    async fn stream(&mut self) -> Result<(), Failed> {
        let tag = next_tag();
        let n = self.rng.below(41);
        let call = self.client.request_stream(Call::new("load.L/Stream"), stream_request(tag, n));
        let items = within("a stream request", call).await.map_err(|e| self.failed("a stream request", &e))?;
        let got = self.read_all(items, &format!("stream {tag}"), n, |i| stream_item(tag, i)).await?;
        Checked::add(&self.checked.streams, 1);
        Checked::add(&self.checked.stream_items, got);
        Ok(())
    }

    async fn channel(&mut self) -> Result<(), Failed> {
        let tag = next_tag();
        let k = 1 + self.rng.below(30);
        let trickle = tag.is_multiple_of(2);
        let messages = stream::iter(0..k).then(move |j| async move {
            if trickle {
                tokio::task::yield_now().await;
            }
            Payload::new(channel_message(tag, j))
        });
        let call = self.client.request_channel(Call::new("load.L/Chat"), messages);
        let replies = within("a channel request", call).await.map_err(|e| self.failed("a channel request", &e))?;
        let got = self.read_all(replies, &format!("channel {tag}"), k, |j| reversed(&channel_message(tag, j))).await?;
        Checked::add(&self.checked.channels, 1);
        Checked::add(&self.checked.channel_messages, got);
        Ok(())
    }

    /// Reads `stream` to its end: exactly `n` items, the `i`th `expected(i)`, then the end; or
    /// (on a cut connection) a prefix of them, an error, and the end.
    async fn read_all(
        &self,
        mut stream: PayloadStream,
        what: &str,
        n: u64,
        expected: impl Fn(u64) -> Bytes,
    ) -> Result<u64, Failed> {
        let mut i = 0;
        // Bounded: n items, an end, and one more look after an error.
        for _ in 0..=n + 1 {
            match within(what, stream.next()).await {
                Some(Ok(item)) => {
                    assert!(i < n, "{what}: an item beyond its {n}");
                    let expected = expected(i);
                    assert!(
                        item.data == expected,
                        "{what}: item {i} of {n} is wrong: {}",
                        differ(&item.data, &expected)
                    );
                    assert!(item.metadata.is_empty(), "{what}: metadata in item {i}");
                    i += 1;
                }
                Some(Err(e)) => {
                    let failed = self.failed(what, &e);
                    let after = within(what, stream.next()).await;
                    assert!(after.is_none(), "{what}: {after:?} after the error {e}");
                    return Err(failed);
                }
                None => {
                    assert_eq!(i, n, "{what}: completed after {i} of its {n} items");
                    return Ok(i);
                }
            }
        }
        panic!("{what}: more than {n} items and no end")
    }

    async fn fire(&mut self) -> Result<(), Failed> {
        let seq = self.fires.fetch_add(1, Ordering::SeqCst);
        let call = self.client.fire_and_forget(Call::new("load.L/Fire"), fire_message(self.plan.conn, seq));
        within("a fire-and-forget", call).await.map_err(|e| self.failed("a fire-and-forget", &e))?;
        Checked::add(&self.checked.fires, 1);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Raw peers on exact credit.

/// Splits `total` (at least 1) into grants of random sizes.
fn grants(rng: &mut Rng, total: u64) -> VecDeque<u32> {
    let mut left = total.max(1);
    let mut out = VecDeque::new();
    while left > 0 {
        let step = (1 + rng.below(8)).min(left);
        out.push_back(step as u32);
        left -= step;
    }
    out
}

enum Expect {
    Unary {
        request: Bytes,
    },
    /// Request/stream: `n` items; or a channel's `n` answers to the `n` messages this side
    /// sends (`sent` so far, on the server's `credit`).
    Many {
        tag: u64,
        n: u64,
        channel: bool,
        sent: u64,
        credit: u64,
    },
}

struct RawCall {
    expect: Expect,
    /// Messages received and credit granted so far, and the grants still to come.
    got: u64,
    granted: u64,
    last_grant: u64,
    grants: VecDeque<u32>,
    /// A fragmented message so far: metadata and data.
    partial: Option<(BytesMut, BytesMut)>,
}

impl RawCall {
    fn what(&self, id: u32) -> String {
        match &self.expect {
            Expect::Unary { .. } => format!("raw unary on stream {id}"),
            Expect::Many { tag, n, channel: false, .. } => format!("raw stream {tag} ({n} items) on stream {id}"),
            Expect::Many { tag, n, channel: true, .. } => format!("raw channel {tag} ({n} messages) on stream {id}"),
        }
    }
}

struct RawPeer {
    peer: Peer,
    plan: Plan,
    early: bool,
    rng: Rng,
    open: HashMap<u32, RawCall>,
    /// Streams that ended: a frame on one of them is a frame after the end.
    ended: HashSet<u32>,
    next_id: u32,
    fires: u32,
    checked: Arc<Checked>,
}

async fn raw_connection(addr: SocketAddr, plan: Plan, early: bool, checked: Arc<Checked>) -> Fired {
    let mut peer = Peer::connect(addr).await;
    peer.send(&Frame::Setup(Setup {
        version: VERSION,
        keepalive_interval: 10_000,
        max_lifetime: 240_000,
        resume_token: None,
        lease: false,
        metadata_mime: COMPOSITE_METADATA_MIME.into(),
        data_mime: "application/octet-stream".into(),
        payload: Default::default(),
    }))
    .await;
    let mut raw = RawPeer {
        peer,
        plan,
        early,
        rng: Rng(mix(plan.conn ^ 0x4a77)),
        open: HashMap::new(),
        ended: HashSet::new(),
        next_id: 1,
        fires: 0,
        checked,
    };
    let mut started = 0;
    // Bounded: every round reads a frame (within CALL_WAIT) or ends the connection.
    for frames in 0..1_000_000u64 {
        while (raw.open.len() as u64) < plan.concurrency && started < plan.calls {
            raw.start().await;
            started += 1;
        }
        if let Some((after, rst)) = plan.cut
            && frames >= after
        {
            Checked::add(&raw.checked.cut_short, raw.open.len() as u64);
            let fired = Fired { conn: plan.conn, sent: raw.fires, cut: true };
            raw.peer.vanish(rst);
            return fired;
        }
        if raw.open.is_empty() {
            break;
        }
        match raw.peer.read_within(CALL_WAIT).await {
            Read::Frame(frame) => raw.on_frame(frame).await,
            other => {
                let open: Vec<_> =
                    raw.open.iter().map(|(&id, c)| format!("{}: {}/{}", c.what(id), c.got, c.granted)).collect();
                panic!("raw connection {}: {other:?} with calls open (received/granted): {open:?}", plan.conn)
            }
        }
    }
    assert!(raw.open.is_empty(), "raw connection {}: calls still open after a million frames", plan.conn);
    // Nothing more may come for the calls that ended.
    match raw.peer.read_within(Duration::from_millis(20)).await {
        Read::Nothing | Read::Frame(Frame::Keepalive(_)) => {}
        other => panic!("raw connection {}: {other:?} after every call ended", plan.conn),
    }
    let fired = Fired { conn: plan.conn, sent: raw.fires, cut: plan.cut.is_some() };
    if plan.cut.is_some() {
        // Cut after its last answer: still without the RSocket close.
        raw.peer.vanish(plan.cut.is_some_and(|(_, rst)| rst));
    }
    fired
}

impl RawPeer {
    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        id
    }

    /// Starts a call (stream 45 %, channel 35 %, unary 15 %, fire-and-forget 5 %).
    async fn start(&mut self) {
        let id = self.id();
        let tag = next_tag();
        let metadata = |route| Some(peer::route(route));
        let pick = self.rng.below(100);
        let (expect, grants) = match pick {
            0..45 => {
                let n = self.rng.below(41);
                let grants = grants(&mut self.rng, n);
                self.peer
                    .send(&Frame::RequestStream(RequestStream {
                        stream_id: id,
                        follows: false,
                        initial_n: grants[0],
                        payload: frame::Payload { metadata: metadata("load.L/Stream"), data: stream_request(tag, n) },
                    }))
                    .await;
                (Expect::Many { tag, n, channel: false, sent: 0, credit: 0 }, grants)
            }
            45..80 => {
                let k = 1 + self.rng.below(30);
                let grants = grants(&mut self.rng, k);
                self.peer
                    .send(&Frame::RequestChannel(RequestChannel {
                        stream_id: id,
                        follows: false,
                        complete: k == 1,
                        initial_n: grants[0],
                        payload: frame::Payload { metadata: metadata("load.L/Chat"), data: channel_message(tag, 0) },
                    }))
                    .await;
                (Expect::Many { tag, n: k, channel: true, sent: 1, credit: 0 }, grants)
            }
            80..95 => {
                let request = message(tag, size(tag));
                self.peer
                    .send(&Frame::RequestResponse(frame::Request {
                        stream_id: id,
                        follows: false,
                        payload: frame::Payload { metadata: metadata("load.L/Unary"), data: request.clone() },
                    }))
                    .await;
                (Expect::Unary { request }, VecDeque::from([1]))
            }
            _ => {
                let data = fire_message(self.plan.conn, self.fires);
                self.fires += 1;
                self.peer
                    .send(&Frame::RequestFnf(frame::Request {
                        stream_id: id,
                        follows: false,
                        payload: frame::Payload { metadata: metadata("load.L/Fire"), data },
                    }))
                    .await;
                Checked::add(&self.checked.fires, 1);
                self.ended.insert(id);
                return;
            }
        };
        let mut grants = grants;
        let first = u64::from(grants.pop_front().unwrap());
        let call = RawCall { expect, got: 0, granted: first, last_grant: first, grants, partial: None };
        self.open.insert(id, call);
    }

    async fn on_frame(&mut self, frame: Frame) {
        let conn = self.plan.conn;
        let (id, p) = match frame {
            Frame::Payload(p) => (p.stream_id, p),
            Frame::RequestN(RequestN { stream_id, n }) => {
                let Some(RawCall { expect: Expect::Many { channel: true, credit, .. }, .. }) =
                    self.open.get_mut(&stream_id)
                else {
                    panic!("raw connection {conn}: REQUEST_N for stream {stream_id}, not an open channel");
                };
                *credit += u64::from(n);
                return self.send_messages(stream_id).await;
            }
            Frame::Keepalive(k) => {
                if k.respond {
                    let answer = Keepalive { respond: false, last_received_position: 0, data: k.data };
                    self.peer.send(&Frame::Keepalive(answer)).await;
                }
                return;
            }
            other => panic!("raw connection {conn}: unexpected {other:?}"),
        };
        if self.ended.contains(&id) {
            panic!("raw connection {conn}: a frame on stream {id} after it ended: {p:?}");
        }
        let Some(call) = self.open.get_mut(&id) else {
            panic!("raw connection {conn}: a frame on stream {id}, never opened")
        };
        let what = call.what(id);
        let PayloadFrame { follows, complete, next, payload, .. } = p;
        let (mut metadata, mut data) = call.partial.take().unwrap_or_default();
        let fragmented = !data.is_empty() || !metadata.is_empty();
        metadata.extend_from_slice(payload.metadata.as_deref().unwrap_or_default());
        data.extend_from_slice(&payload.data);
        if follows && !complete {
            call.partial = Some((metadata, data));
            return;
        }
        if next || fragmented {
            let i = call.got;
            call.got += 1;
            assert!(call.got <= call.granted, "{what}: message {} beyond the {} granted", call.got, call.granted);
            assert!(metadata.is_empty(), "{what}: metadata in message {i}");
            let expected = match &call.expect {
                Expect::Unary { request } => request.clone(),
                Expect::Many { tag, channel: false, .. } => stream_item(*tag, i),
                Expect::Many { tag, channel: true, .. } => reversed(&channel_message(*tag, i)),
            };
            assert!(data == expected[..], "{what}: message {i} is not what was expected: {}", differ(&data, &expected));
        }
        if complete {
            let call = self.open.remove(&id).unwrap();
            self.ended.insert(id);
            match call.expect {
                Expect::Unary { .. } => {
                    assert_eq!(call.got, 1, "{what}: completed without its answer");
                    Checked::add(&self.checked.unary, 1);
                }
                Expect::Many { n, channel, sent, .. } => {
                    assert_eq!(call.got, n, "{what}: completed after {} of {n} messages", call.got);
                    if channel {
                        assert_eq!(sent, n, "{what}: completed before this side sent its messages");
                        Checked::add(&self.checked.channels, 1);
                        Checked::add(&self.checked.channel_messages, n);
                    } else {
                        Checked::add(&self.checked.streams, 1);
                        Checked::add(&self.checked.stream_items, n);
                    }
                }
            }
            return;
        }
        if matches!(call.expect, Expect::Unary { .. }) {
            panic!("{what}: an answer without C");
        }
        // More credit: exactly what is still to come, when the last grant is used up (or half
        // of it, early).
        let left = call.granted - call.got;
        let threshold = if self.early { call.last_grant / 2 } else { 0 };
        if left <= threshold
            && let Some(n) = call.grants.pop_front()
        {
            call.granted += u64::from(n);
            call.last_grant = u64::from(n);
            self.peer.send(&Frame::RequestN(RequestN { stream_id: id, n })).await;
            Checked::add(&self.checked.raw_requests_n, 1);
        }
    }

    /// Sends channel `id`'s messages the server has granted, the last with C.
    async fn send_messages(&mut self, id: u32) {
        let Some(RawCall { expect: Expect::Many { tag, n, sent, credit, .. }, .. }) = self.open.get_mut(&id) else {
            return;
        };
        let mut frames = Vec::new();
        while *sent < *n && *credit > 0 {
            let data = channel_message(*tag, *sent);
            *sent += 1;
            *credit -= 1;
            frames.push(Frame::Payload(PayloadFrame {
                stream_id: id,
                follows: false,
                complete: *sent == *n,
                next: true,
                payload: frame::Payload { metadata: None, data },
            }));
        }
        for frame in &frames {
            self.peer.send(frame).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The runs.

struct Run {
    connections: u64,
    /// Connections each slot opens one after the other, at most.
    generations: u64,
    /// No slot opens a connection after this.
    until: Instant,
    concurrency: u64,
    calls: u64,
}

async fn load(run: Run) -> String {
    let started = Instant::now();
    let load = Load::default();
    let config = Config::default().fragment_size(Some(SERVER_FRAGMENT));
    let server = Server::builder().add_handler(ROUTES, load.clone()).config(config).build();
    let running = server.bind("127.0.0.1:0").await.unwrap();
    let addr = running.local_addr();
    let checked = Arc::new(Checked::default());
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..run.connections {
        let checked = checked.clone();
        let (generations, until, concurrency, calls) = (run.generations, run.until, run.concurrency, run.calls);
        slots.spawn(async move {
            // Not all at once: the listener's backlog.
            tokio::time::sleep(Duration::from_millis(slot)).await;
            let mut fired = Vec::new();
            for generation in 0..generations {
                if generation > 0 && Instant::now() >= until {
                    break;
                }
                let plan = plan(slot, generation, concurrency, calls);
                fired.push(connection(addr, plan, checked.clone()).await);
            }
            fired
        });
    }
    let mut fired = Vec::new();
    // The most connections the server held at once, looked at every 50 ms (for the report).
    let mut peak = 0;
    let mut look = tokio::time::interval(Duration::from_millis(50));
    // Bounded: each slot ends (its calls bounded by CALL_WAIT), and by the count.
    for _ in 0..100_000_000u64 {
        tokio::select! {
            joined = slots.join_next() => match joined {
                Some(joined) => fired.extend(joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))),
                None => break,
            },
            _ = look.tick() => peak = peak.max(running.connections()),
        }
    }
    // Every fire-and-forget sent on a connection that was not cut reached the server once; on
    // one that was, some may not have.
    let lost = || {
        let served = load.0.fired.lock().unwrap();
        let mut lost = Vec::new();
        for f in &fired {
            let seqs = served.get(&f.conn);
            let count = seqs.map_or(0, HashSet::len);
            if let Some(stray) = seqs.and_then(|s| s.iter().find(|&&s| s >= f.sent)) {
                panic!("connection {}: fire-and-forget {stray} served, only {} sent", f.conn, f.sent);
            }
            if !f.cut && count != f.sent as usize {
                lost.push((f.conn, f.sent, count));
            }
        }
        lost
    };
    for _ in 0..500 {
        if lost().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lost = lost();
    assert!(lost.is_empty(), "fire-and-forget lost (connection, sent, served): {lost:?}");
    assert_eq!(load.0.duplicates.load(Ordering::SeqCst), 0, "fire-and-forget served twice");
    assert_eq!(load.0.corrupt.load(Ordering::SeqCst), 0, "requests that reached the server corrupt");
    // The server still serves, exactly.
    let client = Client::connect(addr).await.unwrap();
    let request = message(next_tag(), 5000);
    let answer = within("a fresh connection", client.request_response(Call::new("load.L/Unary"), request.clone()));
    assert!(answer.await.unwrap().data == request, "a fresh connection's answer is not its request");
    let items = within("a fresh stream", client.request_stream(Call::new("load.L/Stream"), stream_request(8, 3)));
    let items: Vec<_> = within("a fresh stream", items.await.unwrap().collect::<Vec<_>>()).await;
    let items: Vec<_> = items.into_iter().map(|i| i.unwrap().data).collect();
    assert_eq!(items, (0..3).map(|i| stream_item(8, i)).collect::<Vec<_>>());
    drop(client);
    // And lets go of every connection once its peer is gone.
    for _ in 0..500 {
        if running.connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(running.connections(), 0, "connections still served after every peer went");
    running.shutdown().await;
    format!("{}; at most {peak} connections open at once; {:.1} s", checked.report(), started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_exact_under_load_and_churn() {
    // 24 connections at a time, 72 in all, each with 8 calls at once.
    let until = Instant::now() + Duration::from_secs(30);
    let run = Run { connections: 24, generations: 3, until, concurrency: 8, calls: 40 };
    let report = tokio::time::timeout(Duration::from_secs(60), load(run)).await.expect("the load test timed out");
    eprintln!("load: {report}");
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

/// The soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The long form (see the module doc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; see the module doc"]
async fn load_long() {
    let secs = env_or("WEFT_LOAD_SECS", 120);
    let connections = env_or("WEFT_LOAD_CONNECTIONS", 1000);
    let needed = 2 * connections + 256;
    if let Some(limit) = open_files_limit() {
        assert!(limit >= needed, "{connections} connections need about {needed} open files, `ulimit -n` is {limit}");
    }
    let until = Instant::now() + Duration::from_secs(secs);
    let run = Run { connections, generations: u64::MAX, until, concurrency: 4, calls: 50 };
    // Bounded: the last connections start before `until` and each call within CALL_WAIT.
    let report = tokio::time::timeout(Duration::from_secs(secs + 600), load(run)).await.expect("timed out");
    eprintln!("load_long: {report}");
}
