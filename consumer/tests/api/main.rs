//! The consumer's contract against the real RabbitMQ and MariaDB/MySQL: events stored once,
//! acked only after the commit, poison and refused rows dead-lettered, outages ridden out,
//! dead letters listed and replayed.

#![allow(clippy::unwrap_used)]

mod dead_letters;
mod dlq;
mod helpers;
mod outage;
mod storing;
