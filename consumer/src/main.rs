//! `consumer`: run the consumer, apply the migrations, or inspect and replay dead letters.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use consumer::{Application, Settings};
use consumer::{erase, replay, retention};
use webhook_core::dlq::{self, DeadLetter, ReplayReport};
use webhook_core::service::{self, SelectionArgs};

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if it is missing, apply the migrations, and exit.
    Migrate,
    /// Inspect or replay the dead-letter queue `{AMQP_PREFIX}.dead`.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Run one retention pass now: clear the bodies of events received more than
    /// RETENTION_DAYS days ago (the rows, their dedup keys and their sales stay).
    Purge,
    /// Erase stored events and what they set in sales, leaving a tombstone in `erasures`; a
    /// retry of an erased event is a duplicate whose data is not stored again.
    Erase(EraseArgs),
    /// Run stored events through the current processors again (idempotent).
    Replay(ReplayEventsArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["delivery_id", "pointer"])))]
struct EraseArgs {
    /// The events' source.
    #[arg(long)]
    source: String,
    /// Erase the event with this delivery id.
    #[arg(long = "delivery-id", value_name = "ID")]
    delivery_id: Option<String>,
    /// Erase every stored event whose JSON body has --value at this JSON pointer (/customer/id).
    #[arg(long, value_name = "POINTER", requires = "value")]
    pointer: Option<String>,
    /// The value to look for at --pointer (a string, or a number's text).
    #[arg(long, requires = "pointer")]
    value: Option<String>,
    /// Who erases, for the tombstone (default: the OS user).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Why, for the tombstone.
    #[arg(long)]
    reason: Option<String>,
    /// Only list what would be erased.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct ReplayEventsArgs {
    /// The events' source.
    #[arg(long)]
    source: String,
    /// Only events of this type.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Received at or after: RFC 3339 or a date (UTC).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// Received before: RFC 3339, or a date (through the end of that day, UTC).
    #[arg(long, value_name = "TIME")]
    until: String,
    /// Report what would change without writing anything.
    #[arg(long)]
    dry_run: bool,
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
    let command = webhook_core::command_line!(Command);
    service::init();
    let settings = service::settings_or_exit(Settings::from_vars);
    let outcome = match command {
        None => run(settings.clone()).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Migrate) => consumer::migrate(&settings).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Dlq(DlqCommand::List { limit })) => dlq::list(&settings.broker, limit)
            .await
            .map(|letters| {
                print_table(&letters);
                ExitCode::SUCCESS
            })
            .map_err(anyhow::Error::from),
        Some(Command::Dlq(DlqCommand::Replay(args))) => dlq::replay(&settings.broker, &args.into())
            .await
            .map(|report| {
                print_report(&report);
                service::exit_status(report.is_success())
            })
            .map_err(anyhow::Error::from),
        Some(Command::Purge) => purge(&settings).await,
        Some(Command::Erase(args)) => erase(&settings, args).await,
        Some(Command::Replay(args)) => replay(&settings, args).await,
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

#[allow(clippy::print_stdout)] // the report is the command's output
async fn purge(settings: &Settings) -> anyhow::Result<ExitCode> {
    let Some(retention) = settings.retention else {
        anyhow::bail!("RETENTION_DAYS is not set: bodies are kept forever, nothing to purge");
    };
    let pool = consumer::store::connect(settings).await?;
    let cutoff = retention.cutoff(chrono::Utc::now());
    let done = retention::pass(&pool, &retention, cutoff, None, |_| {})
        .await
        .context("purging bodies")?;
    println!(
        "purged {} bodies of events received before {} (RETENTION_DAYS={})",
        done.purged,
        cutoff.to_rfc3339(),
        retention.days
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the report is the command's output
async fn erase(settings: &Settings, args: EraseArgs) -> anyhow::Result<ExitCode> {
    let target = match (args.delivery_id, args.pointer, args.value) {
        (Some(id), _, _) => erase::Target::DeliveryId(id),
        (None, Some(pointer), Some(value)) => erase::Target::Pointer { pointer, value },
        _ => anyhow::bail!("erase needs --delivery-id, or --pointer with --value"),
    };
    let request = erase::Request {
        source: args.source,
        target,
        by: erase::operator(args.by.as_deref(), |name| std::env::var(name).ok()),
        reason: args.reason,
        dry_run: args.dry_run,
    };
    let pool = consumer::store::connect(settings).await?;
    let report = erase::erase(&pool, &request, |scanned| {
        eprintln!("erase: {scanned} bodies read");
    })
    .await?;
    print!("{}", report.lines(&request.source));
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the summary is the command's output
async fn replay(settings: &Settings, args: ReplayEventsArgs) -> anyhow::Result<ExitCode> {
    let since = replay::parse_time(&args.since, false).map_err(|why| anyhow::anyhow!("--since {why}"))?;
    let until = replay::parse_time(&args.until, true).map_err(|why| anyhow::anyhow!("--until {why}"))?;
    let request = replay::Request {
        source: args.source,
        event_type: args.event_type,
        since,
        until,
        dry_run: args.dry_run,
    };
    let pool = consumer::store::connect(settings).await?;
    let summary = replay::replay(settings, &pool, &request, |summary| {
        eprintln!("{}", summary.progress_line());
    })
    .await?;
    print!("{}", summary.lines());
    Ok(service::exit_status(summary.failed == 0))
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
