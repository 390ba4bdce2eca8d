//! Weft's benchmark harness: the same workloads against a raw TCP floor, tonic and Weft, each as
//! a server process and a client process on 127.0.0.1, pinned or not, on a current-thread or a
//! multi-thread tokio runtime (see BENCHMARKS.md).
//!
//! ```text
//! bench [--quick] [--runs N] [--only WORKLOAD,…] [--systems raw,tonic,weft]
//!       [--flavours current,multi] [--placements split,shared,unpinned] [--out FILE]
//! bench --transports tcp,ws,tls,wss,unix [--quick] [--runs N] [--only WORKLOAD,…]
//!       [--flavours …] [--placements …] [--out FILE]   # Weft over each transport
//! bench --clients plain,reconnect,balanced,retry [--quick] [--runs N] [--only WORKLOAD,…]
//!       [--flavours …] [--placements …] [--out FILE]   # each kind of Weft client
//! bench serve SYSTEM ADDR                 # a server; prints `PORT n`, answers `stats` on stdin
//! bench client SYSTEM ADDR WORKLOAD k=v…  # a client; prints `MARK` lines, then one `RESULT` line
//! ```
//!
//! `--only conn-scaling` runs the connection-scaling workload (several client processes
//! against one multi-thread server on one core and on two; see [`scaling`]); no other run
//! includes it.
//!
//! `bench serve` and `bench client` run on the tokio runtime flavour `WEFT_BENCH_FLAVOUR` names
//! (`current`, the default, or `multi`; see [`common::runtime`]), and Weft's over the transport
//! `WEFT_BENCH_TRANSPORT` names (`tcp`, the default; see [`transports`]), and Weft's client is
//! of the kind `WEFT_BENCH_CLIENT` names (`plain`, the default, `reconnect`, `balanced` or
//! `retry`; over TCP only; see [`transports`] too).

mod common;
mod messages;
mod orchestrate;
mod raw;
mod runner;
mod scaling;
mod tonic_sys;
mod transports;
mod weft_sys;

use common::{Result, Work};
use std::io::Write;
use std::net::SocketAddr;

/// Tells the orchestrator which port a server listens on.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "PORT {}", addr.port());
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") if args.len() == 3 => serve(&args[1], &args[2]),
        Some("client") if args.len() >= 4 => client(&args[1], &args[2], &args[3..]),
        Some("serve" | "client") => {
            Err("usage: bench serve SYSTEM ADDR | bench client SYSTEM ADDR WORKLOAD k=v…".into())
        }
        _ => orchestrate::main(&args),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn loopback(addr: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = addr.parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("only loopback addresses are allowed, not {addr}").into());
    }
    Ok(addr)
}

/// Fails unless `system` speaks this process's transport and makes its kind of client: raw
/// and tonic speak TCP alone, with their one kind of client.
fn check_transport(system: &str) -> Result<()> {
    let transport = common::Transport::from_env()?;
    if transport != common::Transport::Tcp && system != "weft" {
        return Err(format!("only weft runs over {}; {system} speaks tcp", transport.name()).into());
    }
    let kind = common::ClientKind::from_env()?;
    if kind != common::ClientKind::Plain && system != "weft" {
        return Err(format!("only weft has a {} client", kind.name()).into());
    }
    Ok(())
}

fn serve(system: &str, addr: &str) -> Result<()> {
    let addr = loopback(addr)?;
    check_transport(system)?;
    common::raise_nofile();
    common::spawn_stats_thread();
    common::runtime()?.block_on(async move {
        match system {
            "raw" => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                announce(listener.local_addr()?);
                raw::serve(listener).await
            }
            "tonic" => tonic_sys::serve(addr).await,
            "weft" => weft_sys::serve(addr).await,
            _ => Err(format!("unknown system `{system}`").into()),
        }
    })
}

fn client(system: &str, addr: &str, work: &[String]) -> Result<()> {
    let addr = loopback(addr)?;
    check_transport(system)?;
    let work = Work::from_args(work)?;
    common::raise_nofile();
    let rt = common::runtime()?;
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&rt, async {
        match system {
            "raw" => runner::run::<raw::Raw>(addr, &work).await,
            "tonic" => runner::run::<tonic_sys::Tonic>(addr, &work).await,
            "weft" => runner::run::<weft_sys::Weft>(addr, &work).await,
            _ => Err(format!("unknown system `{system}`").into()),
        }
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", outcome.line())?;
    out.flush()?;
    // Thousands of open streams or connections need no orderly teardown: the process ends.
    std::process::exit(0);
}
