//! The addresses the interop examples take on their command line, one per transport, and what
//! serving or connecting means for each.
//!
//! | written | transport |
//! |---|---|
//! | `127.0.0.1:PORT` | TCP: each frame behind a 24-bit length (RSocket's TCP transport) |
//! | `tls://127.0.0.1:PORT` | the same over TLS (`--cert`/`--key` to serve, `--ca` to connect) |
//! | `ws://127.0.0.1:PORT/PATH` | WebSocket: one frame per binary message, no length |
//! | `wss://127.0.0.1:PORT/PATH` | the same over TLS (`--cert`/`--key`, `--ca`) |
//! | `unix:PATH` | a Unix domain socket, framed as TCP |
//!
//! A server's TLS certificate and key are PEM files (`--cert PATH --key PATH`, the
//! certificate naming the host the clients dial); a client trusts the roots in `--ca PATH`.
//! Another transport joins as a variant of [`Endpoint`], an arm in [`Endpoint::parse`] (by URL
//! scheme or prefix, so no form collides with `HOST:PORT`) and one in each of
//! [`Endpoint::serve`] and [`Endpoint::connect`].

use std::fmt;
use std::path::PathBuf;
use weft::{Client, ClientBuilder, ClientTls, Error, RunningServer, Server, ServerTls};

/// Where to serve or connect, and over which transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `HOST:PORT` over TCP, or over TLS (`tls://HOST:PORT`).
    Tcp {
        /// `HOST:PORT`.
        authority: String,
        /// TLS over the TCP connection.
        tls: bool,
    },
    /// `ws://HOST:PORT/PATH`: RSocket over WebSocket; `wss://` over TLS.
    WebSocket {
        /// `HOST:PORT`, what the TCP listener binds or the client dials.
        authority: String,
        /// The HTTP path of the WebSocket endpoint, `/` when the URL names none.
        path: String,
        /// `wss://`: the WebSocket over TLS.
        tls: bool,
    },
    /// `unix:PATH`: a Unix domain socket.
    Unix(PathBuf),
}

/// What a transport needs beyond its address, from the command line's options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `--cert PATH`: the server's certificate chain (PEM), for `tls://` and `wss://`.
    pub(crate) cert: Option<PathBuf>,
    /// `--key PATH`: its private key (PEM).
    pub(crate) key: Option<PathBuf>,
    /// `--ca PATH`: the roots (PEM) a client trusts, for `tls://` and `wss://`.
    pub(crate) ca: Option<PathBuf>,
}

impl Options {
    fn read(path: &Option<PathBuf>, option: &str) -> Result<Vec<u8>, String> {
        let path = path.as_ref().ok_or_else(|| format!("TLS needs {option} PATH"))?;
        std::fs::read(path).map_err(|e| format!("{option} {}: {e}", path.display()))
    }

    fn server_tls(&self) -> Result<ServerTls, String> {
        let (cert, key) = (Options::read(&self.cert, "--cert")?, Options::read(&self.key, "--key")?);
        ServerTls::from_pem(&cert, &key).map_err(|e| e.to_string())
    }

    fn client_tls(&self) -> Result<ClientTls, String> {
        ClientTls::from_roots_pem(&Options::read(&self.ca, "--ca")?).map_err(|e| e.to_string())
    }
}

/// Reads a command line of options and addresses (in any order), at least `min` and at most
/// `max` addresses. Options start with `--` and take the next argument.
pub(crate) fn parse_args(
    args: impl IntoIterator<Item = String>,
    min: usize,
    max: usize,
) -> Result<(Vec<Endpoint>, Options), String> {
    let mut options = Options::default();
    let mut endpoints = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg.starts_with("--") {
            let slot = match arg.as_str() {
                "--cert" => &mut options.cert,
                "--key" => &mut options.key,
                "--ca" => &mut options.ca,
                _ => return Err(format!("unknown option {arg}")),
            };
            *slot = Some(args.next().ok_or_else(|| format!("{arg} needs a PATH"))?.into());
            continue;
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
    /// Parses one address: `HOST:PORT`, `tls://HOST:PORT`, `ws[s]://HOST:PORT[/PATH]` or
    /// `unix:PATH`.
    pub(crate) fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some((scheme, rest)) = text.split_once("://") {
            return match scheme {
                "ws" | "wss" => {
                    let (authority, path) = match rest.find('/') {
                        Some(at) => rest.split_at(at),
                        None => (rest, "/"),
                    };
                    check_authority(text, authority)?;
                    if path.contains(['?', '#']) {
                        return Err(format!("{text}: a query or fragment has no meaning here"));
                    }
                    Ok(Endpoint::WebSocket {
                        authority: authority.to_owned(),
                        path: path.to_owned(),
                        tls: scheme == "wss",
                    })
                }
                "tls" => {
                    check_authority(text, rest)?;
                    Ok(Endpoint::Tcp { authority: rest.to_owned(), tls: true })
                }
                other => Err(format!(
                    "{text}: unknown scheme {other}://; want HOST:PORT, tls://HOST:PORT, ws[s]://HOST:PORT/PATH or unix:PATH"
                )),
            };
        }
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("{text}: want unix:PATH"));
            }
            return Ok(Endpoint::Unix(path.into()));
        }
        check_authority(text, text)?;
        Ok(Endpoint::Tcp { authority: text.to_owned(), tls: false })
    }

    /// Serves `server` here, in the background, until the returned listener is shut down.
    pub(crate) async fn serve(&self, server: &Server, options: &Options) -> Result<Listening, String> {
        let failed = |e: Error| format!("{self}: {e}");
        let running = match self {
            Endpoint::Tcp { authority, tls: false } => server.bind(authority.as_str()).await.map_err(failed)?,
            Endpoint::Tcp { authority, tls: true } => {
                server.bind_tls(authority.as_str(), options.server_tls()?).await.map_err(failed)?
            }
            Endpoint::WebSocket { authority, path, tls: false } => {
                server.bind_websocket(authority.as_str(), path).await.map_err(failed)?
            }
            Endpoint::WebSocket { authority, path, tls: true } => {
                server.bind_websocket_tls(authority.as_str(), path, options.server_tls()?).await.map_err(failed)?
            }
            Endpoint::Unix(path) => {
                let running = server.bind_unix(path).await.map_err(failed)?;
                return Ok(Listening { bound: self.clone(), running: Running::Unix(running) });
            }
        };
        // With the address actually bound (the port chosen for `:0`), to print.
        let authority = running.local_addr().to_string();
        let bound = match self {
            Endpoint::Tcp { tls, .. } => Endpoint::Tcp { authority, tls: *tls },
            Endpoint::WebSocket { path, tls, .. } => Endpoint::WebSocket { authority, path: path.clone(), tls: *tls },
            Endpoint::Unix(_) => self.clone(),
        };
        Ok(Listening { bound, running: Running::Addr(running) })
    }

    /// Opens a connection here with `builder`'s settings.
    pub(crate) async fn connect(&self, builder: &ClientBuilder, options: &Options) -> Result<Client, String> {
        let failed = |e: Error| e.to_string();
        match self {
            Endpoint::Tcp { authority, tls: false } => builder.connect(authority.as_str()).await.map_err(failed),
            Endpoint::Tcp { authority, tls: true } => {
                builder.clone().tls(options.client_tls()?).connect_tls(authority).await.map_err(failed)
            }
            Endpoint::WebSocket { tls: false, .. } => {
                builder.connect_websocket(&self.to_string()).await.map_err(failed)
            }
            Endpoint::WebSocket { tls: true, .. } => {
                builder.clone().tls(options.client_tls()?).connect_websocket(&self.to_string()).await.map_err(failed)
            }
            Endpoint::Unix(path) => builder.connect_unix(path).await.map_err(failed),
        }
    }

    /// The transport's name, for messages.
    pub(crate) fn transport(&self) -> &'static str {
        match self {
            Endpoint::Tcp { tls: false, .. } => "tcp",
            Endpoint::Tcp { tls: true, .. } => "tls",
            Endpoint::WebSocket { tls: false, .. } => "websocket",
            Endpoint::WebSocket { tls: true, .. } => "websocket-tls",
            Endpoint::Unix(_) => "unix",
        }
    }
}

/// A server serving at an [`Endpoint`].
#[derive(Debug)]
pub(crate) struct Listening {
    /// Where, with the port it was bound to.
    pub(crate) bound: Endpoint,
    running: Running,
}

/// A running server, on an address or on a Unix socket.
#[derive(Debug)]
enum Running {
    Addr(RunningServer),
    Unix(RunningServer<PathBuf>),
}

impl Listening {
    /// Stops serving here, as [`RunningServer::shutdown`] does.
    pub(crate) async fn shutdown(self) {
        match self.running {
            Running::Addr(running) => running.shutdown().await,
            Running::Unix(running) => running.shutdown().await,
        }
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
            Endpoint::Tcp { authority, tls: false } => f.write_str(authority),
            Endpoint::Tcp { authority, tls: true } => write!(f, "tls://{authority}"),
            Endpoint::WebSocket { authority, path, tls } => {
                write!(f, "{}://{authority}{path}", if *tls { "wss" } else { "ws" })
            }
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
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
        let tcp = |a: &str| Endpoint::Tcp { authority: a.into(), tls: false };
        assert_eq!(Endpoint::parse("127.0.0.1:7878"), Ok(tcp("127.0.0.1:7878")));
        assert_eq!(Endpoint::parse("[::1]:7878"), Ok(tcp("[::1]:7878")));
        let ws = Endpoint::parse("ws://127.0.0.1:7878/rsocket").unwrap();
        assert_eq!(ws, Endpoint::WebSocket { authority: "127.0.0.1:7878".into(), path: "/rsocket".into(), tls: false });
        assert_eq!(ws.to_string(), "ws://127.0.0.1:7878/rsocket");
        assert_eq!(Endpoint::parse("ws://127.0.0.1:1").unwrap().to_string(), "ws://127.0.0.1:1/");
        for text in ["wss://127.0.0.1:443/rsocket", "tls://127.0.0.1:7878", "unix:/tmp/weft.sock"] {
            assert_eq!(Endpoint::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Endpoint::parse("wss://127.0.0.1:1/r").unwrap().transport(), "websocket-tls");
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
            ("tls://127.0.0.1", "want HOST:PORT"),
            ("unix:", "want unix:PATH"),
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
        assert!(parse_args(args(&["--cart", "c.pem"]), 1, 1).unwrap_err().contains("unknown option --cart"));
        assert!(parse_args(args(&["127.0.0.1:1", "--ca"]), 1, 1).unwrap_err().contains("--ca needs a PATH"));
        let (_, options) = parse_args(args(&["--cert", "c.pem", "tls://127.0.0.1:1", "--key", "k.pem"]), 1, 1).unwrap();
        assert_eq!((options.cert, options.key, options.ca), (Some("c.pem".into()), Some("k.pem".into()), None));
    }
}
