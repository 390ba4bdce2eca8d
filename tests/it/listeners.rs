//! Where a server's connections come from besides TCP: a Unix domain socket (its file made,
//! replaced when stale, never when live or not a socket, and removed when the server stops),
//! and a listener of the user's own (`Server::serve_incoming`). (Every interaction model runs
//! over a Unix socket in `e2e`, through `lab::TRANSPORTS`.)

use crate::lab::{self, LabClient, msg};
use std::time::Duration;
use weft::{Client, ErrorKind};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("test timed out")
}

async fn echo(client: Client, text: &str) {
    let answer = LabClient::new(client).echo(msg(text, 0)).await.expect("an answer");
    assert_eq!(answer.text, text);
}

#[tokio::test]
async fn a_unix_socket_is_made_replaced_when_stale_and_removed_at_shutdown() {
    bounded(async {
        let path = lab::socket_path();
        // A socket file left behind by a server that is gone.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let running = lab::server().0.bind_unix(&path).await.expect("a stale socket is replaced");
        assert_eq!(running.local_addr(), path);
        echo(Client::builder().connect_unix(&path).await.unwrap(), "over a unix socket").await;
        // A live server's socket is not taken over.
        let second = lab::server().0.bind_unix(&path).await.unwrap_err();
        assert!(matches!(second.kind(), ErrorKind::Bind), "{second}");
        assert!(second.to_string().contains("listening"), "{second}");
        echo(Client::builder().connect_unix(&path).await.unwrap(), "the first still serves").await;
        running.shutdown().await;
        assert!(!path.exists(), "the socket file is removed when the server stops");
        let gone = Client::builder().connect_unix(&path).await.unwrap_err();
        assert!(matches!(gone.kind(), ErrorKind::Connect), "{gone}");
    })
    .await
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    bounded(async {
        let path = lab::socket_path();
        std::fs::write(&path, "precious").unwrap();
        let error = lab::server().0.bind_unix(&path).await.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Bind), "{error}");
        assert!(error.to_string().contains("not a socket"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        std::fs::remove_file(&path).unwrap();
    })
    .await
}

#[tokio::test]
async fn a_listener_of_ones_own_is_served_with_its_errors_reported_and_its_end_respected() {
    bounded(async {
        // The user's own listener: TCP, with one failure in between (as a TLS acceptor of
        // their own would yield for a failed handshake).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = Box::pin(futures_util::stream::unfold((listener, 0), |(listener, n)| async move {
            if n == 3 {
                return None;
            }
            let next = if n == 1 {
                Err(std::io::Error::other("a handshake of the user's own failed"))
            } else {
                listener.accept().await.map(|(stream, _)| stream)
            };
            Some((next, (listener, n + 1)))
        }));
        let running = lab::server().0.serve_incoming(incoming);
        let first = Client::connect(addr).await.unwrap();
        echo(first.clone(), "first").await;
        let second = Client::connect(addr).await.unwrap();
        echo(second.clone(), "second").await;
        let reported = running.last_accept_error().expect("the failure is reported");
        assert!(reported.error.to_string().contains("handshake of the user's own"), "{:?}", reported.error);
        // The stream has ended: no more connections are taken, but those open are served.
        echo(first, "still served").await;
        assert_eq!(running.connections(), 2);
        running.shutdown().await;
        let after = LabClient::new(second).echo(msg("after shutdown", 0)).await;
        assert!(after.is_err(), "the shutdown closed the connections");
    })
    .await
}
