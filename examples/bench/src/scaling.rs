//! Scaling with connections and cores (issue 20): one server on the multi-thread runtime,
//! restricted to one core (pinned: one worker) or given both (not pinned: two workers), serving
//! 1, 4, 64 and 1,000 client connections from several client processes at once.
//!
//! Every process runs on the multi-thread runtime. The connections are spread over
//! [`CLIENTS`] client processes (one for a single connection), each with its share of them
//! and of the calls in flight: [`IN_FLIGHT`] unary calls of 16 bytes in flight in total, or one
//! per connection where there are more connections than that (1,000 in flight for 1,000
//! connections). Each call in flight is a runtime task of its client making calls one after
//! another on its connection (see `runner::conn_scaling`). With one core the server is pinned
//! to core 0 and the clients to core 1; with two cores nothing is pinned, so the clients share
//! the two cores with the server, as they would on a busy host.
//!
//! The measured window opens when every client process has made its connections and warmed
//! up, and the orchestrator then samples the server's CPU once for all of them, and likewise
//! at its end: calls/s is the sum over the client processes of each one's calls in its window,
//! and the server's CPU per call is its CPU over the window divided by every client's calls.

use crate::common::{Flavour, Kind, Result, ServerStats, Work};
use crate::orchestrate::{Proc, Res, fmt, median, ratio};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Connections in total.
pub const CONNECTIONS: [u64; 4] = [1, 4, 64, 1_000];
/// Cores the server may use: 1 (pinned to core 0, one worker) or 2 (not pinned, two workers).
pub const CORES: [usize; 2] = [1, 2];
/// Client processes (fewer when there are fewer connections).
pub const CLIENTS: u64 = 2;
/// Calls in flight in total, at least one per connection.
pub const IN_FLIGHT: u64 = 128;

/// One measurement: the sum over the client processes of their calls and rates, and the
/// server's CPU over the window.
#[derive(Clone, Debug, Default)]
struct Point {
    calls_per_s: f64,
    server_cpu_per_call: f64,
    client_cpu_per_call: f64,
    /// The server's CPU over the window ÷ the window: how many cores it kept busy.
    server_cores: f64,
}

/// The client processes for `conns` connections, and each one's (connections, calls in flight).
fn spread(conns: u64) -> (u64, u64, u64) {
    let procs = CLIENTS.min(conns).max(1);
    let per = conns / procs;
    let inflight = (IN_FLIGHT / procs).max(per);
    (procs, per, inflight)
}

/// Reads `proc`'s lines until its next `MARK`, relaying anything else.
fn wait_mark(proc: &Proc, until: Instant, system: &str) -> Result<()> {
    loop {
        match proc.line(until)? {
            Some(line) if line == "MARK" => return Ok(()),
            Some(line) => eprintln!("  [{system} client] {line}"),
            None => return Err(format!("a {system} client exited before its mark").into()),
        }
    }
}

/// One run: a fresh server and its client processes.
fn run_one(system: &str, cores: usize, conns: u64, secs: f64, warm_ms: u64) -> Result<Point> {
    let (server_core, client_core) = if cores == 1 { (Some("0"), Some("1")) } else { (None, None) };
    let mut server = Proc::spawn(server_core, Flavour::Multi, &["serve".into(), system.into(), "127.0.0.1:0".into()])?;
    let port = loop {
        let line = server.line(Instant::now() + Duration::from_secs(20))?.ok_or("the server exited")?;
        if let Some(port) = line.strip_prefix("PORT ") {
            break port.trim().parse::<u16>()?;
        }
    };
    let (procs, per, inflight) = spread(conns);
    let work = Work {
        kind: Kind::ConnScaling,
        size: 16,
        n: per,
        warm: warm_ms,
        secs,
        inflight: inflight as usize,
        burst: 1,
        pause_ms: 0,
    };
    let mut args = vec!["client".into(), system.into(), format!("127.0.0.1:{port}")];
    args.extend(work.to_args());
    let mut clients = Vec::new();
    for _ in 0..procs {
        clients.push(Proc::spawn(client_core, Flavour::Multi, &args)?);
    }
    // Generous, but bounded: connecting, the warm-up, the window, and tearing down.
    let until = Instant::now() + Duration::from_secs_f64(secs * 2.0 + warm_ms as f64 / 1000.0 + 120.0);
    // Two marks, the window's start and end, each taken once every client has reached it.
    for _ in 0..2 {
        for client in &clients {
            wait_mark(client, until, system)?;
        }
        server.send("stats")?;
        let stats = loop {
            let l = server.line(Instant::now() + Duration::from_secs(20))?.ok_or("the server exited")?;
            if ServerStats::parse(&l).is_some() {
                break l;
            }
        };
        for client in &mut clients {
            client.send(&stats)?;
        }
    }
    let mut results = Vec::new();
    for mut client in clients {
        let mut result = None;
        while let Some(line) = client.line(until)? {
            match Res::parse(&line) {
                Some(r) => result = Some(r),
                None => eprintln!("  [{system} client] {line}"),
            }
        }
        let status = client.child.wait()?;
        match result {
            Some(r) if status.success() => results.push(r),
            _ => return Err(format!("a {system} client failed ({status})").into()),
        }
    }
    server.finish(Duration::from_secs(3));
    let ops: f64 = results.iter().map(|r| r.ops).sum();
    if ops == 0.0 {
        return Err("no call completed in the window".into());
    }
    // Every client's line carries the same server sample (the one window).
    let server_cpu = results[0].server_cpu_us;
    Ok(Point {
        calls_per_s: results.iter().map(Res::rate).sum(),
        server_cpu_per_call: server_cpu / ops,
        client_cpu_per_call: results.iter().map(|r| r.client_cpu_us).sum::<f64>() / ops,
        server_cores: server_cpu / 1e6 / results[0].secs,
    })
}

/// Runs the workload `runs` times for each of `systems`, and returns its report.
pub fn run(systems: &[&'static str], quick: bool, runs: usize) -> String {
    let (secs, warm_ms) = if quick { (1.5, 500) } else { (3.0, 1_000) };
    let started = Instant::now();
    // The machine may be shared: the load before and after says how much.
    let load_before = loadavg();
    let mut results: BTreeMap<(usize, u64, &'static str), Vec<Point>> = BTreeMap::new();
    let mut failures = Vec::new();
    for cores in CORES {
        for conns in CONNECTIONS {
            for run in 0..runs {
                for i in 0..systems.len() {
                    // Rotated each run, so that drift hits the systems alike.
                    let system = systems[(i + run) % systems.len()];
                    let t = Instant::now();
                    eprint!(
                        "[{:>5.0}s] conn-scaling {cores} core(s) {conns:>5} conns run {}/{runs} {system:<5} ",
                        started.elapsed().as_secs_f64(),
                        run + 1,
                    );
                    match run_one(system, cores, conns, secs, warm_ms) {
                        Ok(p) => {
                            eprintln!(
                                "{:>9.0} calls/s  server {:.2} µs/call  ({:.1}s)",
                                p.calls_per_s,
                                p.server_cpu_per_call,
                                t.elapsed().as_secs_f64()
                            );
                            results.entry((cores, conns, system)).or_default().push(p);
                        }
                        Err(e) => {
                            eprintln!("FAILED: {e}");
                            failures.push(format!("conn-scaling {cores} core(s) {conns} conns {system}: {e}"));
                        }
                    }
                }
            }
        }
    }
    let header = format!(
        "Scaling with connections and cores ({}, {runs} run(s) per cell, medians; window {secs} s after a \
         {warm_ms} ms warm-up; took {:.0} s; load average (1 min) {load_before} before, {} after). Server on \
         the multi-thread runtime: 1 core = pinned to core 0 (one worker), clients pinned to core 1; 2 cores = \
         nothing pinned (two workers each), clients sharing the cores. 16-byte unary calls, {IN_FLIGHT} in \
         flight in total (at least one per connection), over {CLIENTS} client processes (one for one \
         connection).\n\n",
        if quick { "--quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        loadavg(),
    );
    report(&results, &failures, header)
}

/// The 1-minute load average.
fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().next().unwrap_or("?").to_owned()
}

/// The table of medians under `header`.
fn report(results: &BTreeMap<(usize, u64, &'static str), Vec<Point>>, failures: &[String], header: String) -> String {
    let med = |cores: usize, conns: u64, sys: &'static str, get: fn(&Point) -> f64| {
        results.get(&(cores, conns, sys)).map(|ps| median(ps.iter().map(get).collect())).unwrap_or(f64::NAN)
    };
    let rate: fn(&Point) -> f64 = |p| p.calls_per_s;
    let cpu: fn(&Point) -> f64 = |p| p.server_cpu_per_call;
    let client: fn(&Point) -> f64 = |p| p.client_cpu_per_call;
    let busy: fn(&Point) -> f64 = |p| p.server_cores;
    let mut s = header;
    s += "| cores | connections | clients × conns, in flight each | raw calls/s | tonic calls/s | weft calls/s \
          | weft/tonic | weft/raw | server CPU µs/call: raw | tonic | weft | weft/tonic | client CPU µs/call: \
          tonic | weft | server cores busy: tonic | weft |\n";
    s += "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for cores in CORES {
        for conns in CONNECTIONS {
            let (procs, per, inflight) = spread(conns);
            let [raw, tonic, weft] = ["raw", "tonic", "weft"].map(|sys| med(cores, conns, sys, rate));
            let [c_raw, c_tonic, c_weft] = ["raw", "tonic", "weft"].map(|sys| med(cores, conns, sys, cpu));
            let [k_tonic, k_weft] = ["tonic", "weft"].map(|sys| med(cores, conns, sys, client));
            let [b_tonic, b_weft] = ["tonic", "weft"].map(|sys| med(cores, conns, sys, busy));
            s += &format!(
                "| {cores} | {conns} | {procs} × {per}, {inflight} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                fmt(raw, 0),
                fmt(tonic, 0),
                fmt(weft, 0),
                ratio(weft, tonic),
                ratio(weft, raw),
                fmt(c_raw, 2),
                fmt(c_tonic, 2),
                fmt(c_weft, 2),
                ratio(c_weft, c_tonic),
                fmt(k_tonic, 2),
                fmt(k_weft, 2),
                fmt(b_tonic, 2),
                fmt(b_weft, 2),
            );
        }
    }
    if !failures.is_empty() {
        s += "\nFailed runs:\n\n";
        for f in failures {
            s += &format!("- {f}\n");
        }
    }
    s
}
