//! Clock-skew telemetry: how far each verified request's signed timestamp is from this
//! handler's clock, per source, so that a drifting clock shows long before the timestamped
//! schemes start refusing requests as out of tolerance (401).
//!
//! Only verified requests are observed: a stranger's made-up timestamp says nothing about any
//! clock. `now − signed timestamp` is positive when the vendor's clock (or the network) is
//! behind ours and negative when it is ahead.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use webhook_core::signature::{Headers, SLACK_TIMESTAMP, STANDARD_TIMESTAMP, STRIPE_SIGNATURE, Scheme};

use crate::sources::{Source, Sources};

/// Where a timestamped scheme's vendor puts the signed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignedAt<'a> {
    /// A header holding Unix seconds.
    Header(&'a str),
    /// The `t=` entry of `Stripe-Signature`.
    StripeEntry,
}

fn signed_at(scheme: &Scheme) -> Option<SignedAt<'_>> {
    match scheme {
        Scheme::Hmac(generic) => generic.timestamp_header.as_deref().map(SignedAt::Header),
        Scheme::Vendor(family) => match family.name {
            "stripe" => Some(SignedAt::StripeEntry),
            "slack" => Some(SignedAt::Header(SLACK_TIMESTAMP)),
            "standard" => Some(SignedAt::Header(STANDARD_TIMESTAMP)),
            "svix" | "resend" | "clerk" => Some(SignedAt::Header("svix-timestamp")),
            "zoom" => Some(SignedAt::Header("x-zm-request-timestamp")),
            _ => None,
        },
        Scheme::Unsigned => None,
    }
}

/// Whether requests of `scheme` carry a signed timestamp this module reads.
pub fn is_timestamped(scheme: &Scheme) -> bool {
    signed_at(scheme).is_some()
}

/// The signed Unix timestamp of a request of `scheme`, if the scheme has one and it is there.
pub fn signed_timestamp(scheme: &Scheme, headers: &(impl Headers + ?Sized)) -> Option<i64> {
    let text = match signed_at(scheme)? {
        SignedAt::Header(name) => headers.get(name)?,
        // The last `t=` decides, as in the signature check.
        SignedAt::StripeEntry => headers
            .get(STRIPE_SIGNATURE)?
            .split(',')
            .filter_map(|entry| entry.trim().strip_prefix("t="))
            .next_back()?,
    };
    text.trim().parse().ok()
}

/// Labels of the per-source skew metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// A configured source.
    pub source: String,
}

/// Histogram buckets in seconds, both signs: fine near 0, and past every common tolerance
/// (5 s for some vendors, 300 s for most, up to the 86400 a source may set).
const BUCKETS: [f64; 14] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 600.0, 3600.0, 86400.0,
];

fn histogram() -> Histogram {
    let negative = BUCKETS.iter().rev().map(|bound| -bound);
    Histogram::new(negative.chain([0.0]).chain(BUCKETS))
}

/// `webhook_handler_clock_skew_seconds{source}` and
/// `webhook_handler_timestamp_tolerance_seconds{source}`.
#[derive(Debug, Clone)]
pub struct ClockSkew {
    skew: Family<SourceLabel, Histogram, fn() -> Histogram>,
}

impl ClockSkew {
    /// Registers both; the tolerance of every timestamped source is set once, here.
    pub fn register(registry: &mut Registry, sources: &Sources) -> Self {
        let skew = Family::<SourceLabel, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        registry.register_with_unit(
            "clock_skew",
            "Now minus the signed timestamp of verified requests, by source (negative: the sender's clock is ahead)",
            Unit::Seconds,
            skew.clone(),
        );
        let tolerance = Family::<SourceLabel, Gauge>::default();
        registry.register_with_unit(
            "timestamp_tolerance",
            "How far a source's signed timestamp may be from now (tolerance_secs), for timestamped schemes",
            Unit::Seconds,
            tolerance.clone(),
        );
        for source in sources.iter().filter(|source| is_timestamped(&source.scheme)) {
            tolerance
                .get_or_create(&SourceLabel {
                    source: source.name.to_string(),
                })
                .set(source.tolerance_secs);
        }
        Self { skew }
    }

    /// Observes a verified request of `source` checked at Unix time `now`.
    pub fn observe(&self, source: &Source, headers: &(impl Headers + ?Sized), now: i64) {
        if let Some(signed) = signed_timestamp(&source.scheme, headers) {
            self.skew
                .get_or_create(&SourceLabel {
                    source: source.name.to_string(),
                })
                .observe((now - signed) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhook_core::signature::{Algorithm, Encoding, GenericHmac};

    /// A scheme, a request's headers, and the signed timestamp read from them.
    type Case = (Scheme, &'static [(&'static str, &'static str)], Option<i64>);

    #[test]
    fn each_timestamped_scheme_gives_its_signed_timestamp_and_the_others_none() {
        let cases: [Case; 6] = [
            (
                Scheme::STRIPE,
                &[("Stripe-Signature", "t=1,v1=ab, t=1700000000,v1=cd")],
                Some(1_700_000_000),
            ),
            (
                Scheme::SLACK,
                &[("X-Slack-Request-Timestamp", " 1700000001 ")],
                Some(1_700_000_001),
            ),
            (
                Scheme::STANDARD,
                &[("webhook-timestamp", "1700000002")],
                Some(1_700_000_002),
            ),
            (Scheme::STANDARD, &[("webhook-timestamp", "soon")], None),
            (Scheme::GITHUB, &[("X-GitHub-Delivery", "1700000003")], None),
            (Scheme::SHOPIFY, &[], None),
        ];
        for (scheme, headers, expected) in cases {
            assert_eq!(signed_timestamp(&scheme, headers), expected, "{}", scheme.name());
        }
        let generic = |timestamp_header: Option<&str>| {
            let mut generic = GenericHmac::new("X-Sig");
            generic.algorithm = Algorithm::Sha256;
            generic.encoding = Encoding::Hex;
            generic.template = timestamp_header.map(|_| "{timestamp}.{body}".to_owned());
            generic.timestamp_header = timestamp_header.map(str::to_owned);
            Scheme::Hmac(generic)
        };
        let headers: &[(&str, &str)] = &[("X-Ts", "1700000004")];
        assert_eq!(signed_timestamp(&generic(Some("X-Ts")), headers), Some(1_700_000_004));
        assert!(!is_timestamped(&generic(None)));
        assert!(!is_timestamped(&Scheme::GITHUB));
    }
}
