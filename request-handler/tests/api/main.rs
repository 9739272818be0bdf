//! The handler's contract, against the real RabbitMQ: every status code, what is published
//! for an accepted request and that nothing is published for a rejected one.

#![allow(clippy::unwrap_used)]

mod admission;
mod broker_addresses;
mod broker_outage;
mod broker_tls;
mod helpers;
mod hostile;
mod identity;
mod ingest;
mod process;
mod schemes;
mod shutdown;
mod spool;
mod vendors;
mod worker_connections;
