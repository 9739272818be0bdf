//! The request-handler binary in a process of its own, as operators run it: for tests that
//! measure its CPU time or read what it logs.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::{TestBroker, eventually};

/// A running `request-handler` process with a prefix of its own, killed when dropped.
pub(crate) struct HandlerProcess {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    /// Its prefix, removed when dropped.
    pub(crate) broker: TestBroker,
    child: Child,
    dir: std::path::PathBuf,
    /// What it has written to stderr so far.
    log: Arc<Mutex<String>>,
}

impl HandlerProcess {
    /// Starts the binary with the test broker, a free port, `RUST_LOG=info` and `vars`, in an
    /// empty working directory (no `.env`), and waits until it is ready.
    pub(crate) async fn start(vars: &[(&str, &str)]) -> Self {
        Self::start_on(TestBroker::new(), vars).await
    }

    /// [`HandlerProcess::start`] with the prefix of `broker`.
    pub(crate) async fn start_on(broker: TestBroker, vars: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("request-handler-{}", testkit::unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_request-handler"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AMQP_URL", testkit::amqp_url())
            .env("AMQP_PREFIX", broker.prefix())
            .env("HANDLER_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info,tracing::span=warn")
            .envs(vars.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = address_tx.send(address);
                }
                let mut log = lines.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the handler did not start; its log:\n{}", log.lock().unwrap()));
        let handler = Self {
            base: format!("http://{address}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            broker,
            child,
            dir,
            log,
        };
        eventually(
            "the handler process to become ready",
            Duration::from_secs(30),
            || async {
                let ready = handler.client.get(format!("{}/readyz", handler.base)).send().await;
                ready.is_ok_and(|response| response.status() == 200).then_some(())
            },
        )
        .await;
        handler
    }

    /// User plus system CPU time the process has used so far, in clock ticks.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the command name, which is in parentheses and may hold spaces:
        // state is field 3, utime 14 and stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Everything it has logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// POSTs `body` to `path` with `headers`.
    pub(crate) async fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// The value of the metric line that starts with `series` (name and labels), or 0.
    pub(crate) async fn metric(&self, series: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        crate::helpers::metric_value(&text, series)
    }
}

impl Drop for HandlerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
