//! What a person sees: the dashboard over seeded sales, loaded in headless Chromium.
//!
//! Chromium is driven through chromedriver's WebDriver HTTP API (plain JSON over HTTP, so the
//! test needs no WebDriver crate). It needs the Debian packages `chromium` and
//! `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `CHROMIUM` and
//! `CHROMEDRIVER` point elsewhere). Without them the test fails and says how to install them;
//! `DASHBOARD_BROWSER_TEST=skip` skips it on purpose.
//!
//! The screenshot of the seeded page goes to `$CARGO_TARGET_TMPDIR/dashboard.png` (or
//! `DASHBOARD_SCREENSHOT`). `screenshot_of_a_running_dashboard` (ignored; see
//! `scripts/screenshot-dashboard`) takes the README's `docs/dashboard.png` from a dashboard
//! that is already running, e.g. over `loadgen --demo` data.

#![allow(clippy::unwrap_used)]

mod support;

use support::{start_dashboard, start_dashboard_with};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{Datelike, Months, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::Executor;
use testkit::{TestDatabase, eventually};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WIDTH: u32 = 1280;

/// The browser's paths, or `None` when the test is skipped on purpose.
fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    if std::env::var("DASHBOARD_BROWSER_TEST").is_ok_and(|value| value == "skip") {
        eprintln!("browser test skipped: DASHBOARD_BROWSER_TEST=skip");
        return None;
    }
    let path =
        |variable: &str, default: &str| PathBuf::from(std::env::var(variable).unwrap_or_else(|_| default.to_owned()));
    let (driver, chromium) = (
        path("CHROMEDRIVER", "/usr/bin/chromedriver"),
        path("CHROMIUM", "/usr/bin/chromium"),
    );
    for (file, package) in [(&driver, "chromium-driver"), (&chromium, "chromium")] {
        assert!(
            file.exists(),
            "{} is missing: the browser test needs headless Chromium. Install it with \
             `apt-get install -y chromium chromium-driver` (package {package}), point CHROMEDRIVER / \
             CHROMIUM at another install, or set DASHBOARD_BROWSER_TEST=skip to skip this test.",
            file.display()
        );
    }
    Some((driver, chromium))
}

/// chromedriver on a port of its choosing, and one headless Chromium session.
struct Browser {
    driver: Child,
    /// Chromium's profile, removed at the end (chromedriver's own would be left in /tmp).
    profile: PathBuf,
    base: String,
    session: String,
    client: reqwest::Client,
}

impl Browser {
    async fn start(driver: &Path, chromium: &Path) -> Self {
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", driver.display()));
        let stdout = child.stdout.take().unwrap();
        let (port_tx, port_rx) = mpsc::channel();
        // Reads until chromedriver exits, so its pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("chromedriver did not say which port it listens on within 20 s");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{}", testkit::unique_suffix()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run",
                         "--disable-background-networking", "--disable-extensions",
                         format!("--window-size={WIDTH},900"), format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut browser = Self {
            driver: child,
            profile,
            base,
            session: String::new(),
            client,
        };
        eventually("chromedriver to be ready", Duration::from_secs(20), || async {
            let status = browser.try_call(reqwest::Method::GET, "/status", None).await.ok()?;
            status["ready"].as_bool().filter(|ready| *ready)
        })
        .await;
        // Chromium can fail to start on a busy machine: up to three tries, then every reason.
        let mut problems = Vec::new();
        for _ in 0..3 {
            match browser
                .try_call(reqwest::Method::POST, "/session", Some(capabilities.clone()))
                .await
            {
                Ok(created) => {
                    browser.session = created["sessionId"].as_str().unwrap().to_owned();
                    return browser;
                }
                Err(problem) => problems.push(problem),
            }
        }
        panic!("headless Chromium did not start: {problems:#?}");
    }

    /// One WebDriver command: its `value`, or what went wrong.
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        } else if method == reqwest::Method::POST {
            request = request.json(&json!({}));
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("{method} {path}: {error}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|error| format!("{method} {path}: {status}, {error}"))?;
        if status.is_success() {
            Ok(answer["value"].clone())
        } else {
            Err(format!("WebDriver {method} {path}: {status} {answer}"))
        }
    }

    /// One WebDriver command; panics with the driver's message when it fails.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|problem| panic!("{problem}"))
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, &self.path("/url"), Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, &self.path("/url"), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` as usual) in the page.
    async fn run(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            &self.path("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    async fn click(&self, css: &str) {
        let found = self
            .call(
                reqwest::Method::POST,
                &self.path("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let element = found[ELEMENT].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::POST,
            &self.path(&format!("/element/{element}/click")),
            None,
        )
        .await;
    }

    /// Types `text` into the field `css`, as a person does.
    async fn type_into(&self, css: &str, text: &str) {
        let found = self
            .call(
                reqwest::Method::POST,
                &self.path("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let element = found[ELEMENT].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::POST,
            &self.path(&format!("/element/{element}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The visible text of `css`.
    async fn text_of(&self, css: &str) -> String {
        let script = format!("return document.querySelector({}).innerText;", json!(css));
        self.run(&script).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the page's URL contains `part`.
    async fn wait_for_url(&self, part: &str) -> String {
        eventually("the next page to load", Duration::from_secs(20), || async {
            let url = self.current_url().await;
            url.contains(part).then_some(url)
        })
        .await
    }

    /// A PNG of the whole page: the window is made as tall as the document first.
    async fn screenshot(&self) -> Vec<u8> {
        let height = self
            .run("return Math.ceil(document.documentElement.scrollHeight);")
            .await
            .as_u64()
            .unwrap();
        // The window is a little taller than its viewport: size it so the viewport is the page.
        let frame = self
            .run("return window.outerHeight - window.innerHeight;")
            .await
            .as_u64()
            .unwrap_or(0);
        self.call(
            reqwest::Method::POST,
            &self.path("/window/rect"),
            Some(json!({"width": WIDTH, "height": height + frame})),
        )
        .await;
        let viewport = self.run("return window.innerHeight;").await.as_u64().unwrap();
        assert!(
            viewport >= height,
            "the viewport is {viewport} px high, the page {height}"
        );
        let encoded = self.call(reqwest::Method::GET, &self.path("/screenshot"), None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; then chromedriver goes.
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let _ = client.delete(url).send().await;
                });
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A PNG's width and height, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

fn save(png: &[u8], path: &Path) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());
}

/// `YYYY-MM` of the month `back` months before this one.
fn month(back: u32) -> String {
    let today = Utc::now().date_naive();
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap();
    let month = first.checked_sub_months(Months::new(back)).unwrap();
    format!("{:04}-{:02}", month.year(), month.month())
}

/// Known sales in the default range (the last twelve months): `shop` in EUR in four months,
/// with a refund, and `stripe` in USD in two; a month between them has none.
async fn seed(database: &TestDatabase) {
    let at = |back: u32, day: u32| format!("{}-{day:02} 10:00:00", month(back));
    let rows = [
        ("shop", "o1", "EUR", 1_234_567, at(5, 3), 0, None),
        ("shop", "o2", "EUR", 250_000, at(3, 4), 0, None),
        ("shop", "o3", "EUR", 49_999, at(3, 9), 49_999, Some(at(2, 1))),
        ("shop", "o4", "EUR", 800_050, at(2, 2), 0, None),
        ("shop", "o5", "EUR", 150_000, at(0, 1), 0, None),
        ("stripe", "s1", "USD", 4_900, at(4, 5), 0, None),
        ("stripe", "s2", "USD", 9_900, at(4, 6), 0, None),
        ("stripe", "s3", "USD", 29_900, at(2, 7), 0, None),
    ];
    let mut connection = database.connect().await;
    for (source, order, currency, amount, sold_at, refunded, refunded_at) in rows {
        connection
            .execute(
                sqlx::query(
                    "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, refunded_minor, refunded_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, NOW(6))",
                )
                .bind(source)
                .bind(order)
                .bind(currency)
                .bind(amount)
                .bind(sold_at)
                .bind(refunded)
                .bind(refunded_at),
            )
            .await
            .unwrap();
    }
}

/// Per chart, as rendered: vendor, currency, the months of its visible bars, and its value
/// labels; plus pairs of chart texts that overlap on screen.
const CHARTS: &str = r#"
const visible = (element) => { const box = element.getBoundingClientRect(); return box.width > 0 && box.height > 0; };
return [...document.querySelectorAll('svg.chart')].map((svg) => {
  const texts = [...svg.querySelectorAll('text')].filter(visible);
  const overlaps = [];
  texts.forEach((a, i) => texts.slice(i + 1).forEach((b) => {
    const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
    if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1) {
      overlaps.push(a.textContent + ' / ' + b.textContent);
    }
  }));
  return {
    source: svg.dataset.source,
    currency: svg.dataset.currency,
    bars: [...svg.querySelectorAll('rect.bar')].filter(visible).map((bar) => bar.dataset.month),
    labels: [...svg.querySelectorAll('text.value')].filter(visible).map((text) => text.textContent),
    axis: [...svg.querySelectorAll('text.axis')].filter(visible).map((text) => text.textContent).pop(),
    overlaps,
    width: svg.getBoundingClientRect().width,
  };
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_a_bar_per_month_with_data_exact_totals_and_a_working_vendor_filter() {
    let Some((driver, chromium)) = browser_paths() else {
        return;
    };
    let database = TestDatabase::new();
    database.create_migrated().await;
    seed(&database).await;
    database
        .connect()
        .await
        .execute(
            "INSERT INTO ledger_messages (received_at, accepted_id, source, day, outcome, first_seen_at, seen_at, due_at) VALUES \
             (UTC_DATE(), 'a1', 'shop', UTC_DATE(), NULL, NOW(), NOW(), UTC_TIMESTAMP() + INTERVAL 1 HOUR), \
             (UTC_DATE(), 'b1', 'stripe', UTC_DATE(), NULL, NOW(), NOW(), UTC_TIMESTAMP() - INTERVAL 1 HOUR)",
        )
        .await
        .unwrap();
    let (base, _stop) = start_dashboard(&database).await;
    let browser = Browser::start(&driver, &chromium).await;

    browser.goto(&format!("{base}/")).await;
    // The Content-Security-Policy lets the page's own stylesheet apply (and nothing else).
    let header = browser
        .run("return getComputedStyle(document.querySelector('header')).backgroundColor;")
        .await;
    assert_eq!(header, "rgb(15, 23, 42)", "the page's stylesheet did not apply");
    // The ledger: an unexplained difference is red on screen, one in flight is not.
    let ledger = browser
        .run(
            "return [...document.querySelectorAll('#ledger tbody tr')].map((row) => \
             [row.dataset.source, row.cells[8].textContent, getComputedStyle(row.cells[8]).color]);",
        )
        .await;
    assert_eq!(
        ledger,
        json!([["shop", "0", "rgb(17, 24, 39)"], ["stripe", "1", "rgb(185, 28, 28)"]]),
        "the ledger section"
    );
    let charts = browser.run(CHARTS).await;
    let charts = charts.as_array().unwrap();
    let summary: Vec<(String, String, Vec<String>)> = charts
        .iter()
        .map(|chart| {
            (
                chart["source"].as_str().unwrap().to_owned(),
                chart["currency"].as_str().unwrap().to_owned(),
                chart["bars"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|month| month.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "shop".into(),
                "EUR".into(),
                vec![month(5), month(3), month(2), month(0)]
            ),
            ("stripe".into(), "USD".into(), vec![month(4), month(2)]),
        ],
        "one visible bar per month with data, one chart per vendor and currency"
    );
    for chart in charts {
        assert!(
            chart["width"].as_f64().unwrap() > 600.0,
            "the chart is too narrow: {chart}"
        );
        assert_eq!(chart["overlaps"], json!([]), "labels overlap: {chart}");
    }
    // Each bar is labelled with its month's exact net amount (refunds taken off in the month
    // they were made); the chart's heading and axis name the currency.
    assert_eq!(
        charts[0]["labels"],
        json!(["12,345.67", "2,999.99", "7,500.51", "1,500.00"])
    );
    assert_eq!(charts[1]["labels"], json!(["148.00", "299.00"]));
    for chart in charts {
        let currency = chart["currency"].as_str().unwrap();
        assert_eq!(chart["axis"], format!("Net sales ({currency})"), "{chart}");
    }

    let sales = browser.run("return document.querySelector('#sales').innerText;").await;
    let sales = sales.as_str().unwrap();
    assert!(
        sales.contains("shop · EUR\n") && sales.contains("stripe · USD\n"),
        "{sales}"
    );
    assert!(
        sales.contains("5 orders · gross 24,846.16 EUR · refunded 499.99 EUR · net 24,346.17 EUR"),
        "{sales}"
    );
    assert!(
        sales.contains("3 orders · gross 447.00 USD · refunded 0.00 USD · net 447.00 USD"),
        "{sales}"
    );

    let png = browser.screenshot().await;
    let (width, height) = png_size(&png);
    assert_eq!(width, WIDTH);
    assert!(height > 900, "the screenshot is {width}×{height}: not the whole page");
    let path = std::env::var("DASHBOARD_SCREENSHOT").map_or_else(
        |_| Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
        PathBuf::from,
    );
    save(&png, &path);

    // The vendor filter, used the way a person does: pick a vendor and press Show.
    browser.click("#vendor option[value='stripe']").await;
    browser.click("form button[type='submit']").await;
    let url = eventually("the filtered page to load", Duration::from_secs(20), || async {
        let url = browser.current_url().await;
        url.contains("vendor=stripe").then_some(url)
    })
    .await;
    assert!(url.starts_with(&format!("{base}/?")), "{url}");
    let filtered = browser.run(CHARTS).await;
    let vendors: Vec<&str> = filtered
        .as_array()
        .unwrap()
        .iter()
        .map(|chart| chart["source"].as_str().unwrap())
        .collect();
    assert_eq!(vendors, ["stripe"]);
    let sales = browser.run("return document.querySelector('#sales').innerText;").await;
    assert!(!sales.as_str().unwrap().contains("EUR"), "{sales}");
    let selected = browser.run("return document.querySelector('#vendor').value;").await;
    assert_eq!(selected, "stripe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_finds_an_event_reads_its_escaped_body_sees_rejections_dead_letters_and_compares_vendors() {
    let Some((driver, chromium)) = browser_paths() else {
        return;
    };
    let database = TestDatabase::new();
    database.create_migrated().await;
    seed(&database).await;
    let mut connection = database.connect().await;
    for statement in [
        "INSERT INTO events (source, delivery_id, event_type, body, body_sha256, content_type, received_at, stored_at, status, purged_at) VALUES \
         ('shop', 'evt-1', 'orders/paid', '{\"note\":\"<script>window.hacked=1</script>\",\"total\":12.5}', REPEAT('a', 64), 'application/json', '2026-03-01 10:00:00', NOW(), 'processed', NULL), \
         ('shop', 'evt-2', 'orders/paid', NULL, REPEAT('b', 64), 'application/json', '2025-01-01 10:00:00', NOW(), 'processed', '2025-04-01 00:00:00'), \
         ('stripe', 'ch-1', 'charge.succeeded', '{}', REPEAT('c', 64), 'application/json', '2026-03-02 10:00:00', NOW(), 'processed', NULL)",
        "INSERT INTO rejection_counts (day, source, reason, shard, rejected) VALUES \
         (UTC_DATE(), 'shop', 'bad_signature', 1, 1000000), (UTC_DATE(), 'stripe', 'stale_timestamp', 1, 12)",
        "INSERT INTO dead_letters (source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at) VALUES \
         ('shop', 'dl 1', 'orders/paid', 'poison', 'body is not valid JSON', 0, '2026-03-02 10:00:00')",
        "INSERT INTO sales (source, order_id, currency, amount_minor, sold_at, refunded_minor, refunded_at, updated_at) VALUES \
         ('stripe', 'e1', 'EUR', 5000, UTC_DATE() - INTERVAL 1 MONTH, 0, NULL, NOW(6))",
    ] {
        connection.execute(statement).await.unwrap();
    }
    let (base, _stop) = start_dashboard(&database).await;
    let browser = Browser::start(&driver, &chromium).await;

    // Events: filter by source with the form, open the row, read the body.
    browser.goto(&format!("{base}/events")).await;
    assert_eq!(
        browser
            .run("return document.querySelectorAll('#events tbody tr').length;")
            .await,
        3
    );
    browser.type_into("#source", "shop").await;
    browser.click("form button[type='submit']").await;
    browser.wait_for_url("source=shop").await;
    let rows = browser
        .run("return [...document.querySelectorAll('#events tbody tr')].map((row) => [row.cells[3].innerText, row.cells[5].innerText]);")
        .await;
    assert_eq!(rows, json!([["evt-2", "cleared"], ["evt-1", "kept"]]));
    browser.click("#events tbody tr:nth-child(2) a").await;
    browser.wait_for_url("/events/").await;
    let body = browser.text_of("#body-text").await;
    assert_eq!(
        body,
        "{\n  \"note\": \"<script>window.hacked=1</script>\",\n  \"total\": 12.5\n}"
    );
    assert_eq!(
        browser
            .run("return [document.querySelectorAll('script').length, window.hacked === undefined];")
            .await,
        json!([0, true])
    );
    assert!(browser.text_of("#envelope").await.contains("evt-1"));
    browser.goto(&format!("{base}/events?delivery_id=evt-2")).await;
    browser.click("#events tbody tr a").await;
    browser.wait_for_url("/events/").await;
    assert!(browser.text_of("#body-state").await.starts_with("Purged at 2025-04-01"));

    // Rejections by reason, from the daily counts.
    browser.goto(&format!("{base}/rejections")).await;
    let reasons = browser
        .run("return [...document.querySelectorAll('#by-reason table:not(#by-source) tbody tr')].map((row) => row.innerText);")
        .await;
    assert_eq!(reasons, json!(["bad_signature\t1000000", "stale_timestamp\t12"]));

    // Dead letters: the command to copy; no form without a login.
    browser.goto(&format!("{base}/dead-letters")).await;
    let command = browser.text_of("#dead-letters tbody code.command").await;
    assert_eq!(command, "consumer dlq replay --id 'dl 1'");
    assert_eq!(
        browser.run("return document.querySelector('#replay-form');").await,
        Value::Null
    );

    // Every vendor in one chart; the currency picked with the selector.
    browser.goto(&format!("{base}/compare")).await;
    let chart = browser
        .run(
            "const svg = document.querySelector('#comparison'); return [svg.dataset.currency, \
             svg.getBoundingClientRect().width, [...svg.querySelectorAll('.series')].map((g) => g.dataset.source), \
             [...svg.querySelectorAll('.legend')].map((t) => t.textContent)];",
        )
        .await;
    assert_eq!(chart[0], "EUR", "{chart}");
    assert!(chart[1].as_f64().unwrap() > 600.0, "{chart}");
    assert_eq!(chart[2], json!(["shop", "stripe"]), "{chart}");
    assert_eq!(chart[3], json!(["shop", "stripe"]), "{chart}");
    browser.click("#currency option[value='USD']").await;
    browser.click("form button[type='submit']").await;
    browser.wait_for_url("currency=USD").await;
    let sources = browser
        .run("return [...document.querySelectorAll('#comparison .series')].map((g) => g.dataset.source);")
        .await;
    assert_eq!(sources, json!(["stripe"]));
    assert!(browser.text_of("#totals").await.contains("447.00 USD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_person_picks_dead_letters_and_gets_their_replay_command() {
    let Some((driver, chromium)) = browser_paths() else {
        return;
    };
    let database = TestDatabase::new();
    database.create_migrated().await;
    database
        .connect()
        .await
        .execute(
            "INSERT INTO dead_letters (source, delivery_id, event_type, reason, error, retry_count, dead_lettered_at) VALUES \
             ('shop', 'a-1', 'orders/paid', 'poison', 'not JSON', 0, '2026-03-02 10:00:00'), \
             ('shop', 'b-2', 'orders/paid', 'retries_exhausted', 'processor failed', 5, '2026-03-02 11:00:00'), \
             ('shop', 'c-3', 'orders/paid', 'poison', 'not JSON', 0, '2026-03-02 12:00:00')",
        )
        .await
        .unwrap();
    let dir = testkit::private::TempDir::new("dashboard-browser-users");
    let line = dashboard::auth::users_file_line("ann", "ann's password").unwrap();
    let file = dir.write("users", &format!("{line}\n"));
    let auth = format!("basic:{}", file.display());
    let (base, _stop) = start_dashboard_with(&database, &[("DASHBOARD_AUTH", auth.as_str())]).await;
    let browser = Browser::start(&driver, &chromium).await;

    // Credentials in the URL: the browser answers the Basic challenge with them, and keeps
    // sending them to the same origin (the form's POST included).
    let signed_in = base.replacen("http://", "http://ann:ann's%20password@", 1);
    browser.goto(&format!("{signed_in}/dead-letters")).await;
    let rows = browser
        .run("return [...document.querySelectorAll('#dead-letters tbody tr')].map((row) => row.cells[3].innerText);")
        .await;
    assert_eq!(rows, json!(["c-3", "b-2", "a-1"]));
    browser
        .click("#dead-letters tbody tr:nth-child(1) input[type='checkbox']")
        .await;
    browser
        .click("#dead-letters tbody tr:nth-child(3) input[type='checkbox']")
        .await;
    browser.click("#replay-form button[type='submit']").await;
    browser.wait_for_url("/dead-letters/replay").await;
    assert_eq!(
        browser.text_of("#command").await,
        "consumer dlq replay --id c-3 --id a-1"
    );
    // This dashboard has no AMQP_URL: the page says why it answers a command.
    let why = browser.text_of("#replay").await;
    assert!(why.contains("not given the broker (AMQP_URL is not set)"), "{why}");
}

/// Not a test: `scripts/screenshot-dashboard` runs it to take the README's screenshot from a
/// running dashboard (`DASHBOARD_URL`, default `http://127.0.0.1:3002/`) into
/// `DASHBOARD_SCREENSHOT` (default `docs/dashboard.png`).
#[tokio::test]
#[ignore = "takes a screenshot of a running dashboard: scripts/screenshot-dashboard"]
async fn screenshot_of_a_running_dashboard() {
    let Some((driver, chromium)) = browser_paths() else {
        return;
    };
    let url = std::env::var("DASHBOARD_URL").unwrap_or_else(|_| "http://127.0.0.1:3002/".to_owned());
    let path = std::env::var("DASHBOARD_SCREENSHOT").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png"),
        PathBuf::from,
    );
    let browser = Browser::start(&driver, &chromium).await;
    browser.goto(&url).await;
    let charts = browser.run(CHARTS).await;
    assert!(
        !charts.as_array().unwrap().is_empty(),
        "{url} shows no sales chart: run `loadgen --demo` first"
    );
    let png = browser.screenshot().await;
    save(&png, &path);
}
