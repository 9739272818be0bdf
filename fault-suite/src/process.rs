//! The services as real child processes: spawned with their configuration in the environment,
//! their output in the scenario's log, readiness polled, stopped with SIGTERM or SIGKILL.
//! A child still running when its handle is dropped (a failure, a panic) is killed.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// One log file per scenario: the suite's own notes and every child's output, each line
/// prefixed with who wrote it.
#[derive(Clone)]
pub(crate) struct Log {
    file: Arc<Mutex<File>>,
}

impl Log {
    pub(crate) fn create(path: PathBuf) -> anyhow::Result<Self> {
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends `[who] line`.
    pub(crate) fn line(&self, who: &str, line: &str) {
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The log is diagnostics: a failed write must not fail the scenario.
        let _ = writeln!(file, "[{who}] {line}");
    }

    /// A note from the suite, with the time, so the services' lines can be read against it.
    pub(crate) fn note(&self, what: &str) {
        let now = chrono::Utc::now().format("%H:%M:%S%.3f");
        self.line("suite", &format!("{now} {what}"));
    }
}

/// A running service.
pub(crate) struct Service {
    name: String,
    child: Child,
    addr: SocketAddr,
    log: Log,
}

impl Service {
    /// Starts `binary` with exactly `env` as its environment (nothing inherited but `PATH`),
    /// in `dir`, so that no `.env` file or stray variable changes its configuration.
    pub(crate) fn spawn(
        binary: &Path,
        name: &str,
        env: &[(String, String)],
        addr: SocketAddr,
        dir: &Path,
        log: &Log,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
            .envs(env.iter().map(|(name, value)| (name, value)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({})", binary.display()))?;
        log.note(&format!("{name} started, pid {}", child.id().unwrap_or_default()));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(copy_lines(stdout, name.to_owned(), log.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(copy_lines(stderr, name.to_owned(), log.clone()));
        }
        Ok(Self {
            name: name.to_owned(),
            child,
            addr,
            log: log.clone(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JSON of `GET /readyz` right now, whatever its status (`None`: no answer at all).
    pub(crate) async fn readiness(&self, client: &reqwest::Client) -> Option<serde_json::Value> {
        let response = client
            .get(self.readyz_url())
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Polls `GET /readyz` until it answers 200; fails if the process exits or `deadline`
    /// passes first.
    pub(crate) async fn wait_ready(&mut self, client: &reqwest::Client, deadline: Duration) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.addr);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("checking the child")? {
                bail!("{} exited ({status}) before it was ready", self.name);
            }
            let last = match client.get(&url).timeout(Duration::from_secs(1)).send().await {
                Ok(response) if response.status().is_success() => {
                    self.log.note(&format!(
                        "{} ready after {} ms",
                        self.name,
                        started.elapsed().as_millis()
                    ));
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status();
                    format!("{status} {}", response.text().await.unwrap_or_default())
                }
                Err(error) => error.to_string(),
            };
            if started.elapsed() >= deadline {
                bail!("{} not ready after {deadline:?}: {last}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL of its `GET /readyz`.
    pub(crate) fn readyz_url(&self) -> String {
        format!("http://{}/readyz", self.addr)
    }

    /// Whether `GET /readyz` answers 200 right now (`None`: no answer at all).
    pub(crate) async fn is_ready(&self, client: &reqwest::Client) -> Option<bool> {
        let url = format!("http://{}/readyz", self.addr);
        match client.get(&url).timeout(Duration::from_secs(1)).send().await {
            Ok(response) => Some(response.status().is_success()),
            Err(_) => None,
        }
    }

    /// The value of metric `name` (a full sample name, labels included) on `GET /metrics`, if
    /// it answers and has it.
    pub(crate) async fn metric(&self, client: &reqwest::Client, name: &str) -> Option<f64> {
        let url = format!("http://{}/metrics", self.addr);
        let text = client
            .get(&url)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// SIGKILL, and wait until it is gone.
    pub(crate) async fn kill(&mut self) -> anyhow::Result<()> {
        self.log.note(&format!("SIGKILL to {}", self.name));
        self.child
            .kill()
            .await
            .with_context(|| format!("killing {}", self.name))
    }

    /// SIGTERM: the graceful stop.
    pub(crate) fn terminate(&self) -> anyhow::Result<()> {
        let pid = self
            .child
            .id()
            .with_context(|| format!("{} has already exited", self.name))?;
        self.log.note(&format!("SIGTERM to {}", self.name));
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed ({status})");
        }
        Ok(())
    }

    /// Waits up to `deadline` for the process to exit on its own.
    pub(crate) async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let started = Instant::now();
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => {
                let status = status.with_context(|| format!("waiting for {}", self.name))?;
                self.log.note(&format!(
                    "{} exited ({status}) after {} ms",
                    self.name,
                    started.elapsed().as_millis()
                ));
                Ok(status)
            }
            Err(_) => bail!("{} still running {deadline:?} after it was told to stop", self.name),
        }
    }
}

async fn copy_lines(stream: impl AsyncRead + Unpin, who: String, log: Log) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => log.line(&who, String::from_utf8_lossy(&line).trim_end()),
        }
    }
}
