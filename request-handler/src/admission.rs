//! Admission: what a request must pass before its body is read, and what happens to an event
//! whose type its source does not keep.
//!
//! - **Rate limit**: a token bucket per source in this process (`rate_limit`). Over it, a
//!   `when_limited = "429"` source's request is refused with 429 and `Retry-After` (when the
//!   bucket next has a token); an `"accept"` source's is handled all the same, counted and
//!   warned about. An empty bucket is seen before the body is read, but a token is taken only
//!   once the request's signature verified: strangers' requests cannot spend a vendor's limit.
//! - **Load shedding**: at most `MAX_IN_FLIGHT` requests in work (body received, being checked
//!   or published). Past it, a new request of a `"429"` source is refused with 503 before its
//!   body is read; an `"accept"` source's is let in, counted and warned about. A request still
//!   sending its body is not in work: a client that sends slowly holds a connection, not a place.
//! - **Event-type filters** (`accept_types` / `drop_types`): checked once the request is
//!   verified and its event type known; a filtered event is answered 200 and not published.
//!
//! The bucket is written by hand (a few lines under a mutex, tested with explicit instants)
//! rather than taken from `governor`: fractional rates, the wait until the next token for
//! `Retry-After`, and no clock or state-store machinery to carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use webhook_core::admission::{RateLimit, WhenLimited};

use crate::sources::{Source, Sources};

/// What a shed request is told to wait before it tries again.
pub const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// An `"accept"` source over its limit is warned about at most this often (with a count).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Why a request was refused before its body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its source is over its rate limit: 429, and when the bucket next has a token.
    RateLimited(Duration),
    /// `MAX_IN_FLIGHT` requests are in work: 503.
    Overloaded,
}

/// A token bucket: `burst` tokens at most, `per_second` added back per second, one taken by
/// each request. Pure: the caller says what time it is.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let burst = f64::from(limit.burst);
        Self {
            per_second: limit.per_second,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Whether there is a token at `now`, without taking it, or how long until there is one.
    pub fn peek(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
        }
    }

    /// Takes a token at `now`, or says how long until there is one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.peek(now)?;
        self.tokens -= 1.0;
        Ok(())
    }
}

/// Labels of `webhook_handler_admitted_over_limit_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverLimitLabels {
    /// A configured source.
    pub source: String,
    /// `rate_limited` or `overloaded`.
    pub reason: &'static str,
}

/// The metrics of admission.
#[derive(Debug, Clone, Default)]
pub struct AdmissionMetrics {
    /// Requests in work: body received, being checked or published. What `MAX_IN_FLIGHT` caps.
    pub in_work: Gauge,
    /// Requests of `when_limited = "accept"` sources let in although over the rate limit or
    /// past `MAX_IN_FLIGHT`.
    pub admitted_over_limit: Family<OverLimitLabels, Counter>,
}

impl AdmissionMetrics {
    /// Creates and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "in_work_requests",
            "Webhook requests whose body has arrived, being checked or published (capped by MAX_IN_FLIGHT)",
            metrics.in_work.clone(),
        );
        registry.register(
            "admitted_over_limit",
            "Requests of when_limited = \"accept\" sources let in over their rate limit or past MAX_IN_FLIGHT",
            metrics.admitted_over_limit.clone(),
        );
        metrics
    }
}

/// One source's bucket and when it was last warned about.
#[derive(Debug)]
struct Gate {
    bucket: Option<TokenBucket>,
    warned_at: Option<Instant>,
    unwarned: u64,
}

/// Every source's gate and the cap on requests in work, for one handler process.
#[derive(Debug)]
pub struct Admission {
    gates: HashMap<String, Mutex<Gate>>,
    max_in_flight: usize,
    metrics: AdmissionMetrics,
}

impl Admission {
    /// A full bucket for every source with a rate limit; at most `max_in_flight` requests in
    /// work.
    pub fn new(sources: &Sources, max_in_flight: usize, metrics: AdmissionMetrics) -> Self {
        let now = Instant::now();
        let gates = sources
            .iter()
            .map(|source| {
                let gate = Gate {
                    bucket: source.admission.rate_limit.map(|limit| TokenBucket::new(limit, now)),
                    warned_at: None,
                    unwarned: 0,
                };
                (source.name.to_string(), Mutex::new(gate))
            })
            .collect();
        Self {
            gates,
            max_in_flight,
            metrics,
        }
    }

    /// Decides, before the body is read, whether `source`'s request goes on: a `"429"`
    /// source whose bucket is empty is refused here, but no token is taken yet (see
    /// [`Admission::spend`]).
    pub fn admit(&self, source: &Source) -> Result<(), Refused> {
        let accept = source.admission.when_limited == WhenLimited::Accept;
        if source.admission.rate_limit.is_some() && !accept {
            let waited = self.with_gate(source, |gate| match &mut gate.bucket {
                Some(bucket) => bucket.peek(Instant::now()).err(),
                None => None,
            });
            if let Some(wait) = waited {
                return Err(Refused::RateLimited(wait));
            }
        }
        if self.metrics.in_work.get() >= i64::try_from(self.max_in_flight).unwrap_or(i64::MAX) {
            if !accept {
                return Err(Refused::Overloaded);
            }
            self.let_in_over_limit(source, "overloaded");
        }
        Ok(())
    }

    /// Takes a token from `source`'s bucket for a request whose signature verified: only the
    /// vendor's own requests spend its rate limit, so unsigned ones cannot use it up. Refused
    /// when other verified requests emptied the bucket since [`Admission::admit`] (a
    /// `"429"` source), or let in and counted (an `"accept"` source).
    pub fn spend(&self, source: &Source) -> Result<(), Refused> {
        if source.admission.rate_limit.is_none() {
            return Ok(());
        }
        let waited = self.with_gate(source, |gate| match &mut gate.bucket {
            Some(bucket) => bucket.take(Instant::now()).err(),
            None => None,
        });
        match waited {
            None => Ok(()),
            Some(_) if source.admission.when_limited == WhenLimited::Accept => {
                self.let_in_over_limit(source, "rate_limited");
                Ok(())
            }
            Some(wait) => Err(Refused::RateLimited(wait)),
        }
    }

    /// Counts a request as in work until the guard is dropped.
    pub fn in_work(&self) -> InWork<'_> {
        self.metrics.in_work.inc();
        InWork(&self.metrics.in_work)
    }

    /// Counts an `"accept"` source's request let in over a limit, and warns at most every
    /// [`WARN_EVERY`] per source with how many there were since.
    fn let_in_over_limit(&self, source: &Source, reason: &'static str) {
        self.metrics
            .admitted_over_limit
            .get_or_create(&OverLimitLabels {
                source: source.name.to_string(),
                reason,
            })
            .inc();
        let now = Instant::now();
        let due = self.with_gate(source, |gate| {
            gate.unwarned += 1;
            if gate.warned_at.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
                return None;
            }
            gate.warned_at = Some(now);
            Some(std::mem::take(&mut gate.unwarned))
        });
        if let Some(count) = due {
            log::warn!(
                "let in over its limit (when_limited = \"accept\") source={} reason={reason} requests={count} since the last such line",
                source.name
            );
        }
    }

    fn with_gate<T>(&self, source: &Source, f: impl FnOnce(&mut Gate) -> Option<T>) -> Option<T> {
        let gate = self.gates.get(source.name.as_str())?;
        // A panic while the lock was held cannot leave a bucket half-updated in a way that
        // matters: take the state as it is.
        let mut gate = gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut gate)
    }
}

/// Whether `source` keeps events of `event_type`; if not, the key that dropped it.
pub fn filtered_by(source: &Source, event_type: &str) -> Option<&'static str> {
    let filter = source.admission.types.as_ref()?;
    (!filter.keeps(event_type)).then(|| filter.key())
}

/// A request in work; leaves the count when dropped.
#[derive(Debug)]
pub struct InWork<'a>(&'a Gauge);

impl Drop for InWork<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(per_second: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket::new(RateLimit { per_second, burst }, now)
    }

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_one_request_per_token() {
        let start = Instant::now();
        let mut bucket = bucket(10.0, 3, start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(bucket.take(start + Duration::from_millis(99)).is_err());
        assert_eq!(bucket.take(start + Duration::from_millis(100)), Ok(()));
        // A quiet spell refills it to the burst and no further.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn peeking_takes_no_token() {
        let start = Instant::now();
        let mut bucket = bucket(0.01, 1, start);
        for _ in 0..5 {
            assert_eq!(bucket.peek(start), Ok(()));
        }
        assert_eq!(bucket.take(start), Ok(()));
        assert!(bucket.peek(start).is_err());
        assert!(bucket.take(start).is_err());
    }

    #[test]
    fn a_slow_bucket_says_how_long_until_its_next_token() {
        let start = Instant::now();
        let mut bucket = bucket(0.2, 1, start);
        assert_eq!(bucket.take(start), Ok(()));
        let wait = bucket.take(start + Duration::from_secs(1)).unwrap_err();
        assert!((wait.as_secs_f64() - 4.0).abs() < 1e-9, "{wait:?}");
    }

    #[test]
    fn a_clock_that_goes_back_takes_nothing_and_gives_nothing() {
        let start = Instant::now() + Duration::from_secs(5);
        let mut bucket = bucket(1.0, 1, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert!(bucket.take(start - Duration::from_secs(3)).is_err());
        assert_eq!(bucket.take(start + Duration::from_secs(1)), Ok(()));
    }
}
