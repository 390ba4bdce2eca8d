//! Starting a client connection: [`Client`]'s constructors, which make the connection's driver
//! and start it (on the task [`Assist`] runs, which waiting callers may also run).

use super::assist::Assist;
use super::driver::Driver;
use super::handler::{Handler, NoHandler};
use super::transport::Transport;
use crate::conn::Connection;
use crate::{Client, Config, Status};
use std::sync::Arc;

impl Client {
    /// Connects over TCP with the default [`Config`].
    pub async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Result<Client, Status> {
        Client::connect_with(addr, Config::default()).await
    }

    /// Connects over TCP with `config`.
    pub async fn connect_with(addr: impl tokio::net::ToSocketAddrs, config: Config) -> Result<Client, Status> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| Status::unavailable(format!("cannot connect: {e}")))?;
        Ok(Client::over(stream, config))
    }

    /// Connects to `url` (`ws://host:port/path`) over RSocket's WebSocket transport (one frame
    /// per binary message), as a browser's RSocket client would: see
    /// [`Server::bind_websocket`](crate::Server::bind_websocket).
    #[cfg(feature = "websocket")]
    pub async fn connect_websocket(url: &str) -> Result<Client, Status> {
        Client::connect_websocket_with(url, Config::default()).await
    }

    /// [`Client::connect_websocket`] with `config`.
    #[cfg(feature = "websocket")]
    pub async fn connect_websocket_with(url: &str, config: Config) -> Result<Client, Status> {
        let cannot = |why: &dyn std::fmt::Display| Status::unavailable(format!("cannot connect to {url}: {why}"));
        let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().map_err(|e| cannot(&e))?;
        let default_port = match uri.scheme_str() {
            Some("ws") => 80,
            Some("wss") => return Err(cannot(&"wss:// (TLS) is not supported yet; use ws://")),
            _ => return Err(cannot(&"not a WebSocket URL (ws://host:port/path)")),
        };
        let host = uri.host().ok_or_else(|| cannot(&"the URL names no host"))?;
        // An IPv6 literal comes bracketed in a URL, and unbracketed to `connect`.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((host, uri.port_u16().unwrap_or(default_port)))
            .await
            .map_err(|e| cannot(&e))?;
        let _ = stream.set_nodelay(true);
        let transport = super::websocket::WebSocket::connect(stream, url, &config).await.map_err(|e| cannot(&e))?;
        Ok(Client::over(transport, config))
    }

    /// Starts the client side of a connection over any [`Transport`] (SETUP is sent at once).
    /// Must be called within a tokio runtime: the connection's driver is spawned on it.
    pub fn over<T: Transport>(transport: T, config: Config) -> Client {
        Client::over_with_handler(transport, config, NoHandler)
    }

    /// Like [`Client::over`], and answers the server's requests on this connection with
    /// `handler` (RSocket connections carry requests both ways; a server handler reaches this
    /// side through [`Call::peer`](crate::Call::peer)).
    pub fn over_with_handler<T: Transport>(transport: T, config: Config, handler: impl Handler) -> Client {
        let conn = Connection::client(config, tokio::time::Instant::now().into_std());
        let assist = Assist::new();
        let (driver, commands, handles) =
            Driver::new(conn, transport, Arc::new(handler), None, None, Some(assist.clone()));
        assist.start(driver.run());
        Client::from_parts(commands, handles)
    }
}
