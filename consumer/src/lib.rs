//! The consumer: reads events from `{P}.events` in batches, stores each exactly once in
//! MySQL/MariaDB, and only then acks them.
//!
//! ```text
//! {P}.events ──deliveries──▶ worker ──one transaction per batch──▶ events (UNIQUE source, delivery_id)
//!                              │ commit, then one multiple ack
//!                              ├── refused by the database ──▶ {P}.retry.{n} (retry-count + 1), confirmed
//!                              └── poison / retries spent ───▶ {P}.dlx ──▶ {P}.dead, confirmed
//! ```
//!
//! - [`settings`]: configuration, one line per bad value.
//! - [`startup`]: [`Application`] wires the database, the broker, the worker and the HTTP
//!   server (`/healthz`, `/readyz`, `/metrics`).
//! - `worker`: reads each batch, plans it and settles it; rides out outages.
//! - `plan`: pure: what becomes of each delivery of a batch (rows, sales, retries, dead letters).
//! - `settle`: carries a plan out behind two small traits (store, broker): commits, the retry
//!   ladder, dead letters, the ack.
//! - [`store`]: every SQL statement, and the classification of database errors.
//! - `retry`, `message`: pure rules for failed messages and for reading a delivery.
//! - `untrusted`: text from outside escaped and bounded before it goes into an error.
//! - `processors`: pure rules for what an event triggers (sales and refunds), per source.
//! - `rejections`: stores the handler's rejection log (`{P}.rejected`) in `rejections`.
//! - [`retention`]: the purge of old bodies (`RETENTION_DAYS`, `consumer purge`).
//! - [`erase`]: erasing events and what they set, leaving a tombstone (`consumer erase`).
//! - [`replay`]: running stored events through the current processors (`consumer replay`).
//! - [`metrics`]: the Prometheus metrics.

pub mod erase;
mod health;
mod message;
pub mod metrics;
mod plan;
mod processors;
mod rejections;
pub mod replay;
pub mod retention;
mod retry;
pub mod settings;
mod settle;
pub mod startup;
pub mod store;
mod untrusted;
mod worker;

pub use settings::Settings;
pub use startup::Application;
pub use store::migrate;
