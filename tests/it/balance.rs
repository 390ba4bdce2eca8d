//! Many servers behind one client (`ClientBuilder::connect_balanced`, `connect_discovered`,
//! `connect_dns`): calls spread over the servers, by calls in flight (a slow server gets
//! fewer); a server that closes gracefully costs no call and takes none until it is back; a
//! server that is killed fails only the calls it had; servers join and leave through
//! discovery. The main test runs three server processes (this test binary, started again as
//! a server: `server_process`), kills and restarts one and drains another while 64 callers
//! call. All on 127.0.0.1.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use weft::{Change, Client, ClientBuilder, Code, Reconnect, Server, Status};

/// A server that answers its name, after `delay`.
#[derive(Clone)]
struct Tagged {
    name: String,
    delay: Duration,
    calls: Arc<AtomicUsize>,
}

#[weft::service(package = "weft.test.balance", codec = weft::BytesCodec)]
pub trait Tag {
    /// The server's name.
    async fn name(&self, req: Bytes) -> Result<Bytes, Status>;
}

impl Tag for Tagged {
    async fn name(&self, _req: Bytes) -> Result<Bytes, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(Bytes::from(self.name.clone()))
    }
}

fn server(name: &str, delay: Duration, calls: &Arc<AtomicUsize>) -> Server {
    let tagged = Tagged { name: name.into(), delay, calls: calls.clone() };
    Server::builder().shutdown_grace(Duration::from_secs(5)).add_service(TagServer::new(tagged)).build()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("test timed out")
}

fn builder() -> ClientBuilder {
    Client::builder()
        .data_mime("application/octet-stream")
        .reconnect(Reconnect::new().initial_backoff(Duration::from_millis(50)).max_backoff(Duration::from_millis(200)))
        .timeout(Duration::from_secs(10))
}

fn text(b: Bytes) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// `callers` tasks calling `name` until `stop`, each at most `max` calls: the answers by
/// server name, and the failures by code.
fn callers(tag: &TagClient, callers: usize, max: usize, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..callers)
        .map(|_| {
            let (tag, stop) = (tag.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                for _ in 0..max {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match tag.name(Bytes::new()).await {
                        Ok(name) => *tally.served.entry(text(name)).or_default() += 1,
                        Err(status) => {
                            *tally.failed.entry(format!("{:?}: {}", status.code(), status.message())).or_default() += 1
                        }
                    }
                }
                tally
            })
        })
        .collect()
}

#[derive(Debug, Default)]
struct Tally {
    served: BTreeMap<String, usize>,
    failed: BTreeMap<String, usize>,
}

async fn sum(handles: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut all = Tally::default();
    for handle in handles {
        let tally = bounded(handle).await.unwrap();
        for (k, v) in tally.served {
            *all.served.entry(k).or_default() += v;
        }
        for (k, v) in tally.failed {
            *all.failed.entry(k).or_default() += v;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_and_a_slow_server_gets_fewer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fast_a = server("a", Duration::ZERO, &calls).bind("127.0.0.1:0").await.unwrap();
    let fast_b = server("b", Duration::ZERO, &calls).bind("127.0.0.1:0").await.unwrap();
    let slow = server("slow", Duration::from_millis(20), &calls).bind("127.0.0.1:0").await.unwrap();
    let addrs = [fast_a.local_addr(), fast_b.local_addr(), slow.local_addr()];
    let client = bounded(builder().connect_balanced(addrs)).await.unwrap();
    let tag = TagClient::new(client);
    // Every server connected before the load starts (the first is connected on return).
    bounded(async {
        while fast_a.connections() + fast_b.connections() + slow.connections() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = sum(callers(&tag, 16, 300, &stop)).await;
    assert!(tally.failed.is_empty(), "{tally:?}");
    let (a, b, s) = (tally.served["a"], tally.served["b"], tally.served.get("slow").copied().unwrap_or(0));
    assert_eq!(a + b + s, 16 * 300);
    // By calls in flight: the slow server's calls stay in flight 20 ms, so the two choices
    // mostly pass it over; round robin would give it a third.
    assert!(s * 4 < a.min(b), "the slow server got {s} calls, the fast ones {a} and {b}");
    assert!(a * 2 > b && b * 2 > a, "the fast servers share the load: {a} and {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_costs_no_call_and_is_called_again_once_back() {
    let calls = Arc::new(AtomicUsize::new(0));
    let a = server("a", Duration::from_millis(1), &calls).bind("127.0.0.1:0").await.unwrap();
    let b = server("b", Duration::from_millis(1), &calls).bind("127.0.0.1:0").await.unwrap();
    let b_addr = b.local_addr();
    let client = bounded(builder().connect_balanced([a.local_addr(), b_addr])).await.unwrap();
    let tag = TagClient::new(client);
    let stop = Arc::new(AtomicBool::new(false));
    let load = callers(&tag, 16, 100_000, &stop);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Drained: it refuses new calls, lets the calls in flight finish, and stops.
    bounded(b.shutdown()).await;
    let during = calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = bounded(async {
        loop {
            if let Ok(b) = server("b again", Duration::from_millis(1), &calls).bind(b_addr).await {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Re-admitted once its endpoint has connected again (after its backoff).
    bounded(async {
        while b.connections() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::SeqCst);
    let tally = sum(load).await;
    assert!(tally.failed.is_empty(), "a graceful drain fails no call: {tally:?}");
    assert!(calls.load(Ordering::SeqCst) > during, "calls went on meanwhile");
    for name in ["a", "b", "b again"] {
        assert!(tally.served.get(name).is_some_and(|n| *n > 0), "{name}: {tally:?}");
    }
    assert_eq!(tally.served.values().sum::<usize>(), calls.load(Ordering::SeqCst), "each call ran once");
}

#[tokio::test]
async fn servers_join_and_leave_through_discovery() {
    let calls = Arc::new(AtomicUsize::new(0));
    let a = server("a", Duration::ZERO, &calls).bind("127.0.0.1:0").await.unwrap();
    let b = server("b", Duration::ZERO, &calls).bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let changes = futures_util::stream::unfold(rx, |mut rx| async { Some((rx.recv().await?, rx)) });
    tx.send(Change::Insert(a.local_addr())).unwrap();
    let client = bounded(builder().connect_discovered(changes)).await.unwrap();
    let tag = TagClient::new(client.clone());
    let names = async |n: usize| {
        let mut seen = BTreeMap::<String, usize>::new();
        for _ in 0..n {
            *seen.entry(text(bounded(tag.name(Bytes::new())).await.unwrap())).or_default() += 1;
        }
        seen
    };
    assert_eq!(names(20).await.keys().collect::<Vec<_>>(), ["a"]);

    tx.send(Change::Insert(b.local_addr())).unwrap();
    bounded(async {
        while b.connections() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Connected is not yet ready to the client: a few calls may still all go to `a`.
    let both = bounded(async {
        for _ in 0..100 {
            let seen = names(40).await;
            if seen.len() == 2 {
                return seen;
            }
        }
        panic!("b never called");
    })
    .await;
    assert!(both.contains_key("b"), "{both:?}");

    tx.send(Change::Remove(a.local_addr())).unwrap();
    bounded(async {
        while a.connections() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(names(20).await.keys().collect::<Vec<_>>(), ["b"], "a left the set");

    client.close();
    let status = bounded(tag.name(Bytes::new())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    bounded(async {
        while b.connections() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn with_no_server_up_calls_wait_up_to_their_deadline_or_fail_fast() {
    let calls = Arc::new(AtomicUsize::new(0));
    let a = server("a", Duration::ZERO, &calls).bind("127.0.0.1:0").await.unwrap();
    let addr = a.local_addr();
    let client = bounded(builder().connect_balanced([addr])).await.unwrap();
    let tag = TagClient::new(client);
    bounded(a.shutdown()).await;
    let late = bounded(async {
        // Until the client has heard the server went away, a call may still find it.
        for _ in 0..50 {
            match tag.name(weft::Request::new(Bytes::new()).with_timeout(Duration::from_millis(200))).await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(status) => return status,
            }
        }
        panic!("the server never went away");
    })
    .await;
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");

    let fast = Client::builder()
        .data_mime("application/octet-stream")
        .reconnect(Reconnect::new().fail_fast(true).initial_backoff(Duration::from_secs(5)));
    let b = server("b", Duration::ZERO, &calls).bind("127.0.0.1:0").await.unwrap();
    let b_addr = b.local_addr();
    let tag = TagClient::new(bounded(fast.connect_balanced([b_addr])).await.unwrap());
    bounded(b.shutdown()).await;
    let failed = bounded(async {
        for _ in 0..200 {
            match tag.name(Bytes::new()).await {
                Err(status) if status.code() == Code::Unavailable && status.message().contains("no server") => {
                    return status;
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        panic!("never failed fast");
    })
    .await;
    assert!(failed.message().contains(&b_addr.to_string()), "says which server failed and why: {failed}");

    // The first connection fails as a plain client's would.
    let err = bounded(builder().connect_balanced([b_addr])).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test]
async fn a_dns_name_is_resolved_to_its_servers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let a = server("a", Duration::ZERO, &calls).bind("127.0.0.1:0").await.unwrap();
    // `localhost` may also resolve to ::1, where nothing listens: that server is never
    // connected, so it takes no calls.
    let name = format!("localhost:{}", a.local_addr().port());
    let client = bounded(builder().connect_dns(&name, Duration::from_millis(100))).await.unwrap();
    let tag = TagClient::new(client);
    for _ in 0..10 {
        assert_eq!(text(bounded(tag.name(Bytes::new())).await.unwrap()), "a");
    }
}

/// A server process for `three_server_processes_one_killed_one_drained`: serves `name` on
/// `WEFT_BALANCE_SERVER` (`name@port`, port 0 for any), prints `port N`, and shuts down
/// gracefully when its standard input closes. Does nothing when run as a test.
#[tokio::test]
#[ignore = "run by three_server_processes_one_killed_one_drained as a server process"]
async fn server_process() {
    let Ok(spec) = std::env::var("WEFT_BALANCE_SERVER") else { return };
    let (name, port) = spec.split_once('@').unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let running =
        server(name, Duration::from_millis(1), &calls).bind(("127.0.0.1", port.parse().unwrap())).await.unwrap();
    println!("port {}", running.local_addr().port());
    std::io::stdout().flush().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        let _ = tx.send(());
    });
    running.serve_until(async move { drop(rx.await) }).await;
}

/// A server process (see `server_process`), killed when dropped.
struct Process {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Process {
    /// `None` if it could not start (its port is not free yet).
    fn start(name: &str, port: u16) -> Option<Process> {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["balance::server_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("WEFT_BALANCE_SERVER", format!("{name}@{port}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The test harness writes its own text around the server's (`test … ... port N`); read
        // on a thread, so that a process that says nothing fails the test rather than hang it.
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end (the process exits at the latest when the test ends): a
            // process whose output pipe is closed fails when the harness writes its result.
            for line in stdout.lines().map_while(Result::ok) {
                if let Some((_, port)) = line.rsplit_once("port ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
            let _ = tx.send(None);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => Some(Process { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// Closes its standard input: it drains and exits.
    fn drain(&mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the drained server did not exit");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_server_processes_one_killed_one_drained() {
    let mut servers: Vec<Process> =
        ["one", "two", "three"].iter().map(|name| Process::start(name, 0).expect("a server process")).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let client = bounded(builder().connect_balanced(addrs.clone())).await.unwrap();
    let tag = TagClient::new(client);
    let stop = Arc::new(AtomicBool::new(false));
    let load = callers(&tag, 64, 1_000_000, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Killed: its calls in flight fail (UNAVAILABLE), the others go on; restarted on its port.
    let _ = servers[0].child.kill();
    let _ = servers[0].child.wait();
    tokio::time::sleep(Duration::from_millis(200)).await;
    servers[0] = bounded(async {
        loop {
            if let Some(process) = Process::start("one again", addrs[0].port()) {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Drained: not one call fails.
    let status = tokio::task::block_in_place(|| servers[1].drain());
    assert!(status.success(), "the drained server exits cleanly: {status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let tally = sum(load).await;
    println!("three server processes, 64 callers: served {:?}, failed {:?}", tally.served, tally.failed);

    for failure in tally.failed.keys() {
        assert!(failure.starts_with("Unavailable"), "only the killed server's calls fail, with UNAVAILABLE: {tally:?}");
    }
    let failed: usize = tally.failed.values().sum();
    assert!(failed <= 64, "at most the calls in flight on the killed server fail: {tally:?}");
    for name in ["one", "two", "three", "one again"] {
        assert!(tally.served.get(name).is_some_and(|n| *n > 0), "{name} served calls: {tally:?}");
    }
    let total: usize = tally.served.values().sum();
    assert!(tally.served.values().all(|n| n * 2 < total), "load spreads: {tally:?}");
}
