//! A server: services registered by route ([`ServerBuilder`]), and the connections it serves,
//! over a TCP listener of its own ([`Server::bind`]), any transport, or in memory.

use super::driver::Driver;
use super::handler::{Handler, Service};
use super::routing::{Resolve, Router};
use super::shutdown::ShutdownHub;
use super::transport::Transport;
use crate::conn::Connection;
use crate::{BoxFuture, Call, Client, Config, PayloadStream, Response, Responses, Status};
use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Builds a [`Server`].
#[derive(Default)]
pub struct ServerBuilder {
    router: Router,
    config: Config,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routes: Vec<_> = self.router.routes.keys().collect();
        routes.sort();
        f.debug_struct("ServerBuilder").field("routes", &routes).field("config", &self.config).finish()
    }
}

impl ServerBuilder {
    /// Serves every route of `service`.
    ///
    /// # Panics
    /// If another service already serves one of its routes: two handlers for one route is a
    /// wiring mistake better caught at start-up than by a caller.
    pub fn add_service<S: Service>(self, service: S) -> ServerBuilder {
        let routes = service.routes();
        self.add_handler(routes, service)
    }

    /// Serves `routes` with a hand-written [`Handler`].
    ///
    /// # Panics
    /// As [`ServerBuilder::add_service`].
    pub fn add_handler(mut self, routes: &'static [&'static str], handler: impl Handler) -> ServerBuilder {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        for route in routes {
            if self.router.routes.insert(route, handler.clone()).is_some() {
                panic!("two services serve the route `{route}`");
            }
        }
        self
    }

    /// Connection settings for every connection the server accepts.
    pub fn config(mut self, config: Config) -> ServerBuilder {
        self.config = config;
        self
    }

    /// Builds the server.
    pub fn build(self) -> Server {
        Server { inner: Arc::new(Inner { router: self.router, config: self.config }) }
    }
}

struct Inner {
    router: Router,
    config: Config,
}

impl Resolve for Inner {
    fn resolve(&self, route: &str) -> Option<Arc<dyn Handler>> {
        self.router.get(route).cloned()
    }
}

/// A set of services ready to serve connections. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("routes", &self.inner.router.routes.len()).finish()
    }
}

/// The router as the handler of every connection; wraps the shared server so that
/// connections share one route table.
struct Shared(Arc<Inner>);

impl Handler for Shared {
    fn request_response(&self, call: Call, data: Bytes) -> Response {
        self.0.router.request_response(call, data)
    }

    fn fire_and_forget(&self, call: Call, data: Bytes) -> BoxFuture<'static, ()> {
        self.0.router.fire_and_forget(call, data)
    }

    fn request_stream(&self, call: Call, data: Bytes) -> Responses {
        self.0.router.request_stream(call, data)
    }

    fn request_channel(&self, call: Call, messages: PayloadStream) -> Responses {
        self.0.router.request_channel(call, messages)
    }
}

impl Server {
    /// Starts building a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Binds a TCP listener and serves every connection it accepts, in a background task.
    pub async fn bind(&self, addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let hub = Arc::new(ShutdownHub::default());
        let task = tokio::spawn(accept(self.clone(), listener, shutdown_rx, hub.clone()));
        Ok(RunningServer { local_addr, shutdown, hub, task: Some(task) })
    }

    /// Serves one connection over `transport` until it closes.
    pub async fn serve_connection<T: Transport>(&self, transport: T) {
        self.serve(transport, None).await
    }

    /// Serves one in-memory connection and returns a client for it: no sockets at all.
    pub async fn connect_in_memory(&self) -> Result<Client, Status> {
        self.connect_in_memory_with(Config::default())
    }

    /// [`Server::connect_in_memory`] with the client's own configuration.
    pub fn connect_in_memory_with(&self, config: Config) -> Result<Client, Status> {
        let (client_end, server_end) = tokio::io::duplex(256 * 1024);
        tokio::spawn(self.clone().serve_owned(server_end));
        Ok(Client::over(client_end, config))
    }

    async fn serve_owned<T: Transport>(self, transport: T) {
        self.serve(transport, None).await
    }

    async fn serve<T: Transport>(&self, transport: T, shutdown: Option<&ShutdownHub>) {
        let conn = Connection::server(self.inner.config.clone(), tokio::time::Instant::now().into_std());
        let handler = Arc::new(Shared(self.inner.clone()));
        let resolver: Arc<dyn Resolve> = self.inner.clone();
        let (driver, commands, _handles) = Driver::new(conn, transport, handler, Some(resolver), shutdown, None);
        // The server side's command sender stays alive with the connection: a server
        // connection ends when the peer or a shutdown ends it, not when handles go away.
        let _keep = commands;
        driver.run().await;
    }
}

async fn accept(server: Server, listener: TcpListener, mut shutdown: watch::Receiver<bool>, hub: Arc<ShutdownHub>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _peer)) = accepted {
                    let (server, hub, live) = (server.clone(), hub.clone(), hub.live());
                    let max = server.inner.config.max_connections;
                    connections.spawn(async move {
                        let _live = live;
                        // Counted first (this one included), so that a burst of connections
                        // cannot slip past the limit between two checks.
                        if hub.connections() > max {
                            return refuse_connection(stream, max).await;
                        }
                        server.serve(stream, Some(&hub)).await
                    });
                }
                // An accept error (out of file descriptors, a connection reset before it was
                // accepted) concerns one connection; the listener carries on.
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    // Each connection was told through the hub and drains within the grace period.
    while connections.join_next().await.is_some() {}
}

/// Tells a connection beyond `Config::max_connections` why it is refused, with
/// ERROR\[REJECTED_SETUP\] on stream 0 ("The server rejected the setup, it can specify the
/// reason in the payload"), and closes it. What the peer sent meanwhile (its SETUP) is read and
/// dropped for a moment before the close, so that the close does not reset the connection
/// ahead of the ERROR: a socket closed with unread data sends RST, and a peer's kernel may
/// then drop what it had not yet handed to the peer.
async fn refuse_connection(mut stream: tokio::net::TcpStream, max: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let message = format!("the server serves at most {max} connections at once; try again later");
    let error = crate::frame::Frame::Error(crate::frame::ErrorFrame {
        stream_id: 0,
        code: crate::frame::ErrorCode::REJECTED_SETUP,
        data: Bytes::from(message),
    });
    let mut out = bytes::BytesMut::new();
    crate::frame::length::encode_frame(&error, &mut out);
    let linger = async {
        stream.write_all(&out).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), linger).await;
}

/// A server accepting connections in the background. Dropping it shuts it down as
/// [`RunningServer::shutdown`] does, without waiting.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    /// Stops the accept loop.
    shutdown: watch::Sender<bool>,
    /// Tells the connections.
    hub: Arc<ShutdownHub>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many connections it serves now: accepted, and not yet closed (by the peer, a
    /// transport error, a protocol error, or a shutdown). A connection that closed is no
    /// longer counted once its task has ended and released what it held, so this returning
    /// to 0 means every connection is gone, however its peer left.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft::{Call, Client, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let running = Server::builder().build().bind("127.0.0.1:0").await?;
    /// let client = Client::connect(running.local_addr()).await?;
    /// // Answered (UNIMPLEMENTED: this server serves nothing), so the connection is served.
    /// let answer = client.request_response(Call::new("no.Such/Method"), "hi".into()).await;
    /// assert!(answer.is_err());
    /// assert_eq!(running.connections(), 1);
    /// drop(client);
    /// for _ in 0..500 {
    ///     if running.connections() == 0 {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    /// }
    /// assert_eq!(running.connections(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connections(&self) -> usize {
        self.hub.connections()
    }

    /// Stops accepting, lets in-flight streams finish within the configured grace period
    /// (new requests are refused meanwhile), then closes every connection.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.hub.shutdown();
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}
