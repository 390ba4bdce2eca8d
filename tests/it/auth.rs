//! Authentication (RSocket's Authentication extension): credentials in SETUP checked by the
//! server's hook, which lets a connection in with a principal its handlers read, or keeps it
//! out, before any handler runs; credentials with one request, read by its handler.

use crate::lab::{Msg, msg};
use crate::tls::Pki;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weft::{
    Client, ClientBuilder, ClientTls, Code, Context, Credentials, ErrorKind, Request, Server, ServerTls, Status,
};

/// Who the server thinks is calling, and with which credentials this call came.
#[weft::service(package = "weft.test")]
pub trait Whoami {
    async fn who(&self, ctx: Context, req: Msg) -> Result<Msg, Status>;
}

#[derive(Clone, Default)]
struct Answer(Arc<AtomicUsize>);

/// The principal the hook makes.
#[derive(Debug, PartialEq)]
struct User(String);

impl Whoami for Answer {
    async fn who(&self, ctx: Context, _req: Msg) -> Result<Msg, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let user = ctx.principal::<User>().map(|u| u.0.clone()).unwrap_or_default();
        let with = match ctx.credentials() {
            Some(Credentials::Bearer(token)) => format!("bearer {token}"),
            Some(Credentials::Simple { username, .. }) => format!("simple {username}"),
            Some(other) => format!("{other:?}"),
            None => "none".to_owned(),
        };
        Ok(msg(&format!("{user}|{with}"), 0))
    }
}

/// Lets in `ada` with her password, and the bearer of `service-token`.
fn check(setup: &weft::SetupInfo<'_>) -> Result<User, Status> {
    match setup.credentials() {
        Some(Credentials::Simple { username, password }) if username == "ada" && password == "lovelace" => {
            Ok(User(username))
        }
        Some(Credentials::Simple { username, .. }) => {
            Err(Status::unauthenticated(format!("wrong password for {username}")))
        }
        Some(Credentials::Bearer(token)) if token == "service-token" => Ok(User("service".into())),
        Some(_) => Err(Status::permission_denied("those credentials are not accepted here")),
        None => Err(Status::unauthenticated("credentials are required")),
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

/// A server with the hook, and the count of calls its handler served.
async fn server() -> (weft::RunningServer, Arc<AtomicUsize>) {
    let answer = Answer::default();
    let served = answer.0.clone();
    let server = Server::builder().authenticate(check).add_service(WhoamiServer::new(answer)).build();
    (server.bind("127.0.0.1:0").await.unwrap(), served)
}

async fn who(builder: ClientBuilder, running: &weft::RunningServer) -> (Client, Result<String, Status>) {
    let client = builder.connect(running.local_addr()).await.expect("connected (SETUP is answered later)");
    let answer = WhoamiClient::new(client.clone()).who(msg("", 0)).await.map(|m| m.text);
    (client, answer)
}

#[tokio::test]
async fn good_credentials_let_a_connection_in_with_its_principal() {
    bounded(async {
        let (running, served) = server().await;
        let (_, answer) = who(Client::builder().credentials(Credentials::simple("ada", "lovelace")), &running).await;
        assert_eq!(answer.unwrap(), "ada|none");
        let (_, answer) = who(Client::builder().credentials(Credentials::bearer("service-token")), &running).await;
        assert_eq!(answer.unwrap(), "service|none");
        assert_eq!(served.load(Ordering::SeqCst), 2);
    })
    .await
}

#[tokio::test]
async fn bad_or_missing_credentials_keep_a_connection_out_and_no_handler_runs() {
    bounded(async {
        let (running, served) = server().await;
        for (builder, code, reason) in [
            (
                Client::builder().credentials(Credentials::simple("ada", "babbage")),
                Code::Unauthenticated,
                "wrong password for ada",
            ),
            (Client::builder().credentials(Credentials::bearer("stolen")), Code::PermissionDenied, "not accepted"),
            (Client::builder(), Code::Unauthenticated, "credentials are required"),
        ] {
            let (client, answer) = who(builder, &running).await;
            let refused = answer.unwrap_err();
            assert_eq!(refused.code(), code, "{refused}");
            assert!(refused.message().contains(reason), "{refused}");
            let closed = client.closed().await;
            assert!(matches!(closed.kind(), ErrorKind::SetupRejected { .. }), "{closed}");
        }
        assert_eq!(served.load(Ordering::SeqCst), 0, "no handler ran for a rejected connection");
        // And the server goes on.
        let (_, answer) = who(Client::builder().credentials(Credentials::simple("ada", "lovelace")), &running).await;
        assert_eq!(answer.unwrap(), "ada|none");
    })
    .await
}

#[tokio::test]
async fn a_request_can_carry_credentials_of_its_own_on_a_connection_authenticated_otherwise() {
    bounded(async {
        let (running, _served) = server().await;
        let client = Client::builder().credentials(Credentials::simple("ada", "lovelace"));
        let client = WhoamiClient::new(client.connect(running.local_addr()).await.unwrap());
        let request = Request::new(msg("", 0)).with_credentials(Credentials::bearer("on-behalf-of-bob"));
        assert_eq!(client.who(request).await.unwrap().text, "ada|bearer on-behalf-of-bob");
        assert_eq!(client.who(msg("", 0)).await.unwrap().text, "ada|none", "only that request's");
    })
    .await
}

#[tokio::test]
async fn the_hook_sees_the_transport_and_a_hook_that_panics_keeps_the_connection_out() {
    bounded(async {
        let pki = Pki::shared();
        let tls = ServerTls::with_client_auth(pki.server_cert.as_bytes(), pki.server_key.as_bytes(), pki.ca.as_bytes())
            .unwrap();
        let server = Server::builder()
            .authenticate(|setup| {
                let addr = setup.remote_addr().expect("an address over TCP");
                let certs = setup.peer_certificates().map_or(0, <[_]>::len);
                if setup.data_mime() == "application/x-panic" {
                    panic!("a hook with a bug");
                }
                Ok(User(format!("{} with {certs} certificate(s)", addr.ip())))
            })
            .add_service(WhoamiServer::new(Answer::default()))
            .build();
        let running = server.bind_tls("127.0.0.1:0", tls).await.unwrap();
        let addr = running.local_addr().to_string();
        let identity =
            ClientTls::with_identity_pem(pki.ca.as_bytes(), pki.client_cert.as_bytes(), pki.client_key.as_bytes())
                .unwrap();
        let client = WhoamiClient::new(Client::builder().tls(identity.clone()).connect_tls(&addr).await.unwrap());
        assert_eq!(client.who(msg("", 0)).await.unwrap().text, "127.0.0.1 with 1 certificate(s)|none");
        let buggy = Client::builder().tls(identity).data_mime("application/x-panic").connect_tls(&addr).await.unwrap();
        let refused = buggy.request_response(weft::Call::new("weft.test.Whoami/Who"), "".into()).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused}");
        assert!(refused.message().contains("authentication failed"), "{refused}");
        assert_eq!(client.who(msg("", 0)).await.unwrap().text, "127.0.0.1 with 1 certificate(s)|none");
    })
    .await
}
