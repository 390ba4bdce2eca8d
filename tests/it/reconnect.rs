//! A client that comes back: a reconnecting client (`ClientBuilder::reconnect`) makes a new
//! connection, SETUP and credentials included, when a call needs one after its server
//! restarted; calls made while there is none wait up to their deadline or fail fast; calls in
//! flight when a connection drops fail with UNAVAILABLE and are never sent again; a closed or
//! dropped client makes no more connections. Over TCP on 127.0.0.1 (and one over WebSocket
//! and one over a Unix socket), as a restart needs a real listener.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weft::{Client, ClientBuilder, Code, Context, Credentials, Reconnect, RunningServer, Server, Status};

/// Each server's name and how many calls reached it.
#[derive(Clone)]
struct Named {
    name: &'static str,
    calls: Arc<AtomicUsize>,
}

#[weft::service(package = "weft.test.reconnect", codec = weft::BytesCodec)]
pub trait Node {
    /// Answers the server's name and the caller's principal (`-` if none).
    async fn name(&self, ctx: Context, req: Bytes) -> Result<Bytes, Status>;
    /// Never answers.
    async fn hang(&self, req: Bytes) -> Result<Bytes, Status>;
    /// Streams the server's name once, then nothing more, for ever.
    async fn names(&self, req: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
}

impl Node for Named {
    async fn name(&self, ctx: Context, _req: Bytes) -> Result<Bytes, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let who = ctx.principal::<String>().cloned().unwrap_or_else(|| "-".into());
        Ok(Bytes::from(format!("{} {who}", self.name)))
    }

    async fn hang(&self, _req: Bytes) -> Result<Bytes, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }

    async fn names(&self, _req: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let name = Bytes::from_static(self.name.as_bytes());
        Ok(futures_util::stream::iter([Ok(name)]).chain(futures_util::stream::pending()))
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

/// A server named `name` that lets in only the bearer of `token` when one is given.
fn server(name: &'static str, calls: &Arc<AtomicUsize>, token: Option<&'static str>) -> Server {
    let mut builder = Server::builder().shutdown_grace(Duration::from_millis(50));
    if let Some(token) = token {
        builder = builder.authenticate(move |setup| match setup.credentials() {
            Some(Credentials::Bearer(t)) if t == token => Ok(format!("bearer of {t}")),
            _ => Err(Status::unauthenticated("the token is required")),
        });
    }
    builder.add_service(NodeServer::new(Named { name, calls: calls.clone() })).build()
}

/// Binds `server` to `addr`, retrying briefly: the port was just released.
async fn bind_again(server: &Server, addr: SocketAddr) -> RunningServer {
    for _ in 0..50 {
        if let Ok(running) = server.bind(addr).await {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not bind {addr} again");
}

/// A client builder for the service's codec (bytes, not protobuf).
fn builder() -> ClientBuilder {
    Client::builder().data_mime("application/octet-stream")
}

fn quick() -> Reconnect {
    Reconnect::new().initial_backoff(Duration::from_millis(20)).max_backoff(Duration::from_millis(200))
}

fn text(b: Bytes) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// The answer of `name` right after a graceful restart: the call succeeds even when made
/// before the client has heard that the old connection closed, since the old server never
/// took it (it was refused, REJECTED, or dropped unread as the server went away) and the
/// client sends it again on a new connection.
async fn after_restart(node: &NodeClient) -> String {
    let call = node.name(weft::Request::new(Bytes::new()).with_timeout(Duration::from_secs(10)));
    text(bounded(call).await.unwrap())
}

/// Waits (bounded) until `running` serves `n` connections.
async fn until_connections(running: &RunningServer, n: usize) {
    bounded(async {
        while running.connections() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_restarted_server_is_called_over_a_new_connection_with_the_same_credentials() {
    let calls = Arc::new(AtomicUsize::new(0));
    let first = server("first", &calls, Some("t0k3n")).bind("127.0.0.1:0").await.unwrap();
    let addr = first.local_addr();
    let client = builder()
        .credentials(Credentials::bearer("t0k3n"))
        .reconnect(quick())
        .timeout(Duration::from_secs(10))
        .connect(addr)
        .await
        .unwrap();
    let node = NodeClient::new(client.clone());
    assert_eq!(text(bounded(node.name(Bytes::new())).await.unwrap()), "first bearer of t0k3n");

    bounded(first.shutdown()).await;
    let second = bind_again(&server("second", &calls, Some("t0k3n")), addr).await;
    // The first call after the restart may be the one that finds the old connection closing;
    // every call from then on runs on the new one, whose SETUP carried the token again.
    assert_eq!(after_restart(&node).await, "second bearer of t0k3n");
    assert_eq!(second.connections(), 1);
    let mut names = bounded(node.names(Bytes::new())).await.unwrap();
    assert_eq!(text(bounded(names.message()).await.unwrap().unwrap()), "second");
    assert!(!client.is_closed(), "between connections is not closed");
}

#[tokio::test]
async fn calls_wait_for_the_server_up_to_their_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let first = server("first", &calls, None).bind("127.0.0.1:0").await.unwrap();
    let addr = first.local_addr();
    let client = builder().reconnect(quick()).connect(addr).await.unwrap();
    let node = NodeClient::new(client.clone());
    bounded(node.name(Bytes::new())).await.unwrap();
    bounded(first.shutdown()).await;

    // Nobody listens: a call with a deadline waits for it, then says so. (A call made before
    // the client heard that the old connection closed fails on it with UNAVAILABLE.)
    let late = bounded(async {
        for _ in 0..20 {
            let late = node.name(weft::Request::new(Bytes::new()).with_timeout(Duration::from_millis(300))).await;
            match late.unwrap_err() {
                status if status.code() == Code::Unavailable => {}
                status => return status,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the old connection never closed");
    })
    .await;
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");

    // A call made while the server is down completes once it is back.
    let waiting = tokio::spawn({
        let node = node.clone();
        async move { node.name(weft::Request::new(Bytes::new()).with_timeout(Duration::from_secs(15))).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished(), "the call waits for a connection");
    let _second = bind_again(&server("second", &calls, None), addr).await;
    let answer = bounded(waiting).await.unwrap().unwrap();
    assert_eq!(text(answer), "second -");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the call that timed out was never sent");
}

#[tokio::test]
async fn failing_fast_a_call_without_a_server_fails_at_once_with_unavailable() {
    let calls = Arc::new(AtomicUsize::new(0));
    let first = server("first", &calls, None).bind("127.0.0.1:0").await.unwrap();
    let addr = first.local_addr();
    let client = builder().reconnect(quick().fail_fast(true)).connect(addr).await.unwrap();
    let node = NodeClient::new(client.clone());
    bounded(first.shutdown()).await;
    // No deadline: without fail-fast these would wait for ever (the test's bound would fail).
    let mut unavailable = 0;
    for _ in 0..3 {
        let status = bounded(node.name(Bytes::new())).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status}");
        unavailable += 1;
    }
    assert_eq!(unavailable, 3);
    // Back, it is found again: the backoff is short.
    let _second = bind_again(&server("second", &calls, None), addr).await;
    let answer = bounded(async {
        loop {
            match node.name(Bytes::new()).await {
                Ok(answer) => break answer,
                Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(text(answer), "second -");
}

#[tokio::test]
async fn calls_in_flight_when_the_connection_drops_fail_and_are_never_sent_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let first = server("first", &calls, None).bind("127.0.0.1:0").await.unwrap();
    let addr = first.local_addr();
    let client = builder().reconnect(quick()).connect(addr).await.unwrap();
    let node = NodeClient::new(client);
    let hanging = tokio::spawn({
        let node = node.clone();
        async move { node.hang(Bytes::new()).await }
    });
    let mut stream = bounded(node.names(Bytes::new())).await.unwrap();
    assert_eq!(text(bounded(stream.message()).await.unwrap().unwrap()), "first");
    bounded(async {
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    bounded(first.shutdown()).await;
    let status = bounded(hanging).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    let status = bounded(stream.message()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");

    let second = bind_again(&server("second", &calls, None), addr).await;
    assert_eq!(after_restart(&node).await, "second -");
    assert_eq!(second.connections(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "hang and names ran once each, on the first server");
}

#[tokio::test]
async fn a_closed_client_makes_no_more_connections_and_a_dropped_one_lets_its_connection_go() {
    let calls = Arc::new(AtomicUsize::new(0));
    let running = server("only", &calls, None).bind("127.0.0.1:0").await.unwrap();
    let addr = running.local_addr();

    let client = builder().reconnect(quick()).connect(addr).await.unwrap();
    let node = NodeClient::new(client.clone());
    bounded(node.name(Bytes::new())).await.unwrap();
    client.close();
    assert!(client.is_closed());
    let why = bounded(client.closed()).await;
    assert!(matches!(why.kind(), weft::ErrorKind::Closed(_)), "{why}");
    let status = bounded(node.name(Bytes::new())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    until_connections(&running, 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.connections(), 0, "a closed client does not reconnect");

    let client = builder().reconnect(quick()).connect(addr).await.unwrap();
    bounded(NodeClient::new(client.clone()).name(Bytes::new())).await.unwrap();
    until_connections(&running, 1).await;
    drop(client);
    until_connections(&running, 0).await;
}

#[tokio::test]
async fn the_first_connection_fails_as_without_reconnection() {
    // A port nobody listens on: bound, then released.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let error = bounded(builder().reconnect(quick()).connect(addr)).await.unwrap_err();
    assert!(matches!(error.kind(), weft::ErrorKind::Connect), "{error}");
}

#[tokio::test]
async fn a_server_that_drops_every_connection_is_not_hammered() {
    // A listener that takes each connection and closes it at once, counting them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acceptor = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        }
    });
    let policy = Reconnect::new().initial_backoff(Duration::from_millis(300)).jitter(0.0).fail_fast(true);
    let client = builder().reconnect(policy).connect(addr).await.unwrap();
    let node = NodeClient::new(client);
    // Fifty calls in a row, each failing: the backoff (300 ms after a connection that died at
    // once) keeps them from dialling more than a few times.
    for _ in 0..50 {
        let status = bounded(node.name(Bytes::new())).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status}");
    }
    let dialled = accepted.load(Ordering::SeqCst);
    assert!((1..=3).contains(&dialled), "{dialled} connections for 50 calls");
    acceptor.abort();
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_socket_client_reconnects_too() {
    let dir = std::env::temp_dir().join(format!("weft-reconnect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.sock");
    let calls = Arc::new(AtomicUsize::new(0));
    let first = server("first", &calls, None).bind_unix(&path).await.unwrap();
    let client = builder().reconnect(quick()).connect_unix(&path).await.unwrap();
    let node = NodeClient::new(client);
    assert_eq!(text(bounded(node.name(Bytes::new())).await.unwrap()), "first -");
    bounded(first.shutdown()).await;
    let _second = server("second", &calls, None).bind_unix(&path).await.unwrap();
    assert_eq!(after_restart(&node).await, "second -");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_websocket_client_reconnects_too() {
    let calls = Arc::new(AtomicUsize::new(0));
    let first = server("first", &calls, None).bind_websocket("127.0.0.1:0", "/rsocket").await.unwrap();
    let addr = first.local_addr();
    let url = format!("ws://{addr}/rsocket");
    let client = builder().reconnect(quick()).connect_websocket(&url).await.unwrap();
    let node = NodeClient::new(client);
    assert_eq!(text(bounded(node.name(Bytes::new())).await.unwrap()), "first -");
    bounded(first.shutdown()).await;
    let server = server("second", &calls, None);
    let mut second = None;
    for _ in 0..50 {
        if let Ok(running) = server.bind_websocket(addr, "/rsocket").await {
            second = Some(running);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _second = second.expect("bound again");
    assert_eq!(after_restart(&node).await, "second -");
}

/// A server's graceful shutdown costs its callers nothing: calls in flight finish on the old
/// connection, and calls made while it closes (before the client has heard, even while it
/// sends them) go to the next server, which binds the same port. 16 callers call without a
/// pause through three restarts; not one call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restarts_under_load_fail_no_call() {
    const NAMES: [&str; 4] = ["first", "second", "third", "fourth"];
    let calls = Arc::new(AtomicUsize::new(0));
    let mut running = server(NAMES[0], &calls, None).bind("127.0.0.1:0").await.unwrap();
    let addr = running.local_addr();
    let client = builder().reconnect(quick()).timeout(Duration::from_secs(10)).connect(addr).await.unwrap();
    let node = NodeClient::new(client);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (node, stop) = (node.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeMap::<String, usize>::new();
                // Bounded: the test stops the callers after its restarts.
                for _ in 0..1_000_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let answer = node.name(Bytes::new()).await?;
                    *seen.entry(text(answer)).or_default() += 1;
                }
                Ok::<_, Status>(seen)
            })
        })
        .collect();
    for name in &NAMES[1..] {
        tokio::time::sleep(Duration::from_millis(100)).await;
        bounded(running.shutdown()).await;
        running = bind_again(&server(name, &calls, None), addr).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for caller in callers {
        for (name, n) in bounded(caller).await.unwrap().expect("no call fails") {
            *seen.entry(name).or_default() += n;
        }
    }
    for name in NAMES {
        assert!(seen.get(&format!("{name} -")).is_some_and(|n| *n > 0), "{name} served calls: {seen:?}");
    }
    assert_eq!(seen.values().sum::<usize>(), calls.load(Ordering::SeqCst), "every call ran once: {seen:?}");
}
