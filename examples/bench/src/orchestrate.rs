//! The orchestrator: runs every workload against every system, each run as a fresh server
//! process and client process pinned with `taskset`, relays the client's marks to the server,
//! and prints the table of medians and the targets.

use crate::common::{Kind, Result, ServerStats, Work};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const SYSTEMS: [&str; 3] = ["raw", "tonic", "weft"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Placement {
    /// Server on core 0, client on core 1: like a deployment.
    Split,
    /// Both on core 0: the software cost alone, no cross-core wake-ups.
    Shared,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::Split => "split",
            Placement::Shared => "shared",
        }
    }

    fn cores(self) -> (&'static str, &'static str) {
        match self {
            Placement::Split => ("0", "1"),
            Placement::Shared => ("0", "0"),
        }
    }
}

/// One workload as the orchestrator plans it.
struct Plan {
    work: Work,
    sizes: Vec<usize>,
    systems: Vec<&'static str>,
    placements: Vec<Placement>,
    runs: usize,
}

fn work(kind: Kind, n: u64, warm: u64, secs: f64) -> Work {
    Work { kind, size: 16, n, warm, secs, inflight: 1, burst: 1, pause_ms: 0 }
}

fn plans(quick: bool, runs: usize) -> Vec<Plan> {
    let both = vec![Placement::Split, Placement::Shared];
    let sizes = vec![16, 1024];
    let q = |full: u64, small: u64| if quick { small } else { full };
    let t = |full: f64, small: f64| if quick { small } else { full };
    vec![
        Plan {
            work: work(Kind::UnaryLatency, 20_000, q(2_000, 500), t(60.0, 10.0)),
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
            work: Work { burst: 1_000, pause_ms: 10, ..work(Kind::SlowConsumer, 10_000_000, 0, t(20.0, 3.0)) },
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
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(core: &str, args: &[String]) -> Result<Proc> {
        let exe = std::env::current_exe()?;
        let mut cmd = if have_taskset() {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let mut child = cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        if !have_taskset() {
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

    fn line(&self, until: Instant) -> Result<Option<String>> {
        match self.lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err("timed out waiting for a child process".into()),
        }
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes stdin (a server exits then) and waits up to `grace`; kills it after that.
    fn finish(mut self, grace: Duration) {
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

fn have_taskset() -> bool {
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
struct Res {
    ops: f64,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    client_cpu_us: f64,
    server_cpu_us: f64,
    rss0_kb: f64,
    rss1_kb: f64,
    hwm1_kb: f64,
}

impl Res {
    fn parse(line: &str) -> Option<Res> {
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

    fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.ops / self.secs } else { 0.0 }
    }

    fn per_op(&self, us: f64) -> f64 {
        if self.ops > 0.0 { us / self.ops } else { 0.0 }
    }
}

/// One client run against one fresh server.
fn run_one(system: &str, placement: Placement, work: &Work) -> Result<Res> {
    let (server_core, client_core) = placement.cores();
    let mut server = Proc::spawn(server_core, &["serve".into(), system.into(), "127.0.0.1:0".into()])?;
    let port = loop {
        let line = server.line(Instant::now() + Duration::from_secs(20))?.ok_or("the server exited")?;
        if let Some(port) = line.strip_prefix("PORT ") {
            break port.trim().parse::<u16>()?;
        }
    };
    let mut args = vec!["client".into(), system.into(), format!("127.0.0.1:{port}")];
    args.extend(work.to_args());
    let mut client = Proc::spawn(client_core, &args)?;
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

type Key = (usize, usize, Placement, &'static str); // (plan index, size, placement, system)

fn median(mut v: Vec<f64>) -> f64 {
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
    out: Option<String>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options { quick: false, runs: None, only: None, systems: SYSTEMS.to_vec(), out: None };
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
            "--out" => o.out = Some(it.next().ok_or("--out FILE")?.clone()),
            "-h" | "--help" => {
                println!(
                    "bench [--quick] [--runs N] [--only {}] [--systems raw,tonic,weft] [--out FILE]",
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
    let mut plans = plans(opts.quick, runs);
    for p in &mut plans {
        p.systems.retain(|s| opts.systems.contains(s));
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
                for &placement in &plan.placements {
                    // Alternate systems workload by workload, rotating who goes first each run,
                    // so that drift on a shared machine hits them alike.
                    let n = plan.systems.len();
                    for i in 0..n {
                        let system = plan.systems[(i + run) % n];
                        let w = Work { size, ..plan.work.clone() };
                        let t = Instant::now();
                        eprint!(
                            "[{:>5.0}s] {:<16} {:>4} B {:<6} run {}/{} {:<5} ",
                            started.elapsed().as_secs_f64(),
                            w.kind.name(),
                            size,
                            placement.name(),
                            run + 1,
                            plan.runs,
                            system
                        );
                        match run_one(system, placement, &w) {
                            Ok(r) => {
                                eprintln!(
                                    "{:>9.0} ops in {:.2}s  p50 {:.1}µs  ({:.1}s)",
                                    r.ops,
                                    r.secs,
                                    r.p50_us,
                                    t.elapsed().as_secs_f64()
                                );
                                results.entry((pi, size, placement, system)).or_default().push(r);
                            }
                            Err(e) => {
                                eprintln!("FAILED: {e}");
                                failures.push(format!("{} {size} B {} {system}: {e}", w.kind.name(), placement.name()));
                            }
                        }
                    }
                }
            }
        }
    }
    let report = report(&plans, &results, &failures, opts.quick, runs, started.elapsed());
    println!("{report}");
    let out = opts.out.unwrap_or_else(|| {
        let dir =
            std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
        format!("{dir}/bench-report.md")
    });
    if std::fs::write(&out, &report).is_ok() {
        eprintln!("report written to {out}");
    }
    Ok(())
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
    }
}

fn fmt(v: f64, decimals: usize) -> String {
    if v.is_nan() { "–".into() } else { format!("{v:.decimals$}") }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 { "–".into() } else { format!("{:.2}×", a / b) }
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn report(
    plans: &[Plan],
    results: &BTreeMap<Key, Vec<Res>>,
    failures: &[String],
    quick: bool,
    runs: usize,
    took: Duration,
) -> String {
    let med = |pi: usize, size: usize, pl: Placement, sys: &'static str, get: fn(&Res) -> f64| -> f64 {
        results.get(&(pi, size, pl, sys)).map(|rs| median(rs.iter().map(get).collect())).unwrap_or(f64::NAN)
    };
    let mut s = String::new();
    let model = shell("sh", &["-c", "lscpu | sed -n 's/^Model name: *//p'"]);
    // Which Weft was measured: the commit, and whether the runtime's sources differed from it.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let rev = shell("git", &["-C", root, "rev-parse", "--short", "HEAD"]);
    let dirty =
        !shell("git", &["-C", root, "status", "--porcelain", "--", "framework", "macros", "codegen"]).is_empty();
    let rev = if dirty { format!("{rev} with uncommitted changes to the runtime") } else { rev };
    s += &format!(
        "Run {} ({}) of Weft at {}, {} run(s) per cell (medians), took {:.0} s. Machine: {} CPU(s), {}; {}.\n\n",
        shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        if quick { "--quick" } else { "full" },
        rev,
        runs,
        took.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        model,
        shell("uname", &["-sr"]),
    );
    s += "| workload | size | placement | metric | raw | tonic | weft | weft/raw | weft/tonic |\n";
    s += "|---|---|---|---|---:|---:|---:|---:|---:|\n";
    for (pi, plan) in plans.iter().enumerate() {
        if plan.systems.is_empty() {
            continue;
        }
        for &size in &plan.sizes {
            for &pl in &plan.placements {
                for m in metrics(plan.work.kind) {
                    let [raw, tonic, weft] = SYSTEMS.map(|sys| med(pi, size, pl, sys, m.get));
                    s += &format!(
                        "| {} | {} B | {} | {} | {} | {} | {} | {} | {} |\n",
                        plan.work.kind.name(),
                        size,
                        pl.name(),
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

    // The targets, checked on the medians above.
    let find = |k: Kind| plans.iter().position(|p| p.work.kind == k && !p.systems.is_empty());
    let mut t = String::new();
    let mut check = |what: String, value: f64, ok: bool, bound: &str| {
        let verdict = if value.is_nan() {
            "n/a"
        } else if ok {
            "met"
        } else {
            "MISSED"
        };
        t += &format!("| {what} | {} | {bound} | {verdict} |\n", fmt(value, 2));
    };
    for size in [16, 1024] {
        if let Some(pi) = find(Kind::UnaryLatency) {
            for (pl, bound) in [(Placement::Split, 1.15), (Placement::Shared, 1.5)] {
                let get: fn(&Res) -> f64 = |r| r.p50_us;
                let v = med(pi, size, pl, "weft", get) / med(pi, size, pl, "raw", get);
                check(
                    format!("unary latency p50, {size} B, {}: weft/raw", pl.name()),
                    v,
                    v <= bound,
                    &format!("≤ {bound}"),
                );
            }
            let get: fn(&Res) -> f64 = |r| r.per_op(r.client_cpu_us + r.server_cpu_us);
            for pl in [Placement::Split, Placement::Shared] {
                let v = med(pi, size, pl, "weft", get) / med(pi, size, pl, "tonic", get);
                check(
                    format!("CPU per unary call (client+server), {size} B, {}: weft/tonic", pl.name()),
                    v,
                    v <= 0.5,
                    "≤ 0.5",
                );
            }
        }
        if let Some(pi) = find(Kind::UnaryThroughput) {
            for pl in [Placement::Split, Placement::Shared] {
                let v = med(pi, size, pl, "weft", Res::rate) / med(pi, size, pl, "tonic", Res::rate);
                check(
                    format!("unary throughput (64 in flight), {size} B, {}: weft/tonic", pl.name()),
                    v,
                    v >= 5.0,
                    "≥ 5",
                );
                let v = med(pi, size, pl, "weft", Res::rate) / med(pi, size, pl, "raw", Res::rate);
                check(
                    format!("unary throughput (64 in flight), {size} B, {}: weft/raw", pl.name()),
                    v,
                    v >= 0.5,
                    "≥ 0.5",
                );
            }
        }
        if let Some(pi) = find(Kind::ServerStream) {
            for pl in [Placement::Split, Placement::Shared] {
                let v = med(pi, size, pl, "weft", Res::rate) / med(pi, size, pl, "tonic", Res::rate);
                check(format!("server stream msgs/s, {size} B, {}: weft/tonic", pl.name()), v, v >= 1.5, "≥ 1.5");
            }
        }
        if let Some(pi) = find(Kind::PingPong) {
            for pl in [Placement::Split, Placement::Shared] {
                let get: fn(&Res) -> f64 = |r| r.p50_us;
                let v = med(pi, size, pl, "weft", get) / med(pi, size, pl, "raw", get);
                check(format!("channel ping-pong p50, {size} B, {}: weft/raw", pl.name()), v, v <= 1.1, "≤ 1.1");
            }
        }
        if let Some(pi) = find(Kind::SlowConsumer) {
            let v = med(pi, size, Placement::Split, "weft", |r| (r.hwm1_kb - r.rss0_kb) / 1024.0);
            check(format!("slow consumer, {size} B: weft server RSS growth, MiB"), v, v < 16.0, "< 16");
        }
    }
    s += "\nTargets (issue 7), on the medians above:\n\n| target | value | bound | verdict |\n|---|---:|---|---|\n";
    s += &t;
    if !failures.is_empty() {
        s += "\nFailed runs:\n\n";
        for f in failures {
            s += &format!("- {f}\n");
        }
    }
    s
}
