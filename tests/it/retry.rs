//! Retries and hedging (`ClientBuilder::retry`): a call marked idempotent that fails with
//! UNAVAILABLE is sent again, within the policy's attempts and budget; a call not marked is
//! never sent twice; a late idempotent request/response is hedged on another server and the
//! first answer wins. Over TCP on 127.0.0.1, counting what each server received.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weft::{Call, Client, ClientBuilder, Code, Reconnect, Retry, RunningServer, Server, Status};

const ROUTE: &str = "weft.test.retry.Flaky/Name";

/// Answers its name after `delay`; the first `failures` calls fail with UNAVAILABLE; with
/// `hang`, never answers.
struct Node {
    name: &'static str,
    delay: Duration,
    failures: AtomicUsize,
    hang: bool,
    calls: AtomicUsize,
}

#[weft::service(package = "weft.test.retry", codec = weft::BytesCodec)]
pub trait Flaky {
    /// The server's name.
    async fn name(&self, req: Bytes) -> Result<Bytes, Status>;
    /// The same, marked idempotent: the generated client retries it.
    #[weft(idempotent)]
    async fn safe_name(&self, req: Bytes) -> Result<Bytes, Status>;
}

impl Flaky for Arc<Node> {
    async fn safe_name(&self, req: Bytes) -> Result<Bytes, Status> {
        self.name(req).await
    }

    async fn name(&self, _req: Bytes) -> Result<Bytes, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(Status::unavailable("not now"));
        }
        if self.hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.delay).await;
        Ok(Bytes::from_static(self.name.as_bytes()))
    }
}

fn node(name: &'static str, delay: Duration, failures: usize, hang: bool) -> Arc<Node> {
    Arc::new(Node { name, delay, failures: AtomicUsize::new(failures), hang, calls: AtomicUsize::new(0) })
}

async fn serve(node: &Arc<Node>) -> RunningServer {
    let server =
        Server::builder().shutdown_grace(Duration::from_millis(50)).add_service(FlakyServer::new(node.clone()));
    server.build().bind("127.0.0.1:0").await.unwrap()
}

fn calls(node: &Node) -> usize {
    node.calls.load(Ordering::SeqCst)
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

fn builder(retry: Retry) -> ClientBuilder {
    Client::builder()
        .data_mime("application/octet-stream")
        .reconnect(Reconnect::new().initial_backoff(Duration::from_millis(20)))
        .retry(retry.backoff(Duration::from_millis(5), Duration::from_millis(20)))
        .timeout(Duration::from_secs(10))
}

async fn name(client: &Client, call: Call) -> Result<String, Status> {
    let answer = bounded(client.request_response(call, Bytes::new())).await?;
    Ok(String::from_utf8(answer.data.to_vec()).unwrap())
}

#[tokio::test]
async fn an_idempotent_call_is_retried_on_unavailable_and_another_never_is() {
    let flaky = node("flaky", Duration::ZERO, 2, false);
    let running = serve(&flaky).await;
    let client = bounded(builder(Retry::new().max_attempts(3)).connect(running.local_addr())).await.unwrap();
    assert_eq!(name(&client, Call::new(ROUTE).idempotent()).await.unwrap(), "flaky");
    assert_eq!(calls(&flaky), 3, "two failures, then the answer");

    flaky.failures.store(5, Ordering::SeqCst);
    let status = name(&client, Call::new(ROUTE).idempotent()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert_eq!(calls(&flaky), 6, "three attempts at most");

    let status = name(&client, Call::new(ROUTE)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert_eq!(calls(&flaky), 7, "a call not marked idempotent is sent once");

    // Other codes are the call's answer, never retried.
    flaky.failures.store(0, Ordering::SeqCst);
    let status = bounded(client.request_response(Call::new("weft.test.retry.Flaky/Nope").idempotent(), Bytes::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn a_generated_client_retries_the_methods_marked_idempotent_alone() {
    let flaky = node("flaky", Duration::ZERO, 2, false);
    let running = serve(&flaky).await;
    let client = bounded(builder(Retry::new()).connect(running.local_addr())).await.unwrap();
    let flaky_client = FlakyClient::new(client);
    assert_eq!(&bounded(flaky_client.safe_name(Bytes::new())).await.unwrap()[..], b"flaky");
    assert_eq!(calls(&flaky), 3, "`#[weft(idempotent)]`: retried through two failures");

    flaky.failures.store(2, Ordering::SeqCst);
    let status = bounded(flaky_client.name(Bytes::new())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(calls(&flaky), 4, "not marked: sent once");
}

#[tokio::test]
async fn the_budget_stops_retries_when_everything_fails() {
    let flaky = node("flaky", Duration::ZERO, 1000, false);
    let running = serve(&flaky).await;
    // A reserve of 2 retries, and calls that earn none.
    let retry = Retry::new().max_attempts(5).budget(0.0, 2);
    let client = bounded(builder(retry).connect(running.local_addr())).await.unwrap();
    for _ in 0..5 {
        let status = name(&client, Call::new(ROUTE).idempotent()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(calls(&flaky), 5 + 2, "five calls, and the two retries of the reserve");

    // Half a retry per call: after the reserve, one retry for every two calls.
    let flaky = node("flaky", Duration::ZERO, 1000, false);
    let running = serve(&flaky).await;
    let client =
        bounded(builder(Retry::new().max_attempts(2).budget(0.5, 0)).connect(running.local_addr())).await.unwrap();
    for _ in 0..10 {
        name(&client, Call::new(ROUTE).idempotent()).await.unwrap_err();
    }
    assert_eq!(calls(&flaky), 10 + 5);
}

/// Two servers, the first never answering; calls until one goes to it, then the first is
/// shut down with a short grace, cutting that call: its outcome, and the calls each server
/// received from then on.
async fn cut_call(idempotent: bool) -> (Result<String, Status>, usize, usize) {
    let hanging = node("hanging", Duration::ZERO, 0, true);
    let fine = node("fine", Duration::ZERO, 0, false);
    let (a, b) = (serve(&hanging).await, serve(&fine).await);
    let client = bounded(builder(Retry::new()).connect_balanced([a.local_addr(), b.local_addr()])).await.unwrap();
    bounded(async {
        while a.connections() + b.connections() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let waiting = bounded(async {
        for _ in 0..100 {
            let before = calls(&hanging);
            let call = if idempotent { Call::new(ROUTE).idempotent() } else { Call::new(ROUTE) };
            let client = client.clone();
            let task = tokio::spawn(async move { name(&client, call).await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            if calls(&hanging) > before {
                return task;
            }
            assert_eq!(bounded(task).await.unwrap().unwrap(), "fine");
        }
        panic!("no call went to the first server");
    })
    .await;
    let fine_before = calls(&fine);
    bounded(a.shutdown()).await;
    let outcome = bounded(waiting).await.unwrap();
    (outcome, calls(&hanging), calls(&fine) - fine_before)
}

#[tokio::test]
async fn a_call_cut_by_a_dying_server_is_retried_elsewhere_only_if_idempotent() {
    let (outcome, hanging, fine) = cut_call(true).await;
    assert_eq!(outcome.unwrap(), "fine", "retried on the other server");
    assert_eq!((hanging, fine), (1, 1));

    let (outcome, hanging, fine) = cut_call(false).await;
    assert_eq!(outcome.unwrap_err().code(), Code::Unavailable);
    assert_eq!((hanging, fine), (1, 0), "a call not marked idempotent is never sent again");
}

#[tokio::test]
async fn a_late_idempotent_call_is_hedged_and_the_first_answer_wins() {
    let slow = node("slow", Duration::from_millis(300), 0, false);
    let fast = node("fast", Duration::ZERO, 0, false);
    let (a, b) = (serve(&slow).await, serve(&fast).await);
    let retry = Retry::new().hedge_after(Duration::from_millis(30)).budget(1.0, 10);
    let client = bounded(builder(retry).connect_balanced([a.local_addr(), b.local_addr()])).await.unwrap();
    bounded(async {
        while a.connections() + b.connections() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // One at a time: each call's first attempt goes to either server at random.
    for _ in 0..12 {
        assert_eq!(name(&client, Call::new(ROUTE).idempotent()).await.unwrap(), "fast");
    }
    assert!(calls(&slow) > 0, "some first attempts went to the slow server, and were hedged");
    assert_eq!(calls(&fast), 12, "each call answered once by the fast server");

    // Not idempotent: never hedged.
    let mut slow_answers = 0;
    for _ in 0..12 {
        if name(&client, Call::new(ROUTE)).await.unwrap() == "slow" {
            slow_answers += 1;
        }
    }
    assert!(slow_answers > 0, "without hedging the slow server answers its calls");
    assert_eq!(calls(&fast) + calls(&slow), 24 + (calls(&slow) - slow_answers), "each call sent once");
}
