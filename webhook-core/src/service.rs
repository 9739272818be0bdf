//! What every binary does before and around its work: read `.env`, start logging, read the
//! settings (one line and exit code 2 on a bad value), and wait for SIGTERM or Ctrl-C.

use crate::config::{ConfigError, Vars};

/// The exit code for bad configuration.
pub const EXIT_CONFIG: i32 = 2;

/// Loads `.env` from the working directory if there is one (real environment variables win),
/// then starts `env_logger` with `RUST_LOG` (default `info`).
///
/// A `.env` that exists but cannot be read stops the process with one line.
pub fn init() {
    let env_file = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,tracing::span=warn")).init();
    if let Err(error) = env_file
        && !error.not_found()
    {
        log::error!("cannot read .env: {error}");
        std::process::exit(EXIT_CONFIG);
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_name_is_never_empty_and_printable() {
        let name = super::hostname();
        assert!(!name.is_empty() && name.len() <= 64, "{name:?}");
        assert!(name.chars().all(|c| c.is_ascii_graphic()), "{name:?}");
    }
}
