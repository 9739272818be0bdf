//! The operator's pages through the real binary over seeded rows: event filters, keyset pages,
//! escaping and purged bodies; rejections from the per-day counts; dead letters with their
//! replay command, read-only without a login and a CSRF-checked POST with one, which replays
//! through the broker when the dashboard has `AMQP_URL` (503 when the broker cannot be
//! reached) and answers the command otherwise; the vendor comparison; 400s that name the bad
//! value and 401s without a login.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use sqlx::Executor;
use testkit::private::TempDir;
use testkit::{Env, TcpProxy, TestBroker, TestDatabase};
use webhook_core::broker::BrokerSettings;
use webhook_core::config::Vars;
use webhook_core::envelope::{Envelope, header, header_text, republish_properties};

const BINARY: &str = env!("CARGO_BIN_EXE_dashboard");

/// A running dashboard binary; killed when dropped.
struct Dashboard {
    child: Child,
    base: String,
    /// What it has logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Dashboard {
    fn start(database: &TestDatabase, vars: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BINARY)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database.url())
            .env("DASHBOARD_ADDR", "127.0.0.1:0")
            .envs(vars.iter().copied())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (listening, received) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once("dashboard listening on ") {
                    let _ = listening.send(url.trim().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let Ok(base) = received.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the dashboard did not start");
        };
        Self { child, base, log }
    }

    /// The lines it has logged that contain `text`, once there are at least `count` of them:
    /// the answer can reach the test before the line that records it does.
    async fn logged(&self, text: &str, count: usize) -> Vec<String> {
        testkit::eventually(
            &format!("{count} logged line(s) containing {text:?}"),
            Duration::from_secs(10),
            || async {
                let lines: Vec<String> = self
                    .log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|line| line.contains(text))
                    .cloned()
                    .collect();
                (lines.len() >= count).then_some(lines)
            },
        )
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn seeded() -> TestDatabase {
    let database = TestDatabase::new();
    database.create_migrated().await;
    let mut connection = database.connect().await;
    for statement in [
        // Five events of shop (ids 1..5, received a minute apart), one of stripe, one purged,
        // one erased (with its tombstone), one form body.
        "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, content_type, received_at, stored_at, status, purged_at) VALUES \
         ('shop', 'd1', 'orders/paid', '{\"n\":1}', REPEAT('a', 64), 'application/json', '2026-03-01 10:01:00', NOW(), 'processed', NULL), \
         ('shop', 'd2', 'orders/paid', '{\"n\":2}', REPEAT('a', 64), 'application/json', '2026-03-01 10:02:00', NOW(), 'processed', NULL), \
         ('shop', 'd3', 'orders/refunded', '{\"n\":3}', REPEAT('a', 64), 'application/json', '2026-03-01 10:03:00', NOW(), 'processed', NULL), \
         ('shop', 'd4', 'orders/paid', '{\"note\":\"<script>alert(1)</script>\",\"z\":[1,2]}', REPEAT('a', 64), 'application/json', '2026-03-01 10:04:00', NOW(), 'processed', NULL), \
         ('shop', 'd5', 'orders/paid', '<script>alert(2)</script> not json', REPEAT('a', 64), 'application/json', '2026-03-01 10:05:00', NOW(), 'failed', NULL), \
         ('stripe', 's1', 'charge.succeeded', '{}', REPEAT('b', 64), 'application/json', '2026-03-02 09:00:00', NOW(), 'processed', NULL), \
         ('stripe', 's2', 'charge.succeeded', NULL, REPEAT('c', 64), 'application/json', '2025-01-02 09:00:00', NOW(), 'processed', '2025-04-02 00:00:00'), \
         ('stripe', 's3', 'charge.succeeded', NULL, REPEAT('d', 64), 'application/json', '2026-03-03 09:00:00', NOW(), 'erased', '2026-03-04 00:00:00'), \
         ('slack', 'k1', 'command', 'text=%3Cb%3E&user=ann', REPEAT('e', 64), 'application/x-www-form-urlencoded', '2026-03-03 10:00:00', NOW(), 'processed', NULL)",
        "INSERT INTO erasures (source, delivery_id, event_type, erased_at, erased_by, reason, matched_by) VALUES \
         ('stripe', 's3', 'charge.succeeded', '2026-03-04 00:00:00', 'ops@example.com', 'GDPR request 7', 'delivery-id')",
        // A million rejections as the per-day counts keep them (the log itself is pruned), and a
        // few raw rows.
        "INSERT INTO rejection_counts (day, source, reason, shard, rejected) VALUES \
         (UTC_DATE(), 'shop', 'bad_signature', 1, 600000), (UTC_DATE(), 'shop', 'bad_signature', 2, 300000), \
         (UTC_DATE() - INTERVAL 1 DAY, '(unknown)', 'unknown_source', 0, 99999), \
         (UTC_DATE() - INTERVAL 30 DAY, 'shop', 'too_large', 0, 5)",
        "INSERT INTO rejections (received_at, source, claimed_source, reason, status, request_id, delivery_id) VALUES \
         (UTC_TIMESTAMP(), '(unknown)', '<img src=x>', 'unknown_source', 404, 'r-1', NULL), \
         (UTC_TIMESTAMP() - INTERVAL 1 MINUTE, 'shop', NULL, 'bad_signature', 401, 'r-2', 'dd-2')",
        "INSERT INTO dead_letters (source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at) VALUES \
         ('shop', 'bad-1', 'orders/paid', 'poison', 'body is not valid JSON: <b>', 0, '2026-03-02 10:00:00'), \
         ('shop', 'it''s 2', 'orders/paid', 'retries_exhausted', 'processor failed', 5, '2026-03-02 11:00:00')",
        "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, refunded_minor, refunded_at, updated_at) VALUES \
         ('shop', 'o1', 'EUR', 10000, '2026-01-10', 0, NULL, NOW()), \
         ('shop', 'o2', 'EUR', 2500, '2026-02-10', 0, NULL, NOW()), \
         ('stripe', 'p1', 'EUR', 7000, '2026-02-14', 0, NULL, NOW()), \
         ('stripe', 'p2', 'USD', 999, '2026-02-14', 0, NULL, NOW())",
    ] {
        connection.execute(statement).await.unwrap();
    }
    database
}

/// An `application/x-www-form-urlencoded` body of `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                dashboard::pages::query_encode(name),
                dashboard::pages::query_encode(value)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The delivery ids of the rows of an events page, in order.
fn delivery_ids(page: &str) -> Vec<String> {
    page.split("<tr data-id=")
        .skip(1)
        .map(|row| row.split("</td><td>").nth(3).unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_filter_page_by_keyset_and_show_escaped_bodies() {
    let database = seeded().await;
    let dashboard = Dashboard::start(&database, &[]);
    let client = reqwest::Client::new();

    let (status, all) = get(&client, &dashboard.url("/events")).await;
    assert_eq!(status, 200);
    assert_eq!(
        delivery_ids(&all),
        ["k1", "s3", "s2", "s1", "d5", "d4", "d3", "d2", "d1"]
    );
    assert!(!all.contains("<script>"), "{all}");

    // Filters: source, type, time range, delivery id.
    let (_, shop) = get(&client, &dashboard.url("/events?source=shop&type=orders/paid")).await;
    assert_eq!(delivery_ids(&shop), ["d5", "d4", "d2", "d1"]);
    let (_, window) = get(
        &client,
        &dashboard.url("/events?since=2026-03-01T10:02&until=2026-03-01T10:04"),
    )
    .await;
    assert_eq!(delivery_ids(&window), ["d3", "d2"]);
    let (_, day) = get(&client, &dashboard.url("/events?since=2026-03-02&until=2026-03-03")).await;
    assert_eq!(delivery_ids(&day), ["k1", "s3", "s1"]);
    let (_, one) = get(&client, &dashboard.url("/events?delivery_id=d3")).await;
    assert_eq!(delivery_ids(&one), ["d3"]);

    // Keyset pages of two, following the page's own "older" link.
    let mut url = dashboard.url("/events?source=shop&limit=2");
    let mut seen = Vec::new();
    loop {
        let (status, page) = get(&client, &url).await;
        assert_eq!(status, 200);
        seen.extend(delivery_ids(&page));
        let Some(link) = page.split("id=\"older\" href=\"").nth(1) else {
            break;
        };
        let href = link.split('"').next().unwrap().replace("&amp;", "&");
        assert!(href.contains("source=shop") && href.contains("limit=2"), "{href}");
        url = dashboard.url(&href);
    }
    assert_eq!(seen, ["d5", "d4", "d3", "d2", "d1"]);

    // One event: envelope fields, the JSON body pretty-printed and escaped.
    let id = all
        .split("<a href=\"/events/")
        .nth(6)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (status, event) = get(&client, &dashboard.url(&format!("/events/{id}"))).await;
    assert_eq!(status, 200);
    assert!(event.contains("<dd>d4</dd>") && event.contains("<dd>application/json</dd>"));
    assert!(event.contains("data-format=\"json\""), "{event}");
    assert!(
        event.contains(
            "{\n  \"note\": \"&lt;script&gt;alert(1)&lt;/script&gt;\",\n  \"z\": [\n    1,\n    2\n  ]\n}</pre>"
        ),
        "{event}"
    );
    assert!(!event.contains("<script>"));
    // Not JSON: shown raw, escaped.
    let id = all
        .split("<a href=\"/events/")
        .nth(5)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (_, raw) = get(&client, &dashboard.url(&format!("/events/{id}"))).await;
    assert!(
        raw.contains("data-format=\"raw\">&lt;script&gt;alert(2)&lt;/script&gt; not json</pre>"),
        "{raw}"
    );
    // Purged, erased.
    let id = all
        .split("<a href=\"/events/")
        .nth(3)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (_, purged) = get(&client, &dashboard.url(&format!("/events/{id}"))).await;
    assert!(
        purged.contains("Purged at 2025-04-02 00:00:00.000000: the body is gone"),
        "{purged}"
    );
    let id = all
        .split("<a href=\"/events/")
        .nth(2)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (_, erased) = get(&client, &dashboard.url(&format!("/events/{id}"))).await;
    assert!(
        erased.contains("Erased at 2026-03-04 00:00:00 by ops@example.com (delivery-id): GDPR request 7."),
        "{erased}"
    );

    // Bad values: 400 naming the value; unknown ids.
    for (query, message) in [
        ("since=yesterday", "since=\"yesterday\" is not a time"),
        ("limit=500", "limit=500 is not between 1 and 200"),
        ("before=-1", "before=\"-1\" is not a whole number"),
        ("source=no%20such", "source=\"no such\" is not a source name"),
        (
            "since=2026-03-02&until=2026-03-01",
            "since=\"2026-03-02\" is not before until=\"2026-03-01\"",
        ),
        ("source=a&source=b", "the query string cannot be read"),
    ] {
        let (status, page) = get(&client, &dashboard.url(&format!("/events?{query}"))).await;
        assert_eq!(status, 400, "{query}");
        assert!(page.contains(message), "{query}: {page}");
    }
    let (status, page) = get(&client, &dashboard.url("/events/abc")).await;
    assert_eq!(status, 400);
    assert!(page.contains("is not an event id"));
    let (status, _) = get(&client, &dashboard.url("/events/999999")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rejections_are_summed_from_the_daily_counts_and_the_latest_rows_shown() {
    let database = seeded().await;
    let dashboard = Dashboard::start(&database, &[]);
    let client = reqwest::Client::new();
    let (status, page) = get(&client, &dashboard.url("/rejections")).await;
    assert_eq!(status, 200);
    // The last 7 days by default: the count of 30 days ago is outside.
    assert!(
        page.contains(r#"<tr data-reason="bad_signature"><td>bad_signature</td><td class="num">900001</td></tr>"#),
        "{page}"
    );
    // The raw rows' own counts (kept by the trigger) are in the totals too.
    assert!(page.contains(r#"<td>(unknown)</td><td>unknown_source</td><td class="num">100000</td>"#));
    assert!(!page.contains("too_large"));
    // The latest raw rows, escaped.
    assert!(page.contains("&lt;img src=x&gt;") && !page.contains("<img"));
    assert!(page.contains("r-1") && page.contains("dd-2"));

    let (_, unknown) = get(&client, &dashboard.url("/rejections?source=(unknown)")).await;
    assert!(
        unknown.contains("unknown_source") && !unknown.contains("bad_signature"),
        "{unknown}"
    );

    for (query, message) in [
        ("since=2026-13-01", "since=\"2026-13-01\" is not a day like 2026-01-31"),
        (
            "since=2026-02-01&until=2026-01-01",
            "since=2026-02-01 is after until=2026-01-01",
        ),
        ("since=2020-01-01&until=2026-01-01", "is longer than 366 days"),
        ("source=%3Cx%3E", "source=\"&lt;x&gt;\" is not a source name"),
    ] {
        let (status, page) = get(&client, &dashboard.url(&format!("/rejections?{query}"))).await;
        assert_eq!(status, 400, "{query}");
        assert!(page.contains(message), "{query}: {page}");
    }
}

#[tokio::test]
async fn dead_letters_show_their_replay_command_and_stay_read_only_without_a_login() {
    let database = seeded().await;
    let dashboard = Dashboard::start(&database, &[("DASHBOARD_AUTH", "none")]);
    let client = reqwest::Client::new();
    let (status, page) = get(&client, &dashboard.url("/dead-letters")).await;
    assert_eq!(status, 200);
    assert!(page.contains("body is not valid JSON: &lt;b&gt;"));
    assert!(
        page.contains(r#"<code class="command">consumer dlq replay --id bad-1</code>"#),
        "{page}"
    );
    assert!(page.contains(r"consumer dlq replay --id 'it'\''s 2'"), "{page}");
    assert!(page.contains(r#"id="replay-all">consumer dlq replay --id 'it'\''s 2' --id bad-1</code>"#));
    assert!(!page.contains("<form method=\"post\""));
    let refused = client
        .post(dashboard.url("/dead-letters/replay"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[("id", "1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("read-only without a login"));
    let (status, _) = get(&client, &dashboard.url("/dead-letters/replay")).await;
    assert_eq!(status, 405);
    let (status, page) = get(&client, &dashboard.url("/dead-letters?before=x")).await;
    assert_eq!(status, 400);
    assert!(page.contains("before=\"x\" is not a whole number"));
}

/// `dashboard hash-password USER` lines for a users file.
fn users_file(dir: &TempDir, users: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (user, password) in users {
        let mut child = Command::new(BINARY)
            .args(["hash-password", user])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        text.push_str(&String::from_utf8(output.stdout).unwrap());
    }
    dir.write("users", &text).display().to_string()
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn with_a_login_the_new_pages_ask_for_it_and_replay_needs_the_users_csrf_token() {
    let database = seeded().await;
    let dir = TempDir::new("dashboard-operator-users");
    let file = users_file(&dir, &[("ann", "ann's password"), ("bob", "bob's password")]);
    let dashboard = Dashboard::start(&database, &[("DASHBOARD_AUTH", &format!("basic:{file}"))]);
    let client = reqwest::Client::new();
    for path in ["/events", "/events/1", "/rejections", "/dead-letters", "/compare"] {
        let response = client.get(dashboard.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let anonymous = client
        .post(dashboard.url("/dead-letters/replay"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[("id", "1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let as_user = |user: &'static str, password: &'static str| {
        let client = client.clone();
        let url = dashboard.url("/dead-letters");
        async move {
            let page = client.get(url).basic_auth(user, Some(password)).send().await.unwrap();
            assert_eq!(page.status(), 200);
            page.text().await.unwrap()
        }
    };
    let page = as_user("ann", "ann's password").await;
    assert!(
        page.contains(r#"<form method="post" action="/dead-letters/replay""#),
        "{page}"
    );
    let ann = csrf_of(&page);
    let bob = csrf_of(&as_user("bob", "bob's password").await);
    assert_ne!(ann, bob);
    let ids: Vec<String> = page
        .split("name=\"id\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);

    let post = |token: Option<&str>| {
        let mut form: Vec<(&str, &str)> = ids.iter().map(|id| ("id", id.as_str())).collect();
        if let Some(token) = token {
            form.push(("csrf", token));
        }
        client
            .post(dashboard.url("/dead-letters/replay"))
            .basic_auth("ann", Some("ann's password"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_body(&form))
            .send()
    };
    for token in [None, Some("wrong"), Some(bob.as_str()), Some("")] {
        let refused = post(token).await.unwrap();
        assert_eq!(refused.status(), 403, "{token:?}");
        assert!(refused.text().await.unwrap().contains("CSRF token is missing or wrong"));
    }
    let answer = post(Some(&ann)).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer = answer.text().await.unwrap();
    assert!(
        answer.contains(r#"id="command">consumer dlq replay --id 'it'\''s 2' --id bad-1</code>"#),
        "{answer}"
    );
    // Without AMQP_URL the page says why it answers a command, and the form says what it does.
    assert!(
        answer.contains("it is not given the broker (<code>AMQP_URL</code> is not set)"),
        "{answer}"
    );
    assert!(!answer.contains("id=\"replayed\""), "{answer}");
    assert!(
        page.contains("Replay command for the picked letters</button>"),
        "{page}"
    );
}

#[tokio::test]
async fn the_comparison_draws_every_vendor_in_one_currency() {
    let database = seeded().await;
    let dashboard = Dashboard::start(&database, &[]);
    let client = reqwest::Client::new();
    let (status, page) = get(&client, &dashboard.url("/compare?from=2026-01&to=2026-03")).await;
    assert_eq!(status, 200);
    // EUR by default (the first currency), both vendors in one chart.
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 1);
    assert!(page.contains(r#"data-currency="EUR""#));
    assert_eq!(page.matches("<g class=\"series\"").count(), 2);
    assert!(page.contains(r#"<option value="USD">USD</option>"#));
    assert!(page.contains("125.00 EUR") && page.contains("70.00 EUR"), "{page}");
    let (_, usd) = get(&client, &dashboard.url("/compare?currency=USD&from=2026-01&to=2026-03")).await;
    assert_eq!(usd.matches("<g class=\"series\"").count(), 1);
    assert!(usd.contains(r#"<g class="series" data-source="stripe">"#));
    for (query, message) in [
        ("currency=eur", "currency=\"eur\" is not an ISO 4217 code"),
        ("from=2026-13", "from=\"2026-13\" is not a month like 2026-01"),
    ] {
        let (status, page) = get(&client, &dashboard.url(&format!("/compare?{query}"))).await;
        assert_eq!(status, 400, "{query}");
        assert!(page.contains(message), "{query}: {page}");
    }
}

/// The broker settings of `broker`'s prefix, read from the variables the dashboard is given.
fn broker_settings(broker: &TestBroker) -> BrokerSettings {
    let env = Env::new()
        .with("AMQP_URL", testkit::amqp_url())
        .with("AMQP_PREFIX", broker.prefix());
    let lookup = env.lookup();
    BrokerSettings::from_vars(&Vars::new(&lookup)).unwrap()
}

/// Declares `broker`'s topology and puts a dead letter of `shop` for each delivery id in
/// `{P}.dead`, with the headers the consumer sets when it dead-letters (confirmed).
async fn dead_letters_in_queue(broker: &TestBroker, ids: &[&str]) {
    let settings = broker_settings(broker);
    let connection = broker.connect().await;
    let channel = connection.create_channel().await.unwrap();
    settings.topology.declare(&channel).await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    for id in ids {
        let envelope = Envelope {
            source: "shop".to_owned(),
            delivery_id: (*id).to_owned(),
            event_type: "orders/paid".to_owned(),
            received_at: chrono::Utc::now(),
            retry_count: 0,
            body_format: webhook_core::payload::BodyFormat::Json,
        };
        let properties: BasicProperties = republish_properties(
            &envelope.properties(),
            5,
            Some("retries exhausted after 5: processor failed"),
        );
        channel
            .basic_publish(
                "".into(),
                settings.topology.dead_queue().as_str().into(),
                BasicPublishOptions::default(),
                format!("{{\"id\":\"{id}\"}}").as_bytes(),
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let _ = connection.close(200, "OK".into()).await;
}

/// A dashboard with ann's login and `vars`, ann's CSRF token, and the ids of the rows of its
/// dead letters page by delivery id.
async fn signed_in_dashboard(
    database: &TestDatabase,
    dir: &TempDir,
    vars: &[(&str, &str)],
) -> (Dashboard, String, Vec<(String, String)>, String) {
    let file = users_file(dir, &[("ann", "ann's password")]);
    let auth = format!("basic:{file}");
    let mut all = vec![("DASHBOARD_AUTH", auth.as_str())];
    all.extend_from_slice(vars);
    let dashboard = Dashboard::start(database, &all);
    let page = reqwest::Client::new()
        .get(dashboard.url("/dead-letters"))
        .basic_auth("ann", Some("ann's password"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let token = csrf_of(&page);
    // Each row: <tr data-id="N"><td><input … value="N"></td><td>when</td><td>source</td><td>delivery id</td>…
    let rows = page
        .split("<tr data-id=\"")
        .skip(1)
        .map(|row| {
            let id = row.split('"').next().unwrap().to_owned();
            let delivery_id = row.split("</td><td>").nth(3).unwrap().to_owned();
            (id, delivery_id)
        })
        .collect();
    (dashboard, token, rows, page)
}

async fn post_replay(dashboard: &Dashboard, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(dashboard.url("/dead-letters/replay"))
        .basic_auth("ann", Some("ann's password"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(form))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn with_the_broker_the_post_replays_the_picked_letters_and_reports_what_it_did() {
    let database = seeded().await;
    let broker = TestBroker::new();
    // bad-1 is recorded and in the queue; it's 2 is recorded but no longer in it (already
    // replayed); keep-me is in the queue but not picked.
    dead_letters_in_queue(&broker, &["bad-1", "keep-me"]).await;
    let dir = TempDir::new("dashboard-replay-users");
    let amqp_url = testkit::amqp_url();
    let (dashboard, token, rows, page) = signed_in_dashboard(
        &database,
        &dir,
        &[("AMQP_URL", &amqp_url), ("AMQP_PREFIX", broker.prefix())],
    )
    .await;
    assert!(page.contains("Replay the picked letters</button>"), "{page}");
    // The page only reads: the letters are still there.
    assert_eq!(broker.depth(".dead").await, Some(2));
    let id_of = |delivery_id: &str| {
        rows.iter()
            .find(|(_, shown)| shown == delivery_id)
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    let (present, absent) = (id_of("bad-1"), id_of("it's 2"));

    // The same rules as before: no token, another token, a GET.
    for form in [
        vec![("id", present.as_str())],
        vec![("id", present.as_str()), ("csrf", "x")],
    ] {
        assert_eq!(post_replay(&dashboard, &form).await.status(), 403);
    }
    assert_eq!(broker.depth(".dead").await, Some(2), "a refused POST replays nothing");

    let answer = post_replay(&dashboard, &[("id", &present), ("id", &absent), ("csrf", &token)]).await;
    assert_eq!(answer.status(), 200);
    let answer = answer.text().await.unwrap();
    assert!(
        answer.contains(r#"<p id="replayed" data-count="1">Replayed 1 dead letter(s)"#),
        "{answer}"
    );
    assert!(
        answer.contains(r#"<ul id="not-found"><li>it's 2</li></ul>"#),
        "{answer}"
    );
    assert!(!answer.contains(r#"id="failed""#), "{answer}");
    assert!(!answer.contains(r#"id="command""#), "{answer}");

    // bad-1 left {P}.dead and arrived through the exchange {P} in {P}.events, with a fresh
    // retry count and without the dead-letter headers; keep-me stayed (taken unacked by the
    // replay, and back once the broker has closed the replay's channel).
    testkit::eventually("keep-me back in .dead", Duration::from_secs(10), || async {
        (broker.depth(".dead").await == Some(1)).then_some(())
    })
    .await;
    let dead = broker.take_all(".dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].properties.message_id().as_ref().unwrap().as_str(), "keep-me");
    let events = broker.take_all(".events").await;
    assert_eq!(events.len(), 1, "the replayed letter is on {}.events", broker.prefix());
    let replayed = &events[0];
    assert_eq!(replayed.properties.message_id().as_ref().unwrap().as_str(), "bad-1");
    assert_eq!(replayed.body, b"{\"id\":\"bad-1\"}");
    let envelope = Envelope::from_properties(&replayed.properties).unwrap();
    assert_eq!(envelope.retry_count, 0);
    assert_eq!(envelope.routing_key(), "shop.orders/paid");
    let headers = replayed.properties.headers().as_ref().unwrap();
    assert!(header_text(headers, header::ERROR).is_none());

    // Logged with the user, the number picked and the outcome.
    let logged = dashboard.logged("dead-letter replay by user=\"ann\"", 1).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains(" INFO "), "{logged:?}");
    assert!(
        logged[0].contains("2 id(s) picked") && logged[0].contains("replayed=1 not_found=1 failed=0"),
        "{logged:?}"
    );

    // Past the cap: a 400 that names it, and nothing replayed.
    let many: Vec<String> = (1..=101).map(|id| id.to_string()).collect();
    let mut form: Vec<(&str, &str)> = many.iter().map(|id| ("id", id.as_str())).collect();
    form.push(("csrf", &token));
    let refused = post_replay(&dashboard, &form).await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("at most 100 dead letters at once")
    );
}

#[tokio::test]
async fn a_broker_that_cannot_be_reached_is_a_503_within_the_connect_timeout() {
    let database = seeded().await;
    let broker = TestBroker::new();
    let proxy = TcpProxy::start(&format!("127.0.0.1:{}", amqp_port())).await;
    let dir = TempDir::new("dashboard-replay-unreachable");
    let amqp_url = proxy.amqp_url();
    let (dashboard, token, rows, _) = signed_in_dashboard(
        &database,
        &dir,
        &[("AMQP_URL", &amqp_url), ("AMQP_PREFIX", broker.prefix())],
    )
    .await;
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let mut form: Vec<(&str, &str)> = ids.iter().map(|id| ("id", *id)).collect();
    form.push(("csrf", &token));

    // Cut: every connection is refused at once.
    proxy.cut();
    let started = Instant::now();
    let answer = post_replay(&dashboard, &form).await;
    assert_eq!(answer.status(), 503);
    let text = answer.text().await.unwrap();
    assert!(
        text.contains("The broker cannot be reached, so nothing was replayed: cannot connect to the broker at amqp://"),
        "{text}"
    );
    assert!(!text.contains("ann's password"));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // Stalled: the handshake never ends, and the connect timeout (5 s) bounds the wait.
    proxy.restore();
    proxy.stall();
    let started = Instant::now();
    let answer = post_replay(&dashboard, &form).await;
    assert_eq!(answer.status(), 503);
    let text = answer.text().await.unwrap();
    assert!(text.contains("no answer from the broker within 5s"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let logged = dashboard.logged("dead-letter replay by user=\"ann\"", 2).await;
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(
        logged.iter().all(|line| line.contains("not done: cannot connect")),
        "{logged:?}"
    );
}

/// The port of the test broker's URL.
fn amqp_port() -> u16 {
    let url = testkit::amqp_url();
    let authority = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    let host_port = authority.split('/').next().unwrap();
    host_port
        .rsplit_once(':')
        .map_or(5672, |(_, port)| port.parse().unwrap())
}

/// Rows the database read for `filter` on a pool of one connection: the `Handler_read_*`
/// counters of that connection, which count every index and table row a statement touches.
async fn rows_read_for(pool: &sqlx::MySqlPool, filter: &dashboard::data::EventFilter) -> (usize, u64) {
    async fn handler_reads(pool: &sqlx::MySqlPool) -> u64 {
        let counters: Vec<(String, String)> = sqlx::query_as("SHOW SESSION STATUS LIKE 'Handler_read%'")
            .fetch_all(pool)
            .await
            .unwrap();
        counters.iter().map(|(_, value)| value.parse::<u64>().unwrap()).sum()
    }
    let before = handler_reads(pool).await;
    let (rows, _) = dashboard::data::events(pool, filter).await.unwrap();
    let after = handler_reads(pool).await;
    // Each SHOW reads its own status rows too; a scan of the events below reads 20,000.
    (rows.len(), after - before)
}

#[tokio::test]
async fn an_events_search_reads_the_rows_it_needs_not_every_event() {
    let database = TestDatabase::new();
    database.create_migrated().await;
    let mut connection = database.connect().await;
    // 20,000 events of two sources, one a minute.
    connection
        .execute(
            "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, content_type, received_at, stored_at, status) \
             SELECT IF(seq % 2 = 0, 'shop', 'stripe'), CONCAT('d', seq), 'orders/paid', '{}', REPEAT('a', 64), 'application/json', \
             '2026-03-01 00:00:00' + INTERVAL seq MINUTE, NOW(), 'processed' FROM \
             (WITH d AS (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
                         UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) \
              SELECT a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n + 1 AS seq \
              FROM d a, d b, d c, d e, d f WHERE f.n < 2) numbers",
        )
        .await
        .unwrap();
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&database.url())
        .await
        .unwrap();
    let filter = |edit: fn(&mut dashboard::data::EventFilter)| {
        let mut filter = dashboard::data::EventFilter {
            source: None,
            event_type: None,
            since: None,
            until: None,
            delivery_id: None,
            before: None,
            limit: 50,
        };
        edit(&mut filter);
        filter
    };

    type Edit = fn(&mut dashboard::data::EventFilter);
    let cases: [(&str, Edit, usize); 4] = [
        (
            "a delivery id without its source",
            |f| f.delivery_id = Some("d12345".into()),
            1,
        ),
        (
            "a source and a delivery id of another source",
            |f| {
                f.source = Some("shop".into());
                f.delivery_id = Some("d12345".into());
            },
            0,
        ),
        (
            "ten minutes of events",
            |f| {
                f.since = Some("2026-03-05 00:00:00".into());
                f.until = Some("2026-03-05 00:10:00".into());
            },
            10,
        ),
        ("an unknown delivery id", |f| f.delivery_id = Some("nobody".into()), 0),
    ];
    for (what, edit, expected) in cases {
        let (found, read) = rows_read_for(&pool, &filter(edit)).await;
        assert_eq!(found, expected, "{what}");
        assert!(read < 1_000, "{what} read {read} rows");
    }
}
