//! Starting a client connection: [`ClientBuilder`], which makes the connection's driver and
//! starts it (on the task [`Assist`] runs, which waiting callers may also run), and
//! [`Client::connect`], its shorthand.

use super::assist::Assist;
use super::balance::{Balancer, Change};
use super::driver::Driver;
use super::endpoint::{Endpoint, Reconnect, Servers, Target, Upstream};
use super::handler::Handler;
use super::retry::{Retry, Retrying};
use super::routing::{Resolve, Router};
use super::server::Server;
use super::service::Service;
use super::transport::Transport;
use crate::conn::{ClientSettings, Connection};
use crate::{Client, Config, Error};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

impl Client {
    /// Connects over TCP with the default settings, serving nothing to the server: the
    /// shorthand of `Client::builder().connect(addr)`. Fails with
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) if no connection can be made; a
    /// server that refuses the connection itself (SETUP rejected) is heard of on the first
    /// call, and from [`Client::closed`].
    pub async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Result<Client, Error> {
        Client::builder().connect(addr).await
    }

    /// Starts building a client connection: its settings, and the services it serves to the
    /// server (RSocket connections carry requests both ways).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to `url` (`ws://host:port/path`) over WebSocket with the default settings: the
    /// shorthand of `Client::builder().connect_websocket(url)` (see
    /// [`ClientBuilder::connect_websocket`]).
    #[cfg(feature = "websocket")]
    pub async fn connect_websocket(url: &str) -> Result<Client, Error> {
        Client::builder().connect_websocket(url).await
    }
}

/// Builds client connections: their settings, and the services this side serves to the
/// server it connects to.
///
/// RSocket connections carry requests both ways, so a client can serve services too: the
/// server calls them through the connection its request came on
/// ([`Context::peer`](crate::Context::peer), or [`Call::peer`](crate::Call::peer) below the
/// typed layer), with the generated client of the service. Services are added as to a
/// [`ServerBuilder`](crate::ServerBuilder), and dispatched the same way.
///
/// Each `connect*` call makes a new connection; the builder can be kept and used again (a
/// program that reconnects keeps one).
///
/// ```
/// use weft::{Client, Context, Server, Status};
///
/// # #[derive(Clone, PartialEq, prost::Message)] pub struct Empty {}
/// # #[derive(Clone, PartialEq, prost::Message)] pub struct Name { #[prost(string, tag = "1")] pub name: String }
/// /// Served by the client: the server asks who is there.
/// #[weft::service(package = "demo")]
/// pub trait WhoAmI {
///     async fn name(&self, req: Empty) -> Result<Name, Status>;
/// }
///
/// /// Served by the server: it greets whoever calls, by the name their client tells it.
/// #[weft::service(package = "demo")]
/// pub trait Door {
///     async fn knock(&self, ctx: Context, req: Empty) -> Result<Name, Status>;
/// }
///
/// struct Me;
/// impl WhoAmI for Me {
///     async fn name(&self, _: Empty) -> Result<Name, Status> {
///         Ok(Name { name: "Ada".into() })
///     }
/// }
///
/// struct MyDoor;
/// impl Door for MyDoor {
///     async fn knock(&self, ctx: Context, _: Empty) -> Result<Name, Status> {
///         let peer = ctx.peer().ok_or_else(|| Status::internal("no connection to call back"))?;
///         let who = WhoAmIClient::new(peer.clone()).name(Empty {}).await?;
///         Ok(Name { name: format!("Hello, {}!", who.name) })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder().add_service(DoorServer::new(MyDoor)).build();
/// let client = Client::builder().add_service(WhoAmIServer::new(Me)).connect_in_memory(&server).await?;
/// let greeting = DoorClient::new(client).knock(Empty {}).await?;
/// assert_eq!(greeting.name, "Hello, Ada!");
/// # Ok(())
/// # }
/// ```
///
/// A server's own settings (how many connections it serves, how long it waits for SETUP) are
/// the server's to choose, and not here:
///
/// ```compile_fail
/// let client = weft::Client::builder().max_connections(10); // ServerBuilder::max_connections
/// ```
#[derive(Clone, Default)]
pub struct ClientBuilder {
    /// Shared by every connection the builder makes; copied only if the builder is changed
    /// after one was made.
    router: Arc<Router>,
    config: Config,
    settings: ClientSettings,
    /// For [`ClientBuilder::connect_tls`] and `wss://`.
    #[cfg(feature = "tls")]
    tls: Option<super::tls::ClientTls>,
    /// The calls' default timeout.
    timeout: Option<Duration>,
    /// Whether (and how) the clients it makes connect again.
    reconnect: Option<Reconnect>,
    /// Whether (and how) the clients it makes retry idempotent calls.
    retry: Option<Retry>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("routes", &self.router.sorted_routes())
            .field("config", &self.config)
            .finish()
    }
}

impl ClientBuilder {
    /// Serves every route of `service` to the server, as
    /// [`ServerBuilder::add_service`](crate::ServerBuilder::add_service) does to clients.
    ///
    /// # Panics
    /// If another service already serves one of its routes.
    pub fn add_service<S: Service>(mut self, service: S) -> ClientBuilder {
        Arc::make_mut(&mut self.router).add_service(service);
        self
    }

    /// Serves `routes` to the server with a hand-written [`Handler`].
    ///
    /// # Panics
    /// As [`ClientBuilder::add_service`].
    pub fn add_handler(mut self, routes: &'static [&'static str], handler: impl Handler) -> ClientBuilder {
        Arc::make_mut(&mut self.router).add_handler(routes, Arc::new(handler));
        self
    }

    /// The settings, common to both sides, of the connections it makes.
    pub fn config(mut self, config: Config) -> ClientBuilder {
        self.config = config;
        self
    }

    /// Gives every call made through the client `timeout` (from when it is made) unless the
    /// call sets its own deadline ([`Call::with_deadline`](crate::Call::with_deadline),
    /// [`Request::with_timeout`](crate::Request::with_timeout)). A call still going at its
    /// deadline fails with `DEADLINE_EXCEEDED`, and the server is told the deadline, so its
    /// handler is stopped then too. Default: none. [`Client::with_timeout`] sets it on a
    /// client made already, for the generated clients built from it.
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Makes the clients of [`connect`](ClientBuilder::connect),
    /// [`connect_tls`](ClientBuilder::connect_tls),
    /// [`connect_websocket`](ClientBuilder::connect_websocket) and
    /// [`connect_unix`](ClientBuilder::connect_unix) reconnecting ones: when the connection
    /// drops (the server restarted, the network failed), the next call makes a new one, SETUP
    /// and credentials included, with `policy`'s backoff between failed attempts. Calls made
    /// while there is no connection wait for one, up to their deadline (or fail at once, see
    /// [`Reconnect::fail_fast`]). A server that closes gracefully (shutting down or
    /// restarting) costs no call: calls in flight finish on the old connection, and calls it
    /// did not take (it refused them while closing) go to the next. Calls in flight when a
    /// connection drops fail with `UNAVAILABLE`, and nothing the server may have processed
    /// is sent twice. The first connection is made by the
    /// `connect*` call itself, which fails as it would without this. A TCP address is resolved
    /// then, once. Generated clients are built from a reconnecting client as from any other.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use weft::{Call, Client, Reconnect, Server};
    ///
    /// let server = Server::builder().build();
    /// let running = server.bind("127.0.0.1:0").await?;
    /// let addr = running.local_addr();
    /// let client = Client::builder()
    ///     .reconnect(Reconnect::new().initial_backoff(Duration::from_millis(20)))
    ///     .timeout(Duration::from_secs(5))
    ///     .connect(addr)
    ///     .await?;
    ///
    /// running.shutdown().await; // the server restarts, on the same port
    /// let _running = server.bind(addr).await?;
    /// // No such route, but the call reached the restarted server over a new connection.
    /// let answer = client.request_response(Call::new("no.Such/Route"), "hi".into()).await;
    /// assert_eq!(answer.unwrap_err().code(), weft::Code::Unimplemented);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnect(mut self, policy: Reconnect) -> ClientBuilder {
        self.reconnect = Some(policy);
        self
    }

    /// The builder an endpoint makes each of its connections with: this one, without
    /// reconnection or a default timeout (the endpoint's client gives its calls their
    /// deadlines).
    pub(crate) fn for_endpoint(&self) -> ClientBuilder {
        ClientBuilder { reconnect: None, retry: None, timeout: None, ..self.clone() }
    }

    /// A client that spreads its calls over the servers at `addrs` (each resolved once, to
    /// every address it has), over TCP: see [`ClientBuilder::connect_discovered`] for how.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft::{Call, Client, Server};
    ///
    /// let (a, b) = (Server::builder().build(), Server::builder().build());
    /// let (a, b) = (a.bind("127.0.0.1:0").await?, b.bind("127.0.0.1:0").await?);
    /// let client = Client::builder().connect_balanced([a.local_addr(), b.local_addr()]).await?;
    /// let answer = client.request_response(Call::new("no.Such/Route"), "hi".into()).await;
    /// assert_eq!(answer.unwrap_err().code(), weft::Code::Unimplemented);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_balanced<A>(&self, addrs: impl IntoIterator<Item = A>) -> Result<Client, Error>
    where
        A: tokio::net::ToSocketAddrs,
    {
        let mut all = Vec::new();
        for addr in addrs {
            let resolved = tokio::net::lookup_host(addr).await.map_err(|e| Error::connect("a balanced server", e))?;
            all.extend(resolved.map(Change::Insert));
        }
        let changes = futures_util::StreamExt::chain(futures_util::stream::iter(all), futures_util::stream::pending());
        Box::pin(self.connect_discovered(changes)).await
    }

    /// A client that spreads its calls over the servers `name` (`host:port`) resolves to —
    /// every A and AAAA record — resolving it again every `every`: servers that appear are
    /// called, servers that disappear are left once their calls in flight end. A resolution
    /// that fails changes nothing. See [`ClientBuilder::connect_discovered`].
    pub async fn connect_dns(&self, name: &str, every: Duration) -> Result<Client, Error> {
        Box::pin(self.connect_discovered(super::balance::dns(name.to_owned(), every))).await
    }

    /// A client that spreads its calls over a set of servers (TCP) that follows `changes`:
    /// the user's service discovery. Each server gets a connection, made as soon as the server
    /// joins and made again whenever it is lost, with the backoff of this builder's
    /// [`reconnect`](ClientBuilder::reconnect) policy (or the default one) after failures. A
    /// call goes to the less loaded (by calls in flight) of two servers drawn at random among
    /// those connected: a server that cannot be reached, or that is closing, takes no calls
    /// until it is connected again. A call that finds no server connected waits for one up to
    /// its deadline (or fails at once, see [`Reconnect::fail_fast`]). Calls the servers did
    /// not process (a server closing gracefully refused them) go to another, as on a
    /// reconnecting client; nothing else is retried.
    ///
    /// This waits until one server is connected (failing if every server known has failed
    /// to connect once, or if none is connected within the policy's connect timeout). The
    /// client and its clones share the servers; closing it closes them all.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use weft::{Change, Client, Server};
    ///
    /// let running = Server::builder().build().bind("127.0.0.1:0").await?;
    /// let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    /// tx.send(Change::Insert(running.local_addr()))?;
    /// let changes = futures_util::stream::unfold(rx, |mut rx| async { Some((rx.recv().await?, rx)) });
    /// let client = Client::builder().connect_discovered(changes).await?;
    /// // Later: tx.send(Change::Insert(another))?; tx.send(Change::Remove(running.local_addr()))?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_discovered<S>(&self, changes: S) -> Result<Client, Error>
    where
        S: futures_core::Stream<Item = Change> + Send + 'static,
    {
        let policy = self.reconnect.clone().unwrap_or_default();
        let (balancer, first) = Balancer::start(self, policy, changes).await?;
        let client = Client::of_endpoint(first, self.upstream(Servers::Many(balancer)));
        Ok(match self.timeout {
            Some(timeout) => client.with_timeout(timeout),
            None => client,
        })
    }

    /// What the calls of a client of `servers` made by this builder run through.
    fn upstream(&self, servers: Servers) -> Upstream {
        Upstream { servers, retry: self.retry.clone().map(Retrying::new) }
    }

    /// The clients' reconnection policy: the one given, or the default one if only a retry
    /// policy was (retrying needs a client that can reach another connection).
    fn reconnection(&self) -> Option<Reconnect> {
        self.reconnect.clone().or_else(|| self.retry.as_ref().map(|_| Reconnect::default()))
    }

    /// Retries the calls marked idempotent ([`Call::idempotent`](crate::Call::idempotent):
    /// methods marked `#[weft(idempotent)]` or `option (weft.idempotent) = true;`) that fail
    /// with `UNAVAILABLE`, and hedges them if `policy` says so; see [`Retry`]. Calls not
    /// marked are never retried. Retrying needs a client that can reach another connection,
    /// so a client made with a retry policy reconnects too (with the default [`Reconnect`]
    /// policy, unless [`reconnect`](ClientBuilder::reconnect) gave one); balancing clients
    /// retry on another server.
    pub fn retry(mut self, policy: Retry) -> ClientBuilder {
        self.retry = Some(policy);
        self
    }

    /// A reconnecting client connected to `target` (see [`ClientBuilder::reconnect`]).
    async fn reconnecting(&self, policy: &Reconnect, target: Target) -> Result<Client, Error> {
        let (endpoint, first) = Endpoint::start(self, policy.clone(), target).await?;
        let client = Client::of_endpoint(first, self.upstream(Servers::One(endpoint)));
        Ok(match self.timeout {
            Some(timeout) => client.with_timeout(timeout),
            None => client,
        })
    }

    /// Send KEEPALIVE every `interval`, and give up on a server that sends nothing for
    /// `max_lifetime` (the connection then closes with
    /// [`CloseReason::KeepaliveTimeout`](crate::conn::CloseReason::KeepaliveTimeout)). Both are
    /// announced in SETUP, and the server takes the client's values (up to its
    /// [`max_peer_lifetime`](crate::ServerBuilder::max_peer_lifetime)).
    /// Defaults: 20 s and 90 s. Zero durations are raised to one millisecond, the wire's unit.
    ///
    /// These deadlines (and a server's setup timeout and shutdown grace) follow tokio's clock,
    /// so a test that pauses it (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`) sees
    /// them fire as its other timers do. While that clock is the real one they are kept by a
    /// thread, `weft-alarm`, rather than by tokio's timer wheel: a runtime with a timer pending
    /// pays for it on every wait, and a busy connection waits thousands of times a second for
    /// deadlines seconds away. The thread runs while connections are open, and stops a moment
    /// after the last one closes.
    pub fn keepalive(mut self, interval: Duration, max_lifetime: Duration) -> ClientBuilder {
        self.settings = self.settings.keepalive(interval, max_lifetime);
        self
    }

    /// The data MIME type announced in SETUP: how the data of every message on the
    /// connection is encoded. Default: protobuf ([`DEFAULT_DATA_MIME`](crate::DEFAULT_DATA_MIME)).
    pub fn data_mime(mut self, mime: impl Into<String>) -> ClientBuilder {
        self.settings = self.settings.data_mime(mime);
        self
    }

    /// Presents `credentials` in SETUP (RSocket's Authentication extension, in SETUP's
    /// composite metadata), for the server's
    /// [`authenticate`](crate::ServerBuilder::authenticate) hook: they hold for the whole
    /// connection. A server that rejects them closes the connection with REJECTED_SETUP, and
    /// calls fail with the server's status (`UNAUTHENTICATED`, say) and reason. (One request's
    /// own: [`Request::with_credentials`](crate::Request::with_credentials).)
    ///
    /// # Panics
    /// If the credentials have no encoding (see [`Credentials::encode`](crate::Credentials::encode)).
    pub fn credentials(mut self, credentials: crate::Credentials) -> ClientBuilder {
        let mut setup = crate::CompositeMetadata::default();
        setup
            .push(crate::frame::auth::AUTHENTICATION_MIME, credentials.encode())
            .unwrap_or_else(|e| panic!("credentials for SETUP: {e}"));
        self.settings = self.settings.setup_metadata(setup.to_bytes());
        self
    }

    /// TLS for [`connect_tls`](ClientBuilder::connect_tls) and for `wss://` URLs of
    /// [`connect_websocket`](ClientBuilder::connect_websocket): the roots the server's
    /// certificate must chain to, and the client's own certificate for mutual TLS.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: super::tls::ClientTls) -> ClientBuilder {
        self.tls = Some(tls);
        self
    }

    /// Connects over TLS (with [`tls`](ClientBuilder::tls)'s roots) to `addr`, written
    /// `host:port`: the server's certificate must name `host`, a DNS name or an IP address
    /// (`[::1]:port` for IPv6). Fails with [`ErrorKind::Connect`](crate::ErrorKind::Connect)
    /// if no connection can be made or the handshake fails, saying why (a certificate not
    /// trusted, expired, or for another name; a server that is not TLS).
    #[cfg(feature = "tls")]
    pub async fn connect_tls(&self, addr: &str) -> Result<Client, Error> {
        if let Some(policy) = &self.reconnection() {
            return Box::pin(self.reconnecting(policy, Target::Tls(addr.to_owned()))).await;
        }
        self.dial_tls(addr).await
    }

    /// [`ClientBuilder::connect_tls`], once.
    #[cfg(feature = "tls")]
    pub(crate) async fn dial_tls(&self, addr: &str) -> Result<Client, Error> {
        let invalid =
            |why: &str| Error::connect(addr, std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()));
        let tls = self.tls.as_ref().ok_or_else(|| invalid("no TLS configured: set it with ClientBuilder::tls"))?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| invalid("not host:port"))?;
        let port: u16 = port.parse().map_err(|_| invalid("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = connect_tcp((host, port)).await?;
        let peer = stream.peer_addr().ok();
        let stream = tls.connect(host, stream).await.map_err(|e| Error::connect(addr, e))?;
        Ok(self.start(stream, peer))
    }

    /// Connects over TCP to `addr` (the first of its addresses that takes the connection).
    /// Fails with [`ErrorKind::Connect`](crate::ErrorKind::Connect) if none does.
    pub async fn connect(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<Client, Error> {
        if let Some(policy) = &self.reconnection() {
            let addrs = tokio::net::lookup_host(addr).await.map_err(|e| Error::connect("the address", e))?.collect();
            return Box::pin(self.reconnecting(policy, Target::Tcp(addrs))).await;
        }
        self.dial_tcp(addr).await
    }

    /// [`ClientBuilder::connect`], once.
    pub(crate) async fn dial_tcp(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<Client, Error> {
        let stream = connect_tcp(addr).await?;
        let peer = stream.peer_addr().ok();
        Ok(self.start(stream, peer))
    }

    /// Connects to `url` (`ws://host:port/path`) over RSocket's WebSocket transport (one
    /// frame per binary message), as a browser's RSocket client would: see
    /// [`Server::bind_websocket`]. Fails with [`ErrorKind::Connect`](crate::ErrorKind::Connect)
    /// if the URL is not one, no connection can be made, or the WebSocket handshake fails.
    #[cfg(feature = "websocket")]
    pub async fn connect_websocket(&self, url: &str) -> Result<Client, Error> {
        if let Some(policy) = &self.reconnection() {
            return Box::pin(self.reconnecting(policy, Target::WebSocket(url.to_owned()))).await;
        }
        self.dial_websocket(url).await
    }

    /// [`ClientBuilder::connect_websocket`], once.
    #[cfg(feature = "websocket")]
    pub(crate) async fn dial_websocket(&self, url: &str) -> Result<Client, Error> {
        let cannot = |e: std::io::Error| Error::connect(url, e);
        let invalid = |why: &str| cannot(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
        let uri: tokio_tungstenite::tungstenite::http::Uri =
            url.parse().map_err(|_| invalid("not a URL (ws://host:port/path)"))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(invalid("not a WebSocket URL (ws://host:port/path, or wss://)")),
        };
        let host = uri.host().ok_or_else(|| invalid("the URL names no host"))?;
        // An IPv6 literal comes bracketed in a URL, and unbracketed to `connect`.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        if secure {
            #[cfg(feature = "tls")]
            {
                let tls =
                    self.tls.as_ref().ok_or_else(|| invalid("wss:// needs TLS: set it with ClientBuilder::tls"))?;
                let stream = connect_tcp((host, port)).await?;
                let peer = stream.peer_addr().ok();
                let stream = tls.connect(host, stream).await.map_err(cannot)?;
                let transport =
                    super::websocket::WebSocket::connect(stream, url, &self.config).await.map_err(cannot)?;
                return Ok(self.start(transport, peer));
            }
            #[cfg(not(feature = "tls"))]
            return Err(invalid("wss:// needs Weft's `tls` feature"));
        }
        let stream = connect_tcp((host, port)).await?;
        let peer = stream.peer_addr().ok();
        let transport = super::websocket::WebSocket::connect(stream, url, &self.config).await.map_err(cannot)?;
        Ok(self.start(transport, peer))
    }

    /// Connects to the Unix domain socket at `path` (see
    /// [`Server::bind_unix`](crate::Server::bind_unix)). Fails with
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) if no connection can be made.
    #[cfg(unix)]
    pub async fn connect_unix(&self, path: impl AsRef<std::path::Path>) -> Result<Client, Error> {
        let path = path.as_ref();
        if let Some(policy) = &self.reconnection() {
            return Box::pin(self.reconnecting(policy, Target::Unix(path.to_owned()))).await;
        }
        self.dial_unix(path).await
    }

    /// [`ClientBuilder::connect_unix`], once.
    #[cfg(unix)]
    pub(crate) async fn dial_unix(&self, path: &std::path::Path) -> Result<Client, Error> {
        let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| Error::connect(path.display(), e))?;
        self.connect_over(stream).await
    }

    /// Starts the client side of a connection over `transport`, a connection already made
    /// (a TLS stream, a Unix socket, a test's pipe: see [`Transport`] and [`Io`](crate::Io)).
    /// SETUP is sent at once. Must be called within a tokio runtime: the connection's driver
    /// runs on it.
    ///
    /// Async and fallible like every way to connect, though nothing here waits or fails
    /// today: a transport that is already open has nothing left to fail at before SETUP is
    /// answered, and a refused SETUP is heard of from [`Client::closed`].
    pub async fn connect_over<T: Transport>(&self, transport: T) -> Result<Client, Error> {
        Ok(self.start(transport, None))
    }

    /// Connects to `server` in memory: no sockets at all. [`Server::connect_in_memory`] is
    /// the shorthand with the default settings.
    pub async fn connect_in_memory(&self, server: &Server) -> Result<Client, Error> {
        Ok(self.start(server.serve_in_memory(), None))
    }

    /// A client over `transport`, whose other end is at `addr` (over TCP: the server's address
    /// in its handlers' calls and in its events).
    fn start<T: Transport>(&self, transport: T, addr: Option<std::net::SocketAddr>) -> Client {
        let now = tokio::time::Instant::now().into_std();
        let conn = Connection::client(self.config.clone(), self.settings.clone(), now);
        let assist = Assist::new();
        // The route table serves the server's requests through the one dispatch path servers
        // use: the driver resolves a route once per distinct metadata block, and falls back to
        // the table as a handler (which answers UNIMPLEMENTED) for a route it does not serve.
        let resolver: Arc<dyn Resolve> = self.router.clone();
        let handler: Arc<dyn Handler> = self.router.clone();
        let (driver, commands, handles) = Driver::new(
            conn,
            transport,
            handler,
            Some(resolver),
            None,
            Some(assist.clone()),
            super::handles::Peer { addr, ..Default::default() },
        );
        assist.start(driver.run());
        let client = Client::from_parts(commands, handles);
        match self.timeout {
            Some(timeout) => client.with_timeout(timeout),
            None => client,
        }
    }
}

/// Connects to the first address `addr` resolves to that takes the connection, as
/// `TcpStream::connect` does, keeping the address for the error message.
async fn connect_tcp(addr: impl tokio::net::ToSocketAddrs) -> Result<tokio::net::TcpStream, Error> {
    let mut last = None;
    let addrs = tokio::net::lookup_host(addr).await.map_err(|e| Error::connect("the address", e))?;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(Error::connect(addr, e)),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::connect(
            "the address",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "it resolved to no address"),
        )
    }))
}
