//! The operator's pages: their query strings checked (a bad value is a 400 that names it), the
//! data read, the page rendered by [`crate::pages`].

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use sqlx::MySqlPool;
use webhook_core::broker::BrokerSettings;
use webhook_core::dlq;
use webhook_core::envelope::is_valid_source_name;
use webhook_core::service::Selection;
use webhook_core::when;

use crate::auth::Gate;
use crate::data::{self, EventFilter};
use crate::{error, pages};

/// Rows per page of `/events` by default, and at most.
pub const EVENTS_PER_PAGE: u32 = 50;
/// The most rows a page may ask for.
pub const MAX_PER_PAGE: u32 = 200;
/// Raw rejections shown under the totals.
pub const LATEST_REJECTIONS: u32 = 20;
/// The longest window of `/rejections`, in days.
pub const MAX_REJECTION_DAYS: i64 = 366;
/// Dead letters per page.
pub const DEAD_LETTERS_PER_PAGE: u32 = 100;
/// The bucket rejections of unknown sources are counted under.
const UNKNOWN_SOURCE: &str = "(unknown)";

const UNREADABLE: &str = "The database cannot be read right now (is it up, and has `consumer migrate` run?).";

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn query<T: serde::de::DeserializeOwned>(request: &HttpRequest) -> Result<T, String> {
    web::Query::<T>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| match error {
            actix_web::error::QueryPayloadError::Deserialize(why) => format!("the query string cannot be read: {why}"),
            other => format!("the query string cannot be read: {other}"),
        })
}

fn given(value: Option<&String>) -> Option<&str> {
    value.map(|value| value.trim()).filter(|value| !value.is_empty())
}

fn source(name: &str, value: Option<&String>, allow_unknown: bool) -> Result<Option<String>, String> {
    match given(value) {
        None => Ok(None),
        Some(source) if is_valid_source_name(source) || allow_unknown && source == UNKNOWN_SOURCE => {
            Ok(Some(source.to_owned()))
        }
        Some(source) => Err(format!("{name}={source:?} is not a source name")),
    }
}

/// A time of the query string, as MySQL compares it (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC): RFC 3339,
/// `YYYY-MM-DDTHH:MM[:SS]` (UTC, as a browser's time input sends it) or a date. A date given to
/// `until` means the end of that day, as `consumer replay --until` reads it.
pub fn parse_time(name: &str, text: &str, end_of_day: bool) -> Result<String, String> {
    when::parse(text, end_of_day, when::Naive::Utc)
        .map(|at| at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
        .ok_or_else(|| format!("{name}={text:?} is not {}", when::FORMATS_WITH_NAIVE))
}

fn bounded_text(name: &str, value: Option<&String>, max: usize) -> Result<Option<String>, String> {
    match given(value) {
        None => Ok(None),
        Some(value) if value.len() > max => Err(format!("{name} is longer than {max} bytes")),
        Some(value) if value.chars().any(char::is_control) => Err(format!("{name} has a control character")),
        Some(value) => Ok(Some(value.to_owned())),
    }
}

fn number(name: &str, value: Option<&String>) -> Result<Option<u64>, String> {
    given(value)
        .map(|value| {
            value
                .parse::<u64>()
                .map_err(|_| format!("{name}={value:?} is not a whole number"))
        })
        .transpose()
}

fn per_page(value: Option<&String>, default: u32) -> Result<u32, String> {
    match number("limit", value)? {
        None => Ok(default),
        Some(limit) if (1..=u64::from(MAX_PER_PAGE)).contains(&limit) => Ok(limit as u32),
        Some(limit) => Err(format!("limit={limit} is not between 1 and {MAX_PER_PAGE}")),
    }
}

/// The query string of `/events`.
#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    delivery_id: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

impl EventsQuery {
    fn filter(&self) -> Result<EventFilter, String> {
        let since = given(self.since.as_ref())
            .map(|since| parse_time("since", since, false))
            .transpose()?;
        let until = given(self.until.as_ref())
            .map(|until| parse_time("until", until, true))
            .transpose()?;
        if let (Some(since), Some(until)) = (&since, &until)
            && since >= until
        {
            return Err(format!(
                "since={:?} is not before until={:?}",
                self.since.as_deref().unwrap_or_default().trim(),
                self.until.as_deref().unwrap_or_default().trim()
            ));
        }
        Ok(EventFilter {
            source: source("source", self.source.as_ref(), false)?,
            event_type: bounded_text("type", self.event_type.as_ref(), 128)?,
            since,
            until,
            delivery_id: bounded_text("delivery_id", self.delivery_id.as_ref(), 200)?,
            before: number("before", self.before.as_ref())?,
            limit: per_page(self.limit.as_ref(), EVENTS_PER_PAGE)?,
        })
    }

    /// The query as given, for the form and the next page's link.
    fn form(&self) -> BTreeMap<&'static str, String> {
        [
            ("source", &self.source),
            ("type", &self.event_type),
            ("since", &self.since),
            ("until", &self.until),
            ("delivery_id", &self.delivery_id),
            ("limit", &self.limit),
        ]
        .into_iter()
        .filter_map(|(name, value)| given(value.as_ref()).map(|value| (name, value.to_owned())))
        .collect()
    }
}

/// `GET /events`.
pub async fn events(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    let parsed = query::<EventsQuery>(&request).and_then(|query| query.filter().map(|filter| (query, filter)));
    let (query, filter) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return error(&request, StatusCode::BAD_REQUEST, &why),
    };
    let form = query.form();
    match data::events(&pool, &filter).await {
        Ok((rows, more)) => html(
            StatusCode::OK,
            pages::events(&pages::EventsPage {
                form: &form,
                filter: &filter,
                rows: &rows,
                more,
                problem: None,
            }),
        ),
        Err(failure) => {
            log::warn!("dashboard events query failed: {failure}");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::events(&pages::EventsPage {
                    form: &form,
                    filter: &filter,
                    rows: &[],
                    more: false,
                    problem: Some(UNREADABLE),
                }),
            )
        }
    }
}

/// `GET /events/{id}`.
pub async fn event(pool: web::Data<MySqlPool>, id: web::Path<String>, request: HttpRequest) -> HttpResponse {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            &request,
            StatusCode::BAD_REQUEST,
            &format!("{:?} is not an event id (a whole number)", id.as_str()),
        );
    };
    match data::event(&pool, id).await {
        Ok(Some((event, erasure))) => html(StatusCode::OK, pages::event(&event, erasure.as_ref())),
        Ok(None) => error(&request, StatusCode::NOT_FOUND, &format!("no stored event has id {id}")),
        Err(failure) => {
            log::warn!("dashboard event query failed: {failure}");
            error(&request, StatusCode::SERVICE_UNAVAILABLE, UNREADABLE)
        }
    }
}

/// The query string of `/rejections`.
#[derive(Debug, Default, Deserialize)]
struct RejectionsQuery {
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn day(name: &str, value: Option<&String>, default: NaiveDate) -> Result<NaiveDate, String> {
    given(value).map_or(Ok(default), |value| {
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map_err(|_| format!("{name}={value:?} is not a day like 2026-01-31"))
    })
}

/// `GET /rejections`.
pub async fn rejections(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    let today = Utc::now().date_naive();
    let parsed = query::<RejectionsQuery>(&request).and_then(|query| {
        let until = day("until", query.until.as_ref(), today)?;
        let since = day("since", query.since.as_ref(), until - Duration::days(6))?;
        if since > until {
            return Err(format!("since={since} is after until={until}"));
        }
        if (until - since).num_days() >= MAX_REJECTION_DAYS {
            return Err(format!(
                "since={since} to until={until} is longer than {MAX_REJECTION_DAYS} days"
            ));
        }
        Ok((since, until, source("source", query.source.as_ref(), true)?))
    });
    let (since, until, source) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return error(&request, StatusCode::BAD_REQUEST, &why),
    };
    let (since, until) = (since.to_string(), until.to_string());
    let loaded = async {
        let totals = data::rejection_totals(&pool, &since, &until, source.as_deref()).await?;
        let latest = data::latest_rejections(&pool, source.as_deref(), LATEST_REJECTIONS).await?;
        Ok::<_, sqlx::Error>((totals, latest))
    }
    .await;
    let (status, totals, latest, problem) = match loaded {
        Ok((totals, latest)) => (StatusCode::OK, totals, latest, None),
        Err(failure) => {
            log::warn!("dashboard rejections query failed: {failure}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Vec::new(),
                Vec::new(),
                Some(UNREADABLE),
            )
        }
    };
    html(
        status,
        pages::rejections(&pages::RejectionsPage {
            since: &since,
            until: &until,
            source: source.as_deref(),
            totals: &totals,
            latest: &latest,
            problem,
        }),
    )
}

/// The query string of `/dead-letters`.
#[derive(Debug, Default, Deserialize)]
struct DeadLettersQuery {
    source: Option<String>,
    before: Option<String>,
}

/// What `POST /dead-letters/replay` does with the picked letters: with the broker's settings
/// (`AMQP_URL` set) it replays them, as `consumer dlq replay --id …` does; without, it answers
/// that command.
#[derive(Debug)]
pub struct Replayer {
    broker: Option<BrokerSettings>,
}

impl Replayer {
    /// Replays through `broker`, or answers the command when it is `None`.
    pub fn new(broker: Option<BrokerSettings>) -> Self {
        Self { broker }
    }

    /// Whether the POST replays (else it answers the command).
    pub fn replays(&self) -> bool {
        self.broker.is_some()
    }
}

/// `GET /dead-letters`: with a replay form (and its CSRF token) only when users sign in.
pub async fn dead_letters(
    pool: web::Data<MySqlPool>,
    gate: web::Data<Gate>,
    replayer: web::Data<Replayer>,
    request: HttpRequest,
) -> HttpResponse {
    let parsed = query::<DeadLettersQuery>(&request).and_then(|query| {
        Ok((
            source("source", query.source.as_ref(), false)?,
            number("before", query.before.as_ref())?,
        ))
    });
    let (source, before) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return error(&request, StatusCode::BAD_REQUEST, &why),
    };
    let csrf = gate.user(&request).map(|user| gate.csrf_token(&user));
    let (status, rows, more, problem) =
        match data::dead_letter_page(&pool, source.as_deref(), before, DEAD_LETTERS_PER_PAGE).await {
            Ok((rows, more)) => (StatusCode::OK, rows, more, None),
            Err(failure) => {
                log::warn!("dashboard dead letters query failed: {failure}");
                (StatusCode::SERVICE_UNAVAILABLE, Vec::new(), false, Some(UNREADABLE))
            }
        };
    html(
        status,
        pages::dead_letters(&pages::DeadLettersPage {
            source: source.as_deref(),
            rows: &rows,
            more,
            csrf: csrf.as_deref(),
            replays: replayer.replays(),
            problem,
        }),
    )
}

/// `POST /dead-letters/replay` (a form of `csrf` and `id`s, at most [`DEAD_LETTERS_PER_PAGE`]):
/// with the broker, replays the picked letters (by their delivery id, as `consumer dlq replay
/// --id …`) and answers the report; without, answers that command. Refused (403) without a
/// login or without the signed-in user's CSRF token; 503 when the broker cannot be reached.
pub async fn replay(
    pool: web::Data<MySqlPool>,
    gate: web::Data<Gate>,
    replayer: web::Data<Replayer>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if !gate.signs_in() {
        return error(
            &request,
            StatusCode::FORBIDDEN,
            "the dashboard is read-only without a login: set DASHBOARD_AUTH to basic:FILE or proxy:HEADER",
        );
    }
    let fields = std::str::from_utf8(&body)
        .ok()
        .and_then(|body| web::Query::<Vec<(String, String)>>::from_query(body).ok())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let token = fields
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.as_str());
    let user = gate.user(&request);
    let valid = match (&user, token) {
        (Some(user), Some(token)) => gate.csrf_token_is_valid(user, token),
        _ => false,
    };
    let Some(user) = user.filter(|_| valid) else {
        return error(
            &request,
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the dead letters page and try again",
        );
    };
    let mut ids = Vec::new();
    for (name, value) in &fields {
        if name == "id" {
            match value.trim().parse::<u64>() {
                Ok(id) if ids.len() < usize::try_from(DEAD_LETTERS_PER_PAGE).unwrap_or(100) => ids.push(id),
                Ok(_) => {
                    return error(
                        &request,
                        StatusCode::BAD_REQUEST,
                        &format!("at most {DEAD_LETTERS_PER_PAGE} dead letters at once"),
                    );
                }
                Err(_) => {
                    return error(
                        &request,
                        StatusCode::BAD_REQUEST,
                        &format!("id={value:?} is not a dead letter id"),
                    );
                }
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return error(&request, StatusCode::BAD_REQUEST, "pick at least one dead letter");
    }
    let rows = match data::dead_letters_by_id(&pool, &ids).await {
        Ok(rows) => rows,
        Err(failure) => {
            log::warn!("dashboard dead letters query failed: {failure}");
            return error(&request, StatusCode::SERVICE_UNAVAILABLE, UNREADABLE);
        }
    };
    let missing = ids.len() - rows.len();
    let Some(broker) = replayer.broker.clone() else {
        return html(StatusCode::OK, pages::replay(&rows, missing));
    };
    let mut delivery_ids: Vec<String> = Vec::new();
    for row in &rows {
        if !delivery_ids.contains(&row.letter.delivery_id) {
            delivery_ids.push(row.letter.delivery_id.clone());
        }
    }
    let queues = pages::ReplayQueues {
        dead: broker.topology.dead_queue(),
        exchange: broker.topology.exchange(),
    };
    if delivery_ids.is_empty() {
        log::info!(
            "dead-letter replay by user={user:?}: {} id(s) picked, none recorded: nothing replayed",
            ids.len()
        );
        return html(
            StatusCode::OK,
            pages::replayed(&rows, missing, &dlq::ReplayReport::default(), &queues),
        );
    }
    let selection = Selection::Ids(delivery_ids.clone());
    // On a task of its own, so that a browser that goes away does not stop a replay half-way
    // (a letter republished but not yet removed would be replayed again).
    let replayed = tokio::spawn(async move { dlq::replay(&broker, &selection).await }).await;
    match replayed {
        Ok(Ok(report)) => {
            log::info!(
                "dead-letter replay by user={user:?}: {} id(s) picked, {} delivery id(s): replayed={} not_found={} failed={}",
                ids.len(),
                delivery_ids.len(),
                report.replayed,
                report.not_found.len(),
                report.failed.len()
            );
            html(StatusCode::OK, pages::replayed(&rows, missing, &report, &queues))
        }
        Ok(Err(failure)) => {
            log::info!(
                "dead-letter replay by user={user:?}: {} id(s) picked, {} delivery id(s): not done: {}",
                ids.len(),
                delivery_ids.len(),
                failure.line()
            );
            let message = if failure.is_unreachable() {
                format!(
                    "The broker cannot be reached, so nothing was replayed: {}. Try again when it is back; the letters are still in {}.",
                    failure.line(),
                    queues.dead
                )
            } else {
                format!(
                    "The replay did not finish: {}. Letters the broker confirmed before it stopped are gone from {}; the others are still there (reload the dead letters page and try again).",
                    failure.line(),
                    queues.dead
                )
            };
            error(&request, StatusCode::SERVICE_UNAVAILABLE, &message)
        }
        Err(failure) => {
            log::error!(
                "dead-letter replay by user={user:?}: {} id(s) picked: the replay task failed: {failure}",
                ids.len()
            );
            error(
                &request,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the replay failed unexpectedly: see the dashboard's log",
            )
        }
    }
}

/// The query string of `/compare`.
#[derive(Debug, Default, Deserialize)]
struct CompareQuery {
    currency: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /compare`: every vendor's net sales per month in one currency (the first with sales by
/// default), the last twelve months by default.
pub async fn compare(pool: web::Data<MySqlPool>, request: HttpRequest) -> HttpResponse {
    let parsed = query::<CompareQuery>(&request).and_then(|query| {
        let currency = given(query.currency.as_ref())
            .map(|currency| {
                if currency.len() == 3 && currency.bytes().all(|byte| byte.is_ascii_uppercase()) {
                    Ok(currency.to_owned())
                } else {
                    Err(format!("currency={currency:?} is not an ISO 4217 code such as EUR"))
                }
            })
            .transpose()?;
        let (from, to) = crate::page::month_window(given(query.from.as_ref()), given(query.to.as_ref()))?;
        Ok((currency, from, to))
    });
    let (currency, from, to) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return error(&request, StatusCode::BAD_REQUEST, &why),
    };
    let loaded = async {
        let currencies = data::currencies(&pool).await?;
        let currency = currency.or_else(|| currencies.first().cloned());
        let rows = match &currency {
            Some(currency) => data::sales_in_currency(&pool, currency, &from, &to).await?,
            None => Vec::new(),
        };
        Ok::<_, sqlx::Error>((currencies, currency, rows))
    }
    .await;
    let (status, currencies, currency, rows, problem) = match loaded {
        Ok((currencies, currency, rows)) => (StatusCode::OK, currencies, currency, rows, None),
        Err(failure) => {
            log::warn!("dashboard comparison query failed: {failure}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Vec::new(),
                None,
                Vec::new(),
                Some(UNREADABLE),
            )
        }
    };
    html(
        status,
        pages::compare(&pages::ComparePage {
            currency: currency.as_deref(),
            currencies: &currencies,
            from: &from,
            to: &to,
            rows: &rows,
            problem,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_utc_and_a_date_until_covers_its_day() {
        assert_eq!(
            parse_time("since", "2026-11-01T10:00:00+01:00", false).unwrap(),
            "2026-11-01 09:00:00.000000"
        );
        assert_eq!(
            parse_time("since", "2026-11-01T10:00", false).unwrap(),
            "2026-11-01 10:00:00.000000"
        );
        assert_eq!(
            parse_time("until", "2026-11-30", true).unwrap(),
            "2026-12-01 00:00:00.000000"
        );
        assert!(
            parse_time("since", "yesterday", false)
                .unwrap_err()
                .starts_with("since=\"yesterday\"")
        );
    }

    #[test]
    fn bad_event_filters_are_named() {
        let query = |pairs: &[(&str, &str)]| {
            let text: Vec<String> = pairs.iter().map(|(name, value)| format!("{name}={value}")).collect();
            web::Query::<EventsQuery>::from_query(&text.join("&"))
                .unwrap()
                .into_inner()
                .filter()
        };
        assert_eq!(
            query(&[("limit", "0")]).unwrap_err(),
            "limit=0 is not between 1 and 200"
        );
        assert_eq!(
            query(&[("before", "x")]).unwrap_err(),
            "before=\"x\" is not a whole number"
        );
        assert_eq!(
            query(&[("since", "2026-02-01"), ("until", "2026-01-01")]).unwrap_err(),
            "since=\"2026-02-01\" is not before until=\"2026-01-01\""
        );
        assert_eq!(
            query(&[("source", "a%20b")]).unwrap_err(),
            "source=\"a b\" is not a source name"
        );
        assert_eq!(query(&[]).unwrap().limit, EVENTS_PER_PAGE);
    }
}
