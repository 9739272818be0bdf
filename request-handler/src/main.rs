use anyhow::Context;
use clap::Parser;
use request_handler::{Application, Settings};
use webhook_core::service;

/// Receives signed webhooks and enqueues them on RabbitMQ; answers 200 only once the broker
/// has confirmed. Configured by environment variables (and `.env`): see README.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    service::init();
    let settings = service::settings_or_exit(Settings::from_vars);
    let app = Application::build(settings).await.context("starting request-handler")?;
    service::stop_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
