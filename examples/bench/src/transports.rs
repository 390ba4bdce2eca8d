//! The transport comparison (issue 21, `bench --transports tcp,ws,tls,wss,unix`): Weft alone,
//! over each transport it supports, on the workloads whose cost per call or per message a
//! transport changes: unary calls with 64 in flight, one call in flight (latency), and a server
//! stream, with 16-byte and 1 KiB messages, in the current split and multi split cells by
//! default. The workloads' counts and limits are those of a normal run (`--quick`'s with
//! `--quick`); the transports run back to back in each cell, who goes first rotating each run,
//! as the systems do in a normal run.
//!
//! The transport reaches `bench serve weft` and `bench client weft` through
//! [`TRANSPORT_VAR`]. For `tls` and `wss` a self-signed certificate for 127.0.0.1 and localhost
//! is made here, at run time, with rcgen, into a directory of this run's under the target
//! directory (removed at the end: no key outlives the run); the `unix` socket lives there too.
//!
//! The client comparison (issue 22, `bench --clients plain,reconnect,balanced,retry`) runs the
//! same way, over TCP, one column per kind of Weft client (`bench client weft` reads it from
//! [`CLIENT_VAR`]), on the two unary workloads: what the endpoint and balancer layer a call
//! goes through costs against a plain `Client`.

use crate::common::{
    CLIENT_VAR, ClientKind, Flavour, Kind, Result, TLS_CERT_VAR, TLS_KEY_VAR, TRANSPORT_VAR, Transport,
    UNIX_SOCKET_VAR, Work,
};
use crate::orchestrate::{Cell, Placement, Res, Step, cell_name, fmt, median, plans, ratio, run_one_with, shell};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// What the orchestrator's options ask of the comparison.
pub(crate) struct Options {
    /// The transports or the kinds of client (all of one sort), in the order of the report's
    /// columns (the first run's order too).
    pub(crate) variants: Vec<Variant>,
    /// `--quick`'s counts and limits.
    pub(crate) quick: bool,
    /// Runs per cell; the report shows their medians.
    pub(crate) runs: usize,
    /// `--only`: some of the comparison's workloads.
    pub(crate) only: Option<Vec<Kind>>,
    /// Runtime flavours.
    pub(crate) flavours: Vec<Flavour>,
    /// Placements (split alone unless `--placements` says otherwise).
    pub(crate) placements: Vec<Placement>,
}

/// What a column of a comparison changes: the transport, or the kind of client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Variant {
    Transport(Transport),
    Client(ClientKind),
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Transport(t) => t.name(),
            Variant::Client(k) => k.name(),
        }
    }

    /// The column the others are compared with: TCP, or the plain client.
    fn baseline(self) -> Variant {
        match self {
            Variant::Transport(_) => Variant::Transport(Transport::Tcp),
            Variant::Client(_) => Variant::Client(ClientKind::Plain),
        }
    }

    /// The workloads compared: what a transport adds to a call and to a streamed message;
    /// what a client's layer adds to a call.
    fn kinds(self) -> &'static [Kind] {
        match self {
            Variant::Transport(_) => &[Kind::UnaryThroughput, Kind::UnaryLatency, Kind::ServerStream],
            Variant::Client(_) => &[Kind::UnaryThroughput, Kind::UnaryLatency],
        }
    }

    /// The option that asks for the comparison.
    fn option(self) -> &'static str {
        match self {
            Variant::Transport(_) => "--transports",
            Variant::Client(_) => "--clients",
        }
    }

    /// The environment of a server and a client of this column (`scratch`: a transport's
    /// files, made for a transport comparison).
    fn env(self, scratch: Option<&Scratch>) -> Vec<(&'static str, String)> {
        match (self, scratch) {
            (Variant::Transport(t), Some(scratch)) => scratch.env(t),
            (Variant::Transport(t), None) => vec![(TRANSPORT_VAR, t.name().to_owned())],
            (Variant::Client(k), _) => vec![(CLIENT_VAR, k.name().to_owned())],
        }
    }
}

/// The run's certificate, key and Unix socket, in a directory of its own that is removed
/// (key included) when this is dropped.
struct Scratch {
    /// The directory, `transports-PID` in the target directory.
    dir: PathBuf,
    /// The certificate (PEM), the server's and the client's root.
    cert: PathBuf,
    /// The certificate's private key (PEM).
    key: PathBuf,
    /// The Unix socket's path.
    socket: PathBuf,
}

impl Scratch {
    /// Makes the directory, and the certificate and key if `tls`.
    fn new(tls: bool) -> Result<Scratch> {
        let dir = PathBuf::from(crate::orchestrate::target_dir()).join(format!("transports-{}", std::process::id()));
        // Left behind only by a run of an earlier process with this PID that was killed.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut socket = dir.join("weft.sock");
        // A socket's path must fit `sun_path` (108 bytes on Linux, the terminating NUL
        // included); a deep target directory falls back to the temporary directory.
        if socket.as_os_str().len() > 100 {
            socket = std::env::temp_dir().join(format!("weft-bench-{}.sock", std::process::id()));
        }
        let scratch = Scratch { cert: dir.join("cert.pem"), key: dir.join("key.pem"), dir, socket };
        if tls {
            let (cert, key) = certificate()?;
            std::fs::write(&scratch.cert, cert)?;
            write_private(&scratch.key, key.as_bytes())?;
        }
        Ok(scratch)
    }

    /// The environment of a server and a client over `transport`.
    fn env(&self, transport: Transport) -> Vec<(&'static str, String)> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            (TRANSPORT_VAR, transport.name().to_owned()),
            (TLS_CERT_VAR, path(&self.cert)),
            (TLS_KEY_VAR, path(&self.key)),
            (UNIX_SOCKET_VAR, path(&self.socket)),
        ]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // The server removes its socket when it stops; one killed leaves it behind.
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, and its key (ECDSA P-256, rcgen's
/// default); PEM. Self-signed and not a CA: the client trusts it as its one root.
fn certificate() -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `bytes` to a new file at `path` that only its owner can read.
fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

/// (workload's name, size, cell, column): the runs of one cell of the report.
type Key = (&'static str, usize, Cell, Variant);

/// The 1-minute load average, as `/proc/loadavg` says.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Runs the comparison and returns its report (Markdown).
pub(crate) fn run(o: &Options) -> Result<String> {
    let first = *o.variants.first().ok_or("--transports or --clients: nothing to compare")?;
    let (kinds, option) = (first.kinds(), first.option());
    let plans: Vec<_> = plans(o.quick, o.runs)
        .into_iter()
        .filter(|p| kinds.contains(&p.work.kind))
        .filter(|p| o.only.as_ref().is_none_or(|only| only.contains(&p.work.kind)))
        .collect();
    if plans.is_empty() {
        let names = kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
        return Err(format!("{option} runs {names}: --only names none of them").into());
    }
    let cells: Vec<Cell> = o
        .flavours
        .iter()
        .flat_map(|&f| o.placements.iter().filter(move |pl| pl.applies(f)).map(move |&pl| (f, pl)))
        .collect();
    if cells.is_empty() {
        return Err(format!("{option}: no cell (unpinned applies to the multi-thread runtime only)").into());
    }
    let secure = o.variants.iter().any(|v| matches!(v, Variant::Transport(t) if t.secure()));
    let scratch = match first {
        Variant::Transport(_) => Some(Scratch::new(secure)?),
        Variant::Client(_) => None,
    };
    if !crate::orchestrate::have_taskset() {
        eprintln!("taskset not found: pinning with sched_setaffinity instead");
    }
    let load_before = load();
    let started = Instant::now();
    let mut results: BTreeMap<Key, Vec<Res>> = BTreeMap::new();
    let mut failures = Vec::new();
    let n = o.variants.len();
    for plan in &plans {
        for &size in &plan.sizes {
            for run in 0..o.runs {
                for &cell in &cells {
                    // Back to back in each cell, who goes first rotating each run, so that
                    // drift on a shared machine hits every column alike.
                    for i in 0..n {
                        let variant = o.variants[(i + run) % n];
                        let w = Work { size, ..plan.work.clone() };
                        let step = Step { started, work: &w, cell, run, runs: o.runs, label: variant.name() };
                        let go = || run_one_with("weft", cell, &w, &variant.env(scratch.as_ref()));
                        if let Some(r) = step.measure(&mut failures, go) {
                            results.entry((w.kind.name(), size, cell, variant)).or_default().push(r);
                        }
                    }
                }
            }
        }
    }
    let head = Head { took: started.elapsed().as_secs_f64(), load_before, load_after: load() };
    Ok(report(
        o,
        &plans.iter().map(|p| (p.work.kind, p.sizes.clone())).collect::<Vec<_>>(),
        &cells,
        &results,
        &failures,
        &head,
    ))
}

/// What the report says of the run itself.
struct Head {
    /// Seconds the comparison took.
    took: f64,
    /// The 1-minute load average before the first run and after the last.
    load_before: String,
    load_after: String,
}

/// A column of a workload's table: its name, how to get it from one run, its decimals.
struct Metric {
    /// The column's name.
    name: &'static str,
    /// Its value in one run.
    get: fn(&Res) -> f64,
    /// Decimals shown.
    decimals: usize,
}

/// What each workload shows: its rate or latency, and the CPU per operation on either side
/// (TLS and WebSocket cost CPU on both: encryption and decryption, masking and unmasking).
fn metrics(kind: Kind) -> Vec<Metric> {
    let m = |name, get, decimals| Metric { name, get, decimals };
    let cpu_s = m("server CPU µs/op", |r: &Res| r.per_op(r.server_cpu_us), 2);
    let cpu_c = m("client CPU µs/op", |r: &Res| r.per_op(r.client_cpu_us), 2);
    match kind {
        Kind::UnaryThroughput => vec![m("calls/s", Res::rate, 0), cpu_s, cpu_c],
        Kind::UnaryLatency => vec![m("p50 µs", |r: &Res| r.p50_us, 1), m("calls/s", Res::rate, 0), cpu_s, cpu_c],
        _ => vec![m("msgs/s", Res::rate, 0), cpu_s, cpu_c],
    }
}

/// What a workload's table is headed with.
fn title(kind: Kind) -> &'static str {
    match kind {
        Kind::UnaryThroughput => "Unary calls, 64 in flight on one connection",
        Kind::UnaryLatency => "Unary calls, one in flight (latency)",
        _ => "A server stream, one call",
    }
}

/// The report: a line on the run, then a table per workload, a row per size, cell and metric,
/// a column per transport (or kind of client) and one per ratio to TCP (or to the plain
/// client); then any failed runs.
fn report(
    o: &Options,
    plans: &[(Kind, Vec<usize>)],
    cells: &[Cell],
    results: &BTreeMap<Key, Vec<Res>>,
    failures: &[String],
    head: &Head,
) -> String {
    let med = |kind: Kind, size, cell, t, get: fn(&Res) -> f64| {
        results.get(&(kind.name(), size, cell, t)).map(|rs| median(rs.iter().map(get).collect())).unwrap_or(f64::NAN)
    };
    let ts = &o.variants;
    let base = ts[0].baseline();
    let others: Vec<Variant> = ts.iter().copied().filter(|&t| t != base).collect();
    let names = ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
    let (what, each) = match base {
        Variant::Transport(_) => (format!("Transport comparison (issue 21): Weft over {names}"), "transport"),
        Variant::Client(_) => {
            (format!("Client comparison (issue 22): Weft's {names} clients, over TCP"), "kind of client")
        }
    };
    let mut s = format!(
        "{what}. Run {} ({}) of Weft at {}, {} run(s) per cell \
         (medians), took {:.0} s; 1-minute load average {} before, {} after. Machine: {} CPU(s), {}; {}.\n\n\
         Ratios are each {each}'s median over {}'s: below 1 for calls/s and msgs/s is slower, \
         above 1 for µs is costlier.\n",
        shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        if o.quick { "--quick" } else { "full" },
        crate::orchestrate::weft_revision(),
        o.runs,
        head.took,
        head.load_before,
        head.load_after,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        shell("sh", &["-c", "lscpu | sed -n 's/^Model name: *//p'"]),
        shell("uname", &["-sr"]),
        base.name(),
    );
    for (kind, sizes) in plans {
        s += &format!("\n{} (`{}`):\n\n| size | cell | metric |", title(*kind), kind.name());
        for t in ts {
            s += &format!(" {} |", t.name());
        }
        for t in &others {
            s += &format!(" {}/{} |", t.name(), base.name());
        }
        s += "\n|---|---|---|";
        s += &"---:|".repeat(ts.len() + others.len());
        s += "\n";
        for &size in sizes {
            for &cell in cells {
                for m in metrics(*kind) {
                    let baseline = med(*kind, size, cell, base, m.get);
                    s += &format!("| {size} B | {} | {} |", cell_name(cell), m.name);
                    for &t in ts {
                        s += &format!(" {} |", fmt(med(*kind, size, cell, t, m.get), m.decimals));
                    }
                    for &t in &others {
                        s += &format!(" {} |", ratio(med(*kind, size, cell, t, m.get), baseline));
                    }
                    s += "\n";
                }
            }
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
