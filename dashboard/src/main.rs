use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use dashboard::{Application, Settings};
use webhook_core::service;

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a password from standard input (never from the command line) and print the line
    /// `USER:$argon2id$…` for the users file of DASHBOARD_AUTH=basic:FILE.
    HashPassword {
        /// The user name: no spaces, control characters or colons.
        user: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = webhook_core::command_line!(Command);
    match command {
        Some(Command::HashPassword { user }) => hash_password(&user),
        None => match serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                log::error!("{error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve() -> anyhow::Result<()> {
    service::init();
    let settings = service::settings_or_exit(Settings::from_vars);
    let app = Application::build(settings).await.context("starting the dashboard")?;
    service::stop_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}

/// `dashboard hash-password USER`: the password is one line of standard input (all of it when
/// it is not a terminal), without its final line break, so that `printf '%s' "$PASSWORD" |`,
/// `echo "$PASSWORD" |` and a typed line all work; a password with a line break inside is
/// refused rather than cut.
#[allow(clippy::print_stdout)] // the line is the command's output
fn hash_password(user: &str) -> ExitCode {
    use std::io::IsTerminal as _;
    let stdin = std::io::stdin();
    let mut input = String::new();
    let read = if stdin.is_terminal() {
        eprint!("password for {user} (shown as typed; end with Enter): ");
        stdin.read_line(&mut input).map(drop)
    } else {
        stdin.lock().read_to_string(&mut input).map(drop)
    };
    if let Err(error) = read {
        eprintln!("dashboard hash-password: cannot read the password from standard input: {error}");
        return ExitCode::FAILURE;
    }
    let password = input
        .strip_suffix("\r\n")
        .or_else(|| input.strip_suffix('\n'))
        .unwrap_or(&input);
    if password.contains(['\n', '\r']) {
        eprintln!("dashboard hash-password: the password has a line break (give one line)");
        return ExitCode::FAILURE;
    }
    match dashboard::auth::users_file_line(user, password) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("dashboard hash-password: {why}");
            ExitCode::FAILURE
        }
    }
}
