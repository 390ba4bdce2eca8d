//! TLS with rustls: a server's certificate and key ([`ServerTls`]), a client's trusted roots
//! and optional certificate ([`ClientTls`]), and the handshakes that make a byte stream a TLS
//! stream, under RSocket over TCP or over WebSocket (`wss://`).
//!
//! The TLS stream is an `AsyncRead + AsyncWrite` like any other, so the runtime carries RSocket
//! over it unchanged; rustls buffers what it encrypts, which is why the driver flushes its
//! transport after writing.

use crate::Error;
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::fmt;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

/// The certificates in `pem` (`what` names them for errors), in order.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::tls(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::tls(format!("{what}: no certificate (a PEM block `BEGIN CERTIFICATE`)")));
    }
    Ok(certs)
}

/// The private key in `pem` (PKCS#8, PKCS#1 or SEC1).
fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::tls(format!("the private key: not a PEM private key: {e}")))
}

/// Trusted roots from `pem`.
fn roots(pem: &[u8], what: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(pem, what)? {
        roots.add(cert).map_err(|e| Error::tls(format!("{what}: {e}")))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS: its certificate chain and private key, and, for mutual TLS, the roots that
/// clients' certificates must chain to. For [`Server::bind_tls`](crate::Server::bind_tls) (and
/// [`bind_websocket_tls`](crate::Server::bind_websocket_tls) with the `websocket` feature).
///
/// ```
/// # fn demo(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), weft::Error> {
/// let tls = weft::ServerTls::from_pem(cert_pem, key_pem)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// TLS with the certificate chain `cert_chain` (PEM, the server's certificate first) and
    /// its private key `key` (PEM: PKCS#8, PKCS#1 or SEC1). Clients present no certificate.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<ServerTls, Error> {
        ServerTls::with_verifier(cert_chain, key, None)
    }

    /// [`from_pem`](ServerTls::from_pem), and mutual TLS: every client must present a
    /// certificate that chains to one of `client_roots` (PEM). Handlers see the client's
    /// certificate ([`Context::peer_certificates`](crate::Context::peer_certificates)).
    pub fn with_client_auth(cert_chain: &[u8], key: &[u8], client_roots: &[u8]) -> Result<ServerTls, Error> {
        let roots = Arc::new(roots(client_roots, "the client roots")?);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| Error::tls(format!("the client roots: {e}")))?;
        ServerTls::with_verifier(cert_chain, key, Some(verifier))
    }

    /// TLS with `cert_chain` and `key`, verifying client certificates with `client_auth` if
    /// given.
    fn with_verifier(
        cert_chain: &[u8],
        key: &[u8],
        client_auth: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    ) -> Result<ServerTls, Error> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls(e.to_string()))?;
        let builder = match client_auth {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certificates(cert_chain, "the certificate chain")?, private_key(key)?)
            .map_err(|e| Error::tls(format!("the certificate and key: {e}")))?;
        Ok(ServerTls::from_config(Arc::new(config)))
    }

    /// A rustls configuration of your own (its own verifier, resumption, ALPN…).
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> ServerTls {
        ServerTls { acceptor: tokio_rustls::TlsAcceptor::from(config) }
    }

    /// The server's handshake over `stream`; the client's certificate chain (DER, its own
    /// certificate first) if it presented one.
    pub(crate) async fn accept<S>(&self, stream: S) -> std::io::Result<(TlsStream<S>, Option<Arc<[Bytes]>>)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let tls = self.acceptor.accept(stream).await?;
        let certs = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| Bytes::copy_from_slice(c.as_ref())).collect::<Vec<_>>().into());
        Ok((TlsStream::Server(Box::new(tls)), certs))
    }
}

/// A client's TLS: the roots it trusts to verify servers with, and, for mutual TLS, its own
/// certificate and key. For [`ClientBuilder::tls`](crate::ClientBuilder::tls).
///
/// ```
/// # fn demo(ca_pem: &[u8]) -> Result<(), weft::Error> {
/// let tls = weft::ClientTls::from_roots_pem(ca_pem)?;
/// let builder = weft::Client::builder().tls(tls);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the certificates in `roots` (PEM) and no others.
    pub fn from_roots_pem(roots_pem: &[u8]) -> Result<ClientTls, Error> {
        ClientTls::with_roots(roots(roots_pem, "the roots")?, None)
    }

    /// [`from_roots_pem`](ClientTls::from_roots_pem), presenting the certificate chain
    /// `cert_chain` (PEM, the client's certificate first) with its private key `key` to a
    /// server that asks for one (mutual TLS).
    pub fn with_identity_pem(roots_pem: &[u8], cert_chain: &[u8], key: &[u8]) -> Result<ClientTls, Error> {
        let identity = (certificates(cert_chain, "the client's certificate chain")?, private_key(key)?);
        ClientTls::with_roots(roots(roots_pem, "the roots")?, Some(identity))
    }

    /// Trusts the operating system's roots (with rustls-native-certs), as a browser would.
    #[cfg(feature = "tls-native-roots")]
    pub fn native_roots() -> Result<ClientTls, Error> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "none found".to_owned());
            return Err(Error::tls(format!("the system's roots: {why}")));
        }
        ClientTls::with_roots(roots, None)
    }

    /// A rustls configuration of your own.
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls { connector: tokio_rustls::TlsConnector::from(config) }
    }

    fn with_roots(
        roots: rustls::RootCertStore,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<ClientTls, Error> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::tls(e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::tls(format!("the client's certificate and key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(ClientTls::from_config(Arc::new(config)))
    }

    /// The client's handshake over `stream` with the server `host` (a DNS name or an IP
    /// address, which its certificate must name).
    pub(crate) async fn connect<S>(&self, host: &str, stream: S) -> std::io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("`{host}` is no server name: {e}"))
        })?;
        Ok(TlsStream::Client(Box::new(self.connector.connect(name, stream).await?)))
    }
}

/// A TLS stream, either side: a byte stream for the runtime.
pub(crate) enum TlsStream<S> {
    Client(Box<tokio_rustls::client::TlsStream<S>>),
    Server(Box<tokio_rustls::server::TlsStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            TlsStream::Client(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            TlsStream::Server(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            TlsStream::Client(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            TlsStream::Server(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            TlsStream::Client(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            TlsStream::Server(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            TlsStream::Client(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            TlsStream::Server(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> crate::Transport for TlsStream<S> {
    type Reader = tokio::io::ReadHalf<TlsStream<S>>;
    type Writer = tokio::io::WriteHalf<TlsStream<S>>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        // (A TLS session is one state machine both ways: the halves share it behind a lock.)
        tokio::io::split(self)
    }
}
