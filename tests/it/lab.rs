//! `Lab`: a service with a method of every interaction model, written to be poked at by the
//! end-to-end tests, and helpers that serve it over each transport.

use futures_util::{Stream, StreamExt};
use std::time::Duration;
use tokio::sync::mpsc;
use weft::{Code, Context, MimeType, RunningServer, Server, ServerBuilder, Status, Streaming};

/// Every request and response of the lab.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Msg {
    #[prost(string, tag = "1")]
    pub(crate) text: String,
    #[prost(uint64, tag = "2")]
    pub(crate) n: u64,
}

pub(crate) fn msg(text: &str, n: u64) -> Msg {
    Msg { text: text.to_owned(), n }
}

/// The metadata entry `echo` copies into its reply.
pub(crate) fn trace_mime() -> MimeType {
    MimeType::custom("application/x-weft-test-trace").expect("a valid key")
}

/// The metadata keys `echo` reads by string and appends to its reply as ` key=value`: a
/// written-out key, and a well-known type's name, which travels as its id.
pub(crate) const ECHOED_KEYS: [&str; 2] = ["x-user-id", "application/json"];

/// A lab for tests.
#[weft::service(package = "weft.test")]
pub(crate) trait Lab {
    /// Replies with the request. `text = "fail"` fails with the code named by `n` (see
    /// [`code_of`]); a trace metadata entry, then the entries named by [`ECHOED_KEYS`], are
    /// appended to the reply's text.
    async fn echo(&self, ctx: Context, req: Msg) -> Result<Msg, Status>;
    /// Hands the message to the test.
    async fn record(&self, req: Msg);
    /// Replies with `n` messages numbered 0..n; then, if `text = "fail"`, fails with
    /// `RESOURCE_EXHAUSTED`. `text = "refuse"` fails before the first message.
    async fn count(&self, req: Msg) -> Result<impl Stream<Item = Result<Msg, Status>>, Status>;
    /// Replies to each message with its text in upper case; a message with `text = "fail"`
    /// ends the stream with `ABORTED`.
    async fn chat(&self, msgs: Streaming<Msg>) -> Result<impl Stream<Item = Result<Msg, Status>>, Status>;
    /// Replies with the number of messages and the sum of their `n`.
    async fn sum(&self, msgs: Streaming<Msg>) -> Result<Msg, Status>;
    /// Never replies; tells the test when the caller cancels.
    async fn hang(&self, ctx: Context, req: Msg) -> Result<Msg, Status>;
}

/// The codes `echo` can fail with, by `n`.
pub(crate) const CODES: [Code; 6] =
    [Code::NotFound, Code::InvalidArgument, Code::PermissionDenied, Code::Unavailable, Code::Internal, Code::Unknown];

fn code_of(n: u64) -> Code {
    CODES[n as usize % CODES.len()]
}

/// What the lab tells the test.
pub(crate) struct Events {
    pub(crate) recorded: mpsc::UnboundedReceiver<Msg>,
    pub(crate) cancelled: mpsc::UnboundedReceiver<String>,
}

struct LabImpl {
    recorded: mpsc::UnboundedSender<Msg>,
    cancelled: mpsc::UnboundedSender<String>,
}

impl Lab for LabImpl {
    async fn echo(&self, ctx: Context, mut req: Msg) -> Result<Msg, Status> {
        if req.text == "fail" {
            return Err(Status::new(code_of(req.n), format!("echo failed as asked ({})", req.n)));
        }
        if let Some(trace) = ctx.metadata_entry(trace_mime()) {
            req.text.push_str(&format!(" trace={}", String::from_utf8_lossy(trace)));
        }
        for key in ECHOED_KEYS {
            if let Some(value) = ctx.metadata().get_str(key) {
                req.text.push_str(&format!(" {key}={value}"));
            }
        }
        Ok(req)
    }

    async fn record(&self, req: Msg) {
        let _ = self.recorded.send(req);
    }

    async fn count(&self, req: Msg) -> Result<impl Stream<Item = Result<Msg, Status>> + Send + 'static, Status> {
        if req.text == "refuse" {
            return Err(Status::failed_precondition("not counting today"));
        }
        let tail = (req.text == "fail").then(|| Err(Status::resource_exhausted("counted too far")));
        Ok(futures_util::stream::iter((0..req.n).map(|i| Ok(msg("count", i))).chain(tail)))
    }

    async fn chat(
        &self,
        msgs: Streaming<Msg>,
    ) -> Result<impl Stream<Item = Result<Msg, Status>> + Send + 'static, Status> {
        Ok(msgs.map(|m| {
            let m = m?;
            if m.text == "fail" {
                Err(Status::aborted("chat aborted as asked"))
            } else {
                Ok(msg(&m.text.to_uppercase(), m.n))
            }
        }))
    }

    async fn sum(&self, mut msgs: Streaming<Msg>) -> Result<Msg, Status> {
        let (mut count, mut sum) = (0, 0);
        while let Some(m) = msgs.message().await? {
            count += 1;
            sum += m.n;
        }
        Ok(msg(&count.to_string(), sum))
    }

    async fn hang(&self, ctx: Context, _req: Msg) -> Result<Msg, Status> {
        let watcher = ctx.clone();
        let cancelled = self.cancelled.clone();
        tokio::spawn(async move {
            watcher.cancelled().await;
            let _ = cancelled.send(watcher.route().to_owned());
        });
        std::future::pending().await
    }
}

/// The lab's server.
pub(crate) fn server() -> (Server, Events) {
    let (builder, events) = builder();
    (builder.build(), events)
}

/// A server builder with the lab added, for a test to set up further.
pub(crate) fn builder() -> (ServerBuilder, Events) {
    let (lab, events) = lab_service();
    (Server::builder().add_service(LabServer::new(lab)), events)
}

/// The lab's implementation, to serve from a server or a client.
pub(crate) fn lab_service() -> (impl Lab + 'static, Events) {
    let (recorded_tx, recorded) = mpsc::unbounded_channel();
    let (cancelled_tx, cancelled) = mpsc::unbounded_channel();
    (LabImpl { recorded: recorded_tx, cancelled: cancelled_tx }, Events { recorded, cancelled })
}

/// How a test reaches the server.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    Tcp,
    Memory,
    /// RSocket over WebSocket, on TCP.
    WebSocket,
    /// RSocket over TLS, on TCP.
    Tls,
    /// RSocket over WebSocket over TLS (`wss://`).
    WebSocketTls,
    /// A Unix domain socket.
    Unix,
}

pub(crate) const TRANSPORTS: [Transport; 6] =
    [Transport::Tcp, Transport::Memory, Transport::WebSocket, Transport::Tls, Transport::WebSocketTls, Transport::Unix];

/// A path for a Unix socket of this test process's own, new on every call.
pub(crate) fn socket_path() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("weft-it-{}-{n}.sock", std::process::id()))
}

/// A connected client and what keeps its server alive.
pub(crate) struct Connected {
    pub(crate) client: weft::Client,
    running: Option<Running>,
    _server: Server,
}

/// A running server, on an address or a Unix socket.
enum Running {
    Addr(RunningServer),
    Unix(RunningServer<std::path::PathBuf>),
}

impl Connected {
    pub(crate) async fn shutdown(self) {
        match self.running {
            Some(Running::Addr(running)) => running.shutdown().await,
            Some(Running::Unix(running)) => running.shutdown().await,
            None => {}
        }
    }
}

/// Serves `server` over `transport` and connects a client to it, announcing the default data
/// MIME type (protobuf) as `Client::connect` does.
pub(crate) async fn connect(server: Server, transport: Transport) -> Connected {
    connect_announcing(server, transport, weft::DEFAULT_DATA_MIME).await
}

/// [`connect`], announcing the data MIME type `data_mime` in SETUP.
pub(crate) async fn connect_announcing(server: Server, transport: Transport, data_mime: &str) -> Connected {
    let builder = weft::Client::builder().data_mime(data_mime);
    match transport {
        Transport::Tcp => {
            let running = server.bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
            let client = builder.connect(running.local_addr()).await.expect("connect over TCP");
            Connected { client, running: Some(Running::Addr(running)), _server: server }
        }
        Transport::Memory => {
            let client = builder.connect_in_memory(&server).await.expect("connect in memory");
            Connected { client, running: None, _server: server }
        }
        Transport::WebSocket => {
            let running = server.bind_websocket("127.0.0.1:0", "/rsocket").await.expect("bind 127.0.0.1:0");
            let url = format!("ws://{}/rsocket", running.local_addr());
            let client = builder.connect_websocket(&url).await.expect("connect over WebSocket");
            Connected { client, running: Some(Running::Addr(running)), _server: server }
        }
        Transport::Unix => {
            let running = server.bind_unix(socket_path()).await.expect("bind a Unix socket");
            let client = builder.connect_unix(running.local_addr()).await.expect("connect over a Unix socket");
            Connected { client, running: Some(Running::Unix(running)), _server: server }
        }
        Transport::Tls => {
            let pki = crate::tls::Pki::shared();
            let running = server.bind_tls("127.0.0.1:0", pki.server_tls()).await.expect("bind 127.0.0.1:0");
            let addr = running.local_addr().to_string();
            let client = builder.tls(pki.client_tls()).connect_tls(&addr).await.expect("connect over TLS");
            Connected { client, running: Some(Running::Addr(running)), _server: server }
        }
        Transport::WebSocketTls => {
            let pki = crate::tls::Pki::shared();
            let running =
                server.bind_websocket_tls("127.0.0.1:0", "/rsocket", pki.server_tls()).await.expect("bind 127.0.0.1:0");
            let url = format!("wss://{}/rsocket", running.local_addr());
            let client = builder.tls(pki.client_tls()).connect_websocket(&url).await.expect("connect over wss");
            Connected { client, running: Some(Running::Addr(running)), _server: server }
        }
    }
}

/// Runs `test` against the lab over every transport, each run bounded by a timeout.
pub(crate) async fn each_transport<F, Fut>(test: F)
where
    F: Fn(LabClient, Events, Transport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for transport in TRANSPORTS {
        let (server, events) = server();
        let run = async {
            let connected = connect(server, transport).await;
            test(LabClient::new(connected.client.clone()), events, transport).await;
            connected.shutdown().await;
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| panic!("timed out over {transport:?}"));
    }
}
