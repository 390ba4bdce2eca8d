//! A client that serves services: the server calls a generated service back on the client,
//! through the connection the client's request came on, over TCP and in memory.

use crate::lab::{LabClient, LabServer, msg};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use weft::{Call, Client, ClientBuilder, Code, Context, Handler, Payload, Response, Server, Status};

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Num {
    #[prost(uint32, tag = "1")]
    pub(crate) n: u32,
}

/// Served by the server: it answers by asking the caller.
#[weft::service(package = "weft.test.cb")]
pub(crate) trait Front {
    /// Asks the caller's `Back::double` for `n` and adds one.
    async fn ask(&self, ctx: Context, req: Num) -> Result<Num, Status>;
}

/// Served by the client.
#[weft::service(package = "weft.test.cb")]
pub(crate) trait Back {
    async fn double(&self, req: Num) -> Result<Num, Status>;
}

struct FrontImpl;

impl Front for FrontImpl {
    async fn ask(&self, ctx: Context, req: Num) -> Result<Num, Status> {
        let peer = ctx.peer().ok_or_else(|| Status::internal("no peer"))?;
        let doubled = BackClient::new(peer.clone()).double(req).await?;
        Ok(Num { n: doubled.n + 1 })
    }
}

struct BackImpl {
    calls: Arc<AtomicU32>,
}

impl Back for BackImpl {
    async fn double(&self, req: Num) -> Result<Num, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Num { n: req.n * 2 })
    }
}

fn server() -> Server {
    Server::builder().add_service(FrontServer::new(FrontImpl)).build()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("in time")
}

/// Connects `builder` to `server` over TCP (keeping the listener alive in the result) or in
/// memory.
async fn connect(builder: &ClientBuilder, server: &Server, tcp: bool) -> (Client, Option<weft::RunningServer>) {
    if tcp {
        let running = server.bind("127.0.0.1:0").await.unwrap();
        (builder.connect(running.local_addr()).await.unwrap(), Some(running))
    } else {
        (builder.connect_in_memory(server).await.unwrap(), None)
    }
}

#[tokio::test]
async fn the_server_calls_a_typed_service_the_client_serves() {
    for tcp in [true, false] {
        bounded(async {
            let calls = Arc::new(AtomicU32::new(0));
            let builder = Client::builder().add_service(BackServer::new(BackImpl { calls: calls.clone() }));
            let server = server();
            let (client, running) = connect(&builder, &server, tcp).await;
            let front = FrontClient::new(client);
            assert_eq!(front.ask(Num { n: 20 }).await.unwrap(), Num { n: 41 }, "tcp: {tcp}");
            // Many at once, each calling back on the one connection.
            let asks = (0..50).map(|n| {
                let front = front.clone();
                async move { front.ask(Num { n }).await.unwrap().n }
            });
            let answers = futures_util::future::join_all(asks).await;
            assert_eq!(answers, (0..50).map(|n| n * 2 + 1).collect::<Vec<_>>());
            assert_eq!(calls.load(Ordering::Relaxed), 51);
            if let Some(running) = running {
                running.shutdown().await;
            }
        })
        .await
    }
}

#[tokio::test]
async fn a_client_that_does_not_serve_the_route_answers_unimplemented() {
    for tcp in [true, false] {
        bounded(async {
            let server = server();
            let builder = Client::builder();
            let (client, running) = connect(&builder, &server, tcp).await;
            let status = FrontClient::new(client).ask(Num { n: 1 }).await.unwrap_err();
            assert_eq!(status.code(), Code::Unimplemented, "{status}");
            assert!(status.message().contains("weft.test.cb.Back/Double"), "{status}");
            if let Some(running) = running {
                running.shutdown().await;
            }
        })
        .await
    }
}

/// A hand-written handler on the client, beside a generated service.
struct Hello;

impl Handler for Hello {
    fn request_response(&self, _call: Call, data: Bytes) -> Response {
        Response::ready(Ok(Payload::new(format!("hello, {}", String::from_utf8_lossy(&data)))))
    }
}

/// The server's side of `calls_the_client`: asks the client's `t/Hello` handler and its lab.
struct AsksBoth;

impl Handler for AsksBoth {
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        Response::new(async move {
            let peer = call.peer().expect("a served call knows its peer").clone();
            let hello = peer.request_response(Call::new("t/Hello"), "server".into()).await?;
            let echo = LabClient::new(peer).echo(msg("lab", 7)).await?;
            Ok(Payload::new(format!("{} / {}", String::from_utf8_lossy(&hello.data), echo.text)))
        })
    }
}

#[tokio::test]
async fn a_client_builder_serves_handlers_and_services_and_makes_many_connections() {
    bounded(async {
        let (lab, _events) = crate::lab::lab_service();
        let builder = Client::builder().add_handler(&["t/Hello"], Hello).add_service(LabServer::new(lab));
        let server = Server::builder().add_handler(&["t/Both"], AsksBoth).build();
        // One builder, two connections: both serve.
        for _ in 0..2 {
            let client = builder.connect_in_memory(&server).await.unwrap();
            let reply = client.request_response(Call::new("t/Both"), Bytes::new()).await.unwrap();
            assert_eq!(reply.data, "hello, server / lab");
        }
    })
    .await
}

#[test]
#[should_panic(expected = "two services serve the route `t/Hello`")]
fn a_client_builder_refuses_two_handlers_for_a_route() {
    let _ = Client::builder().add_handler(&["t/Hello"], Hello).add_handler(&["t/Hello"], Hello);
}

#[test]
fn a_context_made_by_hand_has_no_peer() {
    assert!(Context::new(Call::new("a/B")).peer().is_none());
}
