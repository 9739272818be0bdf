//! A RabbitMQ cluster of the suite's own for the cluster scenarios: three nodes beside the
//! machine's broker, started, crashed, stopped and revived through `scripts/rabbitmq-cluster`,
//! and removed when the value is dropped.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tokio::process::Command;

/// The script, found from the crate's source directory.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/rabbitmq-cluster");

/// Three RabbitMQ nodes of the suite's own.
pub(crate) struct Cluster {
    dir: PathBuf,
    urls: Vec<String>,
}

impl Cluster {
    /// Starts three nodes under `dir` and joins them.
    pub(crate) async fn up(dir: PathBuf) -> anyhow::Result<Self> {
        // Dropped (and so taken down) if starting fails half-way.
        let mut cluster = Self { dir, urls: Vec::new() };
        let urls = cluster.run(&["up"]).await.context("starting the RabbitMQ cluster")?;
        cluster.urls = urls.trim().split(',').map(str::to_owned).collect();
        Ok(cluster)
    }

    /// Every node's AMQP URL, as the services' `AMQP_URL` takes them.
    pub(crate) fn amqp_url(&self) -> String {
        self.urls.join(",")
    }

    /// Every node's AMQP URL.
    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// SIGKILLs node `node` (1 to 3): a crash.
    pub(crate) async fn kill(&self, node: usize) -> anyhow::Result<()> {
        self.run(&["kill", &node.to_string()]).await.map(drop)
    }

    /// Stops node `node` cleanly.
    pub(crate) async fn stop(&self, node: usize) -> anyhow::Result<()> {
        self.run(&["stop", &node.to_string()]).await.map(drop)
    }

    /// Starts a stopped or killed node again; returns once it runs.
    pub(crate) async fn start(&self, node: usize) -> anyhow::Result<()> {
        self.run(&["start", &node.to_string()]).await.map(drop)
    }

    /// The node leading quorum queue `queue`.
    pub(crate) async fn leader(&self, queue: &str) -> anyhow::Result<usize> {
        parse_node(&self.run(&["leader", queue]).await?)
    }

    /// The node holding the client connection whose name contains `name`.
    pub(crate) async fn holder(&self, name: &str) -> anyhow::Result<usize> {
        parse_node(&self.run(&["holder", name]).await?)
    }

    /// `status`, for the log.
    pub(crate) async fn status(&self) -> String {
        self.run(&["status"]).await.unwrap_or_else(|error| format!("{error:#}"))
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(SCRIPT)
            .args(args)
            .env("RABBITMQ_CLUSTER_DIR", &self.dir)
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {SCRIPT}"))?;
        if !output.status.success() {
            bail!(
                "rabbitmq-cluster {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn parse_node(text: &str) -> anyhow::Result<usize> {
    text.trim()
        .parse()
        .with_context(|| format!("not a node index: {text:?}"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = std::process::Command::new(SCRIPT)
            .arg("down")
            .env("RABBITMQ_CLUSTER_DIR", &self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !matches!(stopped, Ok(status) if status.success()) {
            eprintln!(
                "fault-suite: the RabbitMQ cluster in {} may still run: {SCRIPT} down",
                self.dir.display()
            );
        }
    }
}
