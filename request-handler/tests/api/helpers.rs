use std::time::Duration;

use request_handler::{Application, Settings};
use testkit::{Env, TcpProxy, TestBroker, eventually};
use tokio_util::sync::CancellationToken;
use webhook_core::config::Vars;

pub(crate) const SECRET: &str = "It's a Secret to Everybody";

/// A handler running in-process on a free port, with a prefix of its own.
pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) broker: TestBroker,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub(crate) fn env(broker: &TestBroker) -> Env {
    Env::new()
        .with("AMQP_URL", testkit::amqp_url())
        .with("AMQP_PREFIX", broker.prefix())
        .with("WEBHOOK_SECRET", SECRET)
        .with("HANDLER_ADDR", "127.0.0.1:0")
        .with("HANDLER_WORKERS", 2)
}

impl TestApp {
    /// Starts a handler and waits until it is ready (connected to the broker).
    pub(crate) async fn spawn() -> Self {
        let broker = TestBroker::new();
        let env = env(&broker);
        let app = Self::spawn_with(broker, &env).await;
        app.wait_ready().await;
        app
    }

    /// Starts a handler with `env` without waiting for the broker.
    pub(crate) async fn spawn_with(broker: TestBroker, env: &Env) -> Self {
        let lookup = env.lookup();
        let settings = Settings::from_vars(&Vars::new(&lookup)).unwrap();
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.addr());
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            base,
            client: reqwest::Client::new(),
            broker,
            shutdown,
            task: Some(task),
        }
    }

    /// Starts a handler whose broker connections all go through a proxy of the test's own
    /// (to cut or stall them), with `vars` set besides, and waits until it is ready.
    pub(crate) async fn behind_a_proxy(vars: &[(&str, &str)]) -> (TcpProxy, Self) {
        let proxy = TcpProxy::start("127.0.0.1:5672").await;
        let broker = TestBroker::new();
        let mut env = env(&broker).with("AMQP_URL", proxy.amqp_url());
        for (name, value) in vars {
            env.set(name, value);
        }
        let app = Self::spawn_with(broker, &env).await;
        app.wait_ready().await;
        (proxy, app)
    }

    pub(crate) async fn wait_ready(&self) {
        eventually("the handler to become ready", Duration::from_secs(20), || async {
            (self.get("/readyz").await.status() == 200).then_some(())
        })
        .await;
    }

    /// Posts signed warm-up deliveries until one of the workers' own broker connections is up
    /// (a worker's first publishes go through the shared connection while its own opens);
    /// returns how many it posted, each answered 200.
    pub(crate) async fn until_a_worker_connection_is_up(&self) -> usize {
        let mut posted = 0;
        eventually("a worker's own broker connection", Duration::from_secs(10), || {
            posted += 1;
            let body = format!("{{\"warm-up\":{posted}}}");
            async move {
                assert_eq!(self.post_signed(body.as_bytes(), &[]).await.status(), 200);
                (self.metric("webhook_handler_broker_worker_connections").await >= 1.0).then_some(())
            }
        })
        .await;
        posted
    }

    /// The value of the metric line that starts with `series` (name and labels), or 0.
    pub(crate) async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.get("/metrics").await.text().await.unwrap(), series)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap()
    }

    /// POSTs `body` to `path` with the given headers.
    pub(crate) async fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// POSTs `body` to `/webhook` signed with the right secret (X-Hub-Signature-256) plus
    /// `headers`, and a new `X-GitHub-Delivery` unless `headers` has one: each call is a
    /// delivery of its own.
    pub(crate) async fn post_signed(&self, body: &[u8], headers: &[(&str, &str)]) -> reqwest::Response {
        let signature = testkit::sign(SECRET, body);
        let delivery_id = format!("delivery-{}", testkit::unique_suffix());
        let mut all = vec![("X-Hub-Signature-256", signature.as_str())];
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("X-GitHub-Delivery"))
        {
            all.push(("X-GitHub-Delivery", delivery_id.as_str()));
        }
        all.extend_from_slice(headers);
        self.post("/webhook", body, &all).await
    }

    /// POSTs `body` to `/webhook` with `signature` in header `name` and a new delivery id.
    pub(crate) async fn post_signed_with(&self, body: &[u8], name: &str, signature: &str) -> reqwest::Response {
        let delivery_id = format!("delivery-{}", testkit::unique_suffix());
        self.post(
            "/webhook",
            body,
            &[(name, signature), ("X-GitHub-Delivery", &delivery_id)],
        )
        .await
    }

    /// Stops the handler gracefully, waits for it, and hands back the broker prefix so the
    /// test can still inspect the queues.
    pub(crate) async fn stop_and_wait(mut self) -> TestBroker {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        std::mem::take(&mut self.broker)
    }

    /// Stops the handler gracefully and waits for it.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The JSON body of a response.
pub(crate) async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.unwrap()
}

/// The value of the line of a `/metrics` text that starts with `series` (name and labels), or 0.
pub(crate) fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
