//! The page, rendered on the server: HTML with inline SVG charts, no scripts, no CDN.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::data::{DayHealth, DeadLetter, Filter, LedgerDay, MonthSales};

/// Parses `YYYY-MM`.
pub fn parse_month(value: &str) -> Option<(i32, u32)> {
    let (year, month) = value.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let (year, month): (i32, u32) = (year.parse().ok()?, month.parse().ok()?);
    ((1970..=9999).contains(&year) && (1..=12).contains(&month)).then_some((year, month))
}

/// The months a page shows, from its `from` and `to` (`YYYY-MM`, blank when not given): `to`
/// defaults to this month and `from` to eleven months before `to`. Either unreadable, or `from`
/// after `to`, is the error the page shows.
pub fn month_window(from: Option<&str>, to: Option<&str>) -> Result<(String, String), String> {
    use chrono::Datelike as _;
    let today = chrono::Utc::now().date_naive();
    let this_month = format!("{:04}-{:02}", today.year(), today.month());
    let to = to.unwrap_or(&this_month).to_owned();
    let Some((year, month)) = parse_month(&to) else {
        return Err(format!("to={to:?} is not a month like 2026-01"));
    };
    let from = match from {
        Some(from) => from.to_owned(),
        None => chrono::NaiveDate::from_ymd_opt(year, month, 1)
            .and_then(|first| first.checked_sub_months(chrono::Months::new(11)))
            .map_or_else(
                || to.clone(),
                |first| format!("{:04}-{:02}", first.year(), first.month()),
            ),
    };
    if parse_month(&from).is_none() {
        return Err(format!("from={from:?} is not a month like 2026-01"));
    }
    if from > to {
        return Err(format!("from={from} is after to={to}"));
    }
    Ok((from, to))
}

/// Every month from `from` to `to` inclusive, as `YYYY-MM` (empty when `from` is after `to`).
pub fn month_range(from: &str, to: &str) -> Vec<String> {
    let (Some((mut year, mut month)), Some(end)) = (parse_month(from), parse_month(to)) else {
        return Vec::new();
    };
    let mut months = Vec::new();
    while (year, month) <= end && months.len() < 1200 {
        months.push(format!("{year:04}-{month:02}"));
        (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    }
    months
}

pub use webhook_core::money::minor_digits;

/// An amount in minor units as text with thousands separators and the currency code:
/// `-1,234.50 EUR`.
pub fn format_amount(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let scale = 10_i64.pow(digits);
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let (major, fraction) = (magnitude / scale as u64, magnitude % scale as u64);
    let mut grouped = String::new();
    for (index, digit) in major.to_string().chars().enumerate() {
        let remaining = major.to_string().len() - index;
        if index > 0 && remaining % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if digits == 0 {
        format!("{sign}{grouped} {currency}")
    } else {
        format!("{sign}{grouped}.{fraction:0width$} {currency}", width = digits as usize)
    }
}

/// An amount in minor units as a number with thousands separators, without the currency:
/// `-1,234.50`.
fn format_number(minor: i64, currency: &str) -> String {
    let text = format_amount(minor, currency);
    text.strip_suffix(currency)
        .map_or(text.clone(), |number| number.trim_end().to_owned())
}

/// A short label for a value on the chart: `12.3k`, `4.5M`, `950`.
fn compact(major: f64) -> String {
    let magnitude = major.abs();
    let (scaled, suffix) = if magnitude >= 1e6 {
        (major / 1e6, "M")
    } else if magnitude >= 1e3 {
        (major / 1e3, "k")
    } else {
        (major, "")
    };
    let text = if scaled.abs() >= 100.0 || suffix.is_empty() && scaled.fract().abs() < 0.05 {
        format!("{scaled:.0}")
    } else {
        format!("{scaled:.1}")
    };
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

/// The smallest round step (1, 2, 2.5 or 5 times a power of ten) that covers `span` in at
/// most `intervals` intervals.
/// The frame both charts draw in: the SVG's size and margins, and a y axis over the money
/// amounts (major units) `min..=max` with round ticks, `headroom` times the largest amount on
/// top for its label. Zero is always one of the ticks.
pub(crate) struct Axes {
    pub(crate) width: f64,
    pub(crate) height: f64,
    pub(crate) left: f64,
    pub(crate) right: f64,
    pub(crate) top: f64,
    pub(crate) bottom: f64,
    step: f64,
    top_tick: i64,
    bottom_tick: i64,
    top_value: f64,
    span: f64,
}

impl Axes {
    /// `[width, height, left, right, top, bottom]` in SVG units.
    pub(crate) fn new(size: [f64; 6], min: f64, max: f64, headroom: f64) -> Self {
        let [width, height, left, right, top, bottom] = size;
        let step = nice_step((max - min) * headroom, 6.0);
        // Ticks are whole multiples of the step, so zero is exactly one of them.
        let top_tick = ((max * headroom) / step).ceil().max(if min < 0.0 { 0.0 } else { 1.0 }) as i64;
        let bottom_tick = ((min * headroom) / step).floor() as i64;
        let (top_value, bottom_value) = (top_tick as f64 * step, bottom_tick as f64 * step);
        Self {
            width,
            height,
            left,
            right,
            top,
            bottom,
            step,
            top_tick,
            bottom_tick,
            top_value,
            span: (top_value - bottom_value).max(f64::MIN_POSITIVE),
        }
    }

    pub(crate) fn plot_width(&self) -> f64 {
        self.width - self.left - self.right
    }

    pub(crate) fn plot_height(&self) -> f64 {
        self.height - self.top - self.bottom
    }

    /// Where the amount `value` is on the y axis.
    pub(crate) fn y(&self, value: f64) -> f64 {
        self.top + (self.top_value - value) / self.span * self.plot_height()
    }

    /// The horizontal grid line and label of every tick, the zero line darker.
    pub(crate) fn grid(&self, svg: &mut String) {
        let largest = self.top_value.abs().max((self.bottom_tick as f64 * self.step).abs());
        for tick in self.bottom_tick..=self.top_tick {
            let value = tick as f64 * self.step;
            let at = self.y(value);
            let _ = write!(
                svg,
                r##"<line x1="{}" x2="{}" y1="{at:.1}" y2="{at:.1}" stroke="{}"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
                self.left,
                self.width - self.right,
                if tick == 0 { "#6b7280" } else { "#e5e7eb" },
                self.left - 8.0,
                at + 4.0,
                text(&tick_label(value, self.step, largest))
            );
        }
    }

    /// A month's label under the x axis, centred on `center`.
    pub(crate) fn month_label(&self, svg: &mut String, center: f64, month: &str) {
        let _ = write!(
            svg,
            r#"<text class="tick" x="{center:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            self.height - self.bottom + 18.0,
            text(month)
        );
    }

    /// The axes' titles, and the end of the SVG.
    pub(crate) fn finish(&self, svg: &mut String, currency: &str) {
        let _ = write!(
            svg,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">Month</text><text class="axis" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">Net sales ({})</text></svg>"#,
            self.left + self.plot_width() / 2.0,
            self.height - 12.0,
            self.top + self.plot_height() / 2.0,
            text(currency)
        );
    }
}

pub(crate) fn nice_step(span: f64, intervals: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let rough = span / intervals;
    let power = 10_f64.powf(rough.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power)
}

/// A y-axis tick, in the unit of the axis's largest tick `largest`: `0`, `0.5k`, `2.5k`,
/// `10k`, `0.25`.
pub(crate) fn tick_label(value: f64, step: f64, largest: f64) -> String {
    if value.abs() < step / 2.0 {
        return "0".to_owned();
    }
    let magnitude = largest.abs();
    let (scaled, scaled_step, suffix) = if magnitude >= 1e6 {
        (value / 1e6, step / 1e6, "M")
    } else if magnitude >= 1e3 {
        (value / 1e3, step / 1e3, "k")
    } else {
        (value, step, "")
    };
    // As many decimals as the step needs, and no more.
    let decimals = (0..=3)
        .find(|decimals| {
            let factor = 10_f64.powi(*decimals);
            ((scaled_step * factor).round() - scaled_step * factor).abs() < 1e-6
        })
        .unwrap_or(3) as usize;
    format!("{scaled:.decimals$}{suffix}")
}

/// Width of `text` at the chart's 11-unit label size (a generous estimate, so labels that are
/// drawn never touch).
fn label_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.6
}

/// A bar chart of net sales per month for one vendor and currency, one bar per month of the
/// range (months without data have no bar). Each bar is labelled with its exact net amount
/// where that fits over the bar, else a short one (`12.3k`); its tooltip has every figure with
/// the currency.
pub fn sales_chart(source: &str, currency: &str, months: &[String], rows: &[&MonthSales]) -> String {
    let scale = 10_f64.powi(minor_digits(currency) as i32);
    let by_month: BTreeMap<&str, &MonthSales> = rows.iter().map(|row| (row.month.as_str(), *row)).collect();
    let max = rows.iter().map(|row| row.net_minor.max(0)).max().unwrap_or(0) as f64 / scale;
    let min = rows.iter().map(|row| row.net_minor.min(0)).min().unwrap_or(0) as f64 / scale;
    // Round ticks, with room above the tallest bar (and below the deepest) for its label.
    let axes = Axes::new([920.0, 300.0, 70.0, 20.0, 24.0, 60.0], min, max, 1.12);
    let y = |value: f64| axes.y(value);
    let slot = axes.plot_width() / months.len().max(1) as f64;
    let bar = (slot * 0.7).max(2.0);

    let mut svg = String::new();
    let title = format!("Net sales per month — {source} ({currency})");
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" data-source="{}" data-currency="{}"><title>{}</title>"#,
        axes.width,
        axes.height,
        attr(&title),
        attr(source),
        attr(currency),
        text(&title)
    );
    axes.grid(&mut svg);
    let zero = y(0.0);
    // A month label is 7 characters: show every n-th so that they never touch.
    let label_every = (label_width("2026-01") + 8.0).div_euclid(slot) as usize + 1;
    for (index, month) in months.iter().enumerate() {
        let center = axes.left + slot * (index as f64 + 0.5);
        if let Some(row) = by_month.get(month.as_str()) {
            let value = row.net_minor as f64 / scale;
            let (top, height) = if value >= 0.0 {
                (y(value), zero - y(value))
            } else {
                (zero, y(value) - zero)
            };
            let tooltip = format!(
                "{month}: {} orders, gross {}, refunded {}, net {}",
                row.orders,
                format_amount(row.gross_minor, currency),
                format_amount(row.refunded_minor, currency),
                format_amount(row.net_minor, currency)
            );
            let _ = write!(
                svg,
                r##"<rect class="bar" x="{:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" fill="{}" data-month="{month}" data-net-minor="{}"><title>{}</title></rect>"##,
                center - bar / 2.0,
                height.max(0.5),
                if value >= 0.0 { "#2563eb" } else { "#dc2626" },
                row.net_minor,
                attr(&tooltip),
            );
            let room = slot - 6.0;
            let label = Some(format_number(row.net_minor, currency))
                .filter(|exact| label_width(exact) <= room)
                .or_else(|| Some(compact(value)).filter(|short| label_width(short) <= room));
            if let Some(label) = label {
                let _ = write!(
                    svg,
                    r#"<text class="value" x="{center:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    if value >= 0.0 { top - 5.0 } else { top + height + 12.0 },
                    text(&label)
                );
            }
        }
        if index % label_every == 0 {
            axes.month_label(&mut svg, center, month);
        }
    }
    axes.finish(&mut svg, currency);
    svg
}

/// Everything the page shows.
#[derive(Debug)]
pub struct PageData<'a> {
    /// The filter in effect.
    pub filter: &'a Filter,
    /// Vendors for the filter's choices.
    pub vendors: &'a [String],
    /// Sales rows within the filter.
    pub sales: &'a [MonthSales],
    /// Health rows within the filter.
    pub health: &'a [DayHealth],
    /// Latest dead letters.
    pub dead_letters: &'a [DeadLetter],
    /// The ledger within the filter.
    pub ledger: &'a [LedgerDay],
    /// A problem to show instead of data (bad filter, database not ready).
    pub problem: Option<&'a str>,
}

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#111827;background:#f8fafc}
header{background:#0f172a;color:#f8fafc;padding:16px max(28px,calc((100% - 1100px)/2))}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}
main{padding:20px 28px;max-width:1100px;margin:0 auto}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin-bottom:20px}
h2{font-size:17px;margin:0 0 12px}h3{font-size:15px;margin:16px 0 6px}
form{display:flex;gap:12px;align-items:end;flex-wrap:wrap}label{display:flex;flex-direction:column;font-size:12px;color:#475569}
select,input{font:inherit;padding:4px 6px}button{font:inherit;padding:5px 14px;background:#2563eb;color:#fff;border:0;border-radius:4px}
.chart{width:100%;height:auto}.chart .tick{font-size:11px;fill:#475569}.chart .value{font-size:11px;fill:#111827}.chart .axis{font-size:12px;fill:#334155}
.totals{font-size:13px;color:#334155;margin:2px 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eef2f7}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b91c1c;font-weight:600}
.empty{color:#64748b;font-style:italic}.problem{background:#fef2f2;border-color:#fecaca;color:#991b1b}
nav{margin-top:8px;display:flex;gap:16px;font-size:13px}nav a{color:#93c5fd}
pre.body{background:#f1f5f9;border:1px solid #e5e7eb;border-radius:4px;padding:10px;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
code.command{display:block;background:#f1f5f9;padding:4px 6px;font-size:12px;user-select:all;word-break:break-all}
dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:13px;margin:0}dl.fields dt{color:#475569}dl.fields dd{margin:0;word-break:break-all}
.chart .legend{font-size:12px;fill:#111827}.pager{margin-top:10px;font-size:13px}
"#;

/// The `Content-Security-Policy` of every answer: nothing may load or run but the page's own
/// stylesheet (allowed by its hash, so no other inline style or script is), forms go only to
/// the dashboard, and no other site may frame it.
pub fn content_security_policy() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The start of every page, up to and including `<main>`.
pub(crate) fn page_head(title: &str, subtitle: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{}</title><style>{STYLE}</style></head><body><header><h1>webhook-inbox</h1><p>{}</p><nav><a href="/">Overview</a><a href="/events">Events</a><a href="/rejections">Rejections</a><a href="/dead-letters">Dead letters</a><a href="/compare">Compare vendors</a></nav></header><main>"#,
        text(title),
        text(subtitle)
    )
}

/// A page for an error: its status and what went wrong, and the way back.
pub fn error_page(status: actix_web::http::StatusCode, message: &str) -> String {
    let mut html = page_head(&format!("{status} — webhook-inbox dashboard"), &status.to_string());
    let _ = write!(
        html,
        r#"<section class="problem" id="problem"><h2>{}</h2><p>{}</p><p><a href="/">Back to the dashboard</a></p></section></main></body></html>"#,
        text(status.canonical_reason().unwrap_or("Error")),
        text(message)
    );
    html
}

/// The whole page.
pub fn render(page: &PageData<'_>) -> String {
    let mut html = page_head(
        "webhook-inbox dashboard",
        &format!(
            "Sales per month, vendor health and dead letters, {} to {}",
            page.filter.from, page.filter.to
        ),
    );
    html.push_str(&filter_form(page.filter, page.vendors));
    if let Some(problem) = page.problem {
        let _ = write!(
            html,
            r#"<section class="problem" id="problem"><h2>Nothing to show</h2><p>{}</p></section>"#,
            text(problem)
        );
    }
    html.push_str(&sales_section(page));
    html.push_str(&health_section(page.health));
    html.push_str(&ledger_section(page.ledger));
    html.push_str(&dead_letter_section(page.dead_letters));
    html.push_str(r#"<p class="empty">The same data as JSON: <a href="/api/sales">/api/sales</a>, <a href="/api/health">/api/health</a>, <a href="/api/dead-letters">/api/dead-letters</a>, <a href="/api/ledger">/api/ledger</a> (same filters).</p></main></body></html>"#);
    html
}

/// An `<option>` for each of `values`, the one equal to `selected` selected.
pub(crate) fn options(html: &mut String, values: &[String], selected: Option<&str>) {
    for value in values {
        let chosen = if selected == Some(value.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            html,
            r#"<option value="{}"{chosen}>{}</option>"#,
            attr(value),
            text(value)
        );
    }
}

fn filter_form(filter: &Filter, vendors: &[String]) -> String {
    let mut form = String::from(
        r#"<section><form method="get" action="/"><label>Vendor<select name="vendor" id="vendor"><option value="">All vendors</option>"#,
    );
    options(&mut form, vendors, filter.vendor.as_deref());
    let _ = write!(
        form,
        r#"</select></label><label>From<input type="month" name="from" value="{}"></label><label>To<input type="month" name="to" value="{}"></label><button type="submit">Show</button></form></section>"#,
        attr(&filter.from),
        attr(&filter.to)
    );
    form
}

fn sales_section(page: &PageData<'_>) -> String {
    let mut html = String::from(r#"<section id="sales"><h2>Sales per month</h2>"#);
    if page.sales.is_empty() {
        html.push_str(r#"<p class="empty">No sales in this range. Sales appear when vendors send sale or refund events that a processor recognises (see the README's “Sales” section); try a wider date range or another vendor.</p>"#);
    }
    let months = month_range(&page.filter.from, &page.filter.to);
    let mut groups: BTreeMap<(&str, &str), Vec<&MonthSales>> = BTreeMap::new();
    for row in page.sales {
        groups.entry((&row.source, &row.currency)).or_default().push(row);
    }
    for ((source, currency), rows) in groups {
        let gross: i64 = rows.iter().map(|row| row.gross_minor).sum();
        let refunded: i64 = rows.iter().map(|row| row.refunded_minor).sum();
        let orders: i64 = rows.iter().map(|row| row.orders).sum();
        let _ = write!(
            html,
            r#"<h3>{} · {}</h3><p class="totals" data-source="{}" data-currency="{}">{orders} orders · gross {} · refunded {} · <strong>net {}</strong></p>"#,
            text(source),
            text(currency),
            attr(source),
            attr(currency),
            text(&format_amount(gross, currency)),
            text(&format_amount(refunded, currency)),
            text(&format_amount(gross - refunded, currency)),
        );
        html.push_str(&sales_chart(source, currency, &months, &rows));
    }
    html.push_str("</section>");
    html
}

fn health_section(rows: &[DayHealth]) -> String {
    let mut html = String::from(r#"<section id="health"><h2>Vendor health</h2>"#);
    if rows.is_empty() {
        html.push_str(r#"<p class="empty">No events, rejections or dead letters in this range.</p></section>"#);
        return html;
    }
    html.push_str(r#"<table><thead><tr><th>Day (UTC)</th><th>Vendor</th><th class="num">Events</th><th class="num">Duplicates</th><th class="num">Retried</th><th class="num">Dead-lettered</th><th class="num">Rejected</th><th class="num">Ingest→store avg ms</th><th class="num">max ms</th></tr></thead><tbody>"#);
    for row in rows {
        let ms = |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |value| format!("{value:.1}"));
        let flag = |value: i64| {
            if value > 0 {
                r#" class="num bad""#
            } else {
                r#" class="num""#
            }
        };
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td{}>{}</td><td{}>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            text(&row.day),
            text(&row.source),
            row.events,
            row.duplicates,
            row.retried,
            flag(row.dead_lettered),
            row.dead_lettered,
            flag(row.rejected),
            row.rejected,
            ms(row.latency_avg_ms),
            ms(row.latency_max_ms)
        );
    }
    html.push_str("</tbody></table></section>");
    html
}

fn ledger_section(rows: &[LedgerDay]) -> String {
    let mut html = String::from(r#"<section id="ledger"><h2>Ledger</h2>"#);
    if rows.is_empty() {
        html.push_str(r#"<p class="empty">No accepted messages or rejections in this range.</p></section>"#);
        return html;
    }
    html.push_str(r#"<p class="empty">Accepted = stored + duplicates + dead-lettered, per day the handler received them. A difference still in a retry queue is in flight; the rest is unexplained and shown in red. Rejected requests were never accepted: beside the balance.</p>"#);
    html.push_str(r#"<table><thead><tr><th>Day (UTC)</th><th>Vendor</th><th class="num">Accepted</th><th class="num">Stored</th><th class="num">Duplicates</th><th class="num">Dead-lettered</th><th class="num">Difference</th><th class="num">In flight</th><th class="num">Unexplained</th><th>Rejected by reason</th></tr></thead><tbody>"#);
    for row in rows {
        let unexplained = if row.unexplained != 0 {
            r#" class="num bad" data-unexplained="true""#
        } else {
            r#" class="num""#
        };
        let reasons = if row.rejected_by_reason.is_empty() {
            row.rejected.to_string()
        } else {
            let list: Vec<String> = row
                .rejected_by_reason
                .iter()
                .map(|(reason, count)| format!("{}: {count}", text(reason)))
                .collect();
            format!("{} ({})", row.rejected, list.join(", "))
        };
        let _ = write!(
            html,
            r#"<tr data-source="{}" data-day="{}"><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td{unexplained}>{}</td><td class="num">{}</td><td{unexplained}>{}</td><td>{reasons}</td></tr>"#,
            attr(&row.source),
            attr(&row.day),
            text(&row.day),
            text(&row.source),
            row.accepted,
            row.stored,
            row.duplicates,
            row.dead_lettered,
            row.difference,
            row.in_flight,
            row.unexplained,
        );
    }
    html.push_str("</tbody></table></section>");
    html
}

fn dead_letter_section(rows: &[DeadLetter]) -> String {
    let mut html = String::from(r#"<section id="dead-letters"><h2>Latest dead letters</h2>"#);
    if rows.is_empty() {
        html.push_str(r#"<p class="empty">No dead letters. Messages land here when they are not JSON, lack headers, or fail past MAX_RETRIES; replay them with <code>consumer dlq replay</code>.</p></section>"#);
        return html;
    }
    html.push_str(r#"<table><thead><tr><th>When (UTC)</th><th>Vendor</th><th>Delivery id</th><th>Event type</th><th>Reason</th><th class="num">Retries</th><th>Error</th></tr></thead><tbody>"#);
    for row in rows {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            text(&row.dead_lettered_at),
            text(&row.source),
            text(&row.delivery_id),
            text(&row.event_type),
            text(&row.reason),
            row.retry_count,
            text(&row.error)
        );
    }
    html.push_str(r#"</tbody></table><p class="pager"><a href="/dead-letters">Every dead letter, with its replay command →</a></p></section>"#);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One month of `source` in EUR: one order, `net` minor units, nothing refunded.
    fn month_sales(source: &str, month: &str, net: i64) -> MonthSales {
        MonthSales {
            source: source.to_owned(),
            month: month.to_owned(),
            currency: "EUR".to_owned(),
            orders: 1,
            gross_minor: net,
            refunded_minor: 0,
            net_minor: net,
        }
    }

    #[test]
    fn amounts_keep_their_currency_and_minor_digits() {
        assert_eq!(format_amount(123_456, "EUR"), "1,234.56 EUR");
        assert_eq!(format_amount(-5, "USD"), "-0.05 USD");
        assert_eq!(format_amount(1_000_000, "JPY"), "1,000,000 JPY");
        assert_eq!(format_amount(1_234, "KWD"), "1.234 KWD");
        assert_eq!(format_amount(0, "EUR"), "0.00 EUR");
    }

    #[test]
    fn axis_ticks_are_round_numbers() {
        assert_eq!(nice_step(10_900.0, 6.0), 2_000.0);
        assert_eq!(nice_step(1_700.0, 6.0), 500.0);
        assert_eq!(nice_step(14.0, 6.0), 2.5);
        assert_eq!(nice_step(0.0, 6.0), 1.0);
        assert_eq!(tick_label(7_500.0, 2_500.0, 10_000.0), "7.5k");
        assert_eq!(tick_label(10_000.0, 2_500.0, 10_000.0), "10.0k");
        assert_eq!(tick_label(10_000.0, 2_000.0, 12_000.0), "10k");
        assert_eq!(tick_label(500.0, 500.0, 2_000.0), "0.5k");
        assert_eq!(tick_label(2_000_000.0, 500_000.0, 2_000_000.0), "2.0M");
        assert_eq!(tick_label(250.0, 50.0, 300.0), "250");
        assert_eq!(tick_label(0.75, 0.25, 1.0), "0.75");
        assert_eq!(tick_label(-1_000.0, 500.0, 1_500.0), "-1.0k");
        assert_eq!(tick_label(1e-9, 500.0, 1_500.0), "0");
        assert_eq!(compact(9_733.28), "9.7k");
        assert_eq!(compact(123_456.0), "123k");
        assert_eq!(compact(2_000_000.0), "2M");
        assert_eq!(compact(431.25), "431");
    }

    #[test]
    fn bars_carry_their_exact_amount_when_it_fits_and_labels_never_crowd() {
        let row = |month: &str, net: i64| month_sales("shop", month, net);
        let rows = [
            row("2026-01", 973_328),
            row("2026-02", 123_456_789),
            row("2026-03", -2_550),
        ];
        let refs: Vec<&MonthSales> = rows.iter().collect();
        let year = month_range("2025-04", "2026-03");
        let svg = sales_chart("shop", "EUR", &year, &refs);
        assert!(svg.contains(">9,733.28</text>"), "{svg}");
        assert!(svg.contains(">1.2M</text>"), "{svg}");
        assert!(svg.contains(">-25.50</text>"), "{svg}");
        assert!(svg.contains("net 1,234,567.89 EUR"));
        assert_eq!(svg.matches("class=\"tick\" x=").count(), 12);
        // Five years: a month label every few months, and no value labels where they cannot fit.
        let long = month_range("2021-04", "2026-03");
        let svg = sales_chart("shop", "EUR", &long, &refs);
        let labels = svg.matches("class=\"tick\" x=").count();
        assert!((10..=20).contains(&labels), "{labels}");
        assert!(!svg.contains("class=\"value\""));
    }

    #[test]
    fn month_ranges_cross_years_and_reject_nonsense() {
        assert_eq!(
            month_range("2025-11", "2026-02"),
            ["2025-11", "2025-12", "2026-01", "2026-02"]
        );
        assert!(month_range("2026-03", "2026-02").is_empty());
        assert!(month_range("2026-13", "2027-01").is_empty());
        assert_eq!(parse_month("2026-1"), None);
        assert_eq!(parse_month("2026-01"), Some((2026, 1)));
    }

    #[test]
    fn the_chart_has_one_bar_per_month_with_data_and_escapes_names() {
        let row = |month: &str, net: i64| month_sales("<shop>", month, net);
        let rows = [row("2026-01", 1_000), row("2026-03", 2_500)];
        let refs: Vec<&MonthSales> = rows.iter().collect();
        let months = month_range("2026-01", "2026-04");
        let svg = sales_chart("<shop>", "EUR", &months, &refs);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(svg.contains("data-month=\"2026-03\" data-net-minor=\"2500\""));
        assert!(svg.contains("Net sales (EUR)") && svg.contains(">Month<"));
        assert!(!svg.contains("<shop>") && svg.contains("&lt;shop&gt;"));
    }
}
