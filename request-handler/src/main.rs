use clap::Parser;
use request_handler::{Application, Settings};
use webhook_core::config::ConfigError;
use webhook_core::service::{self, EXIT_CONFIG};

/// Receives signed webhooks and enqueues them on RabbitMQ; answers 200 only once the broker
/// has confirmed (or, for sources that spool, once the message is durable in the spool).
/// Configured by environment variables (and `.env`): see README.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    service::init();
    let settings = service::settings_or_exit(Settings::from_vars);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        // A spool that cannot be opened is told as its variable, like any bad value.
        Err(error) if error.is::<ConfigError>() => {
            log::error!("{error}");
            std::process::exit(EXIT_CONFIG);
        }
        Err(error) => return Err(error.context("starting request-handler")),
    };
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        let signal = service::shutdown_signal().await;
        log::info!("{signal} received");
        shutdown.cancel();
    });
    app.run_until_stopped().await
}
