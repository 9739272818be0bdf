//! The dashboard: sales per month per vendor, vendor health and the latest dead letters, as a
//! server-rendered page at `/` and as JSON under `/api/…`, read from the SQL views
//! `sales_per_month` and `vendor_health` (it only ever reads; give it a read-only user).
//!
//! Who may see it is `DASHBOARD_AUTH` ([`auth`]): unset, only on a loopback address; HTTP
//! Basic against a users file of argon2 hashes; or a header from a trusted reverse proxy.
//! `/healthz`, `/readyz` and `/metrics` never ask for a login.
//!
//! The operator's pages ([`operator`], rendered by [`pages`]): `/events` and `/events/{id}`,
//! `/rejections`, `/dead-letters` (with `POST /dead-letters/replay` behind a login and a CSRF
//! token: it replays the picked letters when the dashboard is given the broker, `AMQP_URL`,
//! and otherwise answers the `consumer dlq replay` command) and `/compare`.
//!
//! Every path but that `POST` answers `GET` and `HEAD`; every answer, errors included, is the dashboard's own
//! (JSON under `/api/`, a page elsewhere) and carries `X-Content-Type-Options: nosniff` and a
//! Content-Security-Policy that allows the page's one stylesheet and nothing else, and no
//! framing.

pub mod auth;
pub mod data;
pub mod operator;
pub mod page;
pub mod pages;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, guard, middleware, web};
use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::BrokerSettings;
use webhook_core::config::{ConfigError, Url, Vars};
use webhook_core::envelope::is_valid_source_name;
use webhook_core::http::{self, Listening};
use webhook_core::metrics::registered;

use crate::auth::{Auth, Gate};
use crate::data::Filter;

/// The dashboard's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL` (a read-only user is enough).
    pub database_url: Url,
    /// `DASHBOARD_ADDR`, default `127.0.0.1:3002`.
    pub addr: SocketAddr,
    /// `DASHBOARD_AUTH`: who may see it (unset is only allowed on a loopback address).
    pub auth: Auth,
    /// The broker, when `AMQP_URL` is set (with `AMQP_PREFIX` and the rest, read as the
    /// consumer reads them): `POST /dead-letters/replay` then replays the picked letters.
    /// `None`: it answers the `consumer dlq replay` command instead.
    pub broker: Option<BrokerSettings>,
}

impl Settings {
    /// Reads `DATABASE_URL`, `DASHBOARD_ADDR`, `DASHBOARD_AUTH` (with its users file or
    /// `DASHBOARD_TRUSTED_PROXIES`) and, when `AMQP_URL` is set, the broker's variables.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let addr = vars.socket_addr("DASHBOARD_ADDR", "127.0.0.1:3002")?;
        Ok(Self {
            database_url: database_url(vars)?,
            addr,
            auth: Auth::from_vars(vars, addr)?,
            broker: vars
                .get("AMQP_URL")
                .map(|_| BrokerSettings::from_vars(vars))
                .transpose()?,
        })
    }
}

/// `DATABASE_URL`: read as every service reads it (its TLS files checked), and naming the
/// database.
fn database_url(vars: &Vars<'_>) -> Result<Url, ConfigError> {
    const DEFAULT: &str = "mysql://root@127.0.0.1:3306/webhooks";
    let (url, options) = webhook_core::database::from_vars(vars, DEFAULT)?;
    if options.get_database().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            webhook_core::database::VARIABLE,
            Some(&url.redacted()),
            format!("a MySQL URL that names the database, such as {DEFAULT}"),
        ));
    }
    Ok(url)
}

/// The query string of the page and the API.
#[derive(Debug, Default, Deserialize)]
pub struct FilterQuery {
    vendor: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl FilterQuery {
    /// The filter of a request's query string; an error says what is wrong with it.
    pub fn of(request: &HttpRequest) -> Result<Filter, String> {
        let query = web::Query::<Self>::from_query(request.query_string()).map_err(|error| match error {
            actix_web::error::QueryPayloadError::Deserialize(why) => format!("the query string cannot be read: {why}"),
            other => format!("the query string cannot be read: {other}"),
        })?;
        query.resolve()
    }

    /// The filter, with the last twelve months by default; an error names the bad parameter.
    pub fn resolve(&self) -> Result<Filter, String> {
        fn empty_to_none(value: &Option<String>) -> Option<&str> {
            value.as_deref().map(str::trim).filter(|value| !value.is_empty())
        }
        let (from, to) = page::month_window(empty_to_none(&self.from), empty_to_none(&self.to))?;
        let vendor = empty_to_none(&self.vendor).map(str::to_owned);
        if let Some(vendor) = &vendor
            && !is_valid_source_name(vendor)
        {
            return Err(format!("vendor={vendor:?} is not a source name"));
        }
        Ok(Filter { vendor, from, to })
    }
}

/// A running dashboard.
#[derive(Debug)]
pub struct Application {
    http: Listening,
}

impl Application {
    /// Binds `DASHBOARD_ADDR`; connects to the database lazily, so it starts even while the
    /// database is down (and says so on the page). One connection is tried at once in the
    /// background, so that a wrong password or certificate is logged at start, in one line
    /// naming `DATABASE_URL`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(settings.database_url.expose())
            .context("DATABASE_URL")?;
        let url = settings.database_url.clone();
        tokio::spawn(async move {
            match <sqlx::MySqlConnection as sqlx::Connection>::connect(url.expose()).await {
                Ok(connection) => {
                    let _ = sqlx::Connection::close(connection).await;
                    log::info!("dashboard database reachable: url={}", url.redacted());
                }
                Err(error) => log::warn!(
                    "dashboard database check failed: {}",
                    webhook_core::database::explain(&error, &url)
                ),
            }
        });
        let (listener, addr) = http::bind("DASHBOARD_ADDR", settings.addr)?;
        let pool = web::Data::new(pool);
        let mut registry = Registry::with_prefix("webhook_dashboard");
        let refusals = registered(
            &mut registry,
            "auth_refusals",
            "Requests refused a login, by reason: missing, wrong, busy (too many password checks at once), untrusted_proxy",
            prometheus_client::metrics::family::Family::default(),
        );
        let ledger = web::Data::new(LedgerMetrics {
            unexplained: registered(
                &mut registry,
                "ledger_unexplained",
                "Per vendor, the ledger's difference over the last 7 days that is not in flight (accepted - stored - duplicates - dead-lettered - in a retry queue); read from the view at most every 5 s",
                Family::default(),
            ),
            up: registered(
                &mut registry,
                "ledger_up",
                "1 if the ledger could be read at its last reading, else 0",
                Gauge::default(),
            ),
            read_at: tokio::sync::Mutex::new(None),
        });
        let registry = web::Data::new(registry);
        match &settings.auth {
            Auth::Open { explicit: true } => log::warn!("{}", settings.auth.describe(addr)),
            auth => log::info!("{}", auth.describe(addr)),
        }
        let gate = web::Data::new(Gate::new(settings.auth.clone(), refusals).context("the dashboard's login")?);
        match &settings.broker {
            Some(broker) => log::info!(
                "dashboard replays dead letters of {} through the broker at {}",
                broker.topology.dead_queue(),
                broker.addresses.redacted()
            ),
            None => log::info!("dashboard replay form answers the consumer dlq replay command (AMQP_URL is not set)"),
        }
        let replayer = web::Data::new(operator::Replayer::new(settings.broker.clone()));
        let policy = page::content_security_policy();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(pool.clone())
                .app_data(gate.clone())
                .app_data(registry.clone())
                .app_data(ledger.clone())
                .app_data(replayer.clone())
                // Inside the default headers, so that refusals carry them too.
                .wrap(middleware::from_fn(auth::require_login))
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::CONTENT_SECURITY_POLICY, policy.clone())),
                )
                .service(readable("/", index))
                .service(readable("/events", operator::events))
                .service(readable("/events/{id}", operator::event))
                .service(readable("/rejections", operator::rejections))
                .service(readable("/dead-letters", operator::dead_letters))
                .service(
                    web::resource("/dead-letters/replay")
                        .route(web::post().to(operator::replay))
                        .default_service(web::to(post_only)),
                )
                .service(readable("/compare", operator::compare))
                .service(readable("/api/sales", api_sales))
                .service(readable("/api/health", api_health))
                .service(readable("/api/dead-letters", api_dead_letters))
                .service(readable("/api/ledger", api_ledger))
                .service(readable("/healthz", http::healthz))
                .service(readable("/readyz", readyz))
                .service(readable("/metrics", metrics))
                .default_service(web::to(not_found))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        log::info!("dashboard listening on http://{addr}");
        Ok(Self {
            http: Listening::new(addr, server),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Cancel to stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.http.shutdown_token()
    }

    /// Serves until the token is cancelled.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.http.serve_until_stopped().await.context("the HTTP server failed")
    }
}

/// `path`, answering `GET` and `HEAD` (the same headers, no body) with `handler`, and any other
/// method with the dashboard's own 405.
fn readable<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(method_not_allowed))
}

/// Whether answers at `path` are JSON (else a page).
fn is_json_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// An error in the form of the path: `{"error": …}` under `/api/`, else a page saying it.
pub(crate) fn error(request: &HttpRequest, status: StatusCode, message: &str) -> HttpResponse {
    if is_json_path(request.path()) {
        HttpResponse::build(status).json(serde_json::json!({ "error": message }))
    } else {
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(page::error_page(status, message))
    }
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    error(&request, StatusCode::NOT_FOUND, "not found")
}

async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    allow_only(&request, "GET, HEAD", "only GET and HEAD are answered here")
}

async fn post_only(request: HttpRequest) -> HttpResponse {
    allow_only(&request, "POST", "only POST is answered here")
}

/// 405 with `Allow: {methods}` and `message`.
fn allow_only(request: &HttpRequest, methods: &'static str, message: &str) -> HttpResponse {
    let mut response = error(request, StatusCode::METHOD_NOT_ALLOWED, message);
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(methods));
    response
}

async fn index(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    let (filter, mut problem) = match FilterQuery::of(&request) {
        Ok(filter) => (filter, None),
        Err(why) => (
            FilterQuery::default()
                .resolve()
                .unwrap_or_else(|_| unreachable_filter()),
            Some(why),
        ),
    };
    // A bad query is the caller's mistake: the page explains it (over the default filter).
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let loaded = async {
        let vendors = data::vendors(&pool).await?;
        let sales = data::sales(&pool, &filter).await?;
        let health = data::health(&pool, &filter).await?;
        let dead = data::dead_letters(&pool, filter.vendor.as_deref(), 20).await?;
        let ledger = data::ledger(&pool, &filter).await?;
        Ok::<_, sqlx::Error>((vendors, sales, health, dead, ledger))
    }
    .await;
    let (vendors, sales, health, dead, ledger) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            log::warn!("dashboard query failed: {error}");
            problem.get_or_insert_with(|| {
                "The database cannot be read right now (is it up, and has `consumer migrate` run?).".to_owned()
            });
            Default::default()
        }
    };
    let html = page::render(&page::PageData {
        filter: &filter,
        vendors: &vendors,
        sales: &sales,
        health: &health,
        dead_letters: &dead,
        ledger: &ledger,
        problem: problem.as_deref(),
    });
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html)
}

/// The default filter never fails to resolve; this keeps `index` free of a panic path.
fn unreachable_filter() -> Filter {
    Filter {
        vendor: None,
        from: "1970-01".to_owned(),
        to: "1970-01".to_owned(),
    }
}

fn unavailable(error: &sqlx::Error) -> HttpResponse {
    log::warn!("dashboard query failed: {error}");
    HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": "database unavailable" }))
}

async fn api_sales(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    match FilterQuery::of(&request) {
        Err(why) => error(&request, StatusCode::BAD_REQUEST, &why),
        Ok(filter) => match data::sales(&pool, &filter).await {
            Ok(rows) => HttpResponse::Ok().json(serde_json::json!({
                "vendor": filter.vendor, "from": filter.from, "to": filter.to, "rows": rows,
            })),
            Err(error) => unavailable(&error),
        },
    }
}

async fn api_health(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    match FilterQuery::of(&request) {
        Err(why) => error(&request, StatusCode::BAD_REQUEST, &why),
        Ok(filter) => match data::health(&pool, &filter).await {
            Ok(rows) => HttpResponse::Ok().json(serde_json::json!({
                "vendor": filter.vendor, "from": filter.from, "to": filter.to, "rows": rows,
            })),
            Err(error) => unavailable(&error),
        },
    }
}

async fn api_dead_letters(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    match FilterQuery::of(&request) {
        Err(why) => error(&request, StatusCode::BAD_REQUEST, &why),
        Ok(filter) => match data::dead_letters(&pool, filter.vendor.as_deref(), 100).await {
            Ok(rows) => HttpResponse::Ok().json(serde_json::json!({ "vendor": filter.vendor, "rows": rows })),
            Err(error) => unavailable(&error),
        },
    }
}

async fn api_ledger(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    match FilterQuery::of(&request) {
        Err(why) => error(&request, StatusCode::BAD_REQUEST, &why),
        Ok(filter) => match data::ledger(&pool, &filter).await {
            Ok(rows) => HttpResponse::Ok().json(serde_json::json!({
                "vendor": filter.vendor, "from": filter.from, "to": filter.to, "rows": rows,
            })),
            Err(error) => unavailable(&error),
        },
    }
}

async fn readyz(pool: web::Data<MySqlPool>) -> HttpResponse {
    let up = sqlx::query("SELECT 1").execute(pool.get_ref()).await.is_ok();
    let mut details = serde_json::Map::new();
    details.insert("database".to_owned(), (if up { "up" } else { "down" }).into());
    http::readiness(up, details)
}

/// Most vendors the ledger metric has a series for; the rest are summed as `(other)`.
const MAX_LEDGER_SERIES: usize = 100;

/// Labels of `webhook_dashboard_ledger_unexplained`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// How long a read of the ledger serves the scrapes after it: `/metrics` is open to anyone who
/// reaches the port, so a flood of scrapes costs the database one query per interval, not one
/// per request.
const LEDGER_READ_INTERVAL: Duration = Duration::from_secs(5);

/// The ledger's gauges, set from the view at most once per [`LEDGER_READ_INTERVAL`].
struct LedgerMetrics {
    unexplained: Family<SourceLabels, Gauge>,
    up: Gauge,
    /// When the view was last read; held while it is read, so concurrent scrapes wait for that
    /// read rather than start their own.
    read_at: tokio::sync::Mutex<Option<Instant>>,
}

async fn metrics(
    registry: web::Data<Registry>,
    ledger: web::Data<LedgerMetrics>,
    pool: web::Data<MySqlPool>,
) -> HttpResponse {
    let mut read_at = ledger.read_at.lock().await;
    if read_at.is_none_or(|at| at.elapsed() >= LEDGER_READ_INTERVAL) {
        read_ledger(&ledger, &pool).await;
        *read_at = Some(Instant::now());
    }
    drop(read_at);
    http::metrics(webhook_core::metrics::encode(&registry))
}

/// Sets the ledger's gauges from the view.
async fn read_ledger(ledger: &LedgerMetrics, pool: &MySqlPool) {
    // Every vendor of the window, zeros included, so a series goes back to 0 rather than
    // vanishing; one query over a few rows per vendor and day.
    match data::ledger_unexplained(pool).await {
        Ok(rows) => {
            ledger.unexplained.clear();
            let mut other = None;
            for (index, (source, unexplained)) in rows.into_iter().enumerate() {
                if index < MAX_LEDGER_SERIES {
                    ledger
                        .unexplained
                        .get_or_create(&SourceLabels { source })
                        .set(unexplained);
                } else {
                    *other.get_or_insert(0) += unexplained;
                }
            }
            if let Some(other) = other {
                ledger
                    .unexplained
                    .get_or_create(&SourceLabels {
                        source: "(other)".to_owned(),
                    })
                    .set(other);
            }
            ledger.up.set(1);
        }
        Err(error) => {
            log::warn!("dashboard ledger query failed: {error}");
            ledger.up.set(0);
        }
    }
}
