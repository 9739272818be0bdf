//! The operator's pages, rendered on the server like the overview: stored events and one event,
//! rejections by reason, dead letters with the command that replays them (or the report of a
//! replay done from the dashboard), and every vendor's monthly sales in one chart. Everything from the database is HTML-escaped; no scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::data::{
    DeadLetterRow, Erasure, EventDetail, EventFilter, EventSummary, MonthSales, Rejection, RejectionTotal,
};
use crate::page::{Axes, format_amount, minor_digits, options, page_head};
use webhook_core::dlq::ReplayReport;

/// `text` pretty-printed when it is JSON, else `None`. The text is re-indented as it is, not
/// parsed into values and printed again, so keys keep their order and numbers their digits.
pub fn pretty_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0_usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|next| next.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|next| matches!(next, '}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// `value` as one shell word: in single quotes unless it is plainly safe.
pub fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '+' | '='));
    if safe {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The command that replays these dead letters from `{AMQP_PREFIX}.dead`: `consumer dlq replay`
/// selects letters by their delivery id (the message id), one `--id` each.
pub fn replay_command<'a>(delivery_ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut command = String::from("consumer dlq replay");
    let mut seen = std::collections::BTreeSet::new();
    for id in delivery_ids {
        if seen.insert(id) {
            let _ = write!(command, " --id {}", shell_quote(id));
        }
    }
    command
}

/// `value` percent-encoded for a query string.
pub fn query_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn problem_section(problem: Option<&str>) -> String {
    problem.map_or_else(String::new, |problem| {
        format!(
            r#"<section class="problem" id="problem"><h2>Nothing to show</h2><p>{}</p></section>"#,
            text(problem)
        )
    })
}

fn input(label: &str, name: &str, value: Option<&str>, kind: &str) -> String {
    format!(
        r#"<label>{}<input type="{kind}" name="{name}" id="{name}" value="{}"></label>"#,
        text(label),
        attr(value.unwrap_or(""))
    )
}

/// What the events page shows.
#[derive(Debug)]
pub struct EventsPage<'a> {
    /// The filter as given (the form shows it back).
    pub form: &'a BTreeMap<&'static str, String>,
    /// The filter in effect.
    pub filter: &'a EventFilter,
    /// The rows, newest first.
    pub rows: &'a [EventSummary],
    /// Whether an older page follows.
    pub more: bool,
    /// The database could not be read.
    pub problem: Option<&'a str>,
}

/// `GET /events`.
pub fn events(page: &EventsPage<'_>) -> String {
    let mut html = page_head("Events — webhook-inbox dashboard", "Stored events, newest first");
    let value = |name: &str| page.form.get(name).map(String::as_str);
    let _ = write!(
        html,
        r#"<section><form method="get" action="/events">{}{}{}{}{}{}<button type="submit">Show</button></form></section>"#,
        input("Source", "source", value("source"), "text"),
        input("Type", "type", value("type"), "text"),
        input("Received since (UTC)", "since", value("since"), "text"),
        input("until (UTC)", "until", value("until"), "text"),
        input("Delivery id", "delivery_id", value("delivery_id"), "text"),
        input("Per page", "limit", Some(&page.filter.limit.to_string()), "number"),
    );
    html.push_str(&problem_section(page.problem));
    html.push_str(r#"<section id="events"><h2>Events</h2>"#);
    if page.rows.is_empty() {
        html.push_str(r#"<p class="empty">No stored events match.</p>"#);
    } else {
        html.push_str(r#"<table><thead><tr><th>Received (UTC)</th><th>Source</th><th>Type</th><th>Delivery id</th><th>Status</th><th>Body</th></tr></thead><tbody>"#);
        for row in page.rows {
            let _ = write!(
                html,
                r#"<tr data-id="{}"><td><a href="/events/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                row.id,
                row.id,
                text(&row.received_at),
                text(&row.source),
                text(&row.event_type),
                text(&row.delivery_id),
                text(&row.status),
                text(&row.body_state),
            );
        }
        html.push_str("</tbody></table>");
    }
    if page.more
        && let Some(last) = page.rows.last()
    {
        let mut query = String::new();
        for (name, value) in page.form {
            if *name != "before" && !value.is_empty() {
                let _ = write!(query, "{name}={}&", query_encode(value));
            }
        }
        let _ = write!(
            html,
            r#"<p class="pager"><a id="older" href="/events?{}before={}">Older events →</a></p>"#,
            attr(&query),
            last.id
        );
    }
    html.push_str("</section></main></body></html>");
    html
}

/// `GET /events/{id}`.
pub fn event(event: &EventDetail, erasure: Option<&Erasure>) -> String {
    let mut html = page_head(
        &format!("Event {} — webhook-inbox dashboard", event.id),
        &format!("{} · {}", event.source, event.delivery_id),
    );
    html.push_str(r#"<section id="envelope"><h2>Envelope</h2><dl class="fields">"#);
    let none = "–".to_owned();
    let fields: [(&str, &str); 15] = [
        ("Id", &event.id.to_string()),
        ("Source", &event.source),
        ("Delivery id", &event.delivery_id),
        ("Event type", &event.event_type),
        ("Content type", &event.content_type),
        ("Body SHA-256", &event.body_sha256),
        ("Received at (UTC)", &event.received_at),
        ("Stored at (UTC)", &event.stored_at),
        ("Retries before stored", &event.retry_count.to_string()),
        ("Duplicates seen", &event.duplicates.to_string()),
        ("Of them with another body", &event.conflicts.to_string()),
        ("Status", &event.status),
        ("Processed at (UTC)", event.processed_at.as_ref().unwrap_or(&none)),
        ("Processing error", event.error.as_ref().unwrap_or(&none)),
        ("Body cleared at (UTC)", event.purged_at.as_ref().unwrap_or(&none)),
    ];
    for (name, value) in fields {
        let _ = write!(html, "<dt>{}</dt><dd>{}</dd>", text(name), text(value));
    }
    html.push_str("</dl></section>");
    html.push_str(r#"<section id="body"><h2>Body</h2>"#);
    match (&event.body, erasure) {
        (None, Some(erasure)) => {
            let _ = write!(
                html,
                r#"<p class="empty" id="body-state">Erased at {} by {} ({}){}. The row stays as the dedup key, so a retry of this event is not stored again.</p>"#,
                text(&erasure.erased_at),
                text(&erasure.erased_by),
                text(&erasure.matched_by),
                erasure
                    .reason
                    .as_deref()
                    .map_or_else(String::new, |reason| format!(": {}", text(reason))),
            );
        }
        (None, None) => {
            let _ = write!(
                html,
                r#"<p class="empty" id="body-state">Purged{}: the body is gone (RETENTION_DAYS); the row, its dedup key and its SHA-256 stay.</p>"#,
                event
                    .purged_at
                    .as_deref()
                    .map_or_else(String::new, |at| format!(" at {}", text(at))),
            );
        }
        (Some(body), _) => {
            let (shown, kind) = match pretty_json(body) {
                Some(pretty) if event.content_type.contains("json") => (pretty, "json"),
                _ => (body.clone(), "raw"),
            };
            let _ = write!(
                html,
                r#"<pre class="body" id="body-text" data-format="{kind}">{}</pre>"#,
                text(&shown)
            );
        }
    }
    html.push_str(r#"</section><p><a href="/events">All events</a></p></main></body></html>"#);
    html
}

/// What the rejections page shows.
#[derive(Debug)]
pub struct RejectionsPage<'a> {
    /// First day, `YYYY-MM-DD`.
    pub since: &'a str,
    /// Last day, `YYYY-MM-DD`.
    pub until: &'a str,
    /// Only this source.
    pub source: Option<&'a str>,
    /// Totals by source and reason.
    pub totals: &'a [RejectionTotal],
    /// The latest raw rows.
    pub latest: &'a [Rejection],
    /// The database could not be read.
    pub problem: Option<&'a str>,
}

/// `GET /rejections`.
pub fn rejections(page: &RejectionsPage<'_>) -> String {
    let mut html = page_head(
        "Rejections — webhook-inbox dashboard",
        &format!("Rejected requests by reason, {} to {}", page.since, page.until),
    );
    let _ = write!(
        html,
        r#"<section><form method="get" action="/rejections">{}{}{}<button type="submit">Show</button></form></section>"#,
        input("Source", "source", page.source, "text"),
        input("Since", "since", Some(page.since), "date"),
        input("Until", "until", Some(page.until), "date"),
    );
    html.push_str(&problem_section(page.problem));
    html.push_str(r#"<section id="by-reason"><h2>By reason</h2>"#);
    let mut by_reason: BTreeMap<&str, i64> = BTreeMap::new();
    for row in page.totals {
        *by_reason.entry(&row.reason).or_default() += row.rejected;
    }
    if by_reason.is_empty() {
        html.push_str(r#"<p class="empty">No rejected requests in this window.</p>"#);
    } else {
        let mut reasons: Vec<(&str, i64)> = by_reason.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        html.push_str(r#"<table><thead><tr><th>Reason</th><th class="num">Rejected</th></tr></thead><tbody>"#);
        for (reason, rejected) in reasons {
            let _ = write!(
                html,
                r#"<tr data-reason="{}"><td>{}</td><td class="num">{rejected}</td></tr>"#,
                attr(reason),
                text(reason)
            );
        }
        html.push_str("</tbody></table>");
        html.push_str(r#"<h3>By source and reason</h3><table id="by-source"><thead><tr><th>Source</th><th>Reason</th><th class="num">Rejected</th></tr></thead><tbody>"#);
        for row in page.totals {
            let _ = write!(
                html,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td></tr>"#,
                text(&row.source),
                text(&row.reason),
                row.rejected
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str(r#"</section><section id="latest"><h2>Latest rejections</h2>"#);
    if page.latest.is_empty() {
        html.push_str(r#"<p class="empty">The rejection log is empty.</p>"#);
    } else {
        html.push_str(r#"<table><thead><tr><th>When (UTC)</th><th>Source</th><th>Claimed source</th><th>Reason</th><th class="num">Status</th><th>Delivery id</th><th>Request id</th></tr></thead><tbody>"#);
        for row in page.latest {
            let _ = write!(
                html,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
                text(&row.received_at),
                text(&row.source),
                text(row.claimed_source.as_deref().unwrap_or("")),
                text(&row.reason),
                row.status,
                text(row.delivery_id.as_deref().unwrap_or("")),
                text(&row.request_id),
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section></main></body></html>");
    html
}

/// What the dead-letters page shows.
#[derive(Debug)]
pub struct DeadLettersPage<'a> {
    /// Only this source.
    pub source: Option<&'a str>,
    /// The rows, newest first.
    pub rows: &'a [DeadLetterRow],
    /// Whether older rows follow.
    pub more: bool,
    /// The CSRF token of the signed-in user, when users sign in (then the page has a replay
    /// form); `None` keeps the page read-only.
    pub csrf: Option<&'a str>,
    /// Whether the form replays the picked letters (the dashboard has the broker's settings),
    /// rather than answering their command.
    pub replays: bool,
    /// The database could not be read.
    pub problem: Option<&'a str>,
}

/// `GET /dead-letters`.
pub fn dead_letters(page: &DeadLettersPage<'_>) -> String {
    let mut html = page_head(
        "Dead letters — webhook-inbox dashboard",
        "Messages the consumer dead-lettered, newest first, with the command that replays them",
    );
    let _ = write!(
        html,
        r#"<section><form method="get" action="/dead-letters">{}<button type="submit">Show</button></form></section>"#,
        input("Source", "source", page.source, "text"),
    );
    html.push_str(&problem_section(page.problem));
    html.push_str(r#"<section id="dead-letters"><h2>Dead letters</h2>"#);
    if page.rows.is_empty() {
        html.push_str(r#"<p class="empty">No dead letters.</p></section></main></body></html>"#);
        return html;
    }
    if page.csrf.is_some() && page.replays {
        html.push_str(r#"<p class="empty">Each row is the consumer's record of a message it sent to the dead-letter queue. Pick letters and replay them from here, or run a command on a host with the consumer's settings; a letter already replayed is reported as not found.</p>"#);
    } else {
        html.push_str(r#"<p class="empty">Each row is the consumer's record of a message it sent to the dead-letter queue. Run a command on a host with the consumer's settings; a letter already replayed is reported as not found.</p>"#);
    }
    if let Some(token) = page.csrf {
        let _ = write!(
            html,
            r#"<form method="post" action="/dead-letters/replay" id="replay-form"><input type="hidden" name="csrf" value="{}">"#,
            attr(token)
        );
    }
    let _ = write!(
        html,
        r#"<table><thead><tr>{}<th>When (UTC)</th><th>Source</th><th>Delivery id</th><th>Event type</th><th>Reason</th><th class="num">Retries</th><th>Error</th><th>Replay command</th></tr></thead><tbody>"#,
        if page.csrf.is_some() { "<th>Pick</th>" } else { "" }
    );
    for row in page.rows {
        let letter = &row.letter;
        let pick = if page.csrf.is_some() {
            format!(r#"<td><input type="checkbox" name="id" value="{}"></td>"#, row.id)
        } else {
            String::new()
        };
        let _ = write!(
            html,
            r#"<tr data-id="{}">{pick}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td><code class="command">{}</code></td></tr>"#,
            row.id,
            text(&letter.dead_lettered_at),
            text(&letter.source),
            text(&letter.delivery_id),
            text(&letter.event_type),
            text(&letter.reason),
            letter.retry_count,
            text(&letter.error),
            text(&replay_command([letter.delivery_id.as_str()])),
        );
    }
    html.push_str("</tbody></table>");
    if page.csrf.is_some() {
        html.push_str(if page.replays {
            r#"<p><button type="submit">Replay the picked letters</button></p></form>"#
        } else {
            r#"<p><button type="submit">Replay command for the picked letters</button></p></form>"#
        });
    }
    let _ = write!(
        html,
        r#"<h3>Every letter on this page</h3><code class="command" id="replay-all">{}</code>"#,
        text(&replay_command(
            page.rows.iter().map(|row| row.letter.delivery_id.as_str())
        ))
    );
    if page.more
        && let Some(last) = page.rows.last()
    {
        let source = page
            .source
            .map_or_else(String::new, |source| format!("source={}&", query_encode(source)));
        let _ = write!(
            html,
            r#"<p class="pager"><a id="older" href="/dead-letters?{}before={}">Older dead letters →</a></p>"#,
            attr(&source),
            last.id
        );
    }
    html.push_str("</section></main></body></html>");
    html
}

/// The answer to `POST /dead-letters/replay` without the broker's settings: the command for
/// the picked letters.
pub fn replay(rows: &[DeadLetterRow], missing: usize) -> String {
    let mut html = page_head(
        "Replay dead letters — webhook-inbox dashboard",
        "The command that replays the picked dead letters",
    );
    html.push_str(r#"<section id="replay"><h2>Replay command</h2>"#);
    if rows.is_empty() {
        html.push_str(r#"<p class="empty">None of the picked dead letters is recorded.</p>"#);
    } else {
        let _ = write!(
            html,
            r#"<p>Run this on a host with the consumer's settings (<code>docker compose exec consumer …</code> with compose). This dashboard does not replay by itself: it is not given the broker (<code>AMQP_URL</code> is not set), and only reads the database.</p><code class="command" id="command">{}</code><ul>"#,
            text(&replay_command(rows.iter().map(|row| row.letter.delivery_id.as_str())))
        );
        picked_letters(&mut html, rows);
    }
    end_replay_page(&mut html, missing);
    html
}

/// The picked letters as list items, then the list's end.
fn picked_letters(html: &mut String, rows: &[DeadLetterRow]) {
    for row in rows {
        let _ = write!(
            html,
            "<li>{} · {} · {}</li>",
            text(&row.letter.source),
            text(&row.letter.delivery_id),
            text(&row.letter.reason)
        );
    }
    html.push_str("</ul>");
}

/// How many picked ids are not recorded, and the way back: the end of both replay answers.
fn end_replay_page(html: &mut String, missing: usize) {
    if missing > 0 {
        let _ = write!(html, r#"<p class="bad">{missing} picked id(s) are not recorded.</p>"#);
    }
    html.push_str(r#"</section><p><a href="/dead-letters">Back to the dead letters</a></p></main></body></html>"#);
}

/// The queues a replay worked on, for its report.
#[derive(Debug)]
pub struct ReplayQueues {
    /// `{P}.dead`.
    pub dead: String,
    /// `{P}`.
    pub exchange: String,
}

/// The answer to `POST /dead-letters/replay` with the broker's settings: what the replay of the
/// picked letters did.
pub fn replayed(rows: &[DeadLetterRow], missing: usize, report: &ReplayReport, queues: &ReplayQueues) -> String {
    let mut html = page_head(
        "Replay dead letters — webhook-inbox dashboard",
        "What the replay of the picked dead letters did",
    );
    html.push_str(r#"<section id="replay"><h2>Replayed</h2>"#);
    if rows.is_empty() {
        html.push_str(r#"<p class="empty">None of the picked dead letters is recorded: nothing was replayed.</p>"#);
    } else {
        let _ = write!(
            html,
            r#"<p id="replayed" data-count="{count}">Replayed {count} dead letter(s): each republished to the exchange <code>{exchange}</code> with retry-count 0, confirmed by the broker, then removed from <code>{dead}</code>. The consumer stores them as it does after <code>consumer dlq replay</code> (an event already stored counts as a duplicate).</p>"#,
            count = report.replayed,
            exchange = text(&queues.exchange),
            dead = text(&queues.dead),
        );
        if !report.not_found.is_empty() {
            let _ = write!(
                html,
                r#"<h3>Not found in <code>{}</code></h3><p>No letter with these delivery ids is in the dead-letter queue (already replayed, or dead-lettered under another AMQP_PREFIX):</p><ul id="not-found">"#,
                text(&queues.dead)
            );
            for id in &report.not_found {
                let _ = write!(html, "<li>{}</li>", text(id));
            }
            html.push_str("</ul>");
        }
        if !report.failed.is_empty() {
            html.push_str(r#"<h3>Failed</h3><ul id="failed">"#);
            for (id, why) in &report.failed {
                let _ = write!(html, "<li><code>{}</code>: {}</li>", text(id), text(why));
            }
            html.push_str("</ul>");
        }
        html.push_str(r#"<h3>Picked</h3><ul id="picked">"#);
        picked_letters(&mut html, rows);
    }
    end_replay_page(&mut html, missing);
    html
}

/// Colours of the comparison's lines, one per vendor (repeating past ten).
const PALETTE: [&str; 10] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d",
];

/// One chart of every vendor's net sales per month in `currency`: a line per vendor over
/// `months` (a month without sales is 0), a point with a tooltip where there were sales.
pub fn comparison_chart(currency: &str, months: &[String], rows: &[MonthSales]) -> String {
    let scale = 10_f64.powi(minor_digits(currency) as i32);
    let mut vendors: BTreeMap<&str, BTreeMap<&str, &MonthSales>> = BTreeMap::new();
    for row in rows {
        vendors.entry(&row.source).or_default().insert(&row.month, row);
    }
    let max = rows.iter().map(|row| row.net_minor.max(0)).max().unwrap_or(0) as f64 / scale;
    let min = rows.iter().map(|row| row.net_minor.min(0)).min().unwrap_or(0) as f64 / scale;
    let axes = Axes::new([920.0, 340.0, 70.0, 160.0, 24.0, 60.0], min, max, 1.1);
    let y = |value: f64| axes.y(value);
    let slot = axes.plot_width() / months.len().max(1) as f64;
    let x = |index: usize| axes.left + slot * (index as f64 + 0.5);

    let title = format!("Net sales per month, every vendor ({currency})");
    let mut svg = format!(
        r#"<svg class="chart" id="comparison" viewBox="0 0 {} {}" role="img" aria-label="{}" data-currency="{}"><title>{}</title>"#,
        axes.width,
        axes.height,
        attr(&title),
        attr(currency),
        text(&title)
    );
    axes.grid(&mut svg);
    let label_every = (7.0 * 6.6 + 8.0_f64).div_euclid(slot) as usize + 1;
    for (index, month) in months.iter().enumerate() {
        if index % label_every == 0 {
            axes.month_label(&mut svg, x(index), month);
        }
    }
    for (number, (source, by_month)) in vendors.iter().enumerate() {
        let colour = PALETTE[number % PALETTE.len()];
        let points: Vec<String> = months
            .iter()
            .enumerate()
            .map(|(index, month)| {
                let value = by_month
                    .get(month.as_str())
                    .map_or(0.0, |row| row.net_minor as f64 / scale);
                format!("{:.1},{:.1}", x(index), y(value))
            })
            .collect();
        let _ = write!(
            svg,
            r#"<g class="series" data-source="{}"><polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            attr(source),
            points.join(" ")
        );
        for (index, month) in months.iter().enumerate() {
            if let Some(row) = by_month.get(month.as_str()) {
                let tooltip = format!(
                    "{source} {month}: {} orders, net {}",
                    row.orders,
                    format_amount(row.net_minor, currency)
                );
                let _ = write!(
                    svg,
                    r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}" data-month="{month}" data-net-minor="{}"><title>{}</title></circle>"#,
                    x(index),
                    y(row.net_minor as f64 / scale),
                    row.net_minor,
                    text(&tooltip)
                );
            }
        }
        let legend_y = axes.top + 8.0 + number as f64 * 18.0;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text class="legend" x="{:.1}" y="{:.1}">{}</text></g>"#,
            axes.width - axes.right + 16.0,
            legend_y - 10.0,
            axes.width - axes.right + 34.0,
            legend_y,
            text(source)
        );
    }
    axes.finish(&mut svg, currency);
    svg
}

/// What the comparison page shows.
#[derive(Debug)]
pub struct ComparePage<'a> {
    /// The currency shown.
    pub currency: Option<&'a str>,
    /// Every currency with sales.
    pub currencies: &'a [String],
    /// First month.
    pub from: &'a str,
    /// Last month.
    pub to: &'a str,
    /// Every vendor's rows in the currency.
    pub rows: &'a [MonthSales],
    /// The database could not be read.
    pub problem: Option<&'a str>,
}

/// `GET /compare`.
pub fn compare(page: &ComparePage<'_>) -> String {
    let mut html = page_head(
        "Compare vendors — webhook-inbox dashboard",
        &format!("Every vendor's net sales per month, {} to {}", page.from, page.to),
    );
    html.push_str(
        r#"<section><form method="get" action="/compare"><label>Currency<select name="currency" id="currency">"#,
    );
    options(&mut html, page.currencies, page.currency);
    let _ = write!(
        html,
        r#"</select></label>{}{}<button type="submit">Show</button></form></section>"#,
        input("From", "from", Some(page.from), "month"),
        input("To", "to", Some(page.to), "month"),
    );
    html.push_str(&problem_section(page.problem));
    html.push_str(r#"<section id="compare"><h2>Net sales per month, every vendor</h2>"#);
    match page.currency {
        Some(currency) if !page.rows.is_empty() => {
            let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
            for row in page.rows {
                *totals.entry(&row.source).or_default() += row.net_minor;
            }
            let months = crate::page::month_range(page.from, page.to);
            html.push_str(&comparison_chart(currency, &months, page.rows));
            html.push_str(r#"<table id="totals"><thead><tr><th>Vendor</th><th class="num">Net in the range</th></tr></thead><tbody>"#);
            for (source, net) in totals {
                let _ = write!(
                    html,
                    r#"<tr data-source="{}"><td>{}</td><td class="num">{}</td></tr>"#,
                    attr(source),
                    text(source),
                    text(&format_amount(net, currency))
                );
            }
            html.push_str("</tbody></table>");
        }
        _ => html.push_str(r#"<p class="empty">No sales in this currency and range.</p>"#),
    }
    html.push_str("</section></main></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_reindented_keeping_key_order_and_digits() {
        let pretty = pretty_json(r#"{"z":1,"a":[1, 2,{}],"n":12345678901234567890123,"s":"a,b:{\"c\"}"}"#).unwrap();
        assert_eq!(
            pretty,
            "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"n\": 12345678901234567890123,\n  \"s\": \"a,b:{\\\"c\\\"}\"\n}"
        );
        assert_eq!(pretty_json("[ ]").unwrap(), "[]");
        assert_eq!(pretty_json("not json"), None);
        assert_eq!(pretty_json("a=1&b=2"), None);
    }

    #[test]
    fn replay_commands_quote_what_a_shell_would_split() {
        assert_eq!(replay_command(["evt_1"]), "consumer dlq replay --id evt_1");
        assert_eq!(
            replay_command(["a b", "it's", "a b"]),
            r"consumer dlq replay --id 'a b' --id 'it'\''s'"
        );
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn the_comparison_has_a_line_per_vendor_and_escapes_names() {
        let row = |source: &str, month: &str, net: i64| MonthSales {
            source: source.to_owned(),
            month: month.to_owned(),
            currency: "EUR".to_owned(),
            orders: 1,
            gross_minor: net,
            refunded_minor: 0,
            net_minor: net,
        };
        let rows = [
            row("<a>", "2026-01", 100),
            row("b", "2026-02", 250),
            row("b", "2026-03", -50),
        ];
        let months = crate::page::month_range("2026-01", "2026-03");
        let svg = comparison_chart("EUR", &months, &rows);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"));
    }
}
