//! What every system shares: workload parameters, process accounting, the start/end marks that
//! let the orchestrator sample the server, and the one-line result a client prints.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A workload as the client runs it. Every loop it drives is bounded by `n` and by `secs`.
#[derive(Clone, Debug)]
pub struct Work {
    pub kind: Kind,
    /// Payload size in bytes.
    pub size: usize,
    /// Operations (calls, messages, round trips, streams or connections).
    pub n: u64,
    /// Unmeasured operations before the measured ones.
    pub warm: u64,
    /// Time limit of the measured part; a workload that reaches it stops and reports what it did.
    pub secs: f64,
    /// Calls in flight (unary throughput).
    pub inflight: usize,
    /// Slow consumer: messages read per burst, and the pause after each burst.
    pub burst: u64,
    pub pause_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    UnaryLatency,
    UnaryThroughput,
    ServerStream,
    PingPong,
    SlowConsumer,
    ScaleStreams,
    ScaleConns,
    /// Many connections at once, each with unary calls in flight, from several client
    /// processes (issue 20): opt-in, see `scaling.rs`. Here `n` is this process's connections,
    /// `inflight` its calls in flight over them, `warm` a warm-up in milliseconds before the
    /// measured window of `secs`.
    ConnScaling,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::UnaryLatency,
        Kind::UnaryThroughput,
        Kind::ServerStream,
        Kind::PingPong,
        Kind::SlowConsumer,
        Kind::ScaleStreams,
        Kind::ScaleConns,
        Kind::ConnScaling,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::UnaryLatency => "unary-latency",
            Kind::UnaryThroughput => "unary-throughput",
            Kind::ServerStream => "server-stream",
            Kind::PingPong => "ping-pong",
            Kind::SlowConsumer => "slow-consumer",
            Kind::ScaleStreams => "scale-streams",
            Kind::ScaleConns => "scale-conns",
            Kind::ConnScaling => "conn-scaling",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl Work {
    pub fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs_f64(self.secs)
    }

    pub fn payload(&self) -> bytes::Bytes {
        bytes::Bytes::from(vec![0xA5u8; self.size])
    }

    /// Command-line form, parsed back by [`Work::from_args`].
    pub fn to_args(&self) -> Vec<String> {
        vec![
            self.kind.name().to_owned(),
            format!("size={}", self.size),
            format!("n={}", self.n),
            format!("warm={}", self.warm),
            format!("secs={}", self.secs),
            format!("inflight={}", self.inflight),
            format!("burst={}", self.burst),
            format!("pause_ms={}", self.pause_ms),
        ]
    }

    pub fn from_args(args: &[String]) -> Result<Work> {
        let kind = args.first().and_then(|k| Kind::parse(k)).ok_or("unknown workload")?;
        let mut w = Work { kind, size: 16, n: 1000, warm: 0, secs: 10.0, inflight: 1, burst: 1, pause_ms: 0 };
        for arg in &args[1..] {
            let (k, v) = arg.split_once('=').ok_or_else(|| format!("bad argument `{arg}`"))?;
            match k {
                "size" => w.size = v.parse()?,
                "n" => w.n = v.parse()?,
                "warm" => w.warm = v.parse()?,
                "secs" => w.secs = v.parse()?,
                "inflight" => w.inflight = v.parse()?,
                "burst" => w.burst = v.parse()?,
                "pause_ms" => w.pause_ms = v.parse()?,
                _ => return Err(format!("unknown parameter `{k}`").into()),
            }
        }
        Ok(w)
    }
}

/// CPU time (user + system, all threads) this process has used, in microseconds.
pub fn own_cpu_us() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// (VmRSS, VmHWM) of this process in KiB.
pub fn own_memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Raises the soft limit on open files to the hard limit (the scale workload opens thousands).
pub fn raise_nofile() {
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The server side of a mark: what the server reports when the orchestrator asks.
/// The line is `STATS cpu_us=… rss_kb=… hwm_kb=…`; reading it resets the peak (VmHWM) to the
/// current RSS, so the next report's peak covers exactly the interval in between.
pub fn server_stats_line() -> String {
    let cpu = own_cpu_us();
    let (rss, hwm) = own_memory_kb();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    format!("STATS cpu_us={cpu} rss_kb={rss} hwm_kb={hwm}")
}

/// Serves the orchestrator's requests for statistics on stdin until stdin closes, then exits
/// the process: a server never outlives the orchestrator that started it.
pub fn spawn_stats_thread() {
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) if line.trim() == "stats" => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", server_stats_line());
                    let _ = out.flush();
                }
                Ok(_) => {}
            }
        }
    });
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ServerStats {
    pub cpu_us: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl ServerStats {
    pub fn parse(line: &str) -> Option<ServerStats> {
        let rest = line.trim().strip_prefix("STATS ")?;
        let mut s = ServerStats::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "cpu_us" => s.cpu_us = v,
                "rss_kb" => s.rss_kb = v,
                "hwm_kb" => s.hwm_kb = v,
                _ => {}
            }
        }
        Some(s)
    }
}

/// The client's side of a mark: prints `MARK`, and the orchestrator answers on stdin with the
/// server's `STATS` line. Blocking on purpose: nothing is measured while a mark is taken.
fn ask_server() -> Result<ServerStats> {
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "MARK")?;
        out.flush()?;
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    ServerStats::parse(&line).ok_or_else(|| format!("bad stats line from the orchestrator: {line:?}").into())
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub client_cpu_us: u64,
    pub server: ServerStats,
}

/// Start of the measured part: the server is sampled first, then the clock and own CPU.
pub fn begin() -> Result<Sample> {
    let server = ask_server()?;
    Ok(Sample { at: Instant::now(), client_cpu_us: own_cpu_us(), server })
}

/// End of the measured part: the clock and own CPU first, then the server.
pub fn end() -> Result<Sample> {
    let at = Instant::now();
    let client_cpu_us = own_cpu_us();
    let server = ask_server()?;
    Ok(Sample { at, client_cpu_us, server })
}

/// What a client reports: one line, `RESULT key=value …`.
#[derive(Debug)]
pub struct Outcome {
    pub ops: u64,
    pub start: Sample,
    pub end: Sample,
    /// Per-operation latencies in nanoseconds (empty where not measured).
    pub lat_ns: Vec<u64>,
}

impl Outcome {
    pub fn line(mut self) -> String {
        self.lat_ns.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.lat_ns.is_empty() {
                return 0.0;
            }
            let i = ((self.lat_ns.len() as f64 - 1.0) * p).round() as usize;
            self.lat_ns[i] as f64 / 1000.0
        };
        let secs = (self.end.at - self.start.at).as_secs_f64();
        format!(
            "RESULT ops={} secs={:.6} p50_us={:.2} p99_us={:.2} client_cpu_us={} server_cpu_us={} \
             rss0_kb={} rss1_kb={} hwm1_kb={}",
            self.ops,
            secs,
            pct(0.50),
            pct(0.99),
            self.end.client_cpu_us.saturating_sub(self.start.client_cpu_us),
            self.end.server.cpu_us.saturating_sub(self.start.server.cpu_us),
            self.start.server.rss_kb,
            self.end.server.rss_kb,
            self.end.server.hwm_kb,
        )
    }
}

/// The tokio runtime flavour a server or client process runs on, chosen by the orchestrator
/// through the environment variable [`FLAVOUR_VAR`] (`current`, the default, or `multi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flavour {
    /// `current_thread`: one thread runs every task and drives the I/O and the timers.
    Current,
    /// `multi_thread` as `#[tokio::main]` builds it: `enable_all`, as many workers as the cores
    /// the process may use (one when pinned to one core), the main future on the main thread.
    Multi,
}

/// The environment variable that tells `bench serve` and `bench client` their [`Flavour`].
pub const FLAVOUR_VAR: &str = "WEFT_BENCH_FLAVOUR";

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::Current, Flavour::Multi];

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Current => "current",
            Flavour::Multi => "multi",
        }
    }

    pub fn parse(s: &str) -> Option<Flavour> {
        Flavour::ALL.into_iter().find(|f| f.name() == s)
    }

    /// This process's flavour, from [`FLAVOUR_VAR`].
    pub fn from_env() -> Result<Flavour> {
        from_env(FLAVOUR_VAR, "flavour", Flavour::Current, Flavour::parse)
    }
}

/// The runtime of this process, of the flavour [`FLAVOUR_VAR`] names. `current_thread` is what
/// the harness has always measured (a pinned process where more threads only add cross-thread
/// wake-ups); `multi_thread` is what applications start with `#[tokio::main]`.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    let rt = match Flavour::from_env()? {
        Flavour::Current => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        // The worker count is tokio's default: `available_parallelism`, which honours the CPU
        // affinity `taskset` gave the process (and a cgroup quota), as in a container.
        Flavour::Multi => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.enable_all();
            // Diagnostic only (the orchestrator never sets it; needs `--cfg tokio_unstable`):
            // no LIFO slot, so a task woken by a worker's task queues behind the others, as on
            // the current-thread runtime (see BENCHMARKS.md, "Where the time goes").
            #[cfg(tokio_unstable)]
            if std::env::var_os("WEFT_BENCH_NO_LIFO").is_some() {
                builder.disable_lifo_slot();
            }
            builder.build()?
        }
    };
    Ok(rt)
}

/// The transport Weft's server and client speak in the transport comparison (`--transports`),
/// chosen by the orchestrator through [`TRANSPORT_VAR`]. Raw and tonic speak TCP only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transport {
    /// Plain TCP: what every other table of the harness measures.
    Tcp,
    /// RSocket over WebSocket (`ws://127.0.0.1:PORT/rsocket`): one binary message per frame.
    Ws,
    /// TLS over TCP (rustls), with the orchestrator's certificate for 127.0.0.1.
    Tls,
    /// RSocket over WebSocket over TLS (`wss://127.0.0.1:PORT/rsocket`).
    Wss,
    /// A Unix domain socket at the path in [`UNIX_SOCKET_VAR`].
    Unix,
}

/// The environment variable that tells `bench serve weft` and `bench client weft` their
/// [`Transport`] (`tcp`, the default, `ws`, `tls`, `wss` or `unix`).
pub const TRANSPORT_VAR: &str = "WEFT_BENCH_TRANSPORT";
/// The server's certificate (PEM) over `tls` and `wss`; self-signed, so the client trusts it
/// as its only root.
pub const TLS_CERT_VAR: &str = "WEFT_BENCH_TLS_CERT";
/// The server's private key (PEM) over `tls` and `wss`.
pub const TLS_KEY_VAR: &str = "WEFT_BENCH_TLS_KEY";
/// The socket's path over `unix`: the server binds it, the client connects to it.
pub const UNIX_SOCKET_VAR: &str = "WEFT_BENCH_UNIX_SOCKET";

impl Transport {
    /// Every transport, in the order of the report's columns.
    pub const ALL: [Transport; 5] = [Transport::Tcp, Transport::Ws, Transport::Tls, Transport::Wss, Transport::Unix];

    /// The name `--transports` and [`TRANSPORT_VAR`] take.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::Tls => "tls",
            Transport::Wss => "wss",
            Transport::Unix => "unix",
        }
    }

    /// The transport `s` names.
    pub fn parse(s: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == s)
    }

    /// This process's transport, from [`TRANSPORT_VAR`].
    pub fn from_env() -> Result<Transport> {
        from_env(TRANSPORT_VAR, "transport", Transport::Tcp, Transport::parse)
    }

    /// Whether it runs over TLS (and needs [`TLS_CERT_VAR`]).
    pub fn secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }
}

/// The kind of `Client` Weft's benchmark client makes (the client comparison, `--clients`),
/// chosen by the orchestrator through [`CLIENT_VAR`]; over TCP only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientKind {
    /// `Client::builder().connect(addr)`: one connection, what every other table measures.
    Plain,
    /// `.reconnect(Reconnect::new()).connect(addr)`: calls go through the endpoint that
    /// holds the current connection.
    Reconnect,
    /// `.connect_balanced([addr])`: calls go through the balancer (one member here).
    Balanced,
    /// `.reconnect(Reconnect::new()).retry(Retry::new()).connect(addr)`: a reconnecting client
    /// with a retry policy (the bench's calls are not idempotent: only the check runs).
    Retry,
}

/// The environment variable that tells `bench client weft` its [`ClientKind`] (`plain`, the
/// default, `reconnect`, `balanced` or `retry`).
pub const CLIENT_VAR: &str = "WEFT_BENCH_CLIENT";

impl ClientKind {
    /// Every kind, in the order of the report's columns.
    pub const ALL: [ClientKind; 4] =
        [ClientKind::Plain, ClientKind::Reconnect, ClientKind::Balanced, ClientKind::Retry];

    /// The name `--clients` and [`CLIENT_VAR`] take.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Plain => "plain",
            ClientKind::Reconnect => "reconnect",
            ClientKind::Balanced => "balanced",
            ClientKind::Retry => "retry",
        }
    }

    /// The kind `s` names.
    pub fn parse(s: &str) -> Option<ClientKind> {
        ClientKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// This process's kind of client, from [`CLIENT_VAR`].
    pub fn from_env() -> Result<ClientKind> {
        from_env(CLIENT_VAR, "client kind", ClientKind::Plain, ClientKind::parse)
    }
}

/// The value of the environment variable `var` as `parse` reads it (`default` if unset).
fn from_env<T>(var: &str, what: &str, default: T, parse: fn(&str) -> Option<T>) -> Result<T> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => parse(&v).ok_or_else(|| format!("{var}: unknown {what} `{v}`").into()),
    }
}

/// The file an environment variable names, read whole.
pub fn read_env_file(var: &str) -> Result<Vec<u8>> {
    let path = std::env::var(var).map_err(|_| format!("{var} is not set"))?;
    std::fs::read(&path).map_err(|e| format!("{var}: cannot read {path}: {e}").into())
}

/// The path an environment variable names.
pub fn env_path(var: &str) -> Result<std::path::PathBuf> {
    std::env::var_os(var).map(Into::into).ok_or_else(|| format!("{var} is not set").into())
}
