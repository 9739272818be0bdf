//! The request handler: the door vendors knock on.
//!
//! `POST /webhooks/{source}` (and `POST /webhook` for the `default` source) checks the source,
//! the body size and the HMAC signature over the raw bytes, checks that the body is JSON, and
//! publishes it unchanged to RabbitMQ as a persistent, mandatory message on a confirm-mode
//! channel. It answers 200 only after the broker's plain ack, so a 200 means the event is on
//! disk in the broker; anything else is a 500 and the vendor retries.

pub mod admission;
pub mod error;
pub mod identify;
pub mod metrics;
pub mod quarantine;
pub mod rejections;
mod routes;
pub mod settings;
pub mod skew;
pub mod sources;
pub mod spool;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
