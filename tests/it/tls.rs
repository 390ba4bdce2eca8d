//! TLS: the handshake's failures each say why and leave the server serving; mutual TLS shows
//! the client's certificate to handlers; the caller's address reaches handlers. (Every
//! interaction model runs over TLS and over `wss://` in `e2e`, through `lab::TRANSPORTS`.)
//!
//! The certificates are made here, at test time, with rcgen: no private key is committed.

use crate::lab::{self, LabClient, msg};
use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use weft::{Call, Client, ClientTls, ErrorKind, Handler, Payload, Response, RunningServer, Server, ServerTls};

/// A certificate authority, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all signed by the authority; PEM.
pub(crate) struct Pki {
    pub(crate) ca: String,
    pub(crate) server_cert: String,
    pub(crate) server_key: String,
    pub(crate) client_cert: String,
    pub(crate) client_key: String,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params
}

/// A new authority: its certificate (PEM) and what signs with it.
fn authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(name).self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(ca_params(name), key))
}

/// A certificate for `names` signed by `issuer`, valid from `not_before` to `not_after`
/// (default: rcgen's, from 1975 to 4096), and its key; PEM.
fn leaf(names: &[&str], issuer: &Issuer<'static, KeyPair>, expired: bool) -> (String, String) {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        let (ca, issuer) = authority("weft test CA");
        let (server_cert, server_key) = leaf(&["127.0.0.1", "localhost"], &issuer, false);
        let (client_cert, client_key) = leaf(&["weft test client"], &issuer, false);
        Pki { ca, server_cert, server_key, client_cert, client_key }
    }

    /// One for the whole test binary: making keys is the slow part.
    pub(crate) fn shared() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(Pki::new)
    }

    pub(crate) fn server_tls(&self) -> ServerTls {
        ServerTls::from_pem(self.server_cert.as_bytes(), self.server_key.as_bytes()).unwrap()
    }

    pub(crate) fn client_tls(&self) -> ClientTls {
        ClientTls::from_roots_pem(self.ca.as_bytes()).unwrap()
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

/// A lab call over a new, well-configured TLS connection: the server still serves.
async fn still_serves(running: &RunningServer) {
    let client = Client::builder().tls(Pki::shared().client_tls());
    let client = client.connect_tls(&running.local_addr().to_string()).await.expect("connect");
    let answer = LabClient::new(client).echo(msg("still here", 0)).await.expect("an answer");
    assert_eq!(answer.text, "still here");
}

async fn lab_over_tls() -> RunningServer {
    lab::server().0.bind_tls("127.0.0.1:0", Pki::shared().server_tls()).await.unwrap()
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_says_so() {
    bounded(async {
        let running = lab_over_tls().await;
        let (stranger, _) = authority("another CA");
        let client = Client::builder().tls(ClientTls::from_roots_pem(stranger.as_bytes()).unwrap());
        let error = client.connect_tls(&running.local_addr().to_string()).await.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Connect), "{error}");
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");
        // A certificate for another name.
        let client = Client::builder().tls(Pki::shared().client_tls());
        let error = client.connect_tls(&format!("example.invalid:{}", running.local_addr().port())).await;
        assert!(error.is_err(), "example.invalid resolves nowhere or is not the certificate's name");
        still_serves(&running).await;
    })
    .await
}

#[tokio::test]
async fn an_expired_certificate_is_refused_with_the_reason() {
    bounded(async {
        let (ca, issuer) = authority("expiring CA");
        let (cert, key) = leaf(&["127.0.0.1"], &issuer, true);
        let tls = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let running = lab::server().0.bind_tls("127.0.0.1:0", tls).await.unwrap();
        let client = Client::builder().tls(ClientTls::from_roots_pem(ca.as_bytes()).unwrap());
        let error = client.connect_tls(&running.local_addr().to_string()).await.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Connect), "{error}");
        assert!(error.to_string().contains("certificate expired"), "{error}");
    })
    .await
}

#[tokio::test]
async fn a_plain_client_on_a_tls_port_is_told_to_use_tls() {
    bounded(async {
        let running = lab_over_tls().await;
        let plain = Client::connect(running.local_addr()).await.unwrap();
        let refused = LabClient::new(plain.clone()).echo(msg("hi", 0)).await.unwrap_err();
        assert!(refused.message().contains("TLS"), "{refused}");
        let closed = plain.closed().await;
        assert!(matches!(closed.kind(), ErrorKind::SetupRejected { .. }), "{closed}");
        still_serves(&running).await;
    })
    .await
}

#[tokio::test]
async fn a_tls_client_on_a_plain_port_fails_to_connect() {
    bounded(async {
        let server = lab::builder().0.setup_timeout(Duration::from_millis(300)).build();
        let running = server.bind("127.0.0.1:0").await.unwrap();
        let client = Client::builder().tls(Pki::shared().client_tls());
        let error = client.connect_tls(&running.local_addr().to_string()).await.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Connect), "{error}");
    })
    .await
}

#[test]
fn certificates_and_keys_that_do_not_load_are_tls_errors() {
    let pki = Pki::shared();
    for (cert, key) in [
        ("not a certificate", pki.server_key.as_str()),
        (pki.server_cert.as_str(), "not a key"),
        (pki.server_cert.as_str(), pki.client_key.as_str()),
    ] {
        let error = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Tls), "{error}");
    }
    let error = ClientTls::from_roots_pem(b"no roots here").unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Tls), "{error}");
}

/// Answers with who called: the caller's address, and the first certificate it presented;
/// counts the calls it served.
#[derive(Default)]
struct WhoIsThere(Arc<AtomicUsize>);

impl Handler for WhoIsThere {
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        self.0.fetch_add(1, Ordering::SeqCst);
        let addr = call.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let cert = call.peer_certificates().and_then(|c| c.first().cloned()).unwrap_or_default();
        Response::ready(Ok(Payload { metadata: Bytes::from(addr), data: cert }))
    }
}

const WHO: &[&str] = &["test.Who/IsThere"];

#[tokio::test]
async fn with_mutual_tls_handlers_see_the_clients_certificate() {
    bounded(async {
        let pki = Pki::shared();
        let tls = ServerTls::with_client_auth(pki.server_cert.as_bytes(), pki.server_key.as_bytes(), pki.ca.as_bytes())
            .unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let server = Server::builder().add_handler(WHO, WhoIsThere(served.clone())).build();
        let running = server.bind_tls("127.0.0.1:0", tls).await.unwrap();
        let addr = running.local_addr().to_string();
        let identity =
            ClientTls::with_identity_pem(pki.ca.as_bytes(), pki.client_cert.as_bytes(), pki.client_key.as_bytes())
                .unwrap();
        let client = Client::builder().tls(identity).connect_tls(&addr).await.unwrap();
        let who = client.request_response(Call::new(WHO[0]), Bytes::new()).await.unwrap();
        assert_eq!(who.metadata, "127.0.0.1");
        let expected = rustls_pem_der(&pki.client_cert);
        assert_eq!(who.data, expected, "the handler saw the client's certificate (DER)");
        // Without a certificate of its own the client is refused, and no handler runs.
        let anonymous = Client::builder().tls(pki.client_tls()).connect_tls(&addr).await;
        if let Ok(anonymous) = anonymous {
            // (TLS 1.3: the client finishes its side before the server checks its certificate.)
            let refused = anonymous.request_response(Call::new(WHO[0]), Bytes::new()).await;
            assert!(refused.is_err(), "served without a client certificate");
        }
        assert_eq!(served.load(Ordering::SeqCst), 1, "only the authenticated call was served");
        let again = client.request_response(Call::new(WHO[0]), Bytes::new()).await.unwrap();
        assert_eq!(again.data, expected, "the authenticated connection goes on");
    })
    .await
}

/// The DER of the first certificate in `pem` (base64 between the markers).
fn rustls_pem_der(pem: &str) -> Bytes {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Bytes::from(base64_decode(&body))
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|chunk| {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(chunk.len() - 1)
        })
        .collect()
}

#[tokio::test]
async fn plain_tcp_callers_show_their_address_and_no_certificate() {
    bounded(async {
        let server = Server::builder().add_handler(WHO, WhoIsThere::default()).build();
        let running = server.bind("127.0.0.1:0").await.unwrap();
        let client = Client::connect(running.local_addr()).await.unwrap();
        let who = client.request_response(Call::new(WHO[0]), Bytes::new()).await.unwrap();
        assert_eq!((who.metadata, who.data), (Bytes::from("127.0.0.1"), Bytes::new()));
        let in_memory = server.connect_in_memory().await.unwrap();
        let who = in_memory.request_response(Call::new(WHO[0]), Bytes::new()).await.unwrap();
        assert_eq!(who.metadata, "", "no address in memory");
    })
    .await
}
