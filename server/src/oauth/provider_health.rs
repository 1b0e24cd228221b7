//! What this replica knows about each provider's health, so an outage or a mass revocation is met
//! with restraint instead of a storm:
//! - a **circuit breaker** per provider (closed → open after `breaker_failures` consecutive
//!   transient failures → half-open after `breaker_open_seconds`, where one probe is let through;
//!   its success closes the circuit, its failure opens it again). While open, no refresh reaches
//!   the provider: callers get the still-valid token or `503 provider_unavailable` at once.
//! - an **incident guard** per provider: when `invalid_grant` answers pile up across many of its
//!   connections within `incident_window_seconds` (at least `incident_invalid_grants` of them and
//!   at least `incident_percent` % of the refresh outcomes), further rejections do not flip
//!   connections to `needs_reauthorization`, because that pattern means a provider or
//!   configuration problem (a rotated client secret, a provider bug), not thousands of users
//!   revoking at once.
//!
//! Both are per replica and in memory: losing them on restart is safe (they only ever hold back).
//! Time is passed in as Unix seconds, so the state machine is tested without sleeping.

use crate::config::HealthSettings;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The state of one provider's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Calls go through.
    Closed,
    /// No calls until the given Unix second.
    Open { until: i64 },
    /// One probe call is in flight.
    HalfOpen,
}

impl Circuit {
    /// `closed`, `open` or `half_open`, as shown by `GET /v1/providers`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// Whether a provider call may be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead: this call is the half-open probe.
    Probe,
    /// Do not call; retry after this many seconds.
    Refused { retry_after: u32 },
}

/// A change of circuit worth an activity entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Closed,
}

/// What to do with one `invalid_grant` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantVerdict {
    /// An ordinary revocation: flip the connection.
    Flip,
    /// This rejection starts a provider-wide incident: do not flip; record the incident.
    IncidentStarted,
    /// An incident is under way: do not flip.
    Incident,
}

#[derive(Debug)]
struct ProviderState {
    circuit: Circuit,
    consecutive_failures: u32,
    /// Unix seconds of recent refresh outcomes: (at, was an `invalid_grant`).
    outcomes: VecDeque<(i64, bool)>,
    in_incident: bool,
}

impl Default for ProviderState {
    fn default() -> Self {
        Self { circuit: Circuit::Closed, consecutive_failures: 0, outcomes: VecDeque::new(), in_incident: false }
    }
}

/// Breakers and incident guards of every provider (per replica).
#[derive(Debug)]
pub struct ProviderHealth {
    settings: HealthSettings,
    providers: Mutex<HashMap<String, ProviderState>>,
}

impl ProviderHealth {
    /// Empty health records with these thresholds.
    pub fn new(settings: HealthSettings) -> Self {
        Self { settings, providers: Mutex::default() }
    }

    fn with<R>(&self, provider: &str, f: impl FnOnce(&mut ProviderState, &HealthSettings) -> R) -> Option<R> {
        let mut providers = self.providers.lock().ok()?;
        let state = providers.entry(provider.to_owned()).or_default();
        Some(f(state, &self.settings))
    }

    /// Asks whether a call to `provider` may be made at `now`.
    pub fn admit(&self, provider: &str, now: i64) -> Admission {
        self.with(provider, |s, _| match s.circuit {
            Circuit::Closed => Admission::Allowed,
            Circuit::Open { until } if now >= until => {
                s.circuit = Circuit::HalfOpen;
                Admission::Probe
            }
            Circuit::Open { until } => Admission::Refused { retry_after: retry_after(until - now) },
            // The probe is out; everyone else waits for its verdict.
            Circuit::HalfOpen => Admission::Refused { retry_after: 1 },
        })
        .unwrap_or(Admission::Allowed)
    }

    /// Records an answer from the provider that was not a transient failure (a token, or a
    /// definite rejection): the provider is up.
    pub fn succeeded(&self, provider: &str) -> Option<Transition> {
        self.with(provider, |s, _| {
            s.consecutive_failures = 0;
            let was_open = s.circuit != Circuit::Closed;
            s.circuit = Circuit::Closed;
            was_open.then_some(Transition::Closed)
        })
        .flatten()
    }

    /// Records a transient failure (5xx, timeout, refused connection, rate limit).
    pub fn failed(&self, provider: &str, now: i64) -> Option<Transition> {
        self.with(provider, |s, settings| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            let trip = s.circuit == Circuit::HalfOpen || s.consecutive_failures >= settings.breaker_failures;
            if !trip {
                return None;
            }
            let was_closed = s.circuit == Circuit::Closed;
            s.circuit = Circuit::Open { until: now + settings.breaker_open_seconds };
            was_closed.then_some(Transition::Opened)
        })
        .flatten()
    }

    /// The circuit of `provider` at `now` (for `GET /v1/providers`).
    pub fn circuit(&self, provider: &str, now: i64) -> Circuit {
        self.with(provider, |s, _| match s.circuit {
            Circuit::Open { until } if now >= until => Circuit::HalfOpen,
            c => c,
        })
        .unwrap_or(Circuit::Closed)
    }

    /// Records a refresh that the provider answered with a token (for the incident ratio).
    pub fn refreshed(&self, provider: &str, now: i64) {
        self.with(provider, |s, settings| {
            s.outcomes.push_back((now, false));
            prune(s, now, settings);
        });
    }

    /// Decides what one `invalid_grant` answer means, given the recent ones.
    pub fn grant_rejected(&self, provider: &str, now: i64) -> GrantVerdict {
        self.with(provider, |s, settings| {
            prune(s, now, settings);
            let rejected = s.outcomes.iter().filter(|(_, bad)| *bad).count() as u64;
            let total = s.outcomes.len() as u64;
            s.outcomes.push_back((now, true));
            // Judged on the answers before this one: the first `incident_invalid_grants` of a
            // burst still flip (they may be real), the rest are held back.
            let burst = rejected >= u64::from(settings.incident_invalid_grants)
                && rejected * 100 >= u64::from(settings.incident_percent) * total.max(1);
            match (burst, s.in_incident) {
                (false, _) => {
                    s.in_incident = false;
                    GrantVerdict::Flip
                }
                (true, false) => {
                    s.in_incident = true;
                    GrantVerdict::IncidentStarted
                }
                (true, true) => GrantVerdict::Incident,
            }
        })
        .unwrap_or(GrantVerdict::Flip)
    }
}

fn prune(s: &mut ProviderState, now: i64, settings: &HealthSettings) {
    while s.outcomes.front().is_some_and(|(at, _)| now - at >= settings.incident_window_seconds) {
        s.outcomes.pop_front();
    }
    // Bounded memory whatever the traffic: the oldest outcomes matter least.
    while s.outcomes.len() > 10_000 {
        s.outcomes.pop_front();
    }
}

fn retry_after(seconds: i64) -> u32 {
    u32::try_from(seconds.clamp(1, 3600)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> ProviderHealth {
        ProviderHealth::new(HealthSettings {
            breaker_failures: 3,
            breaker_open_seconds: 30,
            incident_invalid_grants: 5,
            incident_percent: 50,
            incident_window_seconds: 300,
        })
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let h = health();
        assert_eq!(h.admit("p", 0), Admission::Allowed);
        assert_eq!(h.failed("p", 0), None);
        assert_eq!(h.failed("p", 0), None);
        assert_eq!(h.failed("p", 0), Some(Transition::Opened));
        assert_eq!(h.admit("p", 10), Admission::Refused { retry_after: 20 });
        assert_eq!(h.circuit("p", 10).as_str(), "open");
        // Other providers are unaffected.
        assert_eq!(h.admit("q", 10), Admission::Allowed);
        // After the cool-down, one probe; the others are held while it runs.
        assert_eq!(h.admit("p", 30), Admission::Probe);
        assert_eq!(h.admit("p", 30), Admission::Refused { retry_after: 1 });
        // A failed probe opens the circuit again at once.
        assert_eq!(h.failed("p", 31), None);
        assert_eq!(h.admit("p", 32), Admission::Refused { retry_after: 29 });
        assert_eq!(h.admit("p", 61), Admission::Probe);
        assert_eq!(h.succeeded("p"), Some(Transition::Closed));
        assert_eq!(h.admit("p", 61), Admission::Allowed);
        // A success resets the count of consecutive failures.
        h.failed("p", 62);
        h.failed("p", 62);
        h.succeeded("p");
        assert_eq!(h.failed("p", 62), None);
    }

    #[test]
    fn incident_guard_holds_back_a_burst_of_rejections() {
        let h = health();
        // Ordinary traffic with a few revocations: each one flips.
        for t in 0..20 {
            h.refreshed("p", t);
        }
        for t in 20..25 {
            assert_eq!(h.grant_rejected("p", t), GrantVerdict::Flip);
        }
        // A provider that rejects everything: the first few flip, then the guard holds.
        let h = health();
        let verdicts: Vec<_> = (0..10).map(|t| h.grant_rejected("p", t)).collect();
        assert_eq!(verdicts[..5], [GrantVerdict::Flip; 5]);
        assert_eq!(verdicts[5], GrantVerdict::IncidentStarted);
        assert!(verdicts[6..].iter().all(|v| *v == GrantVerdict::Incident));
        // Once the window has passed, a rejection is judged afresh.
        assert_eq!(h.grant_rejected("p", 400), GrantVerdict::Flip);
    }
}
