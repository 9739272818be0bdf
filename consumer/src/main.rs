//! `consumer`: run the consumer, apply the migrations, or inspect and replay dead letters.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use consumer::dlq::{self, DeadLetter, ReplayReport};
use consumer::{Application, Settings};
use webhook_core::service::{self, SelectionArgs};

/// Reads webhook events from RabbitMQ in batches, stores each exactly once in MySQL, then acks
/// them; retries and dead-letters what the database refuses. Configured by environment
/// variables (and `.env`): see README.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if it is missing, apply the migrations, and exit.
    Migrate,
    /// Inspect or replay the dead-letter queue `{AMQP_PREFIX}.dead`.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Show dead letters without removing them.
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Republish dead letters to the exchange with retry-count 0, then remove them.
    Replay(SelectionArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    service::init();
    let settings = service::settings_or_exit(Settings::from_vars);
    let outcome = match cli.command {
        None => run(settings.clone()).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Migrate) => consumer::migrate(&settings).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Dlq(DlqCommand::List { limit })) => dlq::list(&settings.broker, limit).await.map(|letters| {
            print_table(&letters);
            ExitCode::SUCCESS
        }),
        Some(Command::Dlq(DlqCommand::Replay(args))) => {
            dlq::replay(&settings.broker, &args.into()).await.map(|report| {
                print_report(&report);
                service::exit_status(report.is_success())
            })
        }
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("consumer: {}", error_line(&error, &settings));
        ExitCode::FAILURE
    })
}

/// `error` as one line, its contexts first; a database error is told in terms of
/// `DATABASE_URL` (wrong password, untrusted or expired certificate, …) instead of the
/// driver's words alone, and the URL is said once.
fn error_line(error: &anyhow::Error, settings: &Settings) -> String {
    let redacted = settings.database_url.redacted();
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        if let Some(database) = cause.downcast_ref::<sqlx::Error>() {
            for part in &mut parts {
                *part = std::mem::take(part)
                    .replace(&format!(" at {redacted}"), "")
                    .replace(&format!(" {redacted}"), "");
            }
            parts.push(webhook_core::database::explain(database, &settings.database_url));
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ").replace('\n', " ")
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    service::stop_on_signal(app.shutdown_token());
    app.run().await
}

#[allow(clippy::print_stdout)] // the listing is the command's output
fn print_table(letters: &[DeadLetter]) {
    print!("{}", dlq::format_table(letters));
    println!("{} dead letter(s) shown", letters.len());
}

#[allow(clippy::print_stdout)] // the report is the command's output
fn print_report(report: &ReplayReport) {
    println!("replayed {} dead letter(s)", report.replayed);
    for (id, why) in &report.failed {
        println!("failed {id:?}: {why}");
    }
    for id in &report.not_found {
        println!("not found {id:?}");
    }
}
