//! The orchestrator: runs every workload against every system, on each tokio runtime flavour,
//! each run as a fresh server process and client process pinned with `taskset` (or not, in the
//! `unpinned` placement), relays the client's marks to the server, and prints the tables of
//! medians and the issues' targets. With `--transports` it runs the transport comparison
//! instead, with `--clients` the client comparison (see [`crate::transports`]).

use crate::common::{ClientKind, FLAVOUR_VAR, Flavour, Kind, Result, ServerStats, Transport, Work};
use crate::transports::Variant;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const SYSTEMS: [&str; 3] = ["raw", "tonic", "weft"];

/// Where the server and the client run: on which cores, if pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Placement {
    /// Server on core 0, client on core 1: like a deployment.
    Split,
    /// Both on core 0: the software cost alone, no cross-core wake-ups.
    Shared,
    /// Neither pinned: both processes (and, multi-thread, their workers, two each) free on both
    /// cores, as the scheduler places them. Multi-thread runtime only.
    Unpinned,
}

impl Placement {
    const ALL: [Placement; 3] = [Placement::Split, Placement::Shared, Placement::Unpinned];

    fn name(self) -> &'static str {
        match self {
            Placement::Split => "split",
            Placement::Shared => "shared",
            Placement::Unpinned => "unpinned",
        }
    }

    fn parse(s: &str) -> Option<Placement> {
        Placement::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The cores of the server and of the client; `None`: not pinned.
    fn cores(self) -> Option<(&'static str, &'static str)> {
        match self {
            Placement::Split => Some(("0", "1")),
            Placement::Shared => Some(("0", "0")),
            Placement::Unpinned => None,
        }
    }

    /// Whether this placement is measured on `flavour`: a current-thread process has one
    /// thread, which unpinned would only wander between the cores.
    pub(crate) fn applies(self, flavour: Flavour) -> bool {
        self != Placement::Unpinned || flavour == Flavour::Multi
    }

    /// The bounds of the latency targets: an unpinned pair is held to the split bounds.
    fn like_split(self) -> bool {
        self != Placement::Shared
    }
}

/// A runtime flavour and a placement: one column of cells of the tables.
pub(crate) type Cell = (Flavour, Placement);

/// A cell as the tables name it: `current split`.
/// One measurement of a comparison run: what it is, for the progress line on stderr.
pub(crate) struct Step<'a> {
    pub(crate) started: Instant,
    pub(crate) work: &'a Work,
    pub(crate) cell: Cell,
    pub(crate) run: usize,
    pub(crate) runs: usize,
    /// What runs: a system, a transport, a kind of client.
    pub(crate) label: &'a str,
}

impl Step<'_> {
    /// Runs `go`, telling its progress and outcome on stderr: its result, or `None` with the
    /// failure added to `failures`.
    pub(crate) fn measure(&self, failures: &mut Vec<String>, go: impl FnOnce() -> Result<Res>) -> Option<Res> {
        let (w, t) = (self.work, Instant::now());
        eprint!(
            "[{:>5.0}s] {:<16} {:>4} B {:<16} run {}/{} {:<9} ",
            self.started.elapsed().as_secs_f64(),
            w.kind.name(),
            w.size,
            cell_name(self.cell),
            self.run + 1,
            self.runs,
            self.label
        );
        match go() {
            Ok(r) => {
                eprintln!(
                    "{:>9.0} ops in {:.2}s  p50 {:.1}µs  ({:.1}s)",
                    r.ops,
                    r.secs,
                    r.p50_us,
                    t.elapsed().as_secs_f64()
                );
                Some(r)
            }
            Err(e) => {
                eprintln!("FAILED: {e}");
                failures.push(format!("{} {} B {} {}: {e}", w.kind.name(), w.size, cell_name(self.cell), self.label));
                None
            }
        }
    }
}

pub(crate) fn cell_name((flavour, placement): Cell) -> String {
    format!("{} {}", flavour.name(), placement.name())
}

/// One workload as the orchestrator plans it.
pub(crate) struct Plan {
    /// The workload (its size is replaced by each of `sizes`).
    pub(crate) work: Work,
    /// Payload sizes, in bytes.
    pub(crate) sizes: Vec<usize>,
    systems: Vec<&'static str>,
    placements: Vec<Placement>,
    runs: usize,
}

fn work(kind: Kind, n: u64, warm: u64, secs: f64) -> Work {
    Work { kind, size: 16, n, warm, secs, inflight: 1, burst: 1, pause_ms: 0 }
}

/// Every workload of a normal run, with `--quick`'s counts and limits if `quick`.
pub(crate) fn plans(quick: bool, runs: usize) -> Vec<Plan> {
    let both = Placement::ALL.to_vec();
    let sizes = vec![16, 1024];
    let q = |full: u64, small: u64| if quick { small } else { full };
    let t = |full: f64, small: f64| if quick { small } else { full };
    vec![
        Plan {
            work: work(Kind::UnaryLatency, q(20_000, 10_000), q(2_000, 500), t(60.0, 10.0)),
            sizes: sizes.clone(),
            systems: SYSTEMS.to_vec(),
            placements: both.clone(),
            runs,
        },
        Plan {
            work: Work { inflight: 64, ..work(Kind::UnaryThroughput, q(300_000, 30_000), q(1_000, 200), t(5.0, 1.5)) },
            sizes: sizes.clone(),
            systems: SYSTEMS.to_vec(),
            placements: both.clone(),
            runs,
        },
        Plan {
            work: work(Kind::ServerStream, q(1_000_000, 100_000), 0, t(20.0, 4.0)),
            sizes: sizes.clone(),
            systems: SYSTEMS.to_vec(),
            placements: both.clone(),
            runs,
        },
        Plan {
            work: work(Kind::PingPong, q(20_000, 2_000), q(2_000, 200), t(60.0, 10.0)),
            sizes: sizes.clone(),
            systems: SYSTEMS.to_vec(),
            placements: both,
            runs,
        },
        Plan {
            // Read 1,000 messages, rest 10 ms: at most ~100,000 messages/s, far below what any
            // server produces, so without back-pressure the server would queue the rest.
            work: Work { burst: 1_000, pause_ms: 10, ..work(Kind::SlowConsumer, 10_000_000, 0, t(20.0, 1.5)) },
            sizes: sizes.clone(),
            systems: SYSTEMS.to_vec(),
            placements: vec![Placement::Split],
            runs: 1,
        },
        Plan {
            work: work(Kind::ScaleStreams, q(10_000, 1_000), 0, t(60.0, 15.0)),
            sizes: vec![16],
            systems: vec!["tonic", "weft"],
            placements: vec![Placement::Split],
            runs: 1,
        },
        Plan {
            work: work(Kind::ScaleConns, q(1_000, 200), 0, t(60.0, 15.0)),
            sizes: vec![16],
            systems: SYSTEMS.to_vec(),
            placements: vec![Placement::Split],
            runs: 1,
        },
    ]
}

/// A child process that is killed (by its PID, which `Child` holds) unless it already ended.
pub(crate) struct Proc {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    /// Starts the harness with `args` on the runtime `flavour`, pinned to `core` (`None`: not).
    pub(crate) fn spawn(core: Option<&str>, flavour: Flavour, args: &[String]) -> Result<Proc> {
        Proc::spawn_with(core, flavour, &[], args)
    }

    /// [`Proc::spawn`] with the environment variables `env` set as well (the transport's).
    pub(crate) fn spawn_with(
        core: Option<&str>,
        flavour: Flavour,
        env: &[(&str, String)],
        args: &[String],
    ) -> Result<Proc> {
        let exe = std::env::current_exe()?;
        let mut cmd = match core {
            Some(core) if have_taskset() => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core).arg(&exe);
                c
            }
            _ => Command::new(&exe),
        };
        cmd.env(FLAVOUR_VAR, flavour.name());
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        if let Some(core) = core
            && !have_taskset()
        {
            // Racy for the multi-thread runtime's worker count (it may be sized before this),
            // which is why taskset is preferred.
            pin(child.id(), core.parse()?)?;
        }
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, stdin, lines })
    }

    pub(crate) fn line(&self, until: Instant) -> Result<Option<String>> {
        match self.lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err("timed out waiting for a child process".into()),
        }
    }

    pub(crate) fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes stdin (a server exits then) and waits up to `grace`; kills it after that.
    pub(crate) fn finish(mut self, grace: Duration) {
        self.stdin = None;
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Drop kills it.
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn have_taskset() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| Command::new("taskset").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
}

/// Pins process `pid` to `core` without taskset (its threads start after this, and inherit it).
fn pin(pid: u32, core: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(pid as libc::pid_t, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// The fields of a client's `RESULT` line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Res {
    pub(crate) ops: f64,
    pub(crate) secs: f64,
    pub(crate) p50_us: f64,
    p99_us: f64,
    pub(crate) client_cpu_us: f64,
    pub(crate) server_cpu_us: f64,
    rss0_kb: f64,
    rss1_kb: f64,
    hwm1_kb: f64,
}

impl Res {
    pub(crate) fn parse(line: &str) -> Option<Res> {
        let mut r = Res::default();
        for kv in line.strip_prefix("RESULT ")?.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let v: f64 = v.parse().ok()?;
            match k {
                "ops" => r.ops = v,
                "secs" => r.secs = v,
                "p50_us" => r.p50_us = v,
                "p99_us" => r.p99_us = v,
                "client_cpu_us" => r.client_cpu_us = v,
                "server_cpu_us" => r.server_cpu_us = v,
                "rss0_kb" => r.rss0_kb = v,
                "rss1_kb" => r.rss1_kb = v,
                "hwm1_kb" => r.hwm1_kb = v,
                _ => {}
            }
        }
        Some(r)
    }

    pub(crate) fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.ops / self.secs } else { 0.0 }
    }

    /// `us` microseconds per operation.
    pub(crate) fn per_op(&self, us: f64) -> f64 {
        if self.ops > 0.0 { us / self.ops } else { 0.0 }
    }
}

/// One client run against one fresh server.
fn run_one(system: &str, cell: Cell, work: &Work) -> Result<Res> {
    run_one_with(system, cell, work, &[])
}

/// [`run_one`] with the environment variables `env` set in the server and the client.
pub(crate) fn run_one_with(
    system: &str,
    (flavour, placement): Cell,
    work: &Work,
    env: &[(&str, String)],
) -> Result<Res> {
    let (server_core, client_core) = placement.cores().unzip();
    let mut server =
        Proc::spawn_with(server_core, flavour, env, &["serve".into(), system.into(), "127.0.0.1:0".into()])?;
    let port = loop {
        let line = server.line(Instant::now() + Duration::from_secs(20))?.ok_or("the server exited")?;
        if let Some(port) = line.strip_prefix("PORT ") {
            break port.trim().parse::<u16>()?;
        }
    };
    let mut args = vec!["client".into(), system.into(), format!("127.0.0.1:{port}")];
    args.extend(work.to_args());
    let mut client = Proc::spawn_with(client_core, flavour, env, &args)?;
    // Generous, but bounded: the client's own deadline plus time to connect and tear down.
    let until = Instant::now() + Duration::from_secs_f64(work.secs * 2.0 + 60.0);
    let mut result = None;
    while let Some(line) = client.line(until)? {
        if line == "MARK" {
            server.send("stats")?;
            let stats = loop {
                let l = server.line(Instant::now() + Duration::from_secs(20))?.ok_or("the server exited")?;
                if ServerStats::parse(&l).is_some() {
                    break l;
                }
            };
            client.send(&stats)?;
        } else if let Some(r) = Res::parse(&line) {
            result = Some(r);
        } else {
            eprintln!("  [{system} client] {line}");
        }
    }
    let status = client.child.wait()?;
    server.finish(Duration::from_secs(3));
    match result {
        Some(r) if status.success() => Ok(r),
        _ => Err(format!("the {system} client failed ({status})").into()),
    }
}

type Key = (usize, usize, Cell, &'static str); // (plan index, size, (flavour, placement), system)

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

struct Options {
    quick: bool,
    runs: Option<usize>,
    only: Option<Vec<Kind>>,
    systems: Vec<&'static str>,
    flavours: Vec<Flavour>,
    /// `None`: not given (every placement, or split alone for `--transports` and `--clients`).
    placements: Option<Vec<Placement>>,
    /// The transport comparison's transports, or the client comparison's kinds of client, if
    /// asked for.
    variants: Option<Vec<Variant>>,
    out: Option<String>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        quick: false,
        runs: None,
        only: None,
        systems: SYSTEMS.to_vec(),
        flavours: Flavour::ALL.to_vec(),
        placements: None,
        variants: None,
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--runs" => o.runs = Some(it.next().ok_or("--runs N")?.parse()?),
            "--only" => {
                let list = it.next().ok_or("--only WORKLOAD,…")?;
                let kinds = list.split(',').map(|k| Kind::parse(k).ok_or(format!("unknown workload `{k}`")));
                o.only = Some(kinds.collect::<std::result::Result<_, _>>()?);
            }
            "--systems" => {
                let list = it.next().ok_or("--systems raw,tonic,weft")?;
                o.systems = SYSTEMS.into_iter().filter(|s| list.split(',').any(|x| x == *s)).collect();
            }
            "--flavours" => {
                let list = it.next().ok_or("--flavours current,multi")?;
                let fs = list.split(',').map(|f| Flavour::parse(f).ok_or(format!("unknown flavour `{f}`")));
                o.flavours = fs.collect::<std::result::Result<_, _>>()?;
            }
            "--placements" => {
                let list = it.next().ok_or("--placements split,shared,unpinned")?;
                let ps = list.split(',').map(|p| Placement::parse(p).ok_or(format!("unknown placement `{p}`")));
                o.placements = Some(ps.collect::<std::result::Result<_, _>>()?);
            }
            "--transports" | "--clients" if o.variants.is_some() => {
                return Err("--transports and --clients: one comparison at a time".into());
            }
            "--transports" => {
                let list = it.next().ok_or("--transports tcp,ws,tls,wss,unix")?;
                let ts = list
                    .split(',')
                    .map(|t| Transport::parse(t).map(Variant::Transport).ok_or(format!("unknown transport `{t}`")));
                o.variants = Some(ts.collect::<std::result::Result<_, _>>()?);
            }
            "--clients" => {
                let list = it.next().ok_or("--clients plain,reconnect,balanced,retry")?;
                let ks = list
                    .split(',')
                    .map(|k| ClientKind::parse(k).map(Variant::Client).ok_or(format!("unknown kind of client `{k}`")));
                o.variants = Some(ks.collect::<std::result::Result<_, _>>()?);
            }
            "--out" => o.out = Some(it.next().ok_or("--out FILE")?.clone()),
            "-h" | "--help" => {
                println!(
                    "bench [--quick] [--runs N] [--only {}] [--systems raw,tonic,weft] \
                     [--flavours current,multi] [--placements split,shared,unpinned] [--out FILE]\n\
                     bench --transports tcp,ws,tls,wss,unix [--quick] [--runs N] \
                     [--only unary-latency,unary-throughput,server-stream] [--flavours current,multi] \
                     [--placements split,shared,unpinned] [--out FILE]   # Weft alone, over each transport \
                     (default cells: current split, multi split)\n\
                     bench --clients plain,reconnect,balanced,retry [--quick] [--runs N] \
                     [--only unary-latency,unary-throughput] [--flavours current,multi] \
                     [--placements split,shared,unpinned] [--out FILE]   # Weft alone, each kind of client \
                     over TCP (default cells: current split, multi split)",
                    Kind::ALL.map(Kind::name).join(",")
                );
                std::process::exit(0);
            }
            _ => return Err(format!("unknown option `{a}` (try --help)").into()),
        }
    }
    Ok(o)
}

pub fn main(args: &[String]) -> Result<()> {
    let opts = options(args)?;
    let runs = opts.runs.unwrap_or(if opts.quick { 1 } else { 3 });
    if let Some(variants) = &opts.variants {
        let placements = opts.placements.clone().unwrap_or(vec![Placement::Split]);
        let report = crate::transports::run(&crate::transports::Options {
            variants: variants.clone(),
            quick: opts.quick,
            runs,
            only: opts.only.clone(),
            flavours: opts.flavours.clone(),
            placements,
        })?;
        let name = match variants.first() {
            Some(Variant::Client(_)) => "bench-clients.md",
            _ => "bench-transports.md",
        };
        return write_report(&report, opts.out, name);
    }
    let placements = opts.placements.clone().unwrap_or(Placement::ALL.to_vec());
    let mut plans = plans(opts.quick, runs);
    for p in &mut plans {
        p.systems.retain(|s| opts.systems.contains(s));
        p.placements.retain(|pl| placements.contains(pl));
        if opts.only.as_ref().is_some_and(|only| !only.contains(&p.work.kind)) {
            p.systems.clear();
        }
    }
    if !have_taskset() {
        eprintln!("taskset not found: pinning with sched_setaffinity instead");
    }
    let started = Instant::now();
    let mut results: BTreeMap<Key, Vec<Res>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (pi, plan) in plans.iter().enumerate() {
        if plan.systems.is_empty() {
            continue;
        }
        for &size in &plan.sizes {
            for run in 0..plan.runs {
                for cell in cells(plan, &opts.flavours) {
                    // Alternate systems workload by workload, rotating who goes first each run,
                    // so that drift on a shared machine hits them alike.
                    let n = plan.systems.len();
                    for i in 0..n {
                        let system = plan.systems[(i + run) % n];
                        let w = Work { size, ..plan.work.clone() };
                        let step = Step { started, work: &w, cell, run, runs: plan.runs, label: system };
                        if let Some(r) = step.measure(&mut failures, || run_one(system, cell, &w)) {
                            results.entry((pi, size, cell, system)).or_default().push(r);
                        }
                    }
                }
            }
        }
    }
    // The conn-scaling workload runs only when asked for by name (`--only conn-scaling`): it
    // has a shape of its own (several client processes, see `scaling.rs`) and takes minutes.
    let mut report = String::new();
    if plans.iter().any(|p| !p.systems.is_empty()) {
        report = self::report(&plans, &opts.flavours, &results, &failures, opts.quick, runs, started.elapsed());
    }
    if opts.only.as_ref().is_some_and(|only| only.contains(&Kind::ConnScaling)) {
        let scaling = crate::scaling::run(&opts.systems, opts.quick, runs);
        if !report.is_empty() {
            report += "\n";
        }
        report += &scaling;
    }
    write_report(&report, opts.out, "bench-report.md")
}

/// The harness's target directory: `$CARGO_TARGET_DIR`, or `examples/bench/target`.
pub(crate) fn target_dir() -> String {
    std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into())
}

/// Prints `report` and writes it to `out`, by default to `default_name` in the target directory.
fn write_report(report: &str, out: Option<String>, default_name: &str) -> Result<()> {
    println!("{report}");
    let out = out.unwrap_or_else(|| format!("{}/{default_name}", target_dir()));
    if std::fs::write(&out, report).is_ok() {
        eprintln!("report written to {out}");
    }
    Ok(())
}

/// The (flavour, placement) cells a plan runs in, flavour by flavour.
fn cells(plan: &Plan, flavours: &[Flavour]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &f in flavours {
        cells.extend(plan.placements.iter().filter(|pl| pl.applies(f)).map(|&pl| (f, pl)));
    }
    cells
}

/// A metric of a workload: its name, unit, how to get it from one run, and whether higher is
/// better (only used to word the table).
struct Metric {
    name: &'static str,
    get: fn(&Res) -> f64,
    decimals: usize,
}

fn metrics(kind: Kind) -> Vec<Metric> {
    let cpu_c = Metric { name: "client CPU µs/op", get: |r| r.per_op(r.client_cpu_us), decimals: 2 };
    let cpu_s = Metric { name: "server CPU µs/op", get: |r| r.per_op(r.server_cpu_us), decimals: 2 };
    let cpu_t = Metric { name: "total CPU µs/op", get: |r| r.per_op(r.client_cpu_us + r.server_cpu_us), decimals: 2 };
    let p50 = Metric { name: "p50 µs", get: |r| r.p50_us, decimals: 1 };
    let p99 = Metric { name: "p99 µs", get: |r| r.p99_us, decimals: 1 };
    let rate = |name| Metric { name, get: Res::rate, decimals: 0 };
    match kind {
        Kind::UnaryLatency => vec![p50, p99, rate("calls/s"), cpu_c, cpu_s, cpu_t],
        Kind::UnaryThroughput => vec![rate("calls/s"), p99, cpu_c, cpu_s, cpu_t],
        Kind::ServerStream => vec![rate("msgs/s"), cpu_c, cpu_s, cpu_t],
        Kind::PingPong => vec![p50, p99, cpu_c, cpu_s, cpu_t],
        Kind::SlowConsumer => vec![
            Metric { name: "server peak RSS growth MiB", get: |r| (r.hwm1_kb - r.rss0_kb) / 1024.0, decimals: 2 },
            Metric { name: "messages read", get: |r| r.ops, decimals: 0 },
        ],
        Kind::ScaleStreams => vec![
            Metric { name: "server KiB/stream", get: |r| r.per_op(r.rss1_kb - r.rss0_kb), decimals: 2 },
            Metric { name: "streams open", get: |r| r.ops, decimals: 0 },
        ],
        Kind::ScaleConns => vec![
            Metric { name: "server KiB/conn", get: |r| r.per_op(r.rss1_kb - r.rss0_kb), decimals: 2 },
            Metric { name: "connections open", get: |r| r.ops, decimals: 0 },
        ],
        // Never planned here: `scaling.rs` runs and reports it.
        Kind::ConnScaling => vec![rate("calls/s"), cpu_s],
    }
}

pub(crate) fn fmt(v: f64, decimals: usize) -> String {
    if v.is_nan() { "–".into() } else { format!("{v:.decimals$}") }
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 { "–".into() } else { format!("{:.2}×", a / b) }
}

pub(crate) fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Which Weft was measured: the commit, and whether the runtime's sources differed from it.
pub(crate) fn weft_revision() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let rev = shell("git", &["-C", root, "rev-parse", "--short", "HEAD"]);
    let dirty =
        !shell("git", &["-C", root, "status", "--porcelain", "--", "framework", "macros", "codegen"]).is_empty();
    if dirty { format!("{rev} with uncommitted changes to the runtime") } else { rev }
}

/// The median of metric `get` of each system over its runs: `(plan, size, cell, system)`.
type Medians<'a> = dyn Fn(usize, usize, Cell, &'static str, fn(&Res) -> f64) -> f64 + 'a;

/// One comparison of the multi-thread runtime with the current-thread one (issue 20).
struct Slowdown {
    kind: Kind,
    metric: &'static str,
    get: fn(&Res) -> f64,
    /// Calls/s, messages/s: the slowdown is current ÷ multi; times and CPU: multi ÷ current.
    higher_is_better: bool,
}

fn slowdowns() -> Vec<Slowdown> {
    let p50: fn(&Res) -> f64 = |r| r.p50_us;
    let cpu_s: fn(&Res) -> f64 = |r| r.per_op(r.server_cpu_us);
    let s = |kind, metric, get, higher_is_better| Slowdown { kind, metric, get, higher_is_better };
    vec![
        s(Kind::UnaryLatency, "p50 µs", p50, false),
        s(Kind::UnaryThroughput, "calls/s", Res::rate, true),
        s(Kind::UnaryThroughput, "server CPU µs/op", cpu_s, false),
        s(Kind::ServerStream, "msgs/s", Res::rate, true),
        s(Kind::PingPong, "p50 µs", p50, false),
    ]
}

/// The current-thread cell a multi-thread cell is compared with: the same placement, or for an
/// unpinned pair, split (two cores for the two processes in both).
fn reference(placement: Placement) -> Cell {
    (Flavour::Current, if placement == Placement::Unpinned { Placement::Split } else { placement })
}

fn report(
    plans: &[Plan],
    flavours: &[Flavour],
    results: &BTreeMap<Key, Vec<Res>>,
    failures: &[String],
    quick: bool,
    runs: usize,
    took: Duration,
) -> String {
    let med = |pi: usize, size: usize, cell: Cell, sys: &'static str, get: fn(&Res) -> f64| -> f64 {
        results.get(&(pi, size, cell, sys)).map(|rs| median(rs.iter().map(get).collect())).unwrap_or(f64::NAN)
    };
    let med: &Medians = &med;
    let mut s = String::new();
    let model = shell("sh", &["-c", "lscpu | sed -n 's/^Model name: *//p'"]);
    let rev = weft_revision();
    s += &format!(
        "Run {} ({}) of Weft at {}, runtime flavours {}, {} run(s) per cell (medians), took {:.0} s. \
         Machine: {} CPU(s), {}; {}.\n\n",
        shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        if quick { "--quick" } else { "full" },
        rev,
        flavours.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
        runs,
        took.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        model,
        shell("uname", &["-sr"]),
    );
    let active = |pi: usize| !plans[pi].systems.is_empty();
    let find = |k: Kind| plans.iter().position(|p| p.work.kind == k && !p.systems.is_empty());

    // Issue 20's table: unary calls with 64 in flight, per runtime flavour and placement.
    if let Some(pi) = find(Kind::UnaryThroughput) {
        let cpu_s: fn(&Res) -> f64 = |r| r.per_op(r.server_cpu_us);
        s += "Unary calls, 64 in flight from 64 tasks on one connection, per runtime and placement:\n\n";
        s += "| size | runtime | placement | raw calls/s | tonic calls/s | weft calls/s | weft/raw | weft/tonic \
              | server CPU µs/call: raw | tonic | weft |\n";
        s += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for &size in &plans[pi].sizes {
            for cell in cells(&plans[pi], flavours) {
                let [raw, tonic, weft] = SYSTEMS.map(|sys| med(pi, size, cell, sys, Res::rate));
                let [c_raw, c_tonic, c_weft] = SYSTEMS.map(|sys| med(pi, size, cell, sys, cpu_s));
                s += &format!(
                    "| {size} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    cell.0.name(),
                    cell.1.name(),
                    fmt(raw, 0),
                    fmt(tonic, 0),
                    fmt(weft, 0),
                    ratio(weft, raw),
                    ratio(weft, tonic),
                    fmt(c_raw, 2),
                    fmt(c_tonic, 2),
                    fmt(c_weft, 2),
                );
            }
        }
        s += "\n";
    }

    s += "| workload | size | runtime | placement | metric | raw | tonic | weft | weft/raw | weft/tonic |\n";
    s += "|---|---|---|---|---|---:|---:|---:|---:|---:|\n";
    for (pi, plan) in plans.iter().enumerate() {
        if !active(pi) {
            continue;
        }
        for &size in &plan.sizes {
            for cell in cells(plan, flavours) {
                for m in metrics(plan.work.kind) {
                    let [raw, tonic, weft] = SYSTEMS.map(|sys| med(pi, size, cell, sys, m.get));
                    s += &format!(
                        "| {} | {} B | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                        plan.work.kind.name(),
                        size,
                        cell.0.name(),
                        cell.1.name(),
                        m.name,
                        fmt(raw, m.decimals),
                        fmt(tonic, m.decimals),
                        fmt(weft, m.decimals),
                        ratio(weft, raw),
                        ratio(weft, tonic),
                    );
                }
            }
        }
    }

    // Issue 20: what moving to the multi-thread runtime costs each system, as a factor ≥ 1 when
    // it is slower (current ÷ multi for rates, multi ÷ current for times and CPU).
    let mut slow = String::new();
    let (mut slow_met, mut slow_all) = (0, 0);
    for sd in slowdowns() {
        let Some(pi) = find(sd.kind) else { continue };
        for &size in &plans[pi].sizes {
            for cell in cells(&plans[pi], flavours).into_iter().filter(|c| c.0 == Flavour::Multi) {
                let base = reference(cell.1);
                let [raw, tonic, weft] = SYSTEMS.map(|sys| {
                    let (m, c) = (med(pi, size, cell, sys, sd.get), med(pi, size, base, sys, sd.get));
                    if sd.higher_is_better { c / m } else { m / c }
                });
                let verdict = if weft.is_nan() {
                    "n/a"
                } else if weft <= 1.3 {
                    slow_met += 1;
                    "met"
                } else {
                    "MISSED"
                };
                slow_all += usize::from(!weft.is_nan());
                slow += &format!(
                    "| {} | {size} B | {} vs {} | {} | {} | {} | {} | {} | {} | ≤ 1.3 | {verdict} |\n",
                    sd.kind.name(),
                    cell_name(cell),
                    cell_name(base),
                    sd.metric,
                    fmt(med(pi, size, base, "weft", sd.get), if sd.higher_is_better { 0 } else { 2 }),
                    fmt(med(pi, size, cell, "weft", sd.get), if sd.higher_is_better { 0 } else { 2 }),
                    fmt(raw, 2),
                    fmt(tonic, 2),
                    fmt(weft, 2),
                );
            }
        }
    }
    if !slow.is_empty() {
        s += "\nThe multi-thread runtime against the current-thread one (issue 20): the slowdown of \
              each system, current ÷ multi for rates and multi ÷ current for times and CPU (above 1: \
              slower on multi-thread); the target is Weft's.\n\n";
        s += "| workload | size | cells | metric | weft current | weft multi | raw slowdown | tonic slowdown \
              | weft slowdown | bound | verdict |\n";
        s += "|---|---|---|---|---:|---:|---:|---:|---:|---|---|\n";
        s += &slow;
        s += &format!("\nMet: {slow_met} of {slow_all}.\n");
    }

    // The issues' targets, checked on the medians above, in every cell.
    let mut t = String::new();
    let (mut met, mut all) = (0, 0);
    let mut check = |what: String, value: f64, ok: bool, bound: &str| {
        let verdict = if value.is_nan() {
            "n/a"
        } else if ok {
            met += 1;
            "met"
        } else {
            "MISSED"
        };
        all += usize::from(!value.is_nan());
        t += &format!("| {what} | {} | {bound} | {verdict} |\n", fmt(value, 2));
    };
    let runs_in = |pi: usize| cells(&plans[pi], flavours);
    for size in [16, 1024] {
        if let Some(pi) = find(Kind::UnaryLatency) {
            for cell in runs_in(pi) {
                let bound = if cell.1.like_split() { 1.15 } else { 1.5 };
                let get: fn(&Res) -> f64 = |r| r.p50_us;
                let v = med(pi, size, cell, "weft", get) / med(pi, size, cell, "raw", get);
                check(
                    format!("unary latency p50, {size} B, {}: weft/raw", cell_name(cell)),
                    v,
                    v <= bound,
                    &format!("≤ {bound}"),
                );
            }
            let get: fn(&Res) -> f64 = |r| r.per_op(r.client_cpu_us + r.server_cpu_us);
            for cell in runs_in(pi) {
                let v = med(pi, size, cell, "weft", get) / med(pi, size, cell, "tonic", get);
                check(
                    format!("CPU per unary call (client+server), {size} B, {}: weft/tonic", cell_name(cell)),
                    v,
                    v <= 0.5,
                    "≤ 0.5",
                );
            }
        }
        if let Some(pi) = find(Kind::UnaryThroughput) {
            for cell in runs_in(pi) {
                let v = med(pi, size, cell, "weft", Res::rate) / med(pi, size, cell, "tonic", Res::rate);
                check(
                    format!("unary throughput (64 in flight), {size} B, {}: weft/tonic", cell_name(cell)),
                    v,
                    v >= 5.0,
                    "≥ 5",
                );
                let v = med(pi, size, cell, "weft", Res::rate) / med(pi, size, cell, "raw", Res::rate);
                check(
                    format!("unary throughput (64 in flight), {size} B, {}: weft/raw", cell_name(cell)),
                    v,
                    v >= 0.5,
                    "≥ 0.5",
                );
                let v = med(pi, size, cell, "weft", |r| r.per_op(r.server_cpu_us));
                check(
                    format!("unary throughput (64 in flight), {size} B, {}: weft server CPU µs/call", cell_name(cell)),
                    v,
                    v <= 1.0,
                    "≤ 1",
                );
            }
        }
        if let Some(pi) = find(Kind::ServerStream) {
            for cell in runs_in(pi) {
                let v = med(pi, size, cell, "weft", Res::rate) / med(pi, size, cell, "tonic", Res::rate);
                check(format!("server stream msgs/s, {size} B, {}: weft/tonic", cell_name(cell)), v, v >= 1.5, "≥ 1.5");
            }
        }
        if let Some(pi) = find(Kind::PingPong) {
            for cell in runs_in(pi) {
                let get: fn(&Res) -> f64 = |r| r.p50_us;
                let v = med(pi, size, cell, "weft", get) / med(pi, size, cell, "raw", get);
                check(format!("channel ping-pong p50, {size} B, {}: weft/raw", cell_name(cell)), v, v <= 1.1, "≤ 1.1");
            }
        }
        if let Some(pi) = find(Kind::SlowConsumer) {
            for cell in runs_in(pi) {
                let v = med(pi, size, cell, "weft", |r| (r.hwm1_kb - r.rss0_kb) / 1024.0);
                check(
                    format!("slow consumer, {size} B, {}: weft server RSS growth, MiB", cell_name(cell)),
                    v,
                    v < 16.0,
                    "< 16",
                );
            }
        }
    }
    s += "\nTargets (issues 7 and 20), on the medians above:\n\n| target | value | bound | verdict |\n|---|---:|---|---|\n";
    s += &t;
    s += &format!("\nMet: {met} of {all}.\n");
    if !failures.is_empty() {
        s += "\nFailed runs:\n\n";
        for f in failures {
            s += &format!("- {f}\n");
        }
    }
    s
}
