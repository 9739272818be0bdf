//! Who may see the dashboard: `DASHBOARD_AUTH`.
//!
//! - unset: no login, and then only on a loopback `DASHBOARD_ADDR` (any other address refuses to
//!   start);
//! - `none`: no login on any address, said at start (for a private network);
//! - `basic:FILE`: HTTP Basic against a users file of `user:$argon2id$…` lines;
//! - `proxy:HEADER`: a reverse proxy has signed the user in and names them in `HEADER`; the
//!   header is believed only from the peers of `DASHBOARD_TRUSTED_PROXIES`.
//!
//! `/healthz`, `/readyz` and `/metrics` never ask. An argon2 check costs tens of milliseconds
//! of CPU, so a stranger's wrong passwords must not starve the users: at most
//! [`VERIFY_CONCURRENCY`] checks run at once (past that, 503 at once with `Retry-After: 1`), and
//! a successful check is remembered for [`CACHE_TTL`], so a signed-in browser's requests cost
//! one check, not one each.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use webhook_core::config::{ConfigError, Vars};

/// The variable this module reads.
pub const VARIABLE: &str = "DASHBOARD_AUTH";
/// The peers whose `proxy:HEADER` is believed.
pub const TRUSTED_PROXIES: &str = "DASHBOARD_TRUSTED_PROXIES";
/// The realm of the Basic challenge.
pub const CHALLENGE: &str = "Basic realm=\"webhook-inbox\", charset=\"UTF-8\"";
/// Password checks that may run at once; the dashboard serves on two workers.
pub const VERIFY_CONCURRENCY: usize = 2;
/// How long a successful check is remembered for the same `Authorization` header.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// The most successful checks remembered at once.
pub const CACHE_ENTRIES: usize = 1024;
/// An `Authorization` header longer than this is not checked at all (a wrong password).
const MAX_AUTHORIZATION_BYTES: usize = 4096;
/// The paths that never ask for a login: probes and the scraper.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// How the dashboard signs its users in.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No login. `explicit` with `DASHBOARD_AUTH=none`; otherwise it was unset, which is only
    /// allowed on a loopback address.
    Open {
        /// Whether `DASHBOARD_AUTH=none` asked for it.
        explicit: bool,
    },
    /// HTTP Basic against the users of a file.
    Basic {
        /// The users file, as `DASHBOARD_AUTH` names it.
        file: PathBuf,
        /// Its users.
        users: Arc<Users>,
    },
    /// A header set by a trusted reverse proxy names the user.
    Proxy {
        /// The header.
        header: HeaderName,
        /// `DASHBOARD_TRUSTED_PROXIES`: the only peers whose header is believed.
        trusted: Vec<ipnet::IpNet>,
    },
}

impl Auth {
    /// Reads `DASHBOARD_AUTH` (and its users file, or `DASHBOARD_TRUSTED_PROXIES`) for a
    /// dashboard listening on `addr`.
    pub fn from_vars(vars: &Vars<'_>, addr: SocketAddr) -> Result<Self, ConfigError> {
        const FORMS: &str = "basic:FILE (a users file of user:$argon2id$… lines), proxy:HEADER or none";
        let Some(value) = vars.get(VARIABLE) else {
            if addr.ip().is_loopback() {
                return Ok(Self::Open { explicit: false });
            }
            return Err(ConfigError::missing(
                VARIABLE,
                format!(
                    "{FORMS}, because DASHBOARD_ADDR={addr} is not a loopback address \
                     (DASHBOARD_AUTH=none opens it without a login)"
                ),
            ));
        };
        if value == "none" {
            return Ok(Self::Open { explicit: true });
        }
        if let Some(file) = value
            .strip_prefix("basic:")
            .map(str::trim)
            .filter(|file| !file.is_empty())
        {
            let text = std::fs::read_to_string(file).map_err(|error| {
                ConfigError::invalid(
                    VARIABLE,
                    Some(&value),
                    format!("a readable users file ({file}: {error})"),
                )
            })?;
            let users = Users::parse(&text).map_err(|why| {
                ConfigError::invalid(
                    VARIABLE,
                    Some(&value),
                    format!("a users file of user:$argon2id$… lines ({file}: {why})"),
                )
            })?;
            return Ok(Self::Basic {
                file: PathBuf::from(file),
                users: Arc::new(users),
            });
        }
        if let Some(name) = value
            .strip_prefix("proxy:")
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let header = HeaderName::try_from(name).map_err(|_| {
                ConfigError::invalid(
                    VARIABLE,
                    Some(&value),
                    format!("{FORMS}: {name:?} is not a header name"),
                )
            })?;
            if header == header::AUTHORIZATION || header == header::HOST || header == header::COOKIE {
                return Err(ConfigError::invalid(
                    VARIABLE,
                    Some(&value),
                    "proxy: with a header the proxy sets for the signed-in user, such as X-Forwarded-User",
                ));
            }
            let trusted = vars.networks(TRUSTED_PROXIES)?;
            if trusted.is_empty() {
                return Err(ConfigError::missing(
                    TRUSTED_PROXIES,
                    format!(
                        "the proxies whose {header} is believed (DASHBOARD_AUTH={value}), e.g. 10.0.0.5 or 10.0.0.0/8"
                    ),
                ));
            }
            return Ok(Self::Proxy { header, trusted });
        }
        Err(ConfigError::invalid(VARIABLE, Some(&value), FORMS))
    }

    /// The line logged at start about who may see the dashboard.
    pub fn describe(&self, addr: SocketAddr) -> String {
        match self {
            Self::Open { explicit: false } => {
                format!("dashboard login: none (DASHBOARD_AUTH is unset; DASHBOARD_ADDR={addr} is loopback)")
            }
            Self::Open { explicit: true } => format!(
                "dashboard login: none (DASHBOARD_AUTH=none): anyone who reaches DASHBOARD_ADDR={addr} sees the dashboard"
            ),
            Self::Basic { file, users } => format!(
                "dashboard login: HTTP Basic, {} user(s) from {}",
                users.len(),
                file.display()
            ),
            Self::Proxy { header, trusted } => {
                let trusted: Vec<String> = trusted.iter().map(ToString::to_string).collect();
                format!(
                    "dashboard login: the {header} header from the proxies {}",
                    trusted.join(",")
                )
            }
        }
    }
}

/// The users of a users file, by name, with their argon2 hashes.
pub struct Users {
    hashes: HashMap<String, PasswordHash>,
    /// The hash of a random password with the parameters of the file's first user, checked for
    /// unknown users so that they cost what a known user's wrong password costs.
    dummy: PasswordHash,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.hashes.keys().collect();
        names.sort();
        f.debug_struct("Users").field("names", &names).finish_non_exhaustive()
    }
}

impl Users {
    /// Parses a users file: one `user:$argon2id$…` per line (argon2id, argon2i or argon2d PHC
    /// strings, as `dashboard hash-password` prints them); blank lines and lines starting with
    /// `#` are skipped. An error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut hashes = HashMap::new();
        let mut first = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {number}: not user:hash"));
            };
            check_user_name(user).map_err(|why| format!("line {number}: {why}"))?;
            let hash = parse_hash(hash).map_err(|why| format!("line {number}: {why}"))?;
            first.get_or_insert_with(|| hash.clone());
            if hashes.insert(user.to_owned(), hash).is_some() {
                return Err(format!("line {number}: the user {user:?} is already named above"));
            }
        }
        let Some(first) = first else {
            return Err("no users in it".to_owned());
        };
        let params = Params::try_from(&first).map_err(|error| format!("argon2 parameters: {error}"))?;
        let random =
            argon2::password_hash::try_generate_salt().map_err(|error| format!("no random numbers: {error}"))?;
        let dummy = Argon2::from(params)
            .hash_password(&random)
            .map_err(|error| format!("argon2: {error}"))?;
        Ok(Self { hashes, dummy })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `password` is `user`'s. Costs one argon2 computation whether or not the user
    /// exists; the comparison is constant time.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        let (hash, known) = match self.hashes.get(user) {
            Some(hash) => (hash, true),
            None => (&self.dummy, false),
        };
        let matches = Argon2::default().verify_password(password, hash).is_ok();
        matches && known
    }
}

/// A user name of the users file: 1 to 128 characters, no `:`, spaces or control characters.
fn check_user_name(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user name is empty".to_owned());
    }
    if user.len() > 128 {
        return Err("the user name is longer than 128 bytes".to_owned());
    }
    if user.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':') {
        return Err(format!(
            "the user name {user:?} has a space, a control character or a colon"
        ));
    }
    Ok(())
}

/// An argon2 PHC string whose parameters argon2 accepts.
fn parse_hash(text: &str) -> Result<PasswordHash, String> {
    let hash = PasswordHash::new(text.trim()).map_err(|error| format!("the hash is not a PHC string ({error})"))?;
    if !matches!(hash.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(format!(
            "the hash is {}, not argon2id (make one with dashboard hash-password)",
            hash.algorithm
        ));
    }
    Params::try_from(&hash).map_err(|error| format!("the hash's argon2 parameters: {error}"))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("the hash has no salt or no output".to_owned());
    }
    Ok(hash)
}

/// The users file line for `user` with `password`, hashed with argon2id's default parameters
/// and a random salt: what `dashboard hash-password USER` prints.
pub fn users_file_line(user: &str, password: &str) -> Result<String, String> {
    check_user_name(user)?;
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|error| format!("argon2: {error}"))?;
    Ok(format!("{user}:{hash}"))
}

/// Why a request was refused: the label of `webhook_dashboard_auth_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials (no Basic `Authorization` header; through the proxy, no user header).
    Missing,
    /// Credentials that are not a user's: unknown user, wrong password, unreadable header.
    Wrong,
    /// [`VERIFY_CONCURRENCY`] checks were already running.
    Busy,
    /// `proxy:` from a peer that is not in `DASHBOARD_TRUSTED_PROXIES`.
    UntrustedProxy,
}

impl Refusal {
    /// Every reason, for the metric's labels.
    pub const ALL: [Self; 4] = [Self::Missing, Self::Wrong, Self::Busy, Self::UntrustedProxy];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Wrong => "wrong",
            Self::Busy => "busy",
            Self::UntrustedProxy => "untrusted_proxy",
        }
    }
}

/// Labels of `webhook_dashboard_auth_refusals_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// [`Refusal::label`].
    pub reason: &'static str,
}

/// The successful checks remembered, keyed by a keyed hash of the `Authorization` header (the
/// header itself is never kept).
#[derive(Debug, Default)]
struct Remembered {
    until: HashMap<[u8; 32], Instant>,
}

impl Remembered {
    fn contains(&mut self, key: &[u8; 32], now: Instant) -> bool {
        match self.until.get(key) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.until.remove(key);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, key: [u8; 32], now: Instant) {
        if self.until.len() >= CACHE_ENTRIES {
            self.until.retain(|_, until| *until > now);
        }
        if self.until.len() >= CACHE_ENTRIES
            && let Some(any) = self.until.keys().next().copied()
        {
            self.until.remove(&any);
        }
        self.until.insert(key, now + CACHE_TTL);
    }
}

/// The dashboard's door: the configured [`Auth`], the bound on concurrent password checks, the
/// remembered successes and the refusal counter.
#[derive(Debug)]
pub struct Gate {
    auth: Auth,
    checking: Arc<Semaphore>,
    remembered: Mutex<Remembered>,
    key: [u8; 32],
    csrf_key: [u8; 64],
    refusals: Family<ReasonLabels, Counter>,
}

/// The raw `Authorization` header of an HTTP Basic request, and the user and password in it.
/// `Missing` without a Basic header; `Wrong` when it is too long or cannot be read.
fn basic_credentials(request: &HttpRequest) -> Result<(&[u8], String, String), Refusal> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(Refusal::Missing);
    };
    let raw = value.as_bytes();
    let Some(encoded) = raw
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
        .and(raw.get(6..))
    else {
        return Err(Refusal::Missing);
    };
    if raw.len() > MAX_AUTHORIZATION_BYTES {
        return Err(Refusal::Wrong);
    }
    let (user, password) = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .ok()
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|decoded| {
            decoded
                .split_once(':')
                .map(|(user, password)| (user.to_owned(), password.to_owned()))
        })
        .ok_or(Refusal::Wrong)?;
    Ok((raw, user, password))
}

/// A key of `N` random bytes (a multiple of 16) from the operating system's generator.
fn random_key<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut key = [0; N];
    for part in key.chunks_mut(16) {
        part.copy_from_slice(&argon2::password_hash::try_generate_salt()?);
    }
    Ok(key)
}

impl Gate {
    /// A gate for `auth` counting its refusals in `refusals`.
    pub fn new(auth: Auth, refusals: Family<ReasonLabels, Counter>) -> anyhow::Result<Self> {
        for reason in Refusal::ALL {
            let _ = refusals.get_or_create(&ReasonLabels { reason: reason.label() });
        }
        Ok(Self {
            auth,
            checking: Arc::new(Semaphore::new(VERIFY_CONCURRENCY)),
            remembered: Mutex::new(Remembered::default()),
            key: random_key()?,
            csrf_key: random_key()?,
            refusals,
        })
    }

    /// Lets `request` through, or says why not.
    async fn admit(&self, request: &HttpRequest) -> Result<(), Refusal> {
        match &self.auth {
            Auth::Open { .. } => Ok(()),
            Auth::Proxy { header, trusted } => {
                let peer = request.peer_addr().map(|peer| peer.ip().to_canonical());
                if !peer.is_some_and(|peer: IpAddr| trusted.iter().any(|net| net.contains(&peer))) {
                    return Err(Refusal::UntrustedProxy);
                }
                match request.headers().get(header).map(HeaderValue::to_str) {
                    Some(Ok(user)) if !user.trim().is_empty() => Ok(()),
                    _ => Err(Refusal::Missing),
                }
            }
            Auth::Basic { users, .. } => self.admit_basic(request, users).await,
        }
    }

    async fn admit_basic(&self, request: &HttpRequest, users: &Arc<Users>) -> Result<(), Refusal> {
        let (raw, user, password) = basic_credentials(request)?;
        let key: [u8; 32] = Sha256::new().chain_update(self.key).chain_update(raw).finalize().into();
        if self.remembered().contains(&key, Instant::now()) {
            return Ok(());
        }
        let Ok(permit) = Arc::clone(&self.checking).try_acquire_owned() else {
            return Err(Refusal::Busy);
        };
        let users = Arc::clone(users);
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            users.verify(&user, password.as_bytes())
        })
        .await;
        match verified {
            Ok(true) => {
                self.remembered().insert(key, Instant::now());
                Ok(())
            }
            Ok(false) => Err(Refusal::Wrong),
            Err(error) => {
                log::error!("dashboard password check failed: {error}");
                Err(Refusal::Busy)
            }
        }
    }

    /// Whether users sign in (so that a form may change something: see [`Gate::csrf_token`]).
    pub fn signs_in(&self) -> bool {
        !matches!(self.auth, Auth::Open { .. })
    }

    /// The signed-in user of a request the gate let through: the Basic user name, or the
    /// proxy's header. `None` without a login.
    pub fn user(&self, request: &HttpRequest) -> Option<String> {
        match &self.auth {
            Auth::Open { .. } => None,
            Auth::Proxy { header, .. } => request
                .headers()
                .get(header)
                .and_then(|value| value.to_str().ok())
                .map(|user| user.trim().to_owned()),
            Auth::Basic { .. } => basic_credentials(request).ok().map(|(_, user, _)| user),
        }
    }

    /// The CSRF token of `user`'s forms: an HMAC-SHA256 of the user name under a key that is
    /// random per process (a restart makes open forms stale), so it needs no storage and another
    /// site, which cannot read the dashboard's pages, cannot know it.
    pub fn csrf_token(&self, user: &str) -> String {
        let mut mac = self.csrf_mac();
        mac.update(user.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `token` is `user`'s CSRF token (compared in constant time).
    pub fn csrf_token_is_valid(&self, user: &str, token: &str) -> bool {
        let Ok(token) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        let mut mac = self.csrf_mac();
        mac.update(user.as_bytes());
        mac.verify_slice(&token).is_ok()
    }

    fn csrf_mac(&self) -> Hmac<Sha256> {
        // A key of SHA-256's block size, so the fixed-size (infallible) constructor applies.
        <Hmac<Sha256> as KeyInit>::new(&self.csrf_key.into())
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // The map holds no invariant a panicking holder could break.
        self.remembered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The answer to a refused request, in the form of its path.
    fn refusal(&self, request: &HttpRequest, refusal: Refusal) -> HttpResponse {
        self.refusals
            .get_or_create(&ReasonLabels {
                reason: refusal.label(),
            })
            .inc();
        match (refusal, &self.auth) {
            (Refusal::Busy, _) => {
                let mut response = crate::error(
                    request,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many sign-ins are being checked; try again in a second",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            (_, Auth::Proxy { .. }) => {
                crate::error(request, StatusCode::FORBIDDEN, "sign in through the dashboard's proxy")
            }
            _ => {
                let mut response = crate::error(request, StatusCode::UNAUTHORIZED, "sign in to see the dashboard");
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
                response
            }
        }
    }
}

/// The middleware: every path but [`OPEN_PATHS`] passes the [`Gate`] first.
pub async fn require_login<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let gate = request.app_data::<web::Data<Gate>>().cloned();
    if let Some(gate) = gate
        && !OPEN_PATHS.contains(&request.path())
        && let Err(refusal) = gate.admit(request.request()).await
    {
        let response = gate.refusal(request.request(), refusal);
        return Ok(request.into_response(response).map_into_right_body());
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(user: &str, password: &str) -> String {
        users_file_line(user, password).unwrap()
    }

    #[test]
    fn a_users_file_skips_comments_and_blank_lines_and_verifies_its_users() {
        let text = format!(
            "# the operators\n\n{}\n  {}  \n",
            line("ann", "one"),
            line("bob", "two")
        );
        let users = Users::parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("ann", b"one"));
        assert!(users.verify("bob", b"two"));
        assert!(!users.verify("ann", b"two"));
        assert!(!users.verify("carol", b"one"));
        assert!(!users.verify("", b""));
    }

    #[test]
    fn a_bad_users_file_line_is_named() {
        let good = line("ann", "one");
        let cases = [
            (format!("{good}\nbob\n"), "line 2: not user:hash"),
            (format!("{good}\nbob:plain\n"), "line 2: the hash is not a PHC string"),
            (
                format!("# c\n{good}\nbob:$2b$12$abcdefghijklmnopqrstuu5Pq3Ha8Oh2kcl7QDEW9rHpiRo1rRXDC\n"),
                "line 3:",
            ),
            (
                format!("{good}\n{good}\n"),
                "line 2: the user \"ann\" is already named above",
            ),
            (
                format!(" :{}\n", good.split_once(':').unwrap().1),
                "line 1: the user name is empty",
            ),
            ("# nobody\n\n".to_owned(), "no users in it"),
        ];
        for (text, expected) in cases {
            let error = Users::parse(&text).unwrap_err();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn unknown_users_are_checked_against_a_hash_of_the_first_users_parameters() {
        let cheap = Argon2::from(Params::new(1024, 1, 1, None).unwrap())
            .hash_password(b"pw")
            .unwrap();
        let text = format!("zed:{cheap}\n{}\n", line("ann", "one"));
        let users = Users::parse(&text).unwrap();
        assert_eq!(users.dummy.params.to_string(), "m=1024,t=1,p=1");
        assert!(users.verify("zed", b"pw"));
        assert!(!users.verify("nobody", b"pw"));
    }

    #[test]
    fn hash_password_lines_are_argon2id_phc_strings() {
        let made = line("ann", "correct horse");
        let (user, hash) = made.split_once(':').unwrap();
        assert_eq!(user, "ann");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(users_file_line("a b", "x").is_err());
        assert!(users_file_line("ann", "").is_err());
    }

    #[test]
    fn remembered_checks_expire_and_stay_bounded() {
        let mut remembered = Remembered::default();
        let now = Instant::now();
        remembered.insert([1; 32], now);
        assert!(remembered.contains(&[1; 32], now));
        assert!(!remembered.contains(&[1; 32], now + CACHE_TTL));
        for index in 0..(CACHE_ENTRIES + 10) {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&(index as u64).to_le_bytes());
            remembered.insert(key, now);
        }
        assert_eq!(remembered.until.len(), CACHE_ENTRIES);
    }

    fn read(pairs: &[(&str, &str)], addr: &str) -> Result<Auth, ConfigError> {
        Vars::with_pairs(pairs, |vars| Auth::from_vars(vars, addr.parse().unwrap()))
    }

    #[test]
    fn an_unset_auth_is_allowed_on_loopback_only() {
        assert!(matches!(
            read(&[], "127.0.0.1:3002"),
            Ok(Auth::Open { explicit: false })
        ));
        assert!(matches!(read(&[], "[::1]:3002"), Ok(Auth::Open { explicit: false })));
        let error = read(&[], "0.0.0.0:3002").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid configuration: DASHBOARD_AUTH is not set: expected basic:FILE"),
            "{error}"
        );
        assert!(
            error.contains("DASHBOARD_ADDR=0.0.0.0:3002 is not a loopback address"),
            "{error}"
        );
        assert!(matches!(
            read(&[("DASHBOARD_AUTH", "none")], "0.0.0.0:3002"),
            Ok(Auth::Open { explicit: true })
        ));
    }

    #[test]
    fn proxy_auth_needs_a_header_name_and_trusted_proxies() {
        let auth = read(
            &[
                ("DASHBOARD_AUTH", "proxy:X-Forwarded-User"),
                (TRUSTED_PROXIES, "10.0.0.0/8"),
            ],
            "0.0.0.0:3002",
        )
        .unwrap();
        assert!(matches!(auth, Auth::Proxy { ref header, .. } if header.as_str() == "x-forwarded-user"));
        let error = read(&[("DASHBOARD_AUTH", "proxy:X-Forwarded-User")], "0.0.0.0:3002").unwrap_err();
        assert_eq!(error.variable(), TRUSTED_PROXIES);
        let error = read(
            &[("DASHBOARD_AUTH", "proxy:Bad Header"), (TRUSTED_PROXIES, "::1")],
            "0.0.0.0:3002",
        )
        .unwrap_err();
        assert!(error.to_string().contains("is not a header name"), "{error}");
        let error = read(
            &[("DASHBOARD_AUTH", "proxy:Authorization"), (TRUSTED_PROXIES, "::1")],
            "0.0.0.0:3002",
        )
        .unwrap_err();
        assert_eq!(error.variable(), VARIABLE);
        let error = read(&[("DASHBOARD_AUTH", "ldap")], "127.0.0.1:3002")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid configuration: DASHBOARD_AUTH=\"ldap\": expected basic:FILE"),
            "{error}"
        );
    }
}
