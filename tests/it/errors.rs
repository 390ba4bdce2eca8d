//! `weft::Error`: each kind a connection or a listener can fail with, produced by a real
//! socket or a real peer, and what a call on such a connection sees.

use crate::lab::{self, LabClient, msg};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft::conn::CloseReason;
use weft::frame::ErrorCode;
use weft::{Client, Code, ErrorKind, Server, Status};

const WAIT: Duration = Duration::from_secs(10);

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("in time")
}

#[tokio::test]
async fn binding_a_port_in_use_is_a_bind_error_with_the_io_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = Server::builder().build().bind(taken.local_addr().unwrap()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Bind, "{error}");
    let io = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the IO error");
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
    assert!(error.to_string().starts_with("cannot bind the listener: "), "{error}");
}

#[tokio::test]
async fn a_refused_connect_is_a_connect_error_naming_the_address() {
    // A port bound and not listening refuses connections.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let error = bounded(Client::connect(addr)).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Connect, "{error}");
    assert!(error.to_string().starts_with(&format!("cannot connect to {addr}: ")), "{error}");
    let io = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the IO error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    drop(socket);
}

#[tokio::test]
async fn a_connection_beyond_the_servers_limit_is_a_rejected_setup() {
    let (builder, _events) = lab::builder();
    let server = builder.max_connections(1).build();
    let running = server.bind("127.0.0.1:0").await.unwrap();
    let first = bounded(LabClient::connect(running.local_addr())).await.unwrap();
    assert_eq!(bounded(first.echo(msg("one", 1))).await.unwrap(), msg("one", 1));
    let second = bounded(Client::connect(running.local_addr())).await.unwrap();
    let error = bounded(second.closed()).await;
    match error.kind() {
        ErrorKind::SetupRejected { code, message } => {
            assert_eq!(*code, ErrorCode::REJECTED_SETUP);
            assert!(message.contains("at most 1 connections"), "the server's reason: {message}");
        }
        other => panic!("expected a rejected SETUP, got {other:?}: {error}"),
    }
    // A call on it fails with the same reason; retrying later may work: UNAVAILABLE.
    let status = bounded(LabClient::new(second).echo(msg("two", 2))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("REJECTED_SETUP"), "{status}");
    assert_eq!(bounded(first.echo(msg("still", 3))).await.unwrap(), msg("still", 3), "the first carries on");
}

#[tokio::test]
async fn a_peer_that_closes_with_an_error_is_a_close_with_its_code_and_message() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A peer that reads the SETUP, then ends the connection with ERROR[CONNECTION_ERROR].
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let _ = socket.read(&mut buf).await;
        let error = weft::frame::Frame::Error(weft::frame::ErrorFrame {
            stream_id: 0,
            code: ErrorCode::CONNECTION_ERROR,
            data: "going away".into(),
        });
        let mut out = bytes::BytesMut::new();
        weft::frame::length::encode_frame(&error, &mut out);
        socket.write_all(&out).await.unwrap();
        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let client = bounded(Client::connect(addr)).await.unwrap();
    let error = bounded(client.closed()).await;
    assert_eq!(
        error.kind(),
        &ErrorKind::Closed(CloseReason::PeerError { code: ErrorCode::CONNECTION_ERROR, message: "going away".into() })
    );
    assert!(error.to_string().contains("going away"), "{error}");
    bounded(peer).await.unwrap();
}

#[tokio::test]
async fn a_closed_connection_says_who_closed_it() {
    let (server, _events) = lab::server();
    // This side.
    let client = bounded(server.connect_in_memory()).await.unwrap();
    client.close();
    assert_eq!(bounded(client.closed()).await.kind(), &ErrorKind::Closed(CloseReason::Local));
    // The peer: the server shut down.
    let running = server.bind("127.0.0.1:0").await.unwrap();
    let client = bounded(Client::connect(running.local_addr())).await.unwrap();
    let lab = LabClient::new(client.clone());
    assert_eq!(bounded(lab.echo(msg("hi", 1))).await.unwrap(), msg("hi", 1));
    bounded(running.shutdown()).await;
    let error = bounded(client.closed()).await;
    assert_eq!(error.kind(), &ErrorKind::Closed(CloseReason::PeerClosed), "{error}");
    // A later call fails with it, as UNAVAILABLE.
    let status = bounded(lab.echo(msg("late", 2))).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unavailable, &*error.to_string()));
}

#[tokio::test]
async fn question_mark_turns_a_connection_error_into_a_status_in_a_handler() {
    async fn call_elsewhere() -> Result<(), Status> {
        // What a handler calling another server does: `?` on the connect.
        let _client = Client::connect("127.0.0.1:1").await?;
        Ok(())
    }
    let status = bounded(call_elsewhere()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().starts_with("cannot connect to 127.0.0.1:1"), "{status}");
}

#[tokio::test]
async fn a_transport_reset_under_the_connection_is_a_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A peer that reads the SETUP, then resets the connection (linger 0: RST, not FIN).
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let _ = socket.read(&mut buf).await;
        socket.set_zero_linger().unwrap();
        drop(socket);
    });
    let client = bounded(Client::connect(addr)).await.unwrap();
    bounded(peer).await.unwrap();
    let error = bounded(client.closed()).await;
    assert_eq!(error.kind(), &ErrorKind::Transport, "{error}");
    let io = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the IO error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
}
