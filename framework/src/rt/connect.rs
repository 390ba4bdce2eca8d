//! Starting a client connection: [`Client`]'s constructors, which make the connection's driver
//! and start it (on the task [`Assist`] runs, which waiting callers may also run).

use super::assist::Assist;
use super::driver::Driver;
use super::handler::{Handler, NoHandler};
use super::transport::Transport;
use crate::conn::Connection;
use crate::{Client, Config, Error};
use std::sync::Arc;

impl Client {
    /// Connects over TCP with the default [`Config`]. Fails with
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) if no connection can be made; a
    /// server that refuses the connection itself (SETUP rejected) is heard of on the first
    /// call, and from [`Client::closed`].
    pub async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Result<Client, Error> {
        Client::connect_with(addr, Config::default()).await
    }

    /// Connects over TCP with `config`.
    pub async fn connect_with(addr: impl tokio::net::ToSocketAddrs, config: Config) -> Result<Client, Error> {
        Ok(Client::over(connect_tcp(addr).await?, config))
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
