//! What the request handler and the consumer must agree on.
//!
//! - [`admission`]: a source's rate limit, what it gets when limited, which event types it keeps.
//! - [`config`]: reading and validating settings, one clear line per bad value.
//! - [`signature`]: every vendor's signature scheme, one file per family over one HMAC path,
//!   verified over the raw body in constant time.
//! - [`ids`]: source names, delivery ids and event types, as types that hold only valid values.
//! - [`envelope`]: the headers and properties that travel beside an event's body.
//! - [`metrics`]: registering a metric and keeping it in one step.
//! - [`money`]: currency minor units and exact decimal amounts, never floating point.
//! - [`payload`]: checking that a body is JSON and reading its event type in one pass.
//! - [`rejection`]: the record kept about each rejected request.
//! - [`sources`]: the sources file (`SOURCES_FILE`), parsed and checked once for every binary.
//! - [`spooling`]: a source's `when_broker_down` and `quarantine`, for the handler's spool.
//! - [`topology`]: the exchanges and queues, declared idempotently by every service.
//! - [`database`] (feature `mysql`): `DATABASE_URL`, its TLS files, and why a connection failed.
//! - [`addresses`]: the broker's addresses (one node or a cluster), tried in turn.
//! - [`broker`]: connecting to RabbitMQ and publishing with confirms.
//! - [`consume`]: consuming a queue in batches, reconnecting until shutdown.
//! - [`dlq`]: listing and replaying the dead-letter queue (`consumer dlq`, the dashboard's
//!   replay form).
//! - [`tls`]: CA and client certificate files, and why a TLS handshake failed.
//! - [`service`]: start-up and shutdown plumbing every binary shares.
//! - [`when`]: time bounds as an operator writes them (`consumer replay`, the dashboard).
//! - [`http`] (feature `http`): `/healthz`, `/readyz`, `/metrics` and the server every service
//!   runs.

pub mod addresses;
pub mod admission;
pub mod broker;
pub mod config;
pub mod consume;
#[cfg(feature = "mysql")]
pub mod database;
pub mod dlq;
pub mod envelope;
#[cfg(feature = "http")]
pub mod http;
pub mod ids;
pub mod metrics;
pub mod money;
pub mod payload;
pub mod rejection;
pub mod service;
pub mod signature;
pub mod sources;
pub mod spooling;
pub mod tls;
pub mod topology;
pub mod when;
