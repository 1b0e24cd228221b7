//! Rate limits: token buckets (the `governor` crate) per API key on the host API, per widget
//! user and per client address on the widget API, per client address on the `/oauth` pages, and
//! per provider on outbound refreshes. Limits are per replica and in memory (a restart refills
//! every bucket); `[rate_limits]` in `latch.toml` sets them. A refused request answers
//! `429 rate_limited` with `Retry-After`.

use crate::config::RateLimitSettings;
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// A refusal: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: u32,
}

/// Every bucket of this process.
#[derive(Debug)]
pub struct Limits {
    host: Keyed<Arc<str>>,
    widget_user: Keyed<(String, String)>,
    widget_ip: Keyed<IpAddr>,
    oauth_ip: Keyed<IpAddr>,
    provider: Keyed<String>,
    clock: DefaultClock,
    checks: AtomicU64,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    /// Buckets with these limits.
    pub fn new(s: &RateLimitSettings) -> Self {
        let per_second = |rate, burst| Quota::per_second(nonzero(rate)).allow_burst(nonzero(burst));
        let per_minute = |rate| Quota::per_minute(nonzero(rate));
        Self {
            host: RateLimiter::keyed(per_second(s.host_per_second, s.host_burst)),
            widget_user: RateLimiter::keyed(per_minute(s.widget_user_per_minute)),
            widget_ip: RateLimiter::keyed(per_minute(s.widget_ip_per_minute)),
            oauth_ip: RateLimiter::keyed(per_minute(s.oauth_ip_per_minute)),
            provider: RateLimiter::keyed(per_second(s.provider_per_second, s.provider_burst)),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    fn check<K: Hash + Eq + Clone>(&self, limiter: &Keyed<K>, key: &K) -> Result<(), Limited> {
        // Forget idle buckets now and then, so memory follows the active keys, not all keys ever seen.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 65_536 == 65_535 {
            self.prune();
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Limited { retry_after: u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX) }
        })
    }

    /// One host API request with this API key.
    pub fn host(&self, key_id: &Arc<str>) -> Result<(), Limited> {
        self.check(&self.host, key_id)
    }

    /// One widget API request by this user.
    pub fn widget_user(&self, user_id: &str, organization_id: &str) -> Result<(), Limited> {
        self.check(&self.widget_user, &(user_id.to_owned(), organization_id.to_owned()))
    }

    /// One widget API request from this address.
    pub fn widget_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        self.check(&self.widget_ip, &ip)
    }

    /// One `/oauth` page from this address.
    pub fn oauth_ip(&self, ip: IpAddr) -> Result<(), Limited> {
        self.check(&self.oauth_ip, &ip)
    }

    /// One outbound refresh to this provider.
    pub fn provider(&self, key: &str) -> Result<(), Limited> {
        self.check(&self.provider, &key.to_owned())
    }

    /// Drops buckets that are full again (their keys were idle).
    pub fn prune(&self) {
        self.host.retain_recent();
        self.widget_user.retain_recent();
        self.widget_ip.retain_recent();
        self.oauth_ip.retain_recent();
        self.provider.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_key_and_say_when_to_retry() {
        let limits =
            Limits::new(&RateLimitSettings { host_per_second: 1, host_burst: 2, ..RateLimitSettings::default() });
        let (a, b): (Arc<str>, Arc<str>) = ("key_a".into(), "key_b".into());
        assert!(limits.host(&a).is_ok());
        assert!(limits.host(&a).is_ok());
        let refused = limits.host(&a).unwrap_err();
        assert!((1..=2).contains(&refused.retry_after), "{refused:?}");
        assert!(limits.host(&b).is_ok(), "another key has its own bucket");
    }
}
