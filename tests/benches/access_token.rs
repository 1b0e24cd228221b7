//! The load benchmark of `POST /v1/access-token`, run by `tests/bench` (which installs `wrk`
//! and builds the release `latch`), printing the README's tables.
//!
//! Every server is a process of its own pinned to core 0 (`taskset`); the load comes from `wrk`,
//! a separate, well-known load generator pinned to core 1, with the same settings for every
//! target (3 threads, `BENCH_CONNECTIONS` keep-alive connections, after a warm-up of every user
//! once, `BENCH_SECONDS`): the bare axum handler (this binary re-run as `--bare-server`), Latch on
//! SQLite, Latch on PostgreSQL, and 3 Latch replicas on one PostgreSQL (each wrk thread on its
//! own replica). It reports req/s, p50, p99 and p99.9, each target's ratio to the bare handler
//! of the same run, and the servers' RSS idle and after the load.
//!
//! Then the flat-cost runs, in alternating rounds (`BENCH_ROUNDS` of `BENCH_ROUND_SECONDS`, 9
//! of 10 s: longer in all than a usage window, so the steady state's usage writes are in it, the
//! ratio the median of the rounds'): 100 versus 100,000 connections whose tokens come due
//! through the run (the proactive refresher renews about 1 % of them a minute of its running
//! time against a counting token endpoint here), users picked at random, with the server's CPU
//! time a request, the token cache's hit ratio and the share of calls that had to wait for a
//! refresh (from `/metrics`); and 100,000 stored with 100 of them in use, which splits the gap
//! into what the stored rows and their churn cost and what spreading the requests over all of
//! them costs (`BENCH_SIZES` picks other sizes). And a refresh storm:
//! 1,000 connections expired at once, 3 replicas on PostgreSQL, 4 callers per connection.
//!
//! On a KVM guest whose idle vCPUs halt at once, the run sets the kernel's default halt polling
//! and puts the old value back ([`HaltPoll`]; `BENCH_HALT_POLL_NS=keep` leaves it).
//!
//! `BENCH_LOG=warn` (a `RUST_LOG` filter) shows the servers' logs on stderr.
//!
//! PostgreSQL targets need `LATCH_TEST_DATABASE_URL` (an admin URL; a database per target is
//! created and dropped).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::print_stdout,
    clippy::print_stderr
)] // a benchmark binary: fail loudly, print results

use latch_server::vault::{MasterKey, Sealed, Vault};
use latch_shared::api::host::{AccessTokenRequest, AccessTokenResponse, ActiveToken};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
/// Token lifetime of the flat-cost runs: with due times spread evenly, 1 % come due a minute.
const LIFETIME: i64 = 6000;

/// KVM's guest halt polling: how long an idle vCPU polls before it halts.
const HALT_POLL_NS: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";
/// The haltpoll module's default.
const DEFAULT_HALT_POLL_NS: &str = "200000";

/// Where the machine's idle vCPUs halt at once (`guest_halt_poll_ns` 0), each response that
/// finds `wrk` asleep costs the server an interrupt to a halted vCPU and a VM exit: 1 to 3.6 µs
/// a request on this kind of machine, more the slower the server (the closed loop's echo, not
/// the server's work). The kernel's default, 200 µs of polling first, is set for the run and
/// the old value put back; `BENCH_HALT_POLL_NS=keep` leaves the machine's.
struct HaltPoll {
    old: Option<String>,
    /// What the header says about it.
    said: String,
}

impl HaltPoll {
    fn set() -> HaltPoll {
        let Ok(old) = std::fs::read_to_string(HALT_POLL_NS) else {
            return HaltPoll { old: None, said: "idle vCPUs: no guest halt polling on this machine".into() };
        };
        let old = old.trim().to_owned();
        let keep = |why: &str| HaltPoll { old: None, said: format!("idle vCPUs poll {old} ns before halting ({why})") };
        if old != "0" || std::env::var("BENCH_HALT_POLL_NS").is_ok_and(|v| v == "keep") {
            return keep("the machine's setting");
        }
        match std::fs::write(HALT_POLL_NS, DEFAULT_HALT_POLL_NS) {
            Ok(()) => HaltPoll {
                said: format!(
                    "idle vCPUs poll {DEFAULT_HALT_POLL_NS} ns before halting (the kernel's default, set for the \
                     run; the machine had {old})"
                ),
                old: Some(old),
            },
            Err(e) => keep(&format!("cannot set {HALT_POLL_NS}: {e}")),
        }
    }
}

impl Drop for HaltPoll {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write(HALT_POLL_NS, old);
        }
    }
}

/// `BENCH_POSTGRES_CORES=2` (a `taskset` list) pins the machine's PostgreSQL processes to those
/// cores for the run (new backends inherit the postmaster's), and puts the old affinity back at
/// the end. Unpinned, PostgreSQL's work lands on the server's or the generator's core; on a
/// machine with a third core it can have its own. (On 2 cores, pinned to the generator's: the
/// server's CPU a request is fair to PostgreSQL, the rate is not.)
struct PostgresCores {
    /// The postmaster's affinity before, which every PostgreSQL process gets back.
    old: String,
    said: String,
}

impl PostgresCores {
    fn set() -> Option<PostgresCores> {
        let cores = std::env::var("BENCH_POSTGRES_CORES").ok()?;
        // Asked for and not possible: the run would measure something else than it says.
        let postmaster = Self::pids().into_iter().min().expect("BENCH_POSTGRES_CORES: no postgres process here");
        let out = Command::new("taskset").args(["-cp", &postmaster.to_string()]).output().expect("taskset");
        let old = String::from_utf8_lossy(&out.stdout).rsplit(':').next().unwrap_or_default().trim().to_owned();
        assert!(!old.is_empty(), "BENCH_POSTGRES_CORES: cannot read the postmaster's affinity");
        Self::pin(&cores);
        Some(PostgresCores {
            said: format!("PostgreSQL's processes on cores {cores} (BENCH_POSTGRES_CORES; they had {old})"),
            old,
        })
    }

    fn pids() -> Vec<u32> {
        let out = Command::new("pgrep").args(["-x", "postgres"]).output().map(|o| o.stdout).unwrap_or_default();
        String::from_utf8_lossy(&out).lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    fn pin(cores: &str) {
        for pid in Self::pids() {
            let status = Command::new("taskset").args(["-cp", cores, &pid.to_string()]).stdout(Stdio::null()).status();
            // A backend that ended meanwhile needs no affinity.
            if !status.is_ok_and(|s| s.success()) && Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("could not set PostgreSQL process {pid}'s cores to {cores}");
            }
        }
    }
}

impl Drop for PostgresCores {
    fn drop(&mut self) {
        Self::pin(&self.old);
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bare-server") {
        return bare_server();
    }
    let halt_poll = HaltPoll::set();
    let pinned = PostgresCores::set();
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 63);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let bench = Bench { seconds, connections, latch: latch_binary(), admin: admin_url() };
    // `BENCH_ONLY=flat` (or `targets`, `storm`, `renewals`) runs one part; the README's tables come from a full run.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    println!(
        "wrk {} threads, {connections} connections, {seconds} s per target after a warm-up (every user once); servers on core 0, wrk on core 1",
        WRK_THREADS
    );
    println!("{}", halt_poll.said);
    if let Some(pinned) = &pinned {
        println!("{}", pinned.said);
    }
    println!();
    let dir = tempfile::tempdir().unwrap();
    let mut pg = Vec::new();
    if part("targets") {
        targets(&bench, &rt, dir.path(), &mut pg);
    }
    if part("flat") {
        flat_cost(&bench, &rt, dir.path(), &mut pg);
    }
    if part("storm") {
        refresh_storm(&bench, &rt, dir.path(), &mut pg);
    }
    if part("renewals") {
        renewal_cost(&bench, &rt, dir.path(), &mut pg);
    }
    if let Some(admin) = &bench.admin {
        rt.block_on(drop_databases(admin, &pg));
    }
}

/// The fresh-token path of each target next to the bare handler.
fn targets(bench: &Bench, rt: &tokio::runtime::Runtime, dir: &Path, pg: &mut Vec<String>) {
    println!("| target | req/s | p50 | p99 | p99.9 | errors | % of bare | RSS idle → after |");
    println!("|---|---|---|---|---|---|---|---|");
    let bare = {
        let server = Server::bare();
        let result = bench.measure(rt, &server, 100);
        result.row("bare axum handler", None, &server.rss());
        result.rps
    };
    let sqlite = format!("sqlite://{}/bench.db", dir.display());
    rt.block_on(seed_fresh(&sqlite, 100));
    let server = Server::latch(&bench.latch, dir, &sqlite, 1, None);
    bench.measure(rt, &server, 100).row("Latch, SQLite", Some(bare), &server.rss());
    drop(server);
    if let Some(admin) = &bench.admin {
        let url = rt.block_on(create_database(admin, pg));
        rt.block_on(seed_fresh(&url, 100));
        let server = Server::latch(&bench.latch, dir, &url, 1, None);
        bench.measure(rt, &server, 100).row("Latch, PostgreSQL", Some(bare), &server.rss());
        drop(server);
        let replicas = Server::latch(&bench.latch, dir, &url, 3, None);
        bench.measure(rt, &replicas, 100).row("Latch, 3 replicas, PostgreSQL", Some(bare), &replicas.rss());
        drop(replicas);
    } else {
        eprintln!("*** PostgreSQL targets skipped: set LATCH_TEST_DATABASE_URL ***");
    }
}

/// 100 versus 100,000 connections under refresh churn, in alternating rounds.
///
/// All servers run, but only the one under load is scheduled: the others are stopped
/// (`SIGSTOP`), so their background work (usage writes, refreshes) falls in their own rounds,
/// never in another's. Rounds alternate (100, 100,000, …) and are short, so that the host's
/// drift, which moves a 30-second round here by 10 % and more, hits every size alike; the ratio
/// is the median of the rounds' ratios. A round is shorter than a usage window, so a connection
/// in use is never forgotten between its rounds and the steady state's usage writes are
/// measured. Tokens come due in wall-clock time, paused or not: they live as many times 100
/// minutes as there are sizes, so each server renews about 1 % of its connections a minute of
/// its own running time (100-minute tokens made a server that runs a third of the time renew
/// 3 % a minute in its rounds, catching up on what came due while it was stopped).
fn flat_cost(bench: &Bench, rt: &tokio::runtime::Runtime, dir: &Path, pg: &mut Vec<String>) {
    let rounds: usize = env_or("BENCH_ROUNDS", 9).max(1);
    let round_seconds: u64 = env_or("BENCH_ROUND_SECONDS", 10);
    // (stored, in use): the third run stores as many as the second but requests as few as the
    // first, so the gap splits into what the stored rows and their churn cost (third against
    // first) and what the requests' spread over them costs (second against third).
    // `BENCH_SIZES=100,30000,100000:100` measures other sizes (`stored` or `stored:in use`; the
    // first is the one the others are compared with).
    let sizes = std::env::var("BENCH_SIZES")
        .map(|s| parse_sizes(&s).unwrap_or_else(|| panic!("BENCH_SIZES: {s:?} is not like 100,30000,100000:100")))
        .unwrap_or_else(|_| vec![(100, 100), (100_000, 100_000), (100_000, 100)]);
    println!();
    println!("Flat cost: {rounds} alternating rounds of {round_seconds} s per size");
    println!();
    println!(
        "| backend | connections | req/s | p50 | p99 | % of {} | rounds | CPU a request | cache hits | waited for a refresh | renewed in the run | RSS after |",
        sizes[0].1
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let provider = rt.block_on(TokenEndpoint::start(Duration::ZERO));
    for (backend, admin) in bench.backends() {
        let mut runs = Vec::new();
        for &(n, users) in &sizes {
            let url = match &admin {
                Some(admin) => rt.block_on(create_database(admin, pg)),
                None => format!("sqlite://{}/flat-{n}-{users}.db", dir.display()),
            };
            rt.block_on(seed_churn(&url, n, LIFETIME * sizes.len() as i64));
            let server = Server::latch(&bench.latch, dir, &url, 1, Some(&provider.url));
            let renewed = provider.calls.load(Ordering::SeqCst);
            bench.warm_up(rt, &server, users);
            let before = rt.block_on(server.metrics());
            server.pause();
            let renewed = provider.calls.load(Ordering::SeqCst) - renewed;
            let after = Metrics::new();
            runs.push(FlatRun { n, users, server, before, after, renewed, results: Vec::new(), cpu: 0.0 });
        }
        for _ in 0..rounds {
            for run in &mut runs {
                run.server.resume();
                let (calls, cpu) = (provider.calls.load(Ordering::SeqCst), run.server.cpu_seconds());
                run.results.push(bench.load_for(&run.server, run.users, round_seconds));
                run.renewed += provider.calls.load(Ordering::SeqCst) - calls;
                run.cpu += run.server.cpu_seconds() - cpu;
                if run.results.len() == rounds {
                    run.after = rt.block_on(run.server.metrics());
                }
                run.server.pause();
            }
        }
        for (i, run) in runs.iter().enumerate() {
            let ratios: Vec<f64> = (0..rounds).map(|r| run.results[r].rps / runs[0].results[r].rps).collect();
            let count =
                |name: &str| run.after.get(name).copied().unwrap_or(0.0) - run.before.get(name).copied().unwrap_or(0.0);
            let miss = |reason: &str| count(&format!("latch_token_cache_misses_total{{reason=\"{reason}\"}}"));
            let size = if run.users == run.n { run.n.to_string() } else { format!("{} ({} in use)", run.n, run.users) };
            eprintln!(
                "{backend} {size}: misses absent {} expired {} changed {}; rounds {}; their p99 {}",
                miss("absent"),
                miss("expired"),
                miss("changed"),
                run.results.iter().map(|r| format!("{:.0}", r.rps)).collect::<Vec<_>>().join(", "),
                run.results.iter().map(|r| ms(r.p99_us)).collect::<Vec<_>>().join(", ")
            );
            let hits = count("latch_token_cache_hits_total");
            let lookups = (hits + miss("absent") + miss("expired") + miss("changed")).max(1.0);
            let waits = count("latch_access_token_refresh_waits_total");
            let median = median_by(&run.results, |r| r.rps);
            let (cpu, base) = (run.cpu_a_request(), runs[0].cpu_a_request());
            let cpu_each = format!("{:.1} µs ({:.0} %)", cpu, 100.0 * base / cpu);
            let (ratio, each) = if i == 0 {
                ("100 %".to_owned(), String::new())
            } else {
                let each: Vec<String> = ratios.iter().map(|r| format!("{:.0} %", 100.0 * r)).collect();
                (format!("{:.0} %", 100.0 * median_by(&ratios, |r| *r)), each.join(", "))
            };
            println!(
                "| {backend} | {size} | {:.0} | {} | {} | {ratio} | {each} | {cpu_each} | {:.1} % | {:.3} % | {} | {} MiB |",
                median.rps,
                ms(median.p50_us),
                ms(median.p99_us),
                100.0 * hits / lookups,
                100.0 * waits / lookups,
                run.renewed,
                run.server.rss().1 / 1024,
            );
        }
    }
}

/// `100,100000:100` as (stored, in use) pairs: at least two, each in use at least 1 and at most
/// stored.
fn parse_sizes(s: &str) -> Option<Vec<(usize, usize)>> {
    let sizes = s
        .split(',')
        .map(|size| {
            let (n, users) = size.trim().split_once(':').unwrap_or((size.trim(), size.trim()));
            let (n, users) = (n.parse().ok()?, users.parse().ok()?);
            (1..=n).contains(&users).then_some((n, users))
        })
        .collect::<Option<Vec<_>>>()?;
    (sizes.len() >= 2).then_some(sizes)
}

/// One size of the flat-cost runs.
struct FlatRun {
    /// Connections stored, and how many of them the requests spread over.
    n: usize,
    users: usize,
    server: Server,
    /// The counters after the warm-up and after the last round.
    before: Metrics,
    after: Metrics,
    /// Provider calls in this server's own time (its warm-up and rounds).
    renewed: usize,
    results: Vec<WrkResult>,
    /// The server's CPU seconds in its rounds.
    cpu: f64,
}

impl FlatRun {
    /// The server's CPU time a request over all its rounds, in µs: less at the mercy of the
    /// host's noise than the rate, which also counts what took the server's core from it.
    fn cpu_a_request(&self) -> f64 {
        self.cpu * 1e6 / self.results.iter().map(|r| r.requests).sum::<u64>().max(1) as f64
    }
}

type Metrics = std::collections::HashMap<String, f64>;

/// The result whose `key` is the median.
fn median_by<T>(items: &[T], key: impl Fn(&T) -> f64) -> &T {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted[sorted.len() / 2]
}

/// 1,000 connections expired at once, 3 replicas, 4 callers each.
fn refresh_storm(bench: &Bench, rt: &tokio::runtime::Runtime, dir: &Path, pg: &mut Vec<String>) {
    if let Some(admin) = &bench.admin {
        let slow = rt.block_on(TokenEndpoint::start(Duration::from_millis(50)));
        let url = rt.block_on(create_database(admin, pg));
        let n = 1000;
        rt.block_on(seed_expired(&url, n));
        let replicas = Server::latch(&bench.latch, dir, &url, 3, Some(&slow.url));
        let started = Instant::now();
        let failures = rt.block_on(storm(&replicas, n, 4));
        let took = started.elapsed();
        println!();
        println!(
            "Refresh storm: {n} connections expired at once, 3 replicas on PostgreSQL, 4 callers each ({} requests, \
             64 at a time, round-robin): {} provider calls ({:.2} per expiry), {failures} callers not served, \
             drained in {} ms; the token endpoint itself answers in 50 ms.",
            n * 4,
            slow.calls.load(Ordering::SeqCst),
            slow.calls.load(Ordering::SeqCst) as f64 / n as f64,
            took.as_millis()
        );
    }
}

/// Token lifetime of the renewal-cost runs: 100,000 connections come due at about 42 a second,
/// each renewed as it enters the refresher's 10-minute window (a quarter of its lifetime).
const RENEWAL_LIFETIME: i64 = 2400;

/// What one proactive renewal costs the server, with no request load: its CPU time over
/// `BENCH_RENEWAL_SECONDS` (45) while 100,000 connections come due ([`RENEWAL_LIFETIME`]),
/// less that of the same server with 100 (its idle upkeep), per provider call. Measured after
/// the first rounds, so the backlog that came due while seeding is not in it. This is the part
/// of the flat-cost gap the churn itself costs, apart from the requests.
fn renewal_cost(bench: &Bench, rt: &tokio::runtime::Runtime, dir: &Path, pg: &mut Vec<String>) {
    let seconds: u64 = env_or("BENCH_RENEWAL_SECONDS", 45);
    let provider = rt.block_on(TokenEndpoint::start(Duration::ZERO));
    println!();
    println!(
        "Renewal cost: no requests, {seconds} s after the first rounds, tokens of {RENEWAL_LIFETIME} s coming due"
    );
    println!();
    println!("| backend | connections | renewed | server CPU | CPU a renewal (less the 100's idle upkeep) |");
    println!("|---|---|---|---|---|");
    for (backend, admin) in bench.backends() {
        let mut idle = None;
        for n in [100, 100_000] {
            let url = match &admin {
                Some(admin) => rt.block_on(create_database(admin, pg)),
                None => format!("sqlite://{}/renewals-{n}.db", dir.display()),
            };
            rt.block_on(seed_churn(&url, n, RENEWAL_LIFETIME));
            let since_start = provider.calls.load(Ordering::SeqCst);
            let server = Server::latch(&bench.latch, dir, &url, 1, Some(&provider.url));
            // The first round starts at once and takes what came due while seeding.
            std::thread::sleep(Duration::from_secs(20));
            let (calls, cpu) = (provider.calls.load(Ordering::SeqCst), server.cpu_seconds());
            std::thread::sleep(Duration::from_secs(seconds));
            let renewed = provider.calls.load(Ordering::SeqCst) - calls;
            let cpu = server.cpu_seconds() - cpu;
            let each = match idle {
                Some(idle_cpu) if renewed > 0 => format!("{:.0} µs", (cpu - idle_cpu) * 1e6 / renewed as f64),
                Some(_) => "no renewal in the window (longer BENCH_RENEWAL_SECONDS)".to_owned(),
                None => "(idle upkeep)".to_owned(),
            };
            idle.get_or_insert(cpu);
            println!("| {backend} | {n} | {renewed} | {cpu:.2} s | {each} |");
            // For a run under `BENCH_SERVER_WRAPPER` (instruction counts cover the whole process).
            eprintln!(
                "{backend} {n}: {} renewals since the server started",
                provider.calls.load(Ordering::SeqCst) - since_start
            );
        }
    }
}

const WRK_THREADS: usize = 3;

struct Bench {
    seconds: u64,
    connections: usize,
    latch: PathBuf,
    admin: Option<String>,
}

struct WrkResult {
    requests: u64,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    errors: u64,
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

impl WrkResult {
    fn row(&self, name: &str, bare: Option<f64>, rss: &(u64, u64)) {
        let ratio = bare.map_or("100 %".to_owned(), |b| format!("{:.0} %", 100.0 * self.rps / b));
        println!(
            "| {name} | {:.0} | {} | {} | {} | {} | {ratio} | {} → {} MiB |",
            self.rps,
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            self.errors,
            rss.0 / 1024,
            rss.1 / 1024
        );
    }
}

impl Bench {
    /// The backends a part runs on: SQLite, and PostgreSQL when there is a server;
    /// `BENCH_BACKEND=sqlite` (or `postgresql`) keeps one.
    fn backends(&self) -> Vec<(&'static str, Option<String>)> {
        let mut backends = vec![("SQLite", None)];
        if let Some(admin) = &self.admin {
            backends.push(("PostgreSQL", Some(admin.clone())));
        }
        if let Ok(only) = std::env::var("BENCH_BACKEND") {
            backends.retain(|(name, _)| name.eq_ignore_ascii_case(&only));
            assert!(
                !backends.is_empty(),
                "BENCH_BACKEND={only}: no such backend here (sqlite, or postgresql with LATCH_TEST_DATABASE_URL set)"
            );
        }
        backends
    }

    /// Warms up for a second, then loads `server` for the run's seconds; `users` is how many
    /// different users the requests spread over (at random).
    fn measure(&self, rt: &tokio::runtime::Runtime, server: &Server, users: usize) -> WrkResult {
        self.warm_up(rt, server, users);
        self.load(server, users)
    }

    /// Every user once, in order, so a steady state, not a cold start, is measured: a [`storm`]
    /// of one caller per user from this process, 64 requests at a time, until each is answered.
    /// Not wrk: it cannot stop at a count (its threads can, but it still waits out its
    /// duration), and a warm-up of a fixed length either left users cold (30 % of 100,000 on a
    /// slow machine, their first reads then fell in the measured load) or outlived the cache's
    /// TTL.
    fn warm_up(&self, rt: &tokio::runtime::Runtime, server: &Server, users: usize) {
        let started = Instant::now();
        let failed = rt.block_on(storm(server, users, 1));
        assert_eq!(failed, 0, "every warm-up request must be answered with a token");
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("warm-up of {users} users: {seconds:.1} s, {:.0} req/s", users as f64 / seconds);
    }

    /// The measured load.
    fn load(&self, server: &Server, users: usize) -> WrkResult {
        self.load_for(server, users, self.seconds)
    }

    fn load_for(&self, server: &Server, users: usize, seconds: u64) -> WrkResult {
        let script = wrk_script(&server.ports, &server.key, users);
        let result = self.wrk(&script, server.ports[0], seconds);
        server.rss_after.set(server.rss_now());
        result
    }

    /// One wrk run; it checks it can reach `port` before its threads spread over the script's.
    fn wrk(&self, script: &Path, port: u16, seconds: u64) -> WrkResult {
        let out = Command::new("taskset")
            .args(["-c", "1", "wrk", "--latency", "-t", &WRK_THREADS.to_string()])
            .args(["-c", &self.connections.to_string(), "-d", &format!("{seconds}s"), "-s"])
            .arg(script)
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .expect("wrk (tests/bench installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("RESULT "))
            .unwrap_or_else(|| panic!("wrk said: {text}{}", String::from_utf8_lossy(&out.stderr)));
        let v: Vec<f64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
        WrkResult {
            requests: v[0] as u64,
            rps: v[0] / (v[1] / 1e6),
            p50_us: v[2] as u64,
            p99_us: v[3] as u64,
            p999_us: v[4] as u64,
            errors: v[5] as u64,
        }
    }
}

/// A wrk script: each thread on one of `ports` (in turn), POSTs for a random one of `users`.
fn wrk_script(ports: &[u16], key: &str, users: usize) -> PathBuf {
    let ports = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let script = format!(
        r#"local ports = {{ {ports} }}
local next_port = 1
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/json"
function setup(thread)
  thread.addr = wrk.lookup("127.0.0.1", tostring(ports[next_port]))[1]
  next_port = next_port % #ports + 1
end
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  local body = '{{"user_id":"user-' .. (math.random({users}) - 1) .. '","provider":"acme"}}'
  return wrk.format("POST", "/v1/access-token", nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"#
    );
    let path = std::env::temp_dir().join(format!("latch-bench-{}.lua", std::process::id()));
    std::fs::write(&path, script).unwrap();
    path
}

/// Server processes of one target, pinned to core 0, killed when dropped.
struct Server {
    children: Vec<Child>,
    ports: Vec<u16>,
    key: String,
    rss_idle: u64,
    rss_after: std::cell::Cell<u64>,
}

/// Sends `signal` (`-STOP`, `-TERM`, …) to `child`; whether it was delivered.
fn kill(child: &Child, signal: &str) -> bool {
    Command::new("kill").args([signal, &child.id().to_string()]).status().is_ok_and(|s| s.success())
}

/// `BENCH_SERVER_WRAPPER`, if set: what `latch serve` runs under.
fn server_wrapper() -> Option<String> {
    std::env::var("BENCH_SERVER_WRAPPER").ok().filter(|w| !w.trim().is_empty())
}

impl Drop for Server {
    fn drop(&mut self) {
        // A wrapper (a profiler) writes its data when the server exits: SIGTERM, the server's
        // graceful stop, and up to a minute for it; then SIGKILL, as without a wrapper.
        // Every replica is told first, so they stop together rather than one after another.
        if server_wrapper().is_some() {
            for signal in ["-CONT", "-TERM"] {
                self.children.iter().for_each(|child| _ = kill(child, signal));
            }
            for child in &mut self.children {
                for _ in 0..600 {
                    if child.try_wait().is_ok_and(|s| s.is_some()) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_ready(port: u16, path: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let ok = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &format!("http://127.0.0.1:{port}{path}")])
                .status()
                .is_ok_and(|s| s.success());
            if ok || path.is_empty() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server on port {port} did not become ready");
}

impl Server {
    /// The floor: this binary as a bare axum handler that parses the same body and answers a
    /// same-shaped JSON, no auth, no storage.
    fn bare() -> Self {
        let port = free_port();
        let child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(std::env::current_exe().unwrap())
            .args(["--bare-server", &port.to_string()])
            .spawn()
            .unwrap();
        wait_ready(port, "");
        let mut server =
            Server { children: vec![child], ports: vec![port], key: "none".into(), rss_idle: 0, rss_after: 0.into() };
        server.rss_idle = server.rss_now();
        server
    }

    /// `replicas` `latch serve` processes on `database_url`, with the provider `acme` whose token
    /// endpoint is `token_url` (the refresher on), or none (the refresher off).
    fn latch(latch: &Path, dir: &Path, database_url: &str, replicas: usize, token_url: Option<&str>) -> Self {
        let token = token_url.unwrap_or("http://127.0.0.1:9");
        let config = dir.join(format!("latch-{}.toml", free_port()));
        std::fs::write(
            &config,
            format!(
                "background_refresh = {}\nallow_orphaned_providers = true\n\
                 [rate_limits]\nhost_per_second = 10000000\nhost_burst = 10000000\n\
                 provider_per_second = 100000\nprovider_burst = 100000\n\
                 [providers.acme]\nclient_id = \"c\"\nauthorization_url = \"{token}/authorize\"\n\
                 token_url = \"{token}/token\"\nclient_secret_env = \"BENCH_SECRET\"\n\
                 identity = {{ url = \"{token}/me\", account_identifier = \"$.sub\" }}\n",
                token_url.is_some()
            ),
        )
        .unwrap();
        let wrapper = server_wrapper();
        let command = |args: &[&str]| {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]);
            // `BENCH_SERVER_WRAPPER` runs `latch serve` under another program, e.g. `valgrind
            // --tool=callgrind`: instruction counts, which the host's noise does not move.
            if let (["serve"], Some(wrapper)) = (args, &wrapper) {
                c.args(wrapper.split_whitespace());
            }
            c.arg(latch)
                .args(args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("LATCH_CONFIG", &config)
                .env("LATCH_DATABASE_URL", database_url)
                .env("LATCH_MASTER_KEY", MASTER_KEY)
                .env("BENCH_SECRET", "bench-secret")
                .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "error".into()));
            // Allocator experiments reach the servers only: `BENCH_GLIBC_TUNABLES`
            // (`glibc.malloc.hugetlb=1`), `BENCH_LD_PRELOAD` (another malloc), `BENCH_MIMALLOC_*`
            // (mimalloc's options, e.g. `BENCH_MIMALLOC_VERBOSE=1`).
            for (name, value) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if let Some(name) = name.strip_prefix("BENCH_")
                    && (["GLIBC_TUNABLES", "LD_PRELOAD"].contains(&name) || name.starts_with("MIMALLOC_"))
                {
                    c.env(name, value);
                }
            }
            c
        };
        let out = command(&["api-keys", "create", "--name", &format!("bench-{}", free_port())]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
        let children: Vec<Child> = ports
            .iter()
            .map(|p| {
                let mut serve = command(&["serve"]);
                // A process group of its own, whose parent (this process) is outside it, is never
                // orphaned: the kernel sends SIGHUP to an orphaned group with a stopped member
                // when any member exits, which killed the paused servers when the benchmark ran
                // from a detached script (each `kill` below is such a member).
                serve.process_group(0);
                serve.env("LATCH_LISTEN", format!("127.0.0.1:{p}")).stdout(Stdio::null());
                if std::env::var_os("BENCH_LOG").is_none() {
                    serve.stderr(Stdio::null());
                }
                serve.spawn().unwrap()
            })
            .collect();
        for p in &ports {
            wait_ready(*p, "/readyz");
        }
        let mut server = Server { children, ports, key, rss_idle: 0, rss_after: 0.into() };
        server.rss_idle = server.rss_now();
        server
    }

    /// Stops the processes (`SIGSTOP`): no request, no background work, until [`Server::resume`].
    fn pause(&self) {
        self.signal("-STOP");
    }

    fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        for child in &self.children {
            assert!(kill(child, signal), "kill {signal} {}", child.id());
        }
    }

    /// The servers' resident memory in KiB, summed over replicas.
    fn rss_now(&self) -> u64 {
        self.proc_sum("status", |status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
    }

    /// `read` of each process's `/proc/PID/FILE`, summed over replicas. (`taskset` execs the
    /// server, so the child's pid is the server's.)
    fn proc_sum(&self, file: &str, read: impl Fn(&str) -> u64) -> u64 {
        self.children
            .iter()
            .map(|c| read(&std::fs::read_to_string(format!("/proc/{}/{file}", c.id())).unwrap_or_default()))
            .sum()
    }

    /// CPU time its processes have used so far, in seconds (`/proc/PID/stat`, in clock ticks
    /// of 1/100 s, as on every Linux this runs on).
    fn cpu_seconds(&self) -> f64 {
        let ticks = self.proc_sum("stat", |stat| {
            // After the command name (in parentheses): state is field 3, utime 14, stime 15.
            let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
            fields.get(11..13).map_or(0, |t| t.iter().filter_map(|x| x.parse::<u64>().ok()).sum())
        });
        ticks as f64 / 100.0
    }

    fn rss(&self) -> (u64, u64) {
        (self.rss_idle, self.rss_after.get())
    }

    /// The counters of the first replica's `/metrics`.
    async fn metrics(&self) -> Metrics {
        let text = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/metrics", self.ports[0]))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }
}

/// `--bare-server PORT`: the bare handler, on a 2-thread runtime like the servers.
fn bare_server() {
    let port: u16 = std::env::args().nth(2).and_then(|p| p.parse().ok()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        async fn handler(axum::Json(req): axum::Json<AccessTokenRequest>) -> axum::Json<AccessTokenResponse> {
            axum::Json(AccessTokenResponse::Active(ActiveToken {
                active: true,
                access_token: format!("token-for-{}", req.user_id.unwrap_or_default()),
                token_type: "bearer".into(),
                expires_at: None,
                scopes: vec!["read".into(), "write".into()],
                missing_scopes: vec![],
                connection_id: "conn_0192aaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                account_id: "acct-1".into(),
                incoming_webhook_url: None,
            }))
        }
        let app = axum::Router::new().route("/v1/access-token", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

/// A counting token endpoint (rotating refresh tokens, one-hour… `LIFETIME` tokens) answering
/// after `delay`.
struct TokenEndpoint {
    url: String,
    calls: Arc<AtomicUsize>,
}

impl TokenEndpoint {
    async fn start(delay: Duration) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    axum::Json(
                        serde_json::json!({"access_token": format!("at-{n}"), "refresh_token": format!("rt-{n}"),
                        "expires_in": LIFETIME, "token_type": "Bearer"}),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, calls }
    }
}

fn latch_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("latch");
    assert!(
        bin.exists(),
        "{} is missing: tests/bench builds it (cargo build --release -p latch-server)",
        bin.display()
    );
    bin
}

fn admin_url() -> Option<String> {
    std::env::var("LATCH_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

async fn create_database(admin: &str, created: &mut Vec<String>) -> String {
    use sqlx::Connection as _;
    let name = format!("latch_bench_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
    created.push(name.clone());
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn drop_databases(admin: &str, names: &[String]) {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    for name in names {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
    }
}

/// Migrates `url` and stores `n` connections `user-0…` to `acme` with sealed tokens, issued at
/// `issued(i)` and expiring at `expires(i)`, in batches of one statement each.
async fn seed(url: &str, n: usize, issued: impl Fn(usize) -> i64, expires: impl Fn(usize) -> i64) {
    let store = latch_server::store::Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let vault = Vault::new(MasterKey::from_base64(MASTER_KEY).unwrap(), []);
    drop(store);
    /// (id, user, sealed access, sealed refresh, issued, expires)
    type Row = (String, String, Vec<u8>, Vec<u8>, i64, i64);
    let rows: Vec<Row> = (0..n)
        .map(|i| {
            let id = latch_server::store::new_id("conn");
            let access = vault.seal_str(Sealed::AccessToken.slot(&id), &format!("at-seed-{i}"));
            let refresh = vault.seal_str(Sealed::RefreshToken.slot(&id), &format!("rt-seed-{i}"));
            (id, format!("user-{i}"), access, refresh, issued(i), expires(i))
        })
        .collect();
    let columns = "id, provider, user_id, organization_id, account_id, status, scopes, access_token, refresh_token, \
                   token_type, access_token_expires_at, created_at, updated_at, last_refreshed_at";
    for chunk in rows.chunks(500) {
        let values: Vec<String> = (0..chunk.len())
            .map(|r| {
                let b = r * 8;
                format!(
                    "(${}, 'acme', ${}, '', 'acct-1', 'active', 'read write', ${}, ${}, 'bearer', ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                )
            })
            .collect();
        let sql = format!("INSERT INTO connections ({columns}) VALUES {}", values.join(", "));
        macro_rules! insert {
            ($conn:expr) => {{
                let mut q = sqlx::query(&sql);
                for (id, user, access, refresh, issued, expires) in chunk {
                    q = q
                        .bind(id)
                        .bind(user)
                        .bind(access)
                        .bind(refresh)
                        .bind(expires)
                        .bind(issued)
                        .bind(issued)
                        .bind(issued);
                }
                q.execute($conn).await.unwrap();
            }};
        }
        if url.starts_with("sqlite:") {
            use sqlx::Connection as _;
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            insert!(&mut c);
        } else {
            use sqlx::Connection as _;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            insert!(&mut c);
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `n` connections with day-long tokens: always fresh.
async fn seed_fresh(url: &str, n: usize) {
    let now = now();
    seed(url, n, |_| now, |_| now + 86_400).await;
}

/// `n` connections whose `lifetime` tokens come due evenly: one in `lifetime / n` seconds,
/// starting just outside the refresher's 10-minute window (1 % a minute for `LIFETIME`).
async fn seed_churn(url: &str, n: usize, lifetime: i64) {
    let now = now();
    let expires = move |i: usize| now + 600 + 5 + (i as i64 * lifetime) / n as i64;
    seed(url, n, move |i| expires(i) - lifetime, expires).await;
}

/// `n` connections whose tokens expired a second ago.
async fn seed_expired(url: &str, n: usize) {
    let now = now();
    seed(url, n, |_| now - 3600, |_| now - 1).await;
}

/// `callers` requests for each of `n` connections, 64 at a time, round-robin over the replicas;
/// returns how many were not answered with a token.
async fn storm(server: &Server, n: usize, callers: usize) -> usize {
    use futures::StreamExt as _;
    let client = reqwest::Client::new();
    let requests = (0..n * callers).map(|i| {
        let url = format!("http://127.0.0.1:{}/v1/access-token", server.ports[i % server.ports.len()]);
        let body = format!("{{\"user_id\":\"user-{}\",\"provider\":\"acme\"}}", i % n);
        let request = client.post(url).bearer_auth(&server.key).header("content-type", "application/json").body(body);
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    r.json::<serde_json::Value>().await.is_ok_and(|v| v["active"] == true)
                }
                _ => false,
            }
        }
    });
    futures::stream::iter(requests).buffer_unordered(64).filter(|ok| std::future::ready(!ok)).count().await
}
