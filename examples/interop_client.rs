//! The Weft side of cross-language interop, client half: runs the interop checks against any
//! server implementing `echo.Echo` (the service table of tests/interop/README.md): the Python and
//! JavaScript RSocket servers in tests/interop/, or `interop_server`.
//!
//! ```text
//! cargo run --release -p weft-examples --example interop_client -- 127.0.0.1:PORT
//! cargo run --release -p weft-examples --example interop_client -- ws://127.0.0.1:PORT/rsocket
//! cargo run --release -p weft-examples --example interop_client -- --proxy-idle-timeout 3 127.0.0.1:PORT
//! ```
//!
//! The address is `HOST:PORT` (TCP) or `ws://HOST:PORT/PATH` (RSocket over WebSocket); every
//! connection a check opens goes there, over that transport.
//!
//! With `--proxy-idle-timeout SECS` (the address then being a proxy's in front of the server,
//! which closes a connection idle for SECS: tests/proxy/run.sh), four checks follow the others,
//! each on a connection of its own:
//! - `proxy_long_stream`: a request/stream of 1,000,000 items with the default credit window,
//!   every item checked in order, then its completion;
//! - `proxy_channel_count_long`: `ChannelCount` with 1,000 payloads each way;
//! - `proxy_keepalive_idle`: a connection sending KEEPALIVE three times per SECS stays idle for
//!   SECS + 2 s, then must still be open and answer a call: keepalive crossed the proxy;
//! - `proxy_idle_control`, idle at the same time: a connection whose keepalive is slower than
//!   that wait must be closed by the proxy (by the peer, not by this side's keepalive), after
//!   no less than about SECS; else the proxy's timeout is not in effect and the keepalive
//!   check shows nothing.
//!
//! Prints `PASS name` or `FAIL name: why` per check, with the same check names as the Python and
//! JavaScript clients, then `N passed, N failed`, and exits non-zero on any failure. Every check
//! is bounded by a time limit, and so is connecting.
//!
//! Calls go through the generated [`EchoClient`] where it fits and through the payload-level
//! [`weft::Client`] where a check needs what the typed client cannot say (an unknown route).
//! Where the peers' clients set credit frame by frame (`initial_request_n`, `request(n)`),
//! Weft's client grants credit from its connection's [`Config::inbound_window`]: the window at
//! first, then half a window each time half a window was consumed. Those checks therefore run
//! on connections of their own with a small window, and an item beyond the credit granted is
//! caught by Weft's runtime, which fails the stream with an error the check reports.
//!
//! Exact credit (a requester granting exactly the messages due, in one grant or several) is
//! beyond that window: it grants ahead of consumption (half a window more once half was
//! consumed), so it never grants exactly N over a stream of N. The checks that set the credit
//! they grant themselves (`stream_exact_credit`, `stream_exact_single`, `channel_exact_credit`)
//! are SKIPped here. `channel_count_exact` runs: there the exact credit is the responder's,
//! which the Python and JavaScript servers grant for exactly the payloads due, so Weft's
//! outbound half must still complete after its last payload used its last credit.
//!
//! Peer behaviours met here, handled without imitating them:
//! - rsocket-py answers an empty request/response with a PAYLOAD that has C but no N; Weft's
//!   requester takes any PAYLOAD on a request/response stream as the answer (`unary_empty`).
//! - rsocket-py sets C on a stream's last item; rsocket-js sends a separate C-only PAYLOAD.
//! - rsocket-js, as a channel responder, charges the payload inside REQUEST_CHANNEL to its first
//!   credit grant (`request(32)` goes out as REQUEST_N(31)); Weft sends only within the credit it
//!   was actually granted, so that merely delays the echoes (`channel_echo`).

#[path = "interop/mod.rs"]
mod interop;

use bytes::Bytes;
use futures_util::StreamExt;
use interop::endpoint::{Endpoint, Options, parse_args};
use interop::{DATA_MIME, EchoClient};
use std::future::Future;
use std::io::Write;
use std::time::Duration;
use weft::conn::CloseReason;
use weft::{Call, Client, ClientBuilder, Code, Config, ErrorKind, Payload, Status, Streaming};

/// Each check's time limit (the same as the Python and JavaScript clients').
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// For a stream whose credit runs out exactly at its end to end: nothing in it waits on
/// anything slow, so the bound only turns a hang into a failure.
const EXACT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit for opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Items in the proxy checks' long request/stream (`echo.Echo/ServerStream`'s largest N).
const LONG_STREAM_N: u32 = 1_000_000;
/// Payloads each way in the proxy checks' long channel (`echo.Echo/ChannelCount`'s largest N).
const LONG_CHANNEL_N: usize = 1_000;
/// The time limit of each long proxy check: generous, as the stream crosses the proxy twice
/// (in and out) on a shared 2-core machine; it only turns a stall into a failure.
const LONG_TIMEOUT: Duration = Duration::from_secs(90);
/// The routes' common prefix.
const SVC: &str = "echo.Echo/";

/// A check's outcome: `Err(why)` fails it.
type Outcome = Result<(), String>;

fn fail<T>(why: impl Into<String>) -> Result<T, String> {
    Err(why.into())
}

fn expect(condition: bool, why: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(why()) }
}

/// A payload in words, cut short: enough to tell what came back.
fn short(data: &[u8]) -> String {
    const LIMIT: usize = 40;
    let text = format!("{:?}", String::from_utf8_lossy(&data[..data.len().min(LIMIT)]));
    if data.len() > LIMIT { format!("{text}...({} bytes)", data.len()) } else { text }
}

fn describe(status: &Status) -> String {
    format!("ERROR {} {:?}", status.code(), status.message())
}

/// Opens a connection announcing opaque-bytes data (what `EchoClient::new` requires, and what
/// the Python and JS servers expect; `Client::connect` would announce protobuf), with
/// Weft's default credit window or `window`.
async fn connect(target: &Target, window: Option<u32>) -> Result<Client, String> {
    let mut config = Config::default();
    if let Some(window) = window {
        config = config.inbound_window(window);
    }
    connect_with(target, Client::builder().config(config)).await
}

/// Opens a connection with `builder`'s settings, announcing opaque-bytes data.
async fn connect_with(target: &Target, builder: ClientBuilder) -> Result<Client, String> {
    let builder = builder.data_mime(DATA_MIME);
    let Target { endpoint, options } = target;
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(&builder, options)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => fail(error.to_string()),
        Err(_) => fail(format!("no connection to {endpoint} within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

/// Where every check connects: the address from the command line, and its transport's options.
#[derive(Clone)]
struct Target {
    endpoint: Endpoint,
    options: Options,
}

async fn expect_echo(client: &EchoClient, data: Bytes) -> Outcome {
    match client.unary(data.clone()).await {
        Ok(got) => expect(got == data, || format!("sent {}, got back {}", short(&data), short(&got))),
        Err(status) => fail(format!("sent {}, got {}", short(&data), describe(&status))),
    }
}

/// Everything a stream yields: its items, then how it ended (`Ok` when it completed).
async fn collect(mut stream: Streaming<Bytes>) -> (Vec<Bytes>, Result<(), Status>) {
    let mut items = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return (items, Ok(())),
            Err(status) => return (items, Err(status)),
        }
    }
}

/// A request/stream to `echo.Echo/ServerStream` for `n` items must yield "0".."n-1", then
/// complete. Each item is checked as it arrives, none kept: `n` may be a million.
async fn expect_counting(client: &EchoClient, n: u32) -> Outcome {
    let mut stream = client.server_stream(Bytes::from(n.to_string())).await.map_err(|s| describe(&s))?;
    let mut count: u32 = 0;
    loop {
        match stream.message().await {
            Ok(Some(item)) => {
                if count >= n || item != count.to_string().as_bytes() {
                    let want = if count >= n { "nothing more".to_owned() } else { format!("{count:?}") };
                    return fail(format!("item {count} is {}, want {want} (of {n} items)", short(&item)));
                }
                count += 1;
            }
            Ok(None) if count == n => return Ok(()),
            Ok(None) => return fail(format!("completed after {count} items, want {n}")),
            Err(status) => return fail(format!("ended with {} after {count} items", describe(&status))),
        }
    }
}

/// A channel to `echo.Echo/ChannelCount` sending `n` payloads (the first the ASCII decimal `n`)
/// must yield "0".."n-1", then complete, within `limit`: its COMPLETE says the responder
/// counted all `n` payloads of this side too (else it ends in ERROR).
async fn expect_channel_count(client: &EchoClient, n: usize, limit: Duration) -> Outcome {
    let sent: Vec<Bytes> =
        std::iter::once(Bytes::from(n.to_string())).chain((1..n).map(|i| Bytes::from(format!("count-{i}")))).collect();
    let mut stream = client.channel_count(futures_util::stream::iter(sent)).await.map_err(|s| describe(&s))?;
    let want: Vec<Bytes> = (0..n).map(|i| Bytes::from(i.to_string())).collect();
    let deadline = tokio::time::Instant::now() + limit;
    let mut items = Vec::new();
    let end = loop {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(item))) => items.push(item),
            Ok(Ok(None)) => break Ok(()),
            Ok(Err(status)) => break Err(status),
            Err(_) => {
                let order = if want.starts_with(&items) { "in order" } else { "NOT in order" };
                return fail(format!(
                    "{} of {n} items arrived ({order}), then no COMPLETE within {} s; the responder \
                     grants exactly the {} payloads due after the first",
                    items.len(),
                    limit.as_secs(),
                    n - 1
                ));
            }
        }
    };
    expect(items == want, || {
        let first: Vec<String> = items.iter().take(12).map(|b| short(b)).collect();
        format!("want \"0\"..\"{}\", got {} items: {first:?}", n - 1, items.len())
    })?;
    end.map_err(|status| format!("all {n} items arrived, then {}", describe(&status)))
}

/// The checks, in the order (and with the names) of the Python and JavaScript clients.
struct Checks {
    target: Target,
    /// The connection most checks share (Weft's default credit window).
    client: EchoClient,
}

impl Checks {
    async fn unary_hello(&self) -> Outcome {
        expect_echo(&self.client, Bytes::from_static(b"hello")).await
    }

    async fn unary_empty(&self) -> Outcome {
        expect_echo(&self.client, Bytes::new()).await
    }

    async fn unary_binary(&self) -> Outcome {
        expect_echo(&self.client, (0..=255u8).collect::<Vec<_>>().into()).await
    }

    async fn unary_large(&self) -> Outcome {
        let data: Vec<u8> = (0..200_000usize).map(|i| ((i * 7 + 3) % 256) as u8).collect();
        expect_echo(&self.client, data.into()).await
    }

    async fn unary_many_in_flight(&self) -> Outcome {
        const COUNT: usize = 200;
        // 200 calls in flight at once on one connection, from clones of one client.
        let calls: Vec<_> = (0..COUNT)
            .map(|i| {
                let client = self.client.clone();
                let sent = Bytes::from(format!("in-flight-{i}"));
                tokio::spawn(async move { (sent.clone(), client.unary(sent).await) })
            })
            .collect();
        let mut wrong = Vec::new();
        for call in calls {
            let (sent, got) = call.await.map_err(|e| format!("a call's task failed: {e}"))?;
            match got {
                Ok(got) if got == sent => {}
                Ok(got) => wrong.push(format!("sent {} got {}", short(&sent), short(&got))),
                Err(status) => wrong.push(format!("sent {} got {}", short(&sent), describe(&status))),
            }
        }
        expect(wrong.is_empty(), || format!("{} of {COUNT} answers wrong, first: {}", wrong.len(), wrong[0]))
    }

    async fn error_message(&self) -> Outcome {
        let message = "boom: ünïcødé ✓ 错误 🚀";
        match self.client.error(Bytes::from(message)).await {
            // Weft reads ERROR[APPLICATION_ERROR] whose text carries no Weft code name as
            // Code::Unknown with the text, unchanged, as its message; the other RSocket error
            // codes map to other codes (REJECTED → UNAVAILABLE, INVALID → INVALID_ARGUMENT, …).
            Err(status) if status.code() == Code::Unknown => expect(status.message() == message, || {
                format!("APPLICATION_ERROR message {:?}, want {message:?}", status.message())
            }),
            Err(status) => {
                fail(format!("want APPLICATION_ERROR (0x201) with the bare message, got {}", describe(&status)))
            }
            Ok(got) => fail(format!("want an ERROR, got a PAYLOAD {}", short(&got))),
        }
    }

    async fn unknown_route_errors(&self) -> Outcome {
        let route = format!("{SVC}NoSuchMethod");
        // The typed client only knows the service's routes: the payload-level client calls any.
        let raw = self.client.inner();
        if let Ok(got) = raw.request_response(Call::new(route.clone()), Bytes::from_static(b"x")).await {
            return fail(format!("request/response to {route} answered PAYLOAD {}, want ERROR", short(&got.data)));
        }
        let stream = raw.request_stream(Call::new(route.clone()), Bytes::from_static(b"1")).await;
        first_is_error("request/stream", &route, stream).await?;
        let messages = futures_util::stream::iter([Payload::new(Bytes::from_static(b"x"))]);
        let channel = raw.request_channel(Call::new(route.clone()), messages).await;
        first_is_error("channel", &route, channel).await?;
        expect_echo(&self.client, Bytes::from_static(b"still alive"))
            .await
            .map_err(|why| format!("after the unknown-route errors: {why}"))
    }

    async fn stream_small(&self) -> Outcome {
        expect_counting(&self.client, 5).await
    }

    async fn stream_zero(&self) -> Outcome {
        expect_counting(&self.client, 0).await
    }

    async fn stream_flow_control(&self) -> Outcome {
        // Window 2: REQUEST_STREAM grants 2, then REQUEST_N(1) as each item is consumed, so
        // the server is at the edge of its credit all the way through 1000 items. An item
        // beyond the credit fails the stream in Weft's runtime ("beyond the credit granted").
        let client = EchoClient::new(connect(&self.target, Some(2)).await?);
        expect_counting(&client, 1000).await
    }

    async fn stream_cancel(&self) -> Outcome {
        // Window 2 on a connection of its own: the server runs out of credit after a couple of
        // items, so the million-item stream is paused, not flooding, when CANCEL arrives.
        let client = EchoClient::new(connect(&self.target, Some(2)).await?);
        let mut stream = client.server_stream(Bytes::from_static(b"1000000")).await.map_err(|s| describe(&s))?;
        let mut items = Vec::new();
        for _ in 0..3 {
            match stream.message().await {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return fail(format!("completed after {} items, want 1000000", items.len())),
                Err(status) => return fail(format!("ended with {} after {} items", describe(&status), items.len())),
            }
        }
        expect(items == [&b"0"[..], b"1", b"2"], || format!("want 0,1,2 before cancel, got {items:?}"))?;
        // Dropping the stream sends CANCEL. Whatever the server had in flight is discarded by
        // the runtime (frames for a stream that is gone are ignored, Protocol.md); what must
        // hold is that the connection carries on and the server still answers.
        drop(stream);
        tokio::time::sleep(Duration::from_millis(200)).await;
        expect(!client.inner().is_closed(), || "the connection closed after CANCEL".to_owned())?;
        expect_echo(&client, Bytes::from_static(b"after cancel")).await.map_err(|why| format!("after CANCEL: {why}"))
    }

    async fn channel_echo(&self) -> Outcome {
        // Window 4: REQUEST_CHANNEL grants 4 echoes, then REQUEST_N(2) per 2 consumed. The 50
        // payloads leave as the server grants credit for them.
        let client = EchoClient::new(connect(&self.target, Some(4)).await?);
        let sent: Vec<Bytes> = (0..50).map(|i| Bytes::from(format!("ch-{i}"))).collect();
        let stream = client.channel(futures_util::stream::iter(sent.clone())).await.map_err(|s| describe(&s))?;
        let (items, end) = collect(stream).await;
        if let Err(status) = end {
            return fail(format!("ended with {} after {} echoes", describe(&status), items.len()));
        }
        expect(items == sent, || {
            let first: Vec<String> = items.iter().take(6).map(|b| short(b)).collect();
            format!("sent ch-0..ch-49, got {} echoes: {first:?}", items.len())
        })
    }

    async fn channel_single(&self) -> Outcome {
        let only = Bytes::from_static(b"only");
        let stream = self.client.channel(futures_util::stream::iter([only.clone()])).await.map_err(|s| describe(&s))?;
        let (items, end) = collect(stream).await;
        if let Err(status) = end {
            return fail(format!("ended with {} after {} echoes", describe(&status), items.len()));
        }
        expect(items == [only], || format!("want one echo \"only\", got {items:?}"))
    }

    async fn channel_count_exact(&self) -> Outcome {
        // ChannelCount, 10 payloads each way: the responder grants exactly the 9 after the one
        // in REQUEST_CHANNEL (the Python and JS servers do, in two steps), and completes only
        // after this side has, with all 10 (else ERROR): its COMPLETE means both halves did.
        expect_channel_count(&self.client, 10, EXACT_TIMEOUT).await
    }

    async fn fire_and_forget_count(&self) -> Outcome {
        const FIRES: u32 = 10;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let key = Bytes::from(format!("weft-fire-{}-{nanos}", std::process::id()));
        for _ in 0..FIRES {
            self.client.fire(key.clone()).await.map_err(|s| format!("fire: {}", describe(&s)))?;
        }
        // Fire-and-forget has no answer: poll the count, bounded in time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let want = FIRES.to_string();
        let mut count = Bytes::new();
        while tokio::time::Instant::now() < deadline {
            count = self.client.fire_count(key.clone()).await.map_err(|s| format!("FireCount: {}", describe(&s)))?;
            if count == want.as_bytes() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        expect(count == want.as_bytes(), || {
            format!("FireCount({}) = {} after 10 s, want {FIRES}", short(&key), short(&count))
        })?;
        let total =
            self.client.fire_count(Bytes::new()).await.map_err(|s| format!("FireCount(\"\"): {}", describe(&s)))?;
        let total_n = std::str::from_utf8(&total)
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u64>().ok());
        expect(total_n.is_some_and(|t| t >= u64::from(FIRES)), || {
            format!("FireCount(\"\") = {}, want >= {FIRES}", short(&total))
        })
    }
}

/// The checks for a proxy between this client and the server (`--proxy-idle-timeout SECS`):
/// a long stream and a long channel through it, and keepalive across its idle timeout.
struct ProxyChecks {
    target: Target,
    /// How long the proxy lets a connection sit with no bytes either way before closing it.
    idle_timeout: Duration,
}

impl ProxyChecks {
    /// How long the keepalive checks leave their connections idle: beyond the proxy's idle
    /// timeout, by a margin for its timers' coarseness (nginx keeps a timer that would move by
    /// less than 300 ms, and a busy machine runs timers late).
    fn idle_wait(&self) -> Duration {
        self.idle_timeout + Duration::from_secs(2)
    }

    /// The keepalive checks' time limit: the idle wait, then a call or two.
    fn keepalive_limit(&self) -> Duration {
        self.idle_wait() + CHECK_TIMEOUT
    }

    async fn proxy_long_stream(&self) -> Outcome {
        // Default window, on a connection of its own: the runtime's credit refills carry the
        // whole stream, and every item is checked in order as it arrives.
        let client = EchoClient::new(connect_with(&self.target, Client::builder()).await?);
        expect_counting(&client, LONG_STREAM_N).await
    }

    async fn proxy_channel_count_long(&self) -> Outcome {
        let client = EchoClient::new(connect_with(&self.target, Client::builder()).await?);
        expect_channel_count(&client, LONG_CHANNEL_N, LONG_TIMEOUT).await
    }

    /// A connection that sends KEEPALIVE well within the proxy's idle timeout, left idle
    /// beyond that timeout: it must still be open, and answer a call, after the wait.
    async fn proxy_keepalive_idle(&self) -> Outcome {
        // Three KEEPALIVEs (each answered by the server) per proxy timeout: traffic both ways,
        // which an idle timer counting either direction (nginx's) must see. The max lifetime
        // outlasts several of them, so one delayed answer does not close the connection.
        let interval = self.idle_timeout / 3;
        let builder = Client::builder().keepalive(interval, self.idle_timeout * 3);
        let client = EchoClient::new(connect_with(&self.target, builder).await?);
        let wait = self.idle_wait();
        let started = tokio::time::Instant::now();
        tokio::select! {
            error = client.inner().closed() => {
                return fail(format!(
                    "closed after {:.1} s of {:.1} s idle, keepalive every {} ms: {error}",
                    started.elapsed().as_secs_f64(),
                    wait.as_secs_f64(),
                    interval.as_millis()
                ));
            }
            () = tokio::time::sleep(wait) => {}
        }
        expect_echo(&client, Bytes::from_static(b"after idle")).await.map_err(|why| {
            format!("after {:.1} s idle with keepalive every {} ms: {why}", wait.as_secs_f64(), interval.as_millis())
        })
    }

    /// The control for `proxy_keepalive_idle`: a connection whose keepalive is slower than the
    /// idle wait sends nothing during it, so the proxy must close it. Were the proxy's idle
    /// timeout not in effect, `proxy_keepalive_idle` would pass without keepalive doing
    /// anything; this fails instead.
    async fn proxy_idle_control(&self) -> Outcome {
        let wait = self.idle_wait();
        // Neither side sends a KEEPALIVE or gives up on the other within the wait: whatever
        // closes the connection is the proxy.
        let builder = Client::builder().keepalive(wait * 10, wait * 20);
        let client = EchoClient::new(connect_with(&self.target, builder).await?);
        let started = tokio::time::Instant::now();
        let closed = tokio::select! {
            error = client.inner().closed() => Some(error),
            () = tokio::time::sleep(wait) => None,
        };
        let Some(error) = closed else {
            return match client.unary(Bytes::from_static(b"after idle")).await {
                Err(status) => {
                    println!(
                        "proxy_idle_control: after {:.1} s idle, a call failed: {}",
                        wait.as_secs_f64(),
                        describe(&status)
                    );
                    Ok(())
                }
                Ok(_) => fail(format!(
                    "a connection with no keepalive for {:.1} s still answers: the proxy's {} s \
                     idle timeout is not in effect, so proxy_keepalive_idle shows nothing",
                    wait.as_secs_f64(),
                    self.idle_timeout.as_secs()
                )),
            };
        };
        let after = started.elapsed();
        if let ErrorKind::Closed(reason @ (CloseReason::Local | CloseReason::KeepaliveTimeout(_))) = error.kind() {
            return fail(format!("closed by this side, not the proxy, after {:.1} s: {reason}", after.as_secs_f64()));
        }
        // The proxy's timer started when the SETUP went through it, just before `started`
        // (nginx's timers may fire up to 300 ms early): a close much earlier than its timeout
        // is something else.
        let earliest = self.idle_timeout.saturating_sub(Duration::from_secs(1));
        expect(after >= earliest, || {
            format!(
                "closed after {:.1} s, before the proxy's {} s idle timeout: {error}",
                after.as_secs_f64(),
                self.idle_timeout.as_secs()
            )
        })?;
        println!(
            "proxy_idle_control: the proxy closed the idle connection after {:.1} s ({error})",
            after.as_secs_f64()
        );
        Ok(())
    }
}

/// A request/stream or channel to an unknown route must end in ERROR before any item.
async fn first_is_error(model: &str, route: &str, opened: Result<weft::PayloadStream, Status>) -> Outcome {
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(_) => return Ok(()),
    };
    match stream.next().await {
        Some(Err(_)) => Ok(()),
        Some(Ok(item)) => fail(format!("{model} to {route} answered PAYLOAD {}, want ERROR", short(&item.data))),
        None => fail(format!("{model} to {route} completed without an ERROR")),
    }
}

/// A check this client cannot run, and why.
fn skip(name: &str, why: &str) {
    println!("SKIP {name}: {why}");
    let _ = std::io::stdout().flush();
}

async fn run_check(name: &str, check: impl Future<Output = Outcome>) -> bool {
    report(name, within(CHECK_TIMEOUT, check).await)
}

/// `check`'s outcome, failed if it takes longer than `limit`.
async fn within(limit: Duration, check: impl Future<Output = Outcome>) -> Outcome {
    match tokio::time::timeout(limit, check).await {
        Ok(outcome) => outcome,
        Err(_) => fail(format!("no answer within {} s", limit.as_secs())),
    }
}

/// Prints a check's `PASS` or `FAIL` line; true when it passed.
fn report(name: &str, outcome: Outcome) -> bool {
    match &outcome {
        Ok(()) => println!("PASS {name}"),
        Err(why) => println!("FAIL {name}: {why}"),
    }
    let _ = std::io::stdout().flush();
    outcome.is_ok()
}

/// Takes `--proxy-idle-timeout SECS` (whole seconds, at least 1) out of the command line: the
/// idle timeout of the proxy between here and the server, which turns the proxy checks on.
/// The rest goes to [`parse_args`].
fn proxy_option(args: impl IntoIterator<Item = String>) -> Result<(Option<Duration>, Vec<String>), String> {
    let mut idle_timeout = None;
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg != "--proxy-idle-timeout" {
            rest.push(arg);
            continue;
        }
        let secs = args.next().ok_or("--proxy-idle-timeout needs SECS")?;
        match secs.parse::<u64>() {
            Ok(secs) if secs >= 1 => idle_timeout = Some(Duration::from_secs(secs)),
            _ => return Err(format!("--proxy-idle-timeout wants whole seconds >= 1, got {secs:?}")),
        }
    }
    Ok((idle_timeout, rest))
}

#[tokio::main]
async fn main() {
    const USAGE: &str = "usage: interop_client [--proxy-idle-timeout SECS] ADDRESS \
                         (127.0.0.1:PORT, ws://127.0.0.1:PORT/PATH)";
    let (proxy_idle_timeout, args) = match proxy_option(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let target = match parse_args(args, 1, 1) {
        Ok((mut endpoints, options)) => Target { endpoint: endpoints.remove(0), options },
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let proxy_checks = proxy_idle_timeout.map(|idle_timeout| ProxyChecks { target: target.clone(), idle_timeout });
    let client = match connect(&target, None).await {
        Ok(client) => EchoClient::new(client),
        Err(why) => {
            println!("FAIL connect: {why}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    let checks = Checks { target, client };
    let (mut passed, mut failed) = (0, 0);
    macro_rules! run {
        ($($name:ident),* $(,)?) => {
            $(
                if run_check(stringify!($name), checks.$name()).await { passed += 1 } else { failed += 1 }
            )*
        };
    }
    run!(
        unary_hello,
        unary_empty,
        unary_binary,
        unary_large,
        unary_many_in_flight,
        error_message,
        unknown_route_errors,
        stream_small,
        stream_zero,
        stream_flow_control,
        stream_cancel,
    );
    const NO_EXACT: &str = "Weft's client grants credit from its window (Config::inbound_window), \
                            ahead of consumption: it has no way to grant exactly the items due";
    skip("stream_exact_credit", NO_EXACT);
    skip("stream_exact_single", NO_EXACT);
    run!(channel_echo, channel_single);
    skip("channel_exact_credit", NO_EXACT);
    run!(channel_count_exact, fire_and_forget_count);
    // Close cleanly (ERROR[CONNECTION_CLOSE] on stream 0) and give the driver a moment to write
    // it, rather than letting the peer see the socket vanish at exit (or a proxy time it out
    // while the proxy checks run on connections of their own).
    checks.client.inner().close();
    let _ = tokio::time::timeout(Duration::from_secs(1), checks.client.inner().closed()).await;
    let mut tally = |passed_check: bool| if passed_check { passed += 1 } else { failed += 1 };
    if let Some(proxy) = &proxy_checks {
        tally(report("proxy_long_stream", within(LONG_TIMEOUT, proxy.proxy_long_stream()).await));
        tally(report("proxy_channel_count_long", within(LONG_TIMEOUT, proxy.proxy_channel_count_long()).await));
        // Both keepalive checks idle at the same time: one wait, not two.
        let limit = proxy.keepalive_limit();
        let (kept, control) =
            tokio::join!(within(limit, proxy.proxy_keepalive_idle()), within(limit, proxy.proxy_idle_control()));
        tally(report("proxy_keepalive_idle", kept));
        tally(report("proxy_idle_control", control));
    }
    println!("{passed} passed, {failed} failed");
    // `closed()` resolves when the connection decides to close, a moment before its driver has
    // flushed that last frame: wait that moment out before the process ends.
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
