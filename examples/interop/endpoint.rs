//! The addresses the interop examples take on their command line, one per transport, and what
//! serving or connecting means for each.
//!
//! | written | transport |
//! |---|---|
//! | `127.0.0.1:PORT` | TCP: each frame behind a 24-bit length (RSocket's TCP transport) |
//! | `ws://127.0.0.1:PORT/PATH` | WebSocket: one frame per binary message, no length |
//!
//! Other transports join as a variant of [`Endpoint`], an arm in [`Endpoint::parse`] (by URL
//! scheme or prefix, so the forms below never collide with `HOST:PORT`) and one in each of
//! [`Endpoint::serve`] and [`Endpoint::connect`]; what a transport needs besides its address
//! (a certificate and key for `wss://`) comes from [`Options`], filled from the command line
//! by [`parse_args`]. Until then these are refused by name rather than taken for something else:
//! `wss://HOST:PORT/PATH` (WebSocket over TLS) and `unix:PATH` (a Unix socket).

use std::fmt;
use weft::{Client, ClientBuilder, Error, RunningServer, Server};

/// Where to serve or connect, and over which transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `HOST:PORT` over TCP.
    Tcp(String),
    /// `ws://HOST:PORT/PATH`: RSocket over WebSocket.
    WebSocket {
        /// `HOST:PORT`, what the TCP listener binds or the client dials.
        authority: String,
        /// The HTTP path of the WebSocket endpoint, `/` when the URL names none.
        path: String,
    },
}

/// What a transport needs beyond its address, from the command line's options. Empty for now:
/// `--cert PATH` and `--key PATH` (for `wss://`) go here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {}

/// Reads a command line of options and addresses (in any order), at least `min` and at most
/// `max` addresses. Options start with `--`; none is known yet, so any is refused by name.
pub(crate) fn parse_args(
    args: impl IntoIterator<Item = String>,
    min: usize,
    max: usize,
) -> Result<(Vec<Endpoint>, Options), String> {
    let options = Options::default();
    let mut endpoints = Vec::new();
    for arg in args {
        if arg.starts_with("--") {
            // `--cert PATH` / `--key PATH` for wss:// will be matched here (taking the next
            // argument), and checked against the endpoints once all are read.
            return Err(format!("unknown option {arg}"));
        }
        endpoints.push(Endpoint::parse(&arg)?);
    }
    if endpoints.len() < min || endpoints.len() > max {
        let want = match (min, max) {
            _ if min == max => format!("{min}"),
            (_, usize::MAX) => format!("at least {min}"),
            _ => format!("{min} to {max}"),
        };
        return Err(format!("want {want} address(es), got {}", endpoints.len()));
    }
    Ok((endpoints, options))
}

impl Endpoint {
    /// Parses one address: `HOST:PORT` or `ws://HOST:PORT[/PATH]`.
    pub(crate) fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some((scheme, rest)) = text.split_once("://") {
            return match scheme {
                "ws" => {
                    let (authority, path) = match rest.find('/') {
                        Some(at) => rest.split_at(at),
                        None => (rest, "/"),
                    };
                    check_authority(text, authority)?;
                    if path.contains(['?', '#']) {
                        return Err(format!("{text}: a query or fragment has no meaning here"));
                    }
                    Ok(Endpoint::WebSocket { authority: authority.to_owned(), path: path.to_owned() })
                }
                "wss" => Err(format!("{text}: wss:// (WebSocket over TLS) is not supported yet")),
                other => Err(format!("{text}: unknown scheme {other}://; want HOST:PORT or ws://HOST:PORT/PATH")),
            };
        }
        if text.starts_with("unix:") {
            return Err(format!("{text}: unix: (Unix sockets) is not supported yet"));
        }
        check_authority(text, text)?;
        Ok(Endpoint::Tcp(text.to_owned()))
    }

    /// Serves `server` here, in the background, until the returned listener is shut down.
    pub(crate) async fn serve(&self, server: &Server, _options: &Options) -> Result<Listening, Error> {
        let running = match self {
            Endpoint::Tcp(addr) => server.bind(addr.as_str()).await?,
            Endpoint::WebSocket { authority, path } => server.bind_websocket(authority.as_str(), path).await?,
        };
        // With the address actually bound (the port chosen for `:0`), to print.
        let authority = running.local_addr().to_string();
        let bound = match self {
            Endpoint::Tcp(_) => Endpoint::Tcp(authority),
            Endpoint::WebSocket { path, .. } => Endpoint::WebSocket { authority, path: path.clone() },
        };
        Ok(Listening { bound, running })
    }

    /// Opens a connection here with `builder`'s settings.
    pub(crate) async fn connect(&self, builder: &ClientBuilder, _options: &Options) -> Result<Client, Error> {
        match self {
            Endpoint::Tcp(addr) => builder.connect(addr.as_str()).await,
            Endpoint::WebSocket { .. } => builder.connect_websocket(&self.to_string()).await,
        }
    }

    /// The transport's name, for messages.
    pub(crate) fn transport(&self) -> &'static str {
        match self {
            Endpoint::Tcp(_) => "tcp",
            Endpoint::WebSocket { .. } => "websocket",
        }
    }
}

/// A server serving at an [`Endpoint`].
#[derive(Debug)]
pub(crate) struct Listening {
    /// Where, with the port it was bound to.
    pub(crate) bound: Endpoint,
    /// A socket address for TCP and WebSocket alike; a Unix socket's listener (a
    /// `RunningServer<PathBuf>`) will make this an enum of the two.
    running: RunningServer,
}

impl Listening {
    /// Stops serving here, as [`RunningServer::shutdown`] does.
    pub(crate) async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// `HOST:PORT` with a decimal port; the host is left to the resolver.
fn check_authority(text: &str, authority: &str) -> Result<(), String> {
    let port = authority.rsplit_once(':').map(|(host, port)| (host.is_empty(), port));
    match port {
        Some((false, port)) if !port.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{text}: want HOST:PORT (say 127.0.0.1:7878) or ws://HOST:PORT/PATH")),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => f.write_str(addr),
            Endpoint::WebSocket { authority, path } => write!(f, "ws://{authority}{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Endpoint, parse_args};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn addresses_name_their_transport() {
        assert_eq!(Endpoint::parse("127.0.0.1:7878"), Ok(Endpoint::Tcp("127.0.0.1:7878".into())));
        assert_eq!(Endpoint::parse("[::1]:7878"), Ok(Endpoint::Tcp("[::1]:7878".into())));
        let ws = Endpoint::parse("ws://127.0.0.1:7878/rsocket").unwrap();
        assert_eq!(ws, Endpoint::WebSocket { authority: "127.0.0.1:7878".into(), path: "/rsocket".into() });
        assert_eq!(ws.to_string(), "ws://127.0.0.1:7878/rsocket");
        assert_eq!(Endpoint::parse("ws://127.0.0.1:1").unwrap().to_string(), "ws://127.0.0.1:1/");
    }

    #[test]
    fn what_is_not_an_address_is_refused_by_name() {
        for (bad, says) in [
            ("127.0.0.1", "want HOST:PORT"),
            ("127.0.0.1:", "want HOST:PORT"),
            (":80", "want HOST:PORT"),
            ("127.0.0.1:99999", "want HOST:PORT"),
            ("ws://127.0.0.1/rsocket", "want HOST:PORT"),
            ("ws://127.0.0.1:80/a?b", "query"),
            ("http://127.0.0.1:80/", "unknown scheme"),
            ("wss://127.0.0.1:443/rsocket", "not supported yet"),
            ("unix:/tmp/weft.sock", "not supported yet"),
        ] {
            let error = Endpoint::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_command_line_is_addresses_within_bounds() {
        let (endpoints, _) = parse_args(args(&["127.0.0.1:1", "ws://127.0.0.1:2/rsocket"]), 1, usize::MAX).unwrap();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(parse_args(args(&[]), 1, usize::MAX).unwrap_err(), "want at least 1 address(es), got 0");
        assert!(parse_args(args(&["127.0.0.1:1", "127.0.0.1:2"]), 1, 1).unwrap_err().contains("want 1"));
        assert!(parse_args(args(&["--cert", "c.pem"]), 1, 1).unwrap_err().contains("unknown option --cert"));
    }
}
