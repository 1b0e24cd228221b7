//! The fresh-token path's cache hit alone, at 100 and at 100,000 connections: the part of a
//! request that grows with the connections in use (issue 14's "flat cost").
//!
//! `tests/bench` measures the whole request through HTTP, where a layout change worth a few
//! hundred nanoseconds hides in the run-to-run noise of a 15–25 µs request. This measures the
//! same steps as a hit in `connections::access_token` (the cache lookup and its checks, the
//! answer decrypted and spliced, the usage count), in one process with the server's allocator,
//! on connections built like the benchmark's, so such a change shows in a minute:
//!
//! ```text
//! cargo bench -p latch-server --bench token_cache
//! ```
//!
//! `CACHE_SIZES=100,100000` and `CACHE_ROUNDS=7` change what it runs. Lookups pick a user at
//! random, as `tests/bench`'s load does; sizes alternate round by round, and each size reports
//! its median round.

// A benchmark stops at its first wrong answer.
#![allow(clippy::expect_used)]

use latch_server::connections::cache::TokenCache;
use latch_server::connections::ready::Ready;
use latch_server::store::changes::Changes;
use latch_server::store::connections::{ConnectionRow, Owner, TokenLookup};
use latch_server::usage::UsageRecorder;
use latch_server::vault::{MasterKey, Sealed, Vault};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// As the server's binary (`main.rs`): where entries sit in memory is what this measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LOOKUPS: usize = 1_000_000;

/// One size's connections, cached as a warm server holds them.
struct Cached {
    users: usize,
    cache: TokenCache,
    changes: Changes,
}

fn cached(vault: &Vault, users: usize, now: i64) -> Cached {
    let (cache, changes) = (TokenCache::default(), Changes::default());
    for i in 0..users {
        let (id, user) = (latch_server::store::new_id("conn"), format!("user-{i}"));
        let owner = Owner { provider: "acme", user_id: &user, organization_id: "", account_id: "acct-1" };
        let mut row = ConnectionRow::new(id, owner, now);
        row.scopes = String::from("read write").into();
        row.access_token = Some(vault.seal_str(Sealed::AccessToken.slot(&row.id), &format!("at-seed-{i}")));
        row.access_token_expires_at = Some(now + 86_400);
        let lookup = lookup(&user);
        cache.put(&lookup, Arc::new(Ready::new(&row).expect("renders")), changes.epoch(), &changes);
    }
    Cached { users, cache, changes }
}

fn lookup(user: &str) -> TokenLookup<'_> {
    TokenLookup { user_id: user, organization_id: "", provider: "acme", account_id: None, connection_id: None }
}

/// Nanoseconds a lookup over `LOOKUPS` random users: what `access_token` does on a hit.
fn round(c: &Cached, vault: &Vault, usage: &UsageRecorder, key: &Arc<str>, now: i64, seed: &mut u64) -> f64 {
    let mut user = String::with_capacity(16);
    let started = Instant::now();
    for _ in 0..LOOKUPS {
        // xorshift: a request's user, as cheap to pick as it is to parse.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        user.clear();
        let _ = write!(user, "user-{}", *seed % c.users as u64);
        let ready = c.cache.get(&lookup(&user), &c.changes).expect("every user is cached");
        assert!(ready.is_active());
        let chain = ready.chain(None).expect("a bearer token");
        assert!(!ready.needs_refresh(chain, now, 60));
        black_box(ready.answer(vault, chain).expect("opens"));
        usage.token_retrieved(&ready, key, now);
    }
    started.elapsed().as_nanos() as f64 / LOOKUPS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("CACHE_SIZES")
        .unwrap_or_else(|_| "100,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("CACHE_SIZES: numbers, like 100,100000"))
        .collect();
    let rounds: usize = std::env::var("CACHE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(7).max(1);
    let vault = Vault::new(MasterKey::from_bytes(&[7; 32]), []);
    let now = latch_server::clock::Clock::default().unix();
    let all: Vec<Cached> = sizes.iter().map(|&n| cached(&vault, n, now)).collect();
    let (usage, key): (UsageRecorder, Arc<str>) = (UsageRecorder::default(), "backend".into());
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let mut times = vec![Vec::new(); all.len()];
    for _ in 0..rounds {
        for (c, t) in all.iter().zip(&mut times) {
            t.push(round(c, &vault, &usage, &key, now, &mut seed));
        }
    }
    // .cargo/config.toml: a RUSTFLAGS variable replaces it, and the lookups cost 1.3 µs more.
    let backend = if cfg!(poly1305_force_soft) { "portable (poly1305_force_soft)" } else { "run-time detected" };
    println!("poly1305 backend: {backend}\n");
    println!("| connections | ns a lookup (median of {rounds}) | rounds | more than the first |");
    println!("|---|---|---|---|");
    let first = median(times[0].clone());
    for (c, t) in all.iter().zip(times) {
        let each: Vec<String> = t.iter().map(|ns| format!("{ns:.0}")).collect();
        let ns = median(t);
        println!("| {} | {ns:.0} | {} | {:+.0} |", c.users, each.join(", "), ns - first);
    }
}
