//! Where the broker is: `AMQP_URL` names one node, or the nodes of a cluster separated by
//! commas, and every connection of a process tries them in turn.
//!
//! A process starts at a random entry, so handlers and consumers spread over the nodes, and
//! each new connection starts at the next entry after the last one used. An address whose
//! connect failed recently is tried after the others, so a dead node costs one failed attempt,
//! not one per reconnect. Every entry is checked at start, and passwords are hidden in every
//! form the addresses are shown in.

use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lapin::uri::AMQPUri;

use crate::broker::BrokerUrl;
use crate::config::Url;

/// The heartbeat asked for when a URL sets none, in seconds: a node that goes silent (a
/// network partition, a frozen VM) is noticed within about two of them instead of the
/// broker's default of a minute.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// How long an address that failed to connect is tried only after the others.
const FAILED_RECENTLY: Duration = Duration::from_secs(10);

/// The broker's addresses, in the order of `AMQP_URL`. Clones share the rotation.
#[derive(Clone)]
pub struct Addresses {
    inner: Arc<Inner>,
}

struct Inner {
    urls: Vec<BrokerUrl>,
    /// The entry the next connection starts at (modulo the count).
    next: AtomicUsize,
    /// Per entry: when its last connect failed, as milliseconds since `epoch` plus one (0: never).
    failed_at: Vec<AtomicU64>,
    epoch: Instant,
}

impl std::fmt::Debug for Addresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Addresses({:?})", self.redacted())
    }
}

impl Addresses {
    /// Splits `AMQP_URL` into its entries: one URL, or several separated by commas. Each must
    /// be a URL with one of `schemes` that the AMQP client can read; the error names the entry
    /// (its password hidden) and why.
    pub fn parse_list(text: &str, schemes: &[&str]) -> Result<Vec<Url>, String> {
        let mut urls = Vec::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate() {
            let shown = Url::new(entry).redacted();
            let position = if text.contains(',') {
                format!("entry {} ({shown:?})", index + 1)
            } else {
                format!("{shown:?}")
            };
            if entry.is_empty() {
                return Err(format!("entry {} is empty", index + 1));
            }
            let scheme_ok = schemes
                .iter()
                .any(|scheme| entry.len() > scheme.len() + 3 && entry.starts_with(&format!("{scheme}://")));
            if !scheme_ok {
                let expected: Vec<String> = schemes.iter().map(|scheme| format!("{scheme}://…")).collect();
                return Err(format!("{position} is not a URL of the form {}", expected.join(" or ")));
            }
            if let Err(why) = AMQPUri::from_str(entry) {
                // The parser's message can quote the input; show only what is safe.
                let why = why.replace(entry, &shown);
                return Err(format!("{position} is not an AMQP URL ({why})"));
            }
            urls.push(Url::new(entry));
        }
        Ok(urls)
    }

    /// The addresses to connect to, in this order (at least one).
    pub fn new(urls: Vec<BrokerUrl>) -> Self {
        let count = urls.len();
        Self {
            inner: Arc::new(Inner {
                failed_at: (0..count).map(|_| AtomicU64::new(0)).collect(),
                next: AtomicUsize::new(random_below(count)),
                urls,
                epoch: Instant::now(),
            }),
        }
    }

    /// `text` as written in `AMQP_URL`, with the password of every entry hidden: for the
    /// error line about a value that could not be parsed.
    pub fn redact_list(text: &str) -> String {
        text.split(',')
            .map(|entry| Url::new(entry.trim()).redacted())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many addresses there are (at least one).
    pub fn len(&self) -> usize {
        self.inner.urls.len()
    }

    /// Always false: there is at least one address.
    pub fn is_empty(&self) -> bool {
        self.inner.urls.is_empty()
    }

    /// The address at `index`, in the order of `AMQP_URL`.
    pub fn get(&self, index: usize) -> Option<&BrokerUrl> {
        self.inner.urls.get(index)
    }

    /// Every address with its password hidden, separated by commas: for logs and errors.
    pub fn redacted(&self) -> String {
        self.inner
            .urls
            .iter()
            .map(BrokerUrl::redacted)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The indexes to try for the next connection: every address once, starting at the next
    /// one in rotation, with those that failed in the last few seconds moved to the end.
    pub fn attempt_order(&self) -> Vec<usize> {
        let count = self.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let now = self.millis();
        let (mut fresh, mut failed): (Vec<usize>, Vec<usize>) =
            (0..count).map(|step| (start + step) % count).partition(|index| {
                let at = self.inner.failed_at[*index].load(Ordering::Relaxed);
                at == 0 || now.saturating_sub(at - 1) >= FAILED_RECENTLY.as_millis() as u64
            });
        fresh.append(&mut failed);
        fresh
    }

    /// Records that connecting to address `index` failed.
    pub fn failed(&self, index: usize) {
        if let Some(at) = self.inner.failed_at.get(index) {
            at.store(self.millis() + 1, Ordering::Relaxed);
        }
    }

    /// Records that connecting to address `index` worked.
    pub fn succeeded(&self, index: usize) {
        if let Some(at) = self.inner.failed_at.get(index) {
            at.store(0, Ordering::Relaxed);
        }
    }

    /// The AMQP URI of address `index` as the client connects to it: the URL, with the
    /// [`DEFAULT_HEARTBEAT_SECS`] heartbeat unless the URL sets `?heartbeat=`.
    pub fn uri(&self, index: usize) -> Result<AMQPUri, String> {
        let url = self.get(index).ok_or_else(|| format!("no broker address {index}"))?;
        let mut uri = AMQPUri::from_str(url.expose()).map_err(|why| why.replace(url.expose(), &url.redacted()))?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        Ok(uri)
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A number in `0..bound` that differs between processes (the standard library's per-process
/// random hash keys), so that processes started together do not all pick the same node.
fn random_below(bound: usize) -> usize {
    if bound <= 1 {
        return 0;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    (hasher.finish() % bound as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerTls;

    impl Addresses {
        fn parse(text: &str, schemes: &[&str]) -> Result<Self, String> {
            let tls = Arc::new(BrokerTls::default());
            let urls = Self::parse_list(text, schemes)?
                .into_iter()
                .map(|url| BrokerUrl::new(url, Arc::clone(&tls)).map_err(|error| error.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Self::new(urls))
        }
    }

    const TWO: &str = "amqp://guest:first-secret@a:5672/%2f, amqp://guest:second-secret@b:5672/%2f";

    #[test]
    fn a_list_is_split_checked_and_shown_without_any_password() {
        let addresses = Addresses::parse(TWO, &["amqp"]).unwrap();
        assert_eq!(addresses.len(), 2);
        assert_eq!(
            addresses.redacted(),
            "amqp://guest:***@a:5672/%2f,amqp://guest:***@b:5672/%2f"
        );
        let debug = format!("{addresses:?}");
        assert!(
            !debug.contains("first-secret") && !debug.contains("second-secret"),
            "{debug}"
        );
        assert_eq!(
            addresses.get(1).unwrap().expose(),
            "amqp://guest:second-secret@b:5672/%2f"
        );
    }

    #[test]
    fn a_list_that_cannot_be_parsed_is_shown_without_any_password() {
        assert_eq!(
            Addresses::redact_list("amqp://u:p1@a:x/,amqp://v:p2@b/"),
            "amqp://u:***@a:x/,amqp://v:***@b/"
        );
    }

    #[test]
    fn a_bad_entry_is_named_and_its_password_hidden() {
        for (text, expected) in [
            (
                "amqp://guest:p1@a:5672/%2f,http://guest:p2@b/",
                "entry 2 (\"http://guest:***@b/\") is not a URL of the form amqp://…",
            ),
            ("amqp://guest:p1@a:5672/%2f,,amqp://c/", "entry 2 is empty"),
            (
                "amqp://guest:p1@a:notaport/%2f",
                "\"amqp://guest:***@a:notaport/%2f\" is not an AMQP URL",
            ),
        ] {
            let error = Addresses::parse(text, &["amqp"]).unwrap_err();
            assert!(error.starts_with(expected), "{text}: {error}");
            assert!(!error.contains("p1") && !error.contains("p2"), "{error}");
        }
    }

    #[test]
    fn each_connection_starts_at_the_next_address_and_tries_every_one() {
        let addresses = Addresses::parse("amqp://a/,amqp://b/,amqp://c/", &["amqp"]).unwrap();
        let first = addresses.attempt_order();
        let second = addresses.attempt_order();
        assert_eq!(first.len(), 3);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
        assert_eq!(second[0], (first[0] + 1) % 3);
        assert_eq!(second, vec![second[0], (second[0] + 1) % 3, (second[0] + 2) % 3]);
    }

    #[test]
    fn an_address_that_just_failed_is_tried_last_until_it_works_again() {
        let addresses = Addresses::parse("amqp://a/,amqp://b/,amqp://c/", &["amqp"]).unwrap();
        addresses.failed(1);
        for _ in 0..3 {
            assert_eq!(addresses.attempt_order().last(), Some(&1));
        }
        addresses.succeeded(1);
        let starts: Vec<usize> = (0..3).map(|_| addresses.attempt_order()[0]).collect();
        assert!(starts.contains(&1), "{starts:?}");
    }

    #[test]
    fn the_heartbeat_defaults_to_ten_seconds_unless_the_url_sets_one() {
        let addresses = Addresses::parse("amqp://a/%2f,amqp://b/%2f?heartbeat=30", &["amqp"]).unwrap();
        assert_eq!(addresses.uri(0).unwrap().query.heartbeat, Some(DEFAULT_HEARTBEAT_SECS));
        assert_eq!(addresses.uri(1).unwrap().query.heartbeat, Some(30));
    }

    #[test]
    fn processes_do_not_all_start_at_the_same_address() {
        // Each RandomState has fresh keys, as each process has.
        let picks: std::collections::HashSet<usize> = (0..64).map(|_| random_below(3)).collect();
        assert!(picks.len() > 1, "{picks:?}");
    }
}
