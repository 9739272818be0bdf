//! The demo's year of sales and refunds: pure, no I/O, the same for the same seed.
//!
//! Each vendor's month is generated from its own seeded generator (seed, vendor name, month),
//! so a month always holds the same orders with the same ids and amounts whenever the demo
//! runs: running it again later only adds what has happened since (the earlier deliveries are
//! duplicates the consumer stores once). Orders of the current month after `now` are dropped,
//! as are refunds after `now`.
//!
//! The three shapes follow the consumer's sales presets: `canonical` (an online shop in EUR,
//! amounts in minor units), `stripe` (subscriptions charged in USD and EUR,
//! `charge.succeeded` / `charge.refunded`, minor units, Unix times) and `shopify` (an outdoor
//! store in GBP, `orders/paid` / `refunds/create`, major-unit decimal strings).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, FixedOffset, Months, NaiveDate, SecondsFormat, Utc};
use serde_json::json;
use webhook_core::money::minor_digits;
use webhook_core::sources::Preset;

/// One webhook to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// Index of the vendor in the list given to [`plan`].
    pub(crate) vendor: usize,
    pub(crate) delivery_id: String,
    pub(crate) event_type: &'static str,
    /// When it happened (what the body says).
    pub(crate) at: DateTime<Utc>,
    pub(crate) body: String,
}

/// What `sales_per_month` should say for one vendor, month and currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) orders: i64,
    pub(crate) gross_minor: i64,
    pub(crate) refunded_minor: i64,
}

/// `(vendor, month "YYYY-MM", currency)`.
pub(crate) type MonthKey = (String, String, String);

/// The year to send.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Oldest first.
    pub(crate) events: Vec<Event>,
    /// First and last month, `YYYY-MM`: the dashboard's default range when run this month.
    pub(crate) first_month: String,
    pub(crate) last_month: String,
    /// What the dashboard should show once every event is stored.
    pub(crate) expected: BTreeMap<MonthKey, Totals>,
}

/// A small xorshift64* generator: reproducible, good enough for demo data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 spreads similar seeds apart; xorshift needs a non-zero state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// One of `choices`, by weight.
    pub(crate) fn pick<T: Copy>(&mut self, choices: &[(T, u32)]) -> T {
        let total: u64 = choices.iter().map(|(_, weight)| u64::from(*weight)).sum();
        let mut left = self.below(total);
        for (choice, weight) in choices {
            if left < u64::from(*weight) {
                return *choice;
            }
            left -= u64::from(*weight);
        }
        choices[choices.len() - 1].0
    }
}

/// The seed of one vendor's month: FNV-1a over the name, mixed with the seed and the month.
fn month_seed(seed: u64, vendor: &str, year: i32, month: u32) -> u64 {
    let mut hash = 0xCBF2_9CE4_8422_2325_u64;
    for byte in vendor.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
    }
    let month = u64::try_from(year).unwrap_or_default() * 100 + u64::from(month);
    hash ^ seed.rotate_left(32) ^ month.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// How a kind of vendor sells over a year.
struct Profile {
    /// Orders in an average month.
    orders: f64,
    /// Relative volume per calendar month, January first.
    season: [f64; 12],
    /// Share of orders refunded (fully or in part).
    refund_rate: f64,
    /// Currencies by weight.
    currencies: &'static [(&'static str, u32)],
    /// Prices in minor units by weight, per currency (same order as `currencies`).
    prices: &'static [&'static [(i64, u32)]],
    /// Items per order by weight.
    items: &'static [(u32, u32)],
    /// Shipping added below the threshold: `(threshold, shipping)` in minor units.
    shipping: Option<(i64, i64)>,
}

const SHOP: Profile = Profile {
    orders: 95.0,
    // A shop that lives for Christmas.
    season: [0.80, 0.72, 0.85, 0.90, 0.95, 0.88, 0.80, 0.78, 0.92, 1.05, 1.45, 1.85],
    refund_rate: 0.04,
    currencies: &[("EUR", 1)],
    prices: &[&[
        (990, 14),
        (1490, 18),
        (1990, 20),
        (2490, 14),
        (3990, 12),
        (5900, 10),
        (8900, 7),
        (12900, 5),
    ]],
    items: &[(1, 60), (2, 30), (3, 10)],
    shipping: Some((5000, 490)),
};

const SUBSCRIPTIONS: Profile = Profile {
    orders: 70.0,
    // Software bought on work days: quieter in summer and over the holidays.
    season: [1.05, 1.00, 1.08, 1.00, 0.98, 0.92, 0.82, 0.85, 1.05, 1.12, 1.08, 0.90],
    refund_rate: 0.025,
    currencies: &[("USD", 78), ("EUR", 22)],
    prices: &[
        &[(2900, 40), (4900, 30), (9900, 20), (29900, 10)],
        &[(2700, 40), (4500, 30), (8900, 20), (27900, 10)],
    ],
    items: &[(1, 1)],
    shipping: None,
};

const OUTDOOR: Profile = Profile {
    orders: 55.0,
    // Tents and boots: a summer business with a Christmas bump.
    season: [0.55, 0.60, 0.85, 1.10, 1.35, 1.60, 1.70, 1.50, 1.05, 0.80, 0.90, 1.15],
    refund_rate: 0.06,
    currencies: &[("GBP", 1)],
    prices: &[&[
        (1250, 15),
        (1800, 18),
        (2499, 20),
        (3500, 16),
        (4995, 14),
        (7900, 10),
        (12900, 7),
    ]],
    items: &[(1, 65), (2, 35)],
    shipping: Some((4000, 395)),
};

fn profile(preset: Preset) -> &'static Profile {
    match preset {
        Preset::Canonical => &SHOP,
        Preset::Stripe => &SUBSCRIPTIONS,
        Preset::Shopify => &OUTDOOR,
    }
}

/// One generated order, before it becomes webhooks.
struct Order {
    /// `YYYYMM` and the order's number within its month.
    month: u32,
    number: u32,
    at: DateTime<Utc>,
    currency: &'static str,
    /// Item prices, minor units.
    items: Vec<i64>,
    shipping: i64,
    /// When and how much was refunded, if it was.
    refund: Option<(DateTime<Utc>, i64)>,
}

impl Order {
    fn amount(&self) -> i64 {
        self.items.iter().sum::<i64>() + self.shipping
    }
}

fn month_start(year: i32, month: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .unwrap_or_default()
}

/// The orders of one vendor's month, all of them (also those after `now`).
fn orders_of_month(profile: &Profile, seed: u64, vendor: &str, year: i32, month: u32) -> Vec<Order> {
    let mut rng = Rng::new(month_seed(seed, vendor, year, month));
    let start = month_start(year, month);
    let end = start.checked_add_months(Months::new(1)).unwrap_or(start);
    let seconds = u64::try_from((end - start).num_seconds()).unwrap_or(1);
    let noise = 0.9 + 0.2 * rng.unit();
    let count = (profile.orders * profile.season[month as usize - 1] * noise).round() as u32;
    let mut times: Vec<u64> = (0..count).map(|_| rng.below(seconds)).collect();
    times.sort_unstable();
    times
        .into_iter()
        .zip(1..)
        .map(|(offset, number)| {
            let at = start + Duration::seconds(i64::try_from(offset).unwrap_or_default());
            let currency_index = rng.pick(
                &profile
                    .currencies
                    .iter()
                    .enumerate()
                    .map(|(index, (_, weight))| (index, *weight))
                    .collect::<Vec<_>>(),
            );
            let prices = profile.prices[currency_index];
            let items: Vec<i64> = (0..rng.pick(profile.items)).map(|_| rng.pick(prices)).collect();
            let subtotal: i64 = items.iter().sum();
            let shipping = match profile.shipping {
                Some((threshold, shipping)) if subtotal < threshold => shipping,
                _ => 0,
            };
            let refunded = rng.chance(profile.refund_rate);
            let full = rng.chance(0.7);
            let after = Duration::days(1 + i64::try_from(rng.below(20)).unwrap_or_default())
                + Duration::seconds(i64::try_from(rng.below(86_400)).unwrap_or_default());
            let mut order = Order {
                month: u32::try_from(year).unwrap_or_default() * 100 + month,
                number,
                at,
                currency: profile.currencies[currency_index].0,
                items,
                shipping,
                refund: None,
            };
            if refunded {
                // A full refund, or one item back (half of a single-item order).
                let amount = match (full, order.items.as_slice()) {
                    (true, _) => order.amount(),
                    (false, [only]) => only / 2,
                    (false, [first, ..]) => *first,
                    (false, []) => 0,
                };
                order.refund = Some((at + after, amount));
            }
            order
        })
        .collect()
}

/// Money in minor units as decimal text in major units: `1234` EUR is `"12.34"`.
pub(crate) fn major(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10_i64.pow(digits);
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = digits as usize
    )
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

const SHOP_ITEMS: [&str; 6] = [
    "Notebook A5",
    "Fountain pen",
    "Desk lamp",
    "Weekly planner",
    "Ink set",
    "Leather folio",
];
const OUTDOOR_ITEMS: [&str; 6] = [
    "Trail socks",
    "Head torch",
    "Dry bag 20 l",
    "Rain shell",
    "Hiking boots",
    "Two-person tent",
];
const PLANS: [&str; 4] = ["Starter", "Team", "Business", "Enterprise"];

/// A product name for a price, the same every time.
fn item_name(names: &[&'static str; 6], price: i64) -> &'static str {
    names[usize::try_from(price / 7 % 6).unwrap_or_default()]
}

/// The webhooks of one order: its sale, and its refund if there is one (`now` is not applied).
fn webhooks(preset: Preset, vendor: usize, seed: u64, order: &Order) -> (Event, Option<Event>) {
    let key = format!("{}{:04}", order.month, order.number);
    let amount = order.amount();
    let currency = order.currency;
    match preset {
        Preset::Canonical => {
            let order_id = format!("demo{seed}-{}-{:04}", order.month, order.number);
            let customer = format!("cus_{}", (order.month as u64 * 7 + u64::from(order.number) * 13) % 5000);
            let items: Vec<serde_json::Value> = order
                .items
                .iter()
                .map(|price| {
                    json!({"sku": format!("SKU-{price}"), "name": item_name(&SHOP_ITEMS, *price),
                           "quantity": 1, "unit_amount": price})
                })
                .collect();
            let sale_id = format!("demo{seed}-{key}-sale");
            let sale = Event {
                vendor,
                delivery_id: sale_id.clone(),
                event_type: "sale.completed",
                at: order.at,
                body: json!({
                    "id": sale_id, "type": "sale.completed", "occurred_at": rfc3339(order.at),
                    "data": {"order_id": order_id, "amount": amount, "currency": currency,
                             "customer": {"id": customer, "country": "DE"}, "items": items,
                             "shipping_amount": order.shipping}
                })
                .to_string(),
            };
            let refund = order.refund.map(|(at, refunded)| {
                let refund_id = format!("demo{seed}-{key}-refund");
                Event {
                    vendor,
                    delivery_id: refund_id.clone(),
                    event_type: "sale.refunded",
                    at,
                    body: json!({
                        "id": refund_id, "type": "sale.refunded", "occurred_at": rfc3339(at),
                        "data": {"order_id": order_id, "amount": refunded, "currency": currency,
                                 "reason": if refunded == amount { "returned" } else { "partial return" }}
                    })
                    .to_string(),
                }
            });
            (sale, refund)
        }
        Preset::Stripe => {
            let charge = format!("ch_demo{seed}_{key}");
            let plan = PLANS[usize::try_from(order.items[0].unsigned_abs() % 4).unwrap_or_default()];
            let body = |event_id: &str, event_type: &str, at: DateTime<Utc>, refunded: i64| {
                json!({
                    "id": event_id, "object": "event", "api_version": "2024-06-20", "type": event_type,
                    "created": at.timestamp(), "livemode": false, "pending_webhooks": 1,
                    "data": {"object": {
                        "id": charge, "object": "charge", "amount": amount, "amount_captured": amount,
                        "amount_refunded": refunded, "currency": currency.to_ascii_lowercase(),
                        "customer": format!("cus_demo{}", (u64::from(order.number) * 31 + order.month as u64) % 900),
                        "description": format!("{plan} plan"), "paid": true, "captured": true,
                        "refunded": refunded == amount, "status": "succeeded"
                    }}
                })
                .to_string()
            };
            let sale_id = format!("evt_demo{seed}_{key}_succeeded");
            let sale = Event {
                vendor,
                delivery_id: sale_id.clone(),
                event_type: "charge.succeeded",
                at: order.at,
                body: body(&sale_id, "charge.succeeded", order.at, 0),
            };
            let refund = order.refund.map(|(at, refunded)| {
                let refund_id = format!("evt_demo{seed}_{key}_refunded");
                Event {
                    vendor,
                    delivery_id: refund_id.clone(),
                    event_type: "charge.refunded",
                    at,
                    body: body(&refund_id, "charge.refunded", at, refunded),
                }
            });
            (sale, refund)
        }
        Preset::Shopify => {
            // Shopify's ids are integers; the store's clock is an hour ahead of UTC.
            let order_id = seed * 10_000_000_000 + u64::from(order.month) * 10_000 + u64::from(order.number);
            let local = FixedOffset::east_opt(3600).expect("an hour is a valid offset");
            let time = |at: DateTime<Utc>| at.with_timezone(&local).to_rfc3339_opts(SecondsFormat::Secs, false);
            let line_items: Vec<serde_json::Value> = order
                .items
                .iter()
                .enumerate()
                .map(|(index, price)| {
                    json!({"id": order_id * 10 + index as u64, "title": item_name(&OUTDOOR_ITEMS, *price),
                           "quantity": 1, "price": major(*price, currency)})
                })
                .collect();
            let sale = Event {
                vendor,
                delivery_id: format!("demo{seed}-{key}-paid"),
                event_type: "orders/paid",
                at: order.at,
                body: json!({
                    "id": order_id, "name": format!("#{}", 1000 + order.number),
                    "email": format!("customer{}@example.com", order.number),
                    "created_at": time(order.at - Duration::minutes(2)), "processed_at": time(order.at),
                    "currency": currency, "financial_status": "paid",
                    "subtotal_price": major(amount - order.shipping, currency), "total_price": major(amount, currency),
                    "line_items": line_items,
                    "shipping_lines": [{"title": "Standard", "price": major(order.shipping, currency)}]
                })
                .to_string(),
            };
            let refund = order.refund.map(|(at, refunded)| Event {
                vendor,
                delivery_id: format!("demo{seed}-{key}-refund"),
                event_type: "refunds/create",
                at,
                body: json!({
                    "id": order_id * 10 + 9, "order_id": order_id, "created_at": time(at), "note": "Returned",
                    "transactions": [{"id": order_id * 10 + 8, "kind": "refund", "status": "success",
                                      "amount": major(refunded, currency), "currency": currency}]
                })
                .to_string(),
            });
            (sale, refund)
        }
    }
}

fn month_text(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

/// The year up to `now` for `vendors` (name and preset), in the order they happened.
///
/// Refunds within the year of orders from the month before it are part of it (as refunds
/// without their sale), so a month's sums are the same whenever the demo runs.
pub(crate) fn plan(vendors: &[(String, Preset)], seed: u64, now: DateTime<Utc>) -> Plan {
    let this_month = month_start(now.year(), now.month());
    let months: Vec<DateTime<Utc>> = (0..13)
        .rev()
        .filter_map(|back| this_month.checked_sub_months(Months::new(back)))
        .collect();
    let first = months.get(1).copied().unwrap_or(this_month);
    let mut events = Vec::new();
    let mut expected: BTreeMap<MonthKey, Totals> = BTreeMap::new();
    for (index, (name, preset)) in vendors.iter().enumerate() {
        for start in &months {
            for order in orders_of_month(profile(*preset), seed, name, start.year(), start.month()) {
                let (sale, refund) = webhooks(*preset, index, seed, &order);
                let key = |at: DateTime<Utc>| (name.clone(), month_text(at), order.currency.to_owned());
                if order.at >= first && order.at <= now {
                    let sold = expected.entry(key(order.at)).or_default();
                    sold.orders += 1;
                    sold.gross_minor += order.amount();
                    events.push(sale);
                }
                if let (Some((at, refunded)), Some(refund)) = (order.refund, refund)
                    && at >= first
                    && at <= now
                {
                    expected.entry(key(at)).or_default().refunded_minor += refunded;
                    events.push(refund);
                }
            }
        }
    }
    events.sort_by(|a, b| (a.at, a.vendor, &a.delivery_id).cmp(&(b.at, b.vendor, &b.delivery_id)));
    Plan {
        events,
        first_month: month_text(first),
        last_month: month_text(now),
        expected,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn vendors() -> Vec<(String, Preset)> {
        vec![
            ("shop".to_owned(), Preset::Canonical),
            ("stripe".to_owned(), Preset::Stripe),
            ("shopify".to_owned(), Preset::Shopify),
        ]
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_same_seed_gives_the_same_year_and_another_seed_another() {
        let now = at("2026-07-15T12:00:00Z");
        let one = plan(&vendors(), 1, now);
        let again = plan(&vendors(), 1, now);
        let other = plan(&vendors(), 2, now);
        assert_eq!(one.events, again.events);
        assert_eq!(one.expected, again.expected);
        assert_ne!(one.expected, other.expected);
    }

    #[test]
    fn a_year_is_a_few_thousand_events_in_twelve_months_up_to_now_with_a_few_percent_refunds() {
        let now = at("2026-07-15T12:00:00Z");
        let plan = plan(&vendors(), 1, now);
        assert_eq!(
            (plan.first_month.as_str(), plan.last_month.as_str()),
            ("2025-08", "2026-07")
        );
        assert!((2000..5000).contains(&plan.events.len()), "{}", plan.events.len());
        assert!(
            plan.events
                .iter()
                .all(|event| event.at <= now && event.at >= at("2025-08-01T00:00:00Z"))
        );
        assert!(plan.events.windows(2).all(|pair| pair[0].at <= pair[1].at));
        let refunds = plan
            .events
            .iter()
            .filter(|event| matches!(event.event_type, "sale.refunded" | "charge.refunded" | "refunds/create"))
            .count();
        let share = refunds as f64 / plan.events.len() as f64;
        assert!((0.02..0.07).contains(&share), "{share}");
        let months: std::collections::BTreeSet<&str> =
            plan.expected.keys().map(|(_, month, _)| month.as_str()).collect();
        assert_eq!(months.len(), 12);
        let currencies: std::collections::BTreeSet<(&str, &str)> = plan
            .expected
            .keys()
            .map(|(vendor, _, currency)| (vendor.as_str(), currency.as_str()))
            .collect();
        assert_eq!(
            currencies.into_iter().collect::<Vec<_>>(),
            [
                ("shop", "EUR"),
                ("shopify", "GBP"),
                ("stripe", "EUR"),
                ("stripe", "USD")
            ]
        );
    }

    #[test]
    fn a_month_is_the_same_whenever_the_demo_runs_so_reruns_only_add() {
        let early = plan(&vendors(), 1, at("2026-07-10T00:00:00Z"));
        let later = plan(&vendors(), 1, at("2026-08-20T00:00:00Z"));
        let key =
            |vendor: &str, month: &str, currency: &str| (vendor.to_owned(), month.to_owned(), currency.to_owned());
        // June's sales are complete in both; July's grew.
        assert_eq!(
            early.expected[&key("shop", "2026-06", "EUR")].orders,
            later.expected[&key("shop", "2026-06", "EUR")].orders
        );
        assert!(
            early.expected[&key("shop", "2026-07", "EUR")].orders
                < later.expected[&key("shop", "2026-07", "EUR")].orders
        );
        // Every month both runs see in full has the same sums, refunds of older orders included.
        let complete = |plan: &Plan| -> BTreeMap<MonthKey, Totals> {
            plan.expected
                .iter()
                .filter(|((_, month, _), _)| ("2025-09".."2026-07").contains(&month.as_str()))
                .map(|(key, totals)| (key.clone(), *totals))
                .collect()
        };
        assert_eq!(complete(&early).len(), 10 * 4);
        assert_eq!(complete(&early), complete(&later));
        let later_ids: std::collections::HashSet<&str> =
            later.events.iter().map(|event| event.delivery_id.as_str()).collect();
        assert!(
            early
                .events
                .iter()
                .filter(|event| event.at >= at("2025-09-01T00:00:00Z"))
                .all(|event| later_ids.contains(event.delivery_id.as_str()))
        );
    }

    #[test]
    fn bodies_follow_each_preset_and_the_expected_sums_match_them() {
        let plan = plan(&vendors(), 7, at("2026-03-31T23:59:59Z"));
        let mut sums: BTreeMap<MonthKey, Totals> = BTreeMap::new();
        for event in &plan.events {
            let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
            let (vendor, refund, amount, currency, at) = match event.event_type {
                "sale.completed" | "sale.refunded" => (
                    "shop",
                    event.event_type == "sale.refunded",
                    body["data"]["amount"].as_i64().unwrap(),
                    body["data"]["currency"].as_str().unwrap().to_owned(),
                    at(body["occurred_at"].as_str().unwrap()),
                ),
                "charge.succeeded" | "charge.refunded" => {
                    let refund = event.event_type == "charge.refunded";
                    let object = &body["data"]["object"];
                    let amount = if refund {
                        &object["amount_refunded"]
                    } else {
                        &object["amount"]
                    };
                    (
                        "stripe",
                        refund,
                        amount.as_i64().unwrap(),
                        object["currency"].as_str().unwrap().to_ascii_uppercase(),
                        DateTime::from_timestamp(body["created"].as_i64().unwrap(), 0).unwrap(),
                    )
                }
                "orders/paid" => (
                    "shopify",
                    false,
                    webhook_core::money::parse_decimal(body["total_price"].as_str().unwrap(), 2).unwrap(),
                    body["currency"].as_str().unwrap().to_owned(),
                    at(body["processed_at"].as_str().unwrap()),
                ),
                "refunds/create" => {
                    let transaction = &body["transactions"][0];
                    (
                        "shopify",
                        true,
                        webhook_core::money::parse_decimal(transaction["amount"].as_str().unwrap(), 2).unwrap(),
                        transaction["currency"].as_str().unwrap().to_owned(),
                        at(body["created_at"].as_str().unwrap()),
                    )
                }
                other => panic!("unexpected event type {other}"),
            };
            assert!(amount > 0, "{}", event.body);
            let totals = sums.entry((vendor.to_owned(), month_text(at), currency)).or_default();
            if refund {
                totals.refunded_minor += amount;
            } else {
                totals.orders += 1;
                totals.gross_minor += amount;
            }
        }
        assert_eq!(sums, plan.expected);
    }

    #[test]
    fn major_units_are_exact() {
        assert_eq!(major(123_456, "EUR"), "1234.56");
        assert_eq!(major(5, "GBP"), "0.05");
        assert_eq!(major(1_500, "JPY"), "1500");
        assert_eq!(major(1_234, "KWD"), "1.234");
    }
}
