//! The consumer's contract against the real RabbitMQ and MariaDB/MySQL: events stored once,
//! acked only after the commit, sales and refunds applied with them, poison, refused rows and
//! malformed sales dead-lettered and recorded, the rejection log stored, outages ridden out, dead letters listed and
//! replayed, the views' counts always matching the rows; bodies purged after RETENTION_DAYS,
//! events erased with a tombstone, stored events replayed through the current processors; and its SQL on its own (`storage`).

#![allow(clippy::unwrap_used)]

mod conflicts;
mod counts;
mod database_tls;
mod dead_letters;
mod dlq;
mod erasure;
mod helpers;
mod ledger;
mod migrations;
mod outage;
mod rejections;
mod replay;
mod retention;
mod sales;
mod storage;
mod storing;
