use anyhow::Context;
use clap::Parser;
use dashboard::{Application, Settings};
use webhook_core::service;

/// A read-only page and JSON API over sales per month, vendor health and dead letters.
/// Configured by DATABASE_URL and DASHBOARD_ADDR (and `.env`): see README.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    service::init();
    let settings = service::settings_or_exit(Settings::from_vars);
    let app = Application::build(settings).await.context("starting the dashboard")?;
    service::stop_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
