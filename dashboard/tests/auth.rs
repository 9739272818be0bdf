//! Who may see the dashboard, through the real binary: HTTP Basic against a users file made by
//! `dashboard hash-password`, a flood of wrong passwords beside a signed-in user, the header of
//! a trusted proxy, `DASHBOARD_AUTH=none`, and the paths that never ask.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use testkit::TestDatabase;
use testkit::private::TempDir;

const BINARY: &str = env!("CARGO_BIN_EXE_dashboard");
const CHALLENGE: &str = "Basic realm=\"webhook-inbox\", charset=\"UTF-8\"";

/// A running dashboard binary; killed when dropped.
struct Dashboard {
    child: Child,
    base: String,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Dashboard {
    /// Starts the binary over `database` on a free loopback port (unless `vars` set
    /// `DASHBOARD_ADDR`) and waits for its listening line.
    fn start(database: &TestDatabase, vars: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BINARY);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database.url())
            .env("DASHBOARD_ADDR", "127.0.0.1:0")
            .envs(vars.iter().copied())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (listening, received) = std::sync::mpsc::channel();
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once("dashboard listening on ") {
                    let _ = listening.send(url.trim().to_owned());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let Ok(url) = received.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the dashboard did not start: {:?}", lines.lock().unwrap());
        };
        let base = url.replace("://0.0.0.0:", "://127.0.0.1:");
        Self { child, base, lines }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn logged(&self, text: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|line| line.contains(text))
    }

    /// `webhook_dashboard_auth_refusals_total` by reason, read from `/metrics` without a login.
    async fn refusals(&self, client: &reqwest::Client) -> HashMap<String, u64> {
        let response = client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        text.lines()
            .filter_map(|line| line.strip_prefix("webhook_dashboard_auth_refusals_total{reason=\""))
            .filter_map(|rest| rest.split_once("\"} "))
            .map(|(reason, count)| (reason.to_owned(), count.trim().parse().unwrap()))
            .collect()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dashboard hash-password USER` with `input` on its standard input.
fn hash_password(args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(BINARY)
        .arg("hash-password")
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A users file of `users` (name, password), each line made by `dashboard hash-password`.
fn users_file(dir: &TempDir, users: &[(&str, &str)]) -> String {
    let mut text = "# dashboard users\n\n".to_owned();
    for (user, password) in users {
        let output = hash_password(&[user], &format!("{password}\n"));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        text.push_str(&String::from_utf8(output.stdout).unwrap());
    }
    dir.write("users", &text).display().to_string()
}

async fn migrated() -> TestDatabase {
    let database = TestDatabase::new();
    database.create_migrated().await;
    database
}

#[test]
fn hash_password_reads_the_password_from_stdin_only() {
    let output = hash_password(&["ann"], "correct horse\n");
    assert!(output.status.success());
    let line = String::from_utf8(output.stdout).unwrap();
    assert!(line.starts_with("ann:$argon2id$v=19$"), "{line}");
    assert_eq!(line.lines().count(), 1);
    assert!(!line.contains("correct horse"));

    let output = hash_password(&["ann", "correct horse"], "");
    assert!(!output.status.success(), "a password on the command line was accepted");
    let output = hash_password(&["ann"], "");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("the password is empty"));
    let output = hash_password(&["a:b"], "pw\n");
    assert!(!output.status.success());
    let output = hash_password(&["ann"], "two\nlines\n");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("line break"));
    let output = hash_password(&["ann"], "no final line break");
    assert!(output.status.success());
}

#[tokio::test]
async fn basic_auth_refuses_strangers_with_401_and_lets_users_in() {
    let database = migrated().await;
    let dir = TempDir::new("dashboard-users");
    let file = users_file(&dir, &[("ann", "ann's password"), ("bob", "bob: with a colon")]);
    let dashboard = Dashboard::start(&database, &[("DASHBOARD_AUTH", &format!("basic:{file}"))]);
    assert!(dashboard.logged("dashboard login: HTTP Basic, 2 user(s) from"));
    let client = reqwest::Client::new();

    // No credentials: 401 with the challenge, in the path's own form and with the usual headers.
    let page = client.get(dashboard.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 401);
    assert_eq!(page.headers()["www-authenticate"], CHALLENGE);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(page.headers().contains_key("content-security-policy"));
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let api = client.get(dashboard.url("/api/sales")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["www-authenticate"], CHALLENGE);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"], "sign in to see the dashboard");
    let head = client.head(dashboard.url("/api/health")).send().await.unwrap();
    assert_eq!(head.status(), 401);
    let bearer = client
        .get(dashboard.url("/api/sales"))
        .bearer_auth("token")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);

    // A wrong password and an unknown user get the same answer.
    let mut answers = Vec::new();
    for (user, password) in [("ann", "wrong"), ("carol", "ann's password"), ("ann", "")] {
        let response = client
            .get(dashboard.url("/api/sales"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let challenge = response.headers()["www-authenticate"].clone();
        answers.push((status, challenge, response.text().await.unwrap()));
    }
    assert!(answers.iter().all(|answer| *answer == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 401);
    let garbage = client
        .get(dashboard.url("/"))
        .header("Authorization", "Basic !!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);

    // The users, each with their own password (a colon in it included).
    for (user, password) in [("ann", "ann's password"), ("bob", "bob: with a colon")] {
        for path in ["/", "/api/sales", "/api/health", "/api/dead-letters"] {
            let response = client
                .get(dashboard.url(path))
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{user} {path}");
        }
    }
    let unknown = client
        .get(dashboard.url("/nowhere"))
        .basic_auth("ann", Some("ann's password"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Probes and the scraper never ask.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = client.get(dashboard.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let refusals = dashboard.refusals(&client).await;
    assert_eq!(refusals["missing"], 4, "{refusals:?}");
    assert_eq!(refusals["wrong"], 4, "{refusals:?}");
    assert_eq!(refusals["busy"], 0, "{refusals:?}");
    assert_eq!(refusals["untrusted_proxy"], 0, "{refusals:?}");
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_never_gets_in_and_never_locks_a_signed_in_user_out() {
    const FLOOD: usize = 160;
    let database = migrated().await;
    let dir = TempDir::new("dashboard-users");
    let file = users_file(&dir, &[("ann", "ann's password")]);
    let dashboard = Dashboard::start(&database, &[("DASHBOARD_AUTH", &format!("basic:{file}"))]);
    let client = reqwest::Client::new();
    let signed_in = |client: &reqwest::Client| {
        client
            .get(dashboard.url("/api/sales"))
            .basic_auth("ann", Some("ann's password"))
            .send()
    };
    // Ann signs in before the flood.
    assert_eq!(signed_in(&client).await.unwrap().status(), 200);

    let flooding = AtomicBool::new(true);
    let flood = async {
        let statuses: Vec<(u16, Option<String>)> = futures_util::stream::iter(0..FLOOD)
            .map(|index| {
                let client = client.clone();
                let url = dashboard.url("/api/sales");
                async move {
                    let response = client
                        .get(url)
                        .basic_auth(
                            if index % 2 == 0 { "ann" } else { "mallory" },
                            Some(format!("guess {index}")),
                        )
                        .send()
                        .await
                        .unwrap();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .map(|value| value.to_str().unwrap().to_owned());
                    (response.status().as_u16(), retry_after)
                }
            })
            .buffer_unordered(40)
            .collect()
            .await;
        flooding.store(false, Ordering::SeqCst);
        statuses
    };
    let during = AtomicUsize::new(0);
    let user = async {
        let mut statuses = Vec::new();
        // At least a few requests, and on until the flood is over.
        while statuses.len() < 5 || flooding.load(Ordering::SeqCst) {
            let was_flooding = flooding.load(Ordering::SeqCst);
            let status = signed_in(&client).await.unwrap().status().as_u16();
            if was_flooding && flooding.load(Ordering::SeqCst) {
                during.fetch_add(1, Ordering::SeqCst);
            }
            statuses.push(status);
        }
        statuses
    };
    let (flood, user) = tokio::join!(flood, user);

    assert!(
        user.iter().all(|status| *status == 200),
        "the signed-in user was refused: {user:?}"
    );
    assert!(
        during.load(Ordering::SeqCst) > 0,
        "no request of the signed-in user was answered while the flood ran"
    );
    assert!(flood.iter().all(|(status, _)| *status != 200), "a guess got in");
    let wrong = flood.iter().filter(|(status, _)| *status == 401).count();
    let busy: Vec<_> = flood.iter().filter(|(status, _)| *status == 503).collect();
    assert_eq!(wrong + busy.len(), FLOOD, "{flood:?}");
    assert!(
        !busy.is_empty(),
        "40 guesses at once were all checked: nothing bounds the checks"
    );
    assert!(busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")), "{busy:?}");

    let refusals = dashboard.refusals(&client).await;
    assert_eq!(refusals["wrong"], wrong as u64, "{refusals:?}");
    assert_eq!(refusals["busy"], busy.len() as u64, "{refusals:?}");
    assert_eq!(refusals["missing"], 0, "{refusals:?}");
}

#[tokio::test]
async fn a_proxy_header_is_believed_from_trusted_proxies_only() {
    let database = migrated().await;
    let client = reqwest::Client::new();
    let trusted = Dashboard::start(
        &database,
        &[
            ("DASHBOARD_AUTH", "proxy:X-Forwarded-User"),
            ("DASHBOARD_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ],
    );
    assert!(trusted.logged("dashboard login: the x-forwarded-user header from the proxies 10.0.0.0/8,127.0.0.1/32"));
    let through_proxy = client
        .get(trusted.url("/api/sales"))
        .header("X-Forwarded-User", "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(through_proxy.status(), 200);
    let page = client
        .get(trusted.url("/"))
        .header("X-Forwarded-User", "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let without = client.get(trusted.url("/api/sales")).send().await.unwrap();
    assert_eq!(without.status(), 403);
    assert!(without.headers().get("www-authenticate").is_none());
    let refusals = trusted.refusals(&client).await;
    assert_eq!(
        (refusals["missing"], refusals["untrusted_proxy"]),
        (1, 0),
        "{refusals:?}"
    );

    // The same header from a peer that is not a trusted proxy is ignored.
    let untrusted = Dashboard::start(
        &database,
        &[
            ("DASHBOARD_AUTH", "proxy:X-Forwarded-User"),
            ("DASHBOARD_TRUSTED_PROXIES", "10.0.0.0/8"),
        ],
    );
    for path in ["/", "/api/sales"] {
        let response = client
            .get(untrusted.url(path))
            .header("X-Forwarded-User", "ann")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    let healthz = client.get(untrusted.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    let refusals = untrusted.refusals(&client).await;
    assert_eq!(
        (refusals["untrusted_proxy"], refusals["missing"]),
        (2, 0),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn auth_none_opens_any_address_and_says_so_at_start() {
    let database = migrated().await;
    let dashboard = Dashboard::start(
        &database,
        &[("DASHBOARD_AUTH", "none"), ("DASHBOARD_ADDR", "0.0.0.0:0")],
    );
    assert!(
        dashboard.logged("dashboard login: none (DASHBOARD_AUTH=none): anyone who reaches DASHBOARD_ADDR=0.0.0.0:")
    );
    let response = reqwest::get(dashboard.url("/api/sales")).await.unwrap();
    assert_eq!(response.status(), 200);
}
