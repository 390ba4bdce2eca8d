//! Weft called from a web page: serves the interop service `echo.Echo` over RSocket's WebSocket
//! transport, and on another port the page of examples/browser/ that calls it with rsocket-js
//! (see examples/browser/README.md).
//!
//! ```text
//! bash examples/browser/build.sh          # once: the page's script, bundled
//! cargo run -p weft-examples --example browser_server
//! # page   http://127.0.0.1:8080/
//! # rsocket ws://127.0.0.1:8081/rsocket
//! ```
//!
//! Options: `--http ADDR` (the page, default `127.0.0.1:8080`), `--ws ADDR` (the RSocket
//! endpoint, default `127.0.0.1:8081`; its path is `/rsocket`), `--bundle PATH` (the bundled
//! script, default examples/browser/work/dist/bundle.js). Port 0 picks a free port; the lines
//! above say which. Serves until SIGINT or SIGTERM.
//!
//! The page is served by a few dozen lines of HTTP/1.1 below rather than a web framework: two
//! files, `GET` and `HEAD` only, one request per connection. Its input is treated as hostile
//! all the same: the request head is read up to a limit, within a time limit, with a limit on
//! connections served at once, and any path but the two files is answered `404`.

#[path = "interop/mod.rs"]
mod interop;

use interop::EchoServer;
use interop::service::EchoService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft::Server;

/// The page, with [`URL_PLACEHOLDER`] where the RSocket endpoint's URL goes.
const INDEX_HTML: &str = include_str!("browser/index.html");
/// Replaced in the page by the WebSocket URL the server is bound to, so that the page needs no
/// configuration whatever ports were picked.
const URL_PLACEHOLDER: &str = "{{RSOCKET_URL}}";
/// The WebSocket endpoint's path.
const RSOCKET_PATH: &str = "/rsocket";
/// The longest request head read: a browser's `GET` with its headers fits many times over.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Time for a connection to send its request head and take the answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP connections served at once; more wait to be accepted.
const MAX_HTTP_CONNECTIONS: usize = 64;

/// The command line.
struct Args {
    http: String,
    ws: String,
    bundle: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        http: "127.0.0.1:8080".into(),
        ws: "127.0.0.1:8081".into(),
        bundle: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/browser/work/dist/bundle.js")),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} wants a value"));
        match flag.as_str() {
            "--http" => args.http = value()?,
            "--ws" => args.ws = value()?,
            "--bundle" => args.bundle = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// What the HTTP side serves.
struct Site {
    /// The page, its placeholder filled.
    index: String,
    /// Read at each request, so that a rebuilt bundle is served without a restart.
    bundle: PathBuf,
}

/// An HTTP answer.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn text(status: &'static str, body: impl Into<String>) -> Answer {
        Answer { status, content_type: "text/plain; charset=utf-8", body: body.into().into_bytes() }
    }
}

impl Site {
    /// The answer to `method` on `target` (the request line's second word).
    async fn answer(&self, method: &str, target: &str) -> Answer {
        if method != "GET" && method != "HEAD" {
            return Answer::text("405 Method Not Allowed", "GET or HEAD only\n");
        }
        let path = target.split(['?', '#']).next().unwrap_or_default();
        match path {
            "/" | "/index.html" => {
                Answer { status: "200 OK", content_type: "text/html; charset=utf-8", body: self.index.clone().into() }
            }
            "/bundle.js" => {
                let bundle = self.bundle.clone();
                match tokio::task::spawn_blocking(move || std::fs::read(bundle)).await {
                    Ok(Ok(body)) => Answer { status: "200 OK", content_type: "text/javascript; charset=utf-8", body },
                    _ => Answer::text(
                        "404 Not Found",
                        format!(
                            "no bundle at {}: build it with `bash examples/browser/build.sh`\n",
                            self.bundle.display()
                        ),
                    ),
                }
            }
            _ => Answer::text("404 Not Found", "not found\n"),
        }
    }
}

/// Serves one HTTP/1.1 request on `stream`, then closes it.
async fn serve_http(site: &Site, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Up to the blank line that ends the head; a body (there is none for GET) is never read.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return reply(&mut stream, true, Answer::text("431 Request Header Fields Too Large", "")).await;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let words: Vec<&str> = std::str::from_utf8(line).unwrap_or_default().split(' ').collect();
    let answer = match words[..] {
        [method, target, version] if version.starts_with("HTTP/1.") => site.answer(method, target).await,
        _ => Answer::text("400 Bad Request", "not an HTTP/1.1 request\n"),
    };
    let with_body = words.first() != Some(&"HEAD");
    reply(&mut stream, with_body, answer).await
}

async fn reply(stream: &mut TcpStream, with_body: bool, answer: Answer) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(&answer.body).await?;
    }
    stream.shutdown().await
}

/// Accepts HTTP connections for ever, each served in a task of its own within [`HTTP_TIMEOUT`],
/// at most [`MAX_HTTP_CONNECTIONS`] at once.
async fn serve_site(listener: TcpListener, site: Arc<Site>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, say: pause rather than spin, and go on.
                eprintln!("http: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let site = site.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HTTP_TIMEOUT, serve_http(&site, stream)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => eprintln!("http: {error}"),
                Err(_) => eprintln!("http: a request took over {} s; dropped", HTTP_TIMEOUT.as_secs()),
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("{why}\nusage: browser_server [--http ADDR] [--ws ADDR] [--bundle PATH]");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(args.http.as_str())
        .await
        .map_err(|e| format!("cannot serve the page on {}: {e}", args.http))?;
    let site_addr = listener.local_addr()?;
    let page = format!("http://{site_addr}/");
    // Only this site's page may call the service from a browser: a page from anywhere else
    // (which any browser would let open the WebSocket) is refused at the handshake.
    let origins = [format!("http://{site_addr}"), format!("http://localhost:{}", site_addr.port())];
    let server = Server::builder()
        .shutdown_grace(Duration::from_secs(1))
        .websocket_origins(origins)
        .add_service(EchoServer::new(EchoService::default()))
        .build();
    let rsocket = server
        .bind_websocket(args.ws.as_str(), RSOCKET_PATH)
        .await
        .map_err(|e| format!("cannot serve RSocket over WebSocket on {}: {e}", args.ws))?;
    let url = format!("ws://{}{RSOCKET_PATH}", rsocket.local_addr());
    if !args.bundle.is_file() {
        eprintln!("warning: no bundle at {} yet: run `bash examples/browser/build.sh`", args.bundle.display());
    }
    let site = Arc::new(Site { index: INDEX_HTML.replace(URL_PLACEHOLDER, &url), bundle: args.bundle });
    println!("rsocket {url}");
    println!("page {page}");
    tokio::select! {
        () = serve_site(listener, site) => {}
        result = interop::stop_signal() => result?,
    }
    rsocket.shutdown().await;
    Ok(())
}
