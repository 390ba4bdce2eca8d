//! The Weft side of cross-language interop, server half: serves `echo.Echo` (the interop service
//! table of tests/interop/README.md) over TCP and over WebSocket, for the Python and JavaScript
//! RSocket clients in tests/interop/ and for `interop_client`.
//!
//! ```text
//! cargo run --release -p weft-examples --example interop_server -- ADDRESS...
//! cargo run --release -p weft-examples --example interop_server -- 127.0.0.1:7878 ws://127.0.0.1:7879/rsocket
//! ```
//!
//! Each ADDRESS is `HOST:PORT` (TCP) or `ws://HOST:PORT/PATH` (RSocket over WebSocket: one frame
//! per binary message); one server serves them all at once, with one fire counter. Prints
//! `listening ADDRESS` for each once all are bound (`listening 127.0.0.1:PORT`,
//! `listening ws://127.0.0.1:PORT/rsocket`, the port the one bound for `:0`) and serves until
//! SIGINT or SIGTERM (the interop runner stops it by PID), then shuts down gracefully.
//!
//! What the peers do on the wire that this server copes with, without imitating it (the runtime
//! does the work; nothing here is peer-specific):
//! - rsocket-py may set C on REQUEST_CHANNEL (a one-payload channel: valid RSocket), and
//!   rsocket-js never does (it sends a separate C-only PAYLOAD): both reach `channel` as a
//!   request stream that ends after its last message.
//! - Both write a custom MIME type's length in composite metadata as length − 1; the peers route
//!   with the well-known routing id only, so routing is unaffected.
//! - Neither announces Weft's default data MIME type (protobuf); both announce
//!   `application/octet-stream`, which is what this service's codec, `weft::BytesCodec`, reads.
//!   A client announcing anything else gets an ERROR for each call (the connection goes on).

#[path = "interop/mod.rs"]
mod interop;

use interop::EchoServer;
use interop::endpoint::{Listening, parse_args};
use interop::service::EchoService;
use std::time::Duration;
use weft::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (endpoints, options) = match parse_args(std::env::args().skip(1), 1, usize::MAX) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("{why}\nusage: interop_server ADDRESS... (127.0.0.1:PORT, ws://127.0.0.1:PORT/PATH)");
            std::process::exit(2);
        }
    };
    // The health service (`weft.health.v1.Health`, protobuf messages: a client checking it
    // announces `application/x-protobuf`), so that other languages can check it too.
    let (health, health_service) = weft::health::service();
    health.set_serving("echo.Echo");
    // A client that leaves a stream open must not hold the runner's kill up for long.
    let server = Server::builder()
        .shutdown_grace(Duration::from_secs(1))
        .add_service(EchoServer::new(EchoService::default()))
        .add_service(health_service)
        .build();
    // Every address is bound before any is announced, so that a runner waiting for
    // `listening` never talks to a server that then fails on its next address.
    let mut listening = Vec::new();
    for endpoint in &endpoints {
        let serving = endpoint
            .serve(&server, &options)
            .await
            .map_err(|e| format!("cannot listen on {endpoint} ({}): {e}", endpoint.transport()))?;
        listening.push(serving);
    }
    for serving in &listening {
        println!("listening {}", serving.bound);
    }
    interop::stop_signal().await?;
    // Watchers learn first that it goes.
    health.set_all_not_serving();
    // All at once: each waits out the same grace period.
    futures_util::future::join_all(listening.into_iter().map(Listening::shutdown)).await;
    Ok(())
}
