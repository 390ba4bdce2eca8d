//! The workloads, written once against [`System`], so that raw, tonic and Weft run exactly the
//! same loops. Every loop is bounded by a count and by the workload's deadline.

use crate::common::{Kind, Outcome, Result, Work, begin, end};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One system's client, reduced to what the workloads need. The workload's own loop runs in the
/// client's main future (`block_on`, on the main thread whatever the runtime flavour, as in
/// `#[tokio::main]`); its futures need not be `Send` (the client runs in a `LocalSet`), except
/// those of the tasks that share a connection ([`System::unary_shared`]), which are runtime
/// tasks: on the multi-thread runtime they run on its workers.
#[allow(async_fn_in_trait)]
pub trait System: 'static {
    /// A connection; clones share it.
    type Conn: Clone + 'static;
    /// The response side of a server stream.
    type Stream: 'static;
    /// An open channel (bidirectional stream).
    type Chan: 'static;

    async fn connect(addr: SocketAddr) -> Result<Self::Conn>;
    /// One unary call; the response is decoded (and dropped).
    async fn unary(conn: &Self::Conn, data: Bytes) -> Result<()>;
    /// What many tasks share to make calls on one connection (a clone each). Sendable: those
    /// tasks are runtime tasks, as an application's would be (see [`run`]).
    type Shared: Clone + Send + Sync + 'static;
    /// The handle for many tasks, made before the measured part.
    async fn shared(conn: &Self::Conn) -> Result<Self::Shared>;
    /// A connection of its own, as the handle many tasks share: one per connection of the
    /// conn-scaling workload. By default a connection made only to be shared; raw TCP, whose
    /// shared handle is a second connection, makes just that one.
    async fn connect_shared(addr: SocketAddr) -> Result<Self::Shared> {
        let conn = Self::connect(addr).await?;
        Self::shared(&conn).await
    }
    /// A unary call from one of many tasks sharing a connection.
    fn unary_shared(conn: &Self::Shared, data: Bytes) -> impl Future<Output = Result<()>> + Send;
    /// Opens a server stream of `count` messages of `size` bytes (`hold`: one, then silence).
    async fn stream(conn: &Self::Conn, count: u64, size: usize, hold: bool) -> Result<Self::Stream>;
    /// The next message of a stream: `false` at its end.
    async fn next(stream: &mut Self::Stream) -> Result<bool>;
    /// Up to `limit` (≥ 1) next messages of a stream, as many as have arrived once one has: how
    /// many, 0 at its end. Systems with a way to take several at once use it (Weft's
    /// `Streaming::recv_many`, issue 20's batch path); the others take one.
    async fn next_many(stream: &mut Self::Stream, limit: u64) -> Result<u64> {
        let _ = limit;
        Ok(u64::from(Self::next(stream).await?))
    }
    /// Opens a channel and completes one round trip with `data`.
    async fn channel(conn: &Self::Conn, data: Bytes) -> Result<Self::Chan>;
    /// One round trip on a channel: send `data`, receive the echo.
    async fn ping(chan: &mut Self::Chan, data: Bytes) -> Result<()>;
}

fn nanos(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// Runs `work` as a client of `S` at `addr`.
pub async fn run<S: System>(addr: SocketAddr, w: &Work) -> Result<Outcome> {
    let data = w.payload();
    match w.kind {
        Kind::UnaryLatency => {
            let conn = S::connect(addr).await?;
            for _ in 0..w.warm {
                S::unary(&conn, data.clone()).await?;
            }
            let start = begin()?;
            let deadline = w.deadline();
            let mut lat = Vec::with_capacity(w.n as usize);
            for _ in 0..w.n {
                if Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                S::unary(&conn, data.clone()).await?;
                lat.push(nanos(t));
            }
            let end = end()?;
            Ok(Outcome { ops: lat.len() as u64, start, end, lat_ns: lat })
        }
        Kind::UnaryThroughput => {
            let conn = S::connect(addr).await?;
            for _ in 0..w.warm {
                S::unary(&conn, data.clone()).await?;
            }
            let shared = S::shared(&conn).await?;
            let start = begin()?;
            let deadline = w.deadline();
            // Tasks claim calls from a shared budget, so the total is `n` whatever the spread.
            // They are runtime tasks (`tokio::spawn`), as an application's are, not `LocalSet`
            // tasks: a `LocalSet` polls at most 61 of its tasks before the runtime polls its own
            // (where Weft's and tonic's connection tasks run), which split each round of 64
            // calls into two writes; and on the multi-thread runtime they run on the workers.
            let budget = Arc::new(AtomicU64::new(w.n));
            let mut tasks = Vec::with_capacity(w.inflight);
            for _ in 0..w.inflight {
                let (shared, data, budget) = (shared.clone(), data.clone(), budget.clone());
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while Instant::now() < deadline
                        && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
                    {
                        let t = Instant::now();
                        S::unary_shared(&shared, data.clone()).await?;
                        mine.push(nanos(t));
                    }
                    Ok::<_, crate::common::Error>(mine)
                }));
            }
            let mut lat = Vec::with_capacity(w.n as usize);
            for task in tasks {
                lat.extend(task.await??);
            }
            let end = end()?;
            Ok(Outcome { ops: lat.len() as u64, start, end, lat_ns: lat })
        }
        Kind::ServerStream => {
            let conn = S::connect(addr).await?;
            S::unary(&conn, data.clone()).await?;
            let start = begin()?;
            let deadline = w.deadline();
            let mut stream = S::stream(&conn, w.n, w.size, false).await?;
            let mut got = 0u64;
            // Check the clock every 1024 messages: reading it costs as much as a message. (A
            // batch ends at the next multiple of 1024.)
            while got < w.n && (!got.is_multiple_of(1024) || Instant::now() < deadline) {
                let limit = (w.n - got).min(1024 - got % 1024);
                let n = S::next_many(&mut stream, limit).await?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let end = end()?;
            drop(stream);
            Ok(Outcome { ops: got, start, end, lat_ns: Vec::new() })
        }
        Kind::PingPong => {
            let conn = S::connect(addr).await?;
            let mut chan = S::channel(&conn, data.clone()).await?;
            for _ in 0..w.warm {
                S::ping(&mut chan, data.clone()).await?;
            }
            let start = begin()?;
            let deadline = w.deadline();
            let mut lat = Vec::with_capacity(w.n as usize);
            for _ in 0..w.n {
                if Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                S::ping(&mut chan, data.clone()).await?;
                lat.push(nanos(t));
            }
            let end = end()?;
            Ok(Outcome { ops: lat.len() as u64, start, end, lat_ns: lat })
        }
        Kind::SlowConsumer => {
            let conn = S::connect(addr).await?;
            S::unary(&conn, data.clone()).await?;
            let start = begin()?;
            let deadline = w.deadline();
            let mut stream = S::stream(&conn, w.n, w.size, false).await?;
            let mut got = 0u64;
            'outer: while got < w.n && Instant::now() < deadline {
                for _ in 0..w.burst.min(w.n - got) {
                    if !S::next(&mut stream).await? {
                        break 'outer;
                    }
                    got += 1;
                }
                tokio::time::sleep(Duration::from_millis(w.pause_ms)).await;
            }
            // The server's peak is read while the stream is still open and full.
            let end = end()?;
            drop(stream);
            Ok(Outcome { ops: got, start, end, lat_ns: Vec::new() })
        }
        Kind::ScaleStreams => {
            let conn = S::connect(addr).await?;
            S::unary(&conn, data.clone()).await?;
            let start = begin()?;
            let deadline = w.deadline();
            let mut streams = Vec::with_capacity(w.n as usize);
            // Opened one after another, each confirmed by its first message, so that every
            // stream counted is open on the server when it is measured.
            for _ in 0..w.n {
                if Instant::now() > deadline {
                    break;
                }
                let mut stream = S::stream(&conn, 1, w.size, true).await?;
                if !S::next(&mut stream).await? {
                    return Err("a held stream ended".into());
                }
                streams.push(stream);
            }
            // Let the server settle (idle tasks, buffers returned) before measuring.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let end = end()?;
            let ops = streams.len() as u64;
            drop(streams);
            Ok(Outcome { ops, start, end, lat_ns: Vec::new() })
        }
        Kind::ConnScaling => conn_scaling::<S>(addr, w, data).await,
        Kind::ScaleConns => {
            let start = begin()?;
            let deadline = w.deadline();
            let mut conns = Vec::with_capacity(w.n as usize);
            for _ in 0..w.n {
                if Instant::now() > deadline {
                    break;
                }
                let conn = S::connect(addr).await?;
                S::unary(&conn, data.clone()).await?;
                conns.push(conn);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let end = end()?;
            let ops = conns.len() as u64;
            drop(conns);
            Ok(Outcome { ops, start, end, lat_ns: Vec::new() })
        }
    }
}

/// Calls made by one task of the conn-scaling workload, on a cache line of its own: the tasks
/// run on every worker, and one shared counter would be a contended line of the client's.
#[repr(align(64))]
#[derive(Default)]
struct Count(AtomicU64);

/// The conn-scaling workload, one client process's part (the orchestrator runs several, see
/// `scaling.rs`): `w.n` connections, each confirmed by a call, then `max(w.inflight, w.n)` runtime
/// tasks, each making calls one after another on its connection (task `i` on connection
/// `i mod n`, so that the calls in flight spread evenly, at least one per connection), until
/// the end. The calls go on without pause through a warm-up of `w.warm` ms and the measured
/// window of `w.secs`, whose marks (the orchestrator's, taken when every client process has
/// reached them) only read the tasks' counters: the tasks never stop for a mark.
async fn conn_scaling<S: System>(addr: SocketAddr, w: &Work, data: Bytes) -> Result<Outcome> {
    let n = w.n.max(1) as usize;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let conn = S::connect_shared(addr).await?;
        S::unary_shared(&conn, data.clone()).await?;
        conns.push(conn);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = w.inflight.max(n);
    let counts: Arc<Vec<Count>> = Arc::new((0..tasks).map(|_| Count::default()).collect());
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let (conn, data, stop, counts) = (conns[i % n].clone(), data.clone(), stop.clone(), counts.clone());
        handles.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                S::unary_shared(&conn, data.clone()).await?;
                counts[i].0.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, crate::common::Error>(())
        }));
    }
    let total = || counts.iter().map(|c| c.0.load(Ordering::Relaxed)).sum::<u64>();
    tokio::time::sleep(Duration::from_millis(w.warm)).await;
    // Blocks this (the main) thread until every client process is ready; the tasks run on.
    let start = begin()?;
    let before = total();
    tokio::time::sleep(Duration::from_secs_f64(w.secs)).await;
    let after = total();
    let end = end()?;
    stop.store(true, Ordering::Relaxed);
    // A failed call fails the run; the calls in flight finish (bounded, should the server hang).
    let join = async {
        for task in handles {
            task.await??;
        }
        Ok::<_, crate::common::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(30), join).await.map_err(|_| "calls still in flight after 30 s")??;
    Ok(Outcome { ops: after - before, start, end, lat_ns: Vec::new() })
}
