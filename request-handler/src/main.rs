use std::process::ExitCode;

use clap::Subcommand;
use request_handler::quarantine::{self, ReadmitReport};
use request_handler::{Application, Settings};
use webhook_core::config::ConfigError;
use webhook_core::service::{self, EXIT_CONFIG, SelectionArgs};

#[derive(Debug, Subcommand)]
enum Command {
    /// Requests whose signature matched no secret, kept in SPOOL_DIR/quarantine.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// Show every kept request and whether it verifies now, with the secrets as configured.
    List,
    /// Check kept requests again with the secrets as configured and publish those that pass
    /// (confirmed by the broker), removing them; the others stay.
    Readmit(SelectionArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = webhook_core::command_line!(Command);
    service::init();
    let settings = service::settings_or_exit(Settings::from_vars);
    let outcome = match command {
        None => serve(settings).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Quarantine(QuarantineCommand::List)) => quarantine::list(&settings).map(|listed| {
            print(&quarantine::format_table(&listed));
            print(&format!("{} kept request(s)\n", listed.len()));
            ExitCode::SUCCESS
        }),
        Some(Command::Quarantine(QuarantineCommand::Readmit(args))) => {
            quarantine::readmit(&settings, &args.into()).await.map(|report| {
                print_report(&report);
                service::exit_status(report.is_success())
            })
        }
    };
    outcome.unwrap_or_else(|error| {
        if let Some(config) = error.downcast_ref::<ConfigError>() {
            log::error!("{config}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
        log::error!("request-handler: {}", format!("{error:#}").replace('\n', " "));
        ExitCode::FAILURE
    })
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        // A spool that cannot be opened is told as its variable, like any bad value.
        Err(error) if error.is::<ConfigError>() => return Err(error),
        Err(error) => return Err(error.context("starting request-handler")),
    };
    service::stop_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}

#[allow(clippy::print_stdout)] // the listing is the command's output
fn print(text: &str) {
    print!("{text}");
}

fn print_report(report: &ReadmitReport) {
    let mut text = format!("admitted {} kept request(s)\n", report.admitted.len());
    for id in &report.admitted {
        text.push_str(&format!("admitted {id:?}\n"));
    }
    for (id, why) in &report.refused {
        text.push_str(&format!("not admitted {id}: {why}\n"));
    }
    for (id, why) in &report.failed {
        text.push_str(&format!("failed {id}: {why}\n"));
    }
    for id in &report.not_found {
        text.push_str(&format!("not found {id}\n"));
    }
    print(&text);
}
