//! fault-suite: proves, with numbers, that webhook-inbox neither loses nor doubles an event.
//!
//! It runs the real `request-handler` and `consumer` executables (found next to its own) against
//! the machine's RabbitMQ and MySQL/MariaDB, each scenario with its own `AMQP_PREFIX` and its own
//! database, drives signed traffic through the handler, and breaks things on the way: broker
//! and database connections cut through a proxy, consumers killed, poison published, SIGTERM.
//! Then it drains and checks the invariant: the delivery ids answered 200 are exactly those in
//! `events` and in `{P}.dead`, none is stored twice, and the dead-letter queue holds only what
//! should be there. Exit status 0 when every scenario held, 1 when one did not.
//!
//! `scripts/fault-suite` builds the binaries and runs it.

#![allow(clippy::print_stdout)] // a command-line tool: the report is its output

mod check;
mod cluster;
mod cluster_scenarios;
mod load;
mod process;
mod scenarios;
mod stage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::time::Instant;

use crate::check::Verdict;
use crate::scenarios::{Scenario, Settings, SharedCluster};
use crate::stage::Paths;

/// Runs the fault scenarios against the real services and checks that every event answered
/// 200 is stored exactly once or dead-lettered. Needs RabbitMQ and MySQL/MariaDB (see
/// TEST_AMQP_URL and TEST_DATABASE_URL) and the request-handler and consumer binaries built
/// next to this one.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Run only the scenarios whose name contains one of these (e.g. `broker`, `kill`).
    filters: Vec<String>,
    /// Run the selected scenarios this many times in a row.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Requests per second through the handler, all senders together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    senders: u64,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("fault-suite: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// One scenario's line of the report.
struct Line {
    name: &'static str,
    verdict: Option<Verdict>,
    seconds: f64,
    failure: Option<String>,
    notes: Vec<String>,
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if args.list {
        for scenario in Scenario::ALL {
            println!("{:<14} {}", scenario.name(), scenario.about());
        }
        return Ok(true);
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be above 0");
    }
    let selected: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|scenario| args.filters.is_empty() || args.filters.iter().any(|f| scenario.name().contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = Scenario::ALL.iter().map(|scenario| scenario.name()).collect();
        bail!(
            "no scenario matches {:?}; the scenarios are {}",
            args.filters,
            names.join(", ")
        );
    }
    let settings = Arc::new(Settings {
        paths: paths()?,
        rate: args.rate,
        senders: usize::try_from(args.senders).unwrap_or(8),
        cluster: SharedCluster::default(),
    });
    println!(
        "fault-suite: {} scenario(s) x {} round(s), {} requests/s from {} senders; logs in {}",
        selected.len(),
        args.rounds,
        args.rate,
        args.senders,
        settings.paths.logs.display()
    );
    let started = Instant::now();
    let mut lines = Vec::new();
    for round in 1..=args.rounds {
        for &scenario in &selected {
            println!("\n== round {round}: {} ({})", scenario.name(), scenario.about());
            let Some(line) = run_one(scenario, round, &settings).await else {
                println!("interrupted: the scenario's processes, queues and database are cleaned up");
                return Ok(false);
            };
            print_header();
            print_line(&line);
            for note in &line.notes {
                println!("  {note}");
            }
            if let Some(failure) = &line.failure {
                println!("FAILED {}: {failure}", line.name);
            }
            lines.push(line);
        }
    }
    println!("\n== summary ({:.0} s)", started.elapsed().as_secs_f64());
    print_header();
    for line in &lines {
        print_line(line);
    }
    let failed: Vec<&Line> = lines.iter().filter(|line| line.failure.is_some()).collect();
    if failed.is_empty() {
        println!(
            "all {} scenario run(s) passed: nothing lost, nothing stored twice",
            lines.len()
        );
        Ok(true)
    } else {
        for line in &failed {
            println!("FAILED {}: {}", line.name, line.failure.as_deref().unwrap_or_default());
        }
        Ok(false)
    }
}

/// Runs one scenario in a task of its own, so that a panic is reported rather than ending the
/// suite, and its processes, queues and database are cleaned up either way. `None` on Ctrl-C
/// or SIGTERM.
async fn run_one(scenario: Scenario, round: u32, settings: &Arc<Settings>) -> Option<Line> {
    let started = Instant::now();
    let log = stage::log_file(&settings.paths, round, scenario.name());
    let task_settings = Arc::clone(settings);
    let mut task = tokio::spawn(async move {
        let (stage, report) = scenario.run(&task_settings, round).await?;
        let verdict = check::verdict(&report.observed);
        let mut problems = report.problems;
        problems.extend(verdict.problems.iter().cloned());
        for problem in &problems {
            stage.log.note(&format!("PROBLEM: {problem}"));
        }
        let drained = format!("drained in {:.1} s", report.drain.as_secs_f64());
        stage.log.note(&drained);
        let mut notes = report.notes;
        notes.push(drained);
        Ok::<_, anyhow::Error>((verdict, problems, notes))
    });
    let joined = tokio::select! {
        joined = &mut task => joined,
        signal = webhook_core::service::shutdown_signal() => {
            println!("{signal} received: stopping the scenario");
            task.abort();
            let _ = task.await;
            return None;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (verdict, failure, notes) = match joined {
        Ok(Ok((verdict, problems, notes))) if problems.is_empty() => (Some(verdict), None, notes),
        Ok(Ok((verdict, problems, notes))) => {
            let failure = format!("{}; log: {}", problems.join("; "), log.display());
            (Some(verdict), Some(failure), notes)
        }
        Ok(Err(error)) => (None, Some(format!("{error:#}; log: {}", log.display())), Vec::new()),
        Err(error) => (
            None,
            Some(format!("the scenario panicked: {error}; log: {}", log.display())),
            Vec::new(),
        ),
    };
    Some(Line {
        name: scenario.name(),
        verdict,
        seconds,
        failure,
        notes,
    })
}

fn print_header() {
    println!(
        "{:<14} {:>6} {:>6} {:>5} {:>5} {:>6} {:>4} {:>5} {:>4} {:>9} {:>7} {:>5}  result",
        "scenario", "sent", "200", "500", "other", "rows", "dup", "dead", "lost", "no200rows", "redeliv", "secs"
    );
}

fn print_line(line: &Line) {
    let result = if line.failure.is_some() { "FAILED" } else { "ok" };
    match &line.verdict {
        Some(v) => println!(
            "{:<14} {:>6} {:>6} {:>5} {:>5} {:>6} {:>4} {:>5} {:>4} {:>9} {:>7} {:>5.0}  {result}",
            line.name,
            v.sent,
            v.ok,
            v.server_errors,
            v.other,
            v.rows,
            v.duplicates,
            v.dead,
            v.lost,
            v.stored_without_200,
            v.redeliveries,
            line.seconds
        ),
        None => println!("{:<14} {:>80.0}  {result}", line.name, line.seconds),
    }
}

/// The service binaries next to this one, and a fresh log directory under the same target
/// directory (`target/fault-suite/<time>/`).
fn paths() -> anyhow::Result<Paths> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let dir = exe.parent().context("this executable has no directory")?;
    let binary = |name: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if !path.is_file() {
            bail!(
                "{} not found: build it first (cargo build --bin request-handler --bin consumer --bin fault-suite), or run scripts/fault-suite",
                path.display()
            );
        }
        Ok(path)
    };
    let target = dir.parent().unwrap_or(dir);
    let run = format!(
        "{}-{}",
        chrono::Local::now().format("%Y%m%d-%H%M%S"),
        std::process::id()
    );
    let logs = target.join("fault-suite").join(run);
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    Ok(Paths {
        handler: binary("request-handler")?,
        consumer: binary("consumer")?,
        logs,
    })
}
