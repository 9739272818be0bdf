//! What every binary does before and around its work: read `.env`, start logging, read the
//! settings (one line and exit code 2 on a bad value), and wait for SIGTERM or Ctrl-C.

use std::sync::atomic::{AtomicU64, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::{ConfigError, Vars};

/// The exit code for bad configuration.
pub const EXIT_CONFIG: i32 = 2;

/// Loads `.env` from the working directory if there is one (real environment variables win),
/// then starts `env_logger` with `RUST_LOG` (default `info`).
///
/// A `.env` that exists but cannot be read stops the process with one line.
///
/// actix-web logs every connection it drops at ERROR (`stream error: …`), whether its client
/// sent garbage or went away; such lines are the client's doing, so this logger writes them at
/// INFO (requests refused before routing, counted in [`refused_http_requests`]) or DEBUG (the
/// rest). actix-web gives no other hook for requests it refuses before any route sees them.
pub fn init() {
    let env_file = dotenvy::dotenv();
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,tracing::span=warn")).build();
    // Error records always reach the logger, so refused requests are counted even when none
    // are written.
    let max_level = logger.filter().max(LevelFilter::Error);
    if log::set_boxed_logger(Box::new(ClientErrors(logger))).is_ok() {
        log::set_max_level(max_level);
    }
    if let Err(error) = env_file
        && !error.not_found()
    {
        log::error!("cannot read .env: {error}");
        std::process::exit(EXIT_CONFIG);
    }
}

/// What actix-web's HTTP/1 dispatcher logs its errors as.
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// Why actix-web refused a request before it reached a route: the labels of
/// [`refused_http_requests`].
pub const REFUSED_HTTP_REASONS: [&str; 3] = ["malformed", "head_too_large", "head_timeout"];

static REFUSED_HTTP: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// How many requests actix-web refused before routing in this process, by reason
/// ([`REFUSED_HTTP_REASONS`]): a request line or header that does not parse (400), a head
/// over the size limit (431), a head that did not arrive in time (408). Counted by the logger
/// [`init`] installs.
pub fn refused_http_requests() -> [(&'static str, u64); 3] {
    std::array::from_fn(|index| (REFUSED_HTTP_REASONS[index], REFUSED_HTTP[index].load(Ordering::Relaxed)))
}

/// What a dispatcher `stream error: …` is: the [`REFUSED_HTTP_REASONS`] index of a request
/// refused before routing, and the level it is worth.
fn classify_stream_error(error: &str) -> (Option<usize>, Level) {
    if error.starts_with("request parse error: message head is too large") {
        (Some(1), Level::Info)
    } else if error.starts_with("request parse error:") {
        (Some(0), Level::Info)
    } else if error.starts_with("request did not complete within the specified timeout") {
        (Some(2), Level::Info)
    } else {
        // The client went away, or stopped sending a body the handler no longer read.
        (None, Level::Debug)
    }
}

/// env_logger, with the dispatcher's client errors counted and written below ERROR.
struct ClientErrors(env_logger::Logger);

impl Log for ClientErrors {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        (metadata.target() == DISPATCHER && metadata.level() == Level::Error) || self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.target() == DISPATCHER && record.level() == Level::Error {
            let text = record.args().to_string();
            if let Some(error) = text.strip_prefix("stream error: ") {
                let (refused, level) = classify_stream_error(error);
                if let Some(index) = refused {
                    REFUSED_HTTP[index].fetch_add(1, Ordering::Relaxed);
                }
                let metadata = Metadata::builder().level(level).target(DISPATCHER).build();
                if self.0.enabled(&metadata) {
                    self.0.log(
                        &Record::builder()
                            .metadata(metadata)
                            .args(format_args!("{text}"))
                            .module_path(record.module_path())
                            .file(record.file())
                            .line(record.line())
                            .build(),
                    );
                }
                return;
            }
        }
        if self.0.matches(record) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Builds settings from the process environment; on a bad value prints the one line naming
/// the variable and exits with [`EXIT_CONFIG`].
pub fn settings_or_exit<T>(read: impl FnOnce(&Vars<'_>) -> Result<T, ConfigError>) -> T {
    let lookup = |name: &str| std::env::var(name).ok();
    match read(&Vars::new(&lookup)) {
        Ok(settings) => settings,
        Err(error) => {
            log::error!("{error}");
            std::process::exit(EXIT_CONFIG);
        }
    }
}

/// This machine's (or container's) host name, for naming broker connections: in containers
/// every process may be pid 1, so the pid alone tells replicas apart nowhere.
///
/// `HOSTNAME` if set, else the kernel's host name, else `unknown`; trimmed to 64 printable
/// ASCII characters.
pub fn hostname() -> String {
    let found = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let name: String = found.trim().chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    if name.is_empty() { "unknown".to_owned() } else { name }
}

/// Cancels `shutdown` when SIGTERM or Ctrl-C arrives, saying which: every binary's way of
/// being stopped, so that a container stop and a terminal behave alike.
pub fn stop_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let signal = shutdown_signal().await;
        log::info!("{signal} received: stopping");
        shutdown.cancel();
    });
}

/// Completes on the first SIGTERM or Ctrl-C (SIGINT), naming which.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(error) => {
                log::warn!("cannot listen for SIGTERM: {error}");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// The exit status of a command that reports what it did: success only when all of it
/// succeeded.
pub fn exit_status(all_done: bool) -> std::process::ExitCode {
    if all_done {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Which of the items a command holds (dead letters, kept requests) it takes: every one, or
/// those with these ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every one.
    All,
    /// Those whose id is one of these.
    Ids(Vec<String>),
}

impl Selection {
    /// Whether the item with `id` is taken.
    pub fn takes(&self, id: &str) -> bool {
        match self {
            Self::All => true,
            Self::Ids(ids) => ids.iter().any(|wanted| wanted == id),
        }
    }

    /// The ids asked for that `found` does not hold, in the order asked (none for `All`).
    pub fn not_found<'a>(&self, found: impl Fn(&str) -> bool + 'a) -> Vec<String> {
        match self {
            Self::All => Vec::new(),
            Self::Ids(ids) => ids.iter().filter(|id| !found(id)).cloned().collect(),
        }
    }
}

/// `--all`, or `--id ID` (repeatable): exactly one of the two, for a command taking held items.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct SelectionArgs {
    /// Every one.
    #[arg(long)]
    pub all: bool,
    /// The one with this id, as the command's `list` shows it (repeatable).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
}

#[cfg(feature = "cli")]
impl From<SelectionArgs> for Selection {
    fn from(args: SelectionArgs) -> Self {
        if args.all { Self::All } else { Self::Ids(args.ids) }
    }
}

/// What a service's command line says: `Some` subcommand of `C`, or `None` to run the service.
/// Exits with clap's message (and status 2) on a bad command line, and prints `--help` and
/// `--version` itself. Called through [`command_line!`], which gives the calling binary's name,
/// version and description (clap's derive would take this crate's).
#[cfg(feature = "cli")]
#[must_use]
pub fn command_line<C: clap::Subcommand>(name: &'static str, version: &'static str, about: &'static str) -> Option<C> {
    let command = C::augment_subcommands(clap::Command::new(name).version(version).about(about));
    let matches = command.get_matches();
    matches.subcommand()?;
    Some(C::from_arg_matches(&matches).unwrap_or_else(|error| error.exit()))
}

/// `command_line!(Command)`: the binary's command line as `Option<Command>` (see
/// [`service::command_line`](crate::service::command_line)), with the binary's own name,
/// version and the package description as the about line.
#[cfg(feature = "cli")]
#[macro_export]
macro_rules! command_line {
    ($command:ty) => {
        $crate::service::command_line::<$command>(
            env!("CARGO_BIN_NAME"),
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_takes_what_it_names_and_tells_the_ids_it_did_not_find() {
        let all = Selection::All;
        assert!(all.takes("anything"));
        assert!(all.not_found(|_| false).is_empty());
        let some = Selection::Ids(vec!["b".to_owned(), "a".to_owned(), "c".to_owned()]);
        assert!(some.takes("a") && some.takes("c"));
        assert!(!some.takes("d") && !some.takes(""));
        assert_eq!(some.not_found(|id| id == "a"), ["b", "c"]);
    }

    #[test]
    fn the_dispatchers_client_errors_are_told_apart() {
        assert_eq!(
            classify_stream_error("request parse error: invalid Header provided"),
            (Some(0), Level::Info)
        );
        assert_eq!(
            classify_stream_error("request parse error: invalid method specified"),
            (Some(0), Level::Info)
        );
        assert_eq!(
            classify_stream_error("request parse error: message head is too large"),
            (Some(1), Level::Info)
        );
        assert_eq!(
            classify_stream_error("request did not complete within the specified timeout"),
            (Some(2), Level::Info)
        );
        assert_eq!(
            classify_stream_error("I/O error: Connection reset by peer (os error 104)"),
            (None, Level::Debug)
        );
        assert_eq!(REFUSED_HTTP_REASONS[1], "head_too_large");
    }

    #[test]
    fn the_host_name_is_never_empty_and_printable() {
        let name = super::hostname();
        assert!(!name.is_empty() && name.len() <= 64, "{name:?}");
        assert!(name.chars().all(|c| c.is_ascii_graphic()), "{name:?}");
    }
}
