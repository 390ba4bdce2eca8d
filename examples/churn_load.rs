//! Load with connection churn against `interop_server` (or any server of `echo.Echo`): keeps
//! CONNECTIONS connections open, each with WORKERS tasks calling in a loop (unary 80 %,
//! fire-and-forget 20 %), and every 200 ms cuts one connection abruptly — mid-call, without
//! the RSocket close — and opens a new one in its place. Every other cut is a TCP RST (the
//! socket is dropped with a zero linger), the rest a plain close. With the server's PID it
//! prints the server's resident memory once a second.
//!
//! ```text
//! cargo run --release -p weft-examples --example churn_load -- 127.0.0.1:PORT [SERVER_PID] \
//!     [SECONDS=60] [CONNECTIONS=200] [WORKERS=10]
//! ```
//!
//! Bounded: it stops by itself after SECONDS, closing every connection it opened (abruptly,
//! as the churn does), and reports the server's memory then and two seconds later.

// The cuttable stream of the churn tests, shared with them.
#[path = "../framework/tests/it/cuttable.rs"]
mod cuttable;

use bytes::Bytes;
use cuttable::{Cut, Cuttable};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use weft::{Call, Client, Io};

/// The server's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// One connection and its workers: connects, runs the workers until cut.
async fn connection(addr: String, n: usize, workers: usize, rst: bool, cut: Arc<Cut>, calls: Arc<AtomicU64>) {
    let Ok(stream) = TcpStream::connect(&addr).await else { return };
    if rst {
        // Dropped with a zero linger, the socket ends with an RST.
        let _ = stream.set_zero_linger();
    }
    let builder = Client::builder().data_mime("application/octet-stream");
    let Ok(client) = builder.connect_over(Io(Cuttable::new(stream, cut.clone()))).await else {
        return;
    };
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (client, calls) = (client.clone(), calls.clone());
        // The key each fire counts under: one for all, or (CHURN_KEYS=each) one per worker
        // of each connection, as a load that names its senders would use.
        let key = match std::env::var("CHURN_KEYS").as_deref() {
            Ok("each") => Bytes::from(format!("c{n}-w{w}")),
            _ => Bytes::from_static(b"load"),
        };
        tasks.spawn(async move {
            // Bounded by the connection: the first failed call (the cut) ends the worker.
            for i in 0u64.. {
                let data = Bytes::from(vec![b'x'; 100 + (i as usize % 900)]);
                let result = if (i + w as u64).is_multiple_of(5) {
                    client.fire_and_forget(Call::new("echo.Echo/Fire"), key.clone()).await
                } else {
                    client.request_response(Call::new("echo.Echo/Unary"), data).await.map(drop)
                };
                if result.is_err() {
                    return;
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    drop(client);
    while tasks.join_next().await.is_some() {}
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(addr) = args.first().cloned() else {
        return Err("usage: churn_load 127.0.0.1:PORT [SERVER_PID] [SECONDS] [CONNECTIONS] [WORKERS]".into());
    };
    let pid: Option<u32> = args.get(1).map(|s| s.parse()).transpose()?;
    let seconds: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(60);
    let connections: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let workers: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let calls = Arc::new(AtomicU64::new(0));
    let mut open: Vec<Arc<Cut>> = Vec::new();
    let mut opened = 0usize;
    let start_one = |open: &mut Vec<Arc<Cut>>, opened: &mut usize| {
        let cut = Arc::new(Cut::default());
        tokio::spawn(connection(addr.clone(), *opened, workers, opened.is_multiple_of(2), cut.clone(), calls.clone()));
        *opened += 1;
        open.push(cut);
    };
    for _ in 0..connections {
        start_one(&mut open, &mut opened);
    }
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut next_report = Duration::from_secs(1);
    while start.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        if !open.is_empty() {
            // The oldest goes, mid-call.
            open.remove(0).cut();
            start_one(&mut open, &mut opened);
        }
        if start.elapsed() >= next_report {
            next_report += Duration::from_secs(1);
            let rss = pid.and_then(rss_kib).map_or_else(|| "?".to_owned(), |k| format!("{} MiB", k / 1024));
            println!(
                "{:>3} s  calls {:>9}  opened {:>5}  server RSS {rss}",
                start.elapsed().as_secs(),
                calls.load(Ordering::Relaxed),
                opened
            );
        }
    }
    for cut in open.drain(..) {
        cut.cut();
    }
    let rss = |pid: Option<u32>| pid.and_then(rss_kib).map_or_else(|| "?".to_owned(), |k| format!("{k} KiB"));
    println!("all cut: server RSS {}", rss(pid));
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("2 s later: server RSS {}", rss(pid));
    Ok(())
}
