//! Shared by the dashboard's test binaries.

use dashboard::{Application, Settings};
use testkit::{Env, TestDatabase};
use webhook_core::config::Vars;

/// Starts the dashboard over `database` on a free port: its base URL and its stop token.
pub(crate) async fn start_dashboard(database: &TestDatabase) -> (String, tokio_util::sync::CancellationToken) {
    start_dashboard_with(database, &[]).await
}

/// [`start_dashboard`] with more variables (`DASHBOARD_AUTH`, …).
pub(crate) async fn start_dashboard_with(
    database: &TestDatabase,
    vars: &[(&str, &str)],
) -> (String, tokio_util::sync::CancellationToken) {
    let mut env = Env::new()
        .with("DATABASE_URL", database.url())
        .with("DASHBOARD_ADDR", "127.0.0.1:0");
    for (name, value) in vars {
        env = env.with(name, value);
    }
    let lookup = env.lookup();
    let app = Application::build(Settings::from_vars(&Vars::new(&lookup)).expect("test settings"))
        .await
        .expect("the dashboard starts");
    let base = format!("http://{}", app.addr());
    let token = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    (base, token)
}
